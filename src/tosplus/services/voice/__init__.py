"""Voice: speak to any device — audio in, voice activity, speech to text, understanding, action, speech out."""
