"""Cross-device sessions: discovery of screens, pairing a controller with a screen (SPAKE2, relayed by the hub),
and the live controller ↔ screen sessions (player slots, keep-alive, resume, kick). See docs/sessions.md."""
