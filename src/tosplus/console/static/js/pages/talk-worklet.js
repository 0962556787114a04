// The Talk page's microphone tap: runs on the audio thread and hands blocks of samples (the context's rate,
// mono) to the page, which resamples them to 16 kHz. Blocks of 128 samples are gathered into ~40 ms batches so
// the page is not woken 375 times a second. Nothing is played back (the output stays silent).

const BATCH = 2048;

class MicrophoneTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Float32Array(BATCH);
    this.filled = 0;
    this.port.onmessage = (message) => {
      if (message.data === 'flush' && this.filled) {
        this.port.postMessage(this.batch.slice(0, this.filled));
        this.filled = 0;
      }
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const n = Math.min(channel.length - offset, BATCH - this.filled);
        this.batch.set(channel.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === BATCH) {
          this.port.postMessage(this.batch.slice(0));
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('microphone-tap', MicrophoneTap);
