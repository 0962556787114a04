// "Talk": speak (push-to-talk) or type a request to a home, and see what was heard, understood, done and said.
//
// Push-to-talk records the microphone (getUserMedia + an AudioWorklet, or a ScriptProcessor where worklets are
// missing), resamples it here to 16 kHz mono 16-bit PCM and streams it in ~100 ms binary frames over the
// WebSocket /api/v1/voice/stream (signed in with ?token=, as the live stream is); {"type":"end"} goes when the
// button is let go, or when the hub hears the end of speech first. The hub answers with the pipeline's events
// (run-start, stt-vad-start/end, stt-end, intent-end, tts-end with the answer as WAV, run-end, error), shown as
// they arrive. The typed box posts to /voice/text and shows the same kind of result. The language and engine
// pickers are the home's voice settings (owners change them; members see them).

import { enc, get, patch, post, refresh, token } from '../api.js';
import { add, busy, describeError, field, fmtTime, h, header, homeTabs, notice, showError } from '../ui.js';

const RATE = 16000; // what the hub's pipeline takes
const FRAME_SAMPLES = 1600; // 100 ms per WebSocket frame
const HOLD_MS = 350; // pressed longer than this: push-to-talk (let go to stop); shorter: a click (click again)
const MAX_RECORD_MS = 30000; // the hub listens to 30 s at most
const HISTORY = 10;
const LANGUAGES = { en: 'English', 'zh-cn': '中文 (Mandarin)' };
const ENGINES = {
  pocketsphinx: 'PocketSphinx (fast; this home’s sentences only)',
  'whisper-base': 'Whisper (free-form; English and Mandarin)',
};

// What was said to each home in this tab, newest first (kept while the console is open).
const histories = new Map();

/** Turns microphone blocks at any rate into 16 kHz 16-bit samples: each output sample is the mean of the input
 * samples its 1/16000 s covers (a box filter, enough against aliasing for speech), carried across blocks. */
class Resampler {
  constructor(inputRate) {
    this.step = inputRate / RATE; // input samples per output sample
    this.position = 0; // where the next output sample starts, in input samples from the start of `pending`
    this.pending = new Float32Array(0);
  }

  push(block) {
    const input = new Float32Array(this.pending.length + block.length);
    input.set(this.pending);
    input.set(block, this.pending.length);
    const out = [];
    let position = this.position;
    while (position + this.step <= input.length) {
      const start = Math.floor(position);
      const end = Math.max(start + 1, Math.floor(position + this.step));
      let sum = 0;
      for (let i = start; i < end; i++) sum += input[i];
      const value = Math.max(-1, Math.min(1, sum / (end - start)));
      out.push(value < 0 ? value * 0x8000 : value * 0x7fff);
      position += this.step;
    }
    const keep = Math.floor(position);
    this.pending = input.slice(keep);
    this.position = position - keep;
    return Int16Array.from(out);
  }
}

/** The microphone until stop(): `onPcm(Int16Array)` with 16 kHz samples as they come. */
async function openMicrophone(onPcm) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('no-media');
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  try {
    return await tap(stream, onPcm);
  } catch (err) {
    for (const track of stream.getTracks()) track.stop(); // do not leave the microphone on
    throw err;
  }
}

async function tap(stream, onPcm) {
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const resampler = new Resampler(context.sampleRate);
  const take = (block) => {
    const pcm = resampler.push(block);
    if (pcm.length) onPcm(pcm);
  };
  let node = null;
  try {
    if (context.audioWorklet) {
      await context.audioWorklet.addModule(new URL('./talk-worklet.js', import.meta.url));
      node = new AudioWorkletNode(context, 'microphone-tap', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1 });
      node.port.onmessage = (message) => take(message.data);
    }
  } catch (err) {
    console.warn('no AudioWorklet; recording with a ScriptProcessor', err);
    node = null;
  }
  if (!node) {
    node = context.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (event) => take(event.inputBuffer.getChannelData(0).slice(0));
  }
  source.connect(node);
  node.connect(context.destination); // a node that reaches no destination is not run; its output is silence
  if (context.state === 'suspended') await context.resume();
  return {
    async stop() {
      if (node.port) node.port.postMessage('flush');
      await new Promise((resolve) => setTimeout(resolve, 60)); // the last batch from the audio thread
      source.disconnect();
      node.disconnect();
      for (const track of stream.getTracks()) track.stop();
      await context.close();
    },
  };
}

/** Words for a microphone that could not be opened. */
function microphoneWords(err) {
  const name = err?.name || err?.message;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'The browser was not allowed to use the microphone. Allow it for this site (the icon in the address bar) and try again.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone was found on this device.';
  if (name === 'NotReadableError') return 'The microphone is in use by another program, or it could not be started.';
  if (name === 'no-media') return 'This browser cannot record here: the microphone needs a secure (https) address.';
  return 'The microphone could not be started.';
}

function slotsWords(slots) {
  const entries = Object.entries(slots || {});
  return entries.length ? entries.map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v}`).join(', ') : 'none';
}

function playWav(base64, player) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: 'audio/wav' })); // the console's CSP allows blob: media
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = url;
  player.hidden = false;
  player.play().catch(() => {
    // autoplay refused (no gesture since): the controls stay visible to play it by hand
  });
}

export async function render(root, homeId) {
  let home;
  let settings;
  try {
    [home, settings] = await Promise.all([get(`homes/${enc(homeId)}`), get(`voice/homes/${enc(homeId)}/settings`)]);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : describeError(err)));
    return undefined;
  }
  const mayChange = home.role === 'owner' || home.role === 'operator';
  const history = histories.get(homeId) || [];
  histories.set(homeId, history);

  // -- settings: language, engine, spoken answers ---------------------------------------------------------
  const languagePick = h('select', { name: 'language', disabled: !mayChange });
  const enginePick = h('select', { name: 'engine', disabled: !mayChange });
  const speakPick = h('input', { type: 'checkbox', name: 'speak', disabled: !mayChange });
  const settingsError = h('div');
  const showSettings = () => {
    languagePick.replaceChildren(
      ...Object.keys(settings.available).map((code) =>
        h('option', { value: code, selected: code === settings.language }, LANGUAGES[code] || code),
      ),
    );
    const offered = settings.available[settings.language] || [];
    enginePick.replaceChildren(
      ...offered.map((name) => h('option', { value: name, selected: name === settings.engines[settings.language] }, ENGINES[name] || name)),
    );
    speakPick.checked = settings.speak;
  };
  const change = async (body) => {
    showError(settingsError, null);
    try {
      settings = await patch(`voice/homes/${enc(homeId)}/settings`, body);
    } catch (err) {
      showError(settingsError, err);
    }
    showSettings();
  };
  languagePick.addEventListener('change', () => change({ language: languagePick.value }));
  enginePick.addEventListener('change', () => change({ engines: { [settings.language]: enginePick.value } }));
  speakPick.addEventListener('change', () => change({ speak: speakPick.checked }));
  showSettings();

  // -- what the current request gives, as it comes ---------------------------------------------------------
  const status = h('p', { class: 'talk-status', role: 'status', 'aria-live': 'polite' }, 'Hold the button and speak, or type below.');
  const heard = h('dd', { dataset: { talk: 'heard' } }, '—');
  const intent = h('dd', { dataset: { talk: 'intent' } }, '—');
  const answer = h('dd', { dataset: { talk: 'answer' } }, '—');
  const player = h('audio', { controls: true, hidden: true, class: 'talk-player' });
  const problem = h('div', { class: 'talk-problem' });
  const result = h(
    'section',
    { class: 'panel talk-result', 'aria-label': 'Result' },
    h('dl', { class: 'limits' }, h('dt', {}, 'Heard'), heard, h('dt', {}, 'Understood'), intent, h('dt', {}, 'Answer'), answer),
    player,
    problem,
  );
  const historyList = h('ol', { class: 'talk-history', 'aria-label': 'Earlier requests' });
  const showHistory = () => {
    historyList.replaceChildren(
      ...history.map((item) =>
        h(
          'li',
          { dataset: { ok: String(item.ok) } },
          h('span', { class: 'card-sub' }, `${fmtTime(item.at)} · ${item.via}`),
          h('div', {}, h('strong', {}, item.heard || '(not understood)')),
          h('div', {}, item.answer || ''),
        ),
      ),
    );
    if (!history.length) historyList.replaceChildren(h('li', { class: 'empty' }, 'Nothing said yet.'));
  };
  showHistory();

  const clear = () => {
    heard.textContent = '…';
    intent.textContent = '…';
    answer.textContent = '…';
    player.hidden = true;
    player.pause();
    problem.replaceChildren();
  };
  const showReply = (reply) => {
    const recognized = reply.recognized;
    intent.textContent = recognized ? `${recognized.intent} (${slotsWords(recognized.slots)})` : 'Not understood';
    intent.dataset.intent = recognized ? recognized.intent : '';
    answer.textContent = reply.answer || '—';
    answer.className = reply.ok ? 'talk-ok' : 'talk-not-ok';
  };
  const remember = (item) => {
    history.unshift({ at: Date.now(), ...item });
    history.splice(HISTORY);
    showHistory();
  };

  // -- push-to-talk -----------------------------------------------------------------------------------------
  const button = h('button', { type: 'button', class: 'talk-button', 'aria-pressed': 'false' }, 'Hold to talk');
  let run = null; // the request being recorded or answered

  const setButton = (state) => {
    button.dataset.state = state;
    button.setAttribute('aria-pressed', String(state === 'recording'));
    button.textContent = { idle: 'Hold to talk', recording: 'Listening… let go (or click) to stop', waiting: 'Thinking…' }[state];
    button.disabled = state === 'waiting';
  };
  setButton('idle');

  const finish = (current) => {
    if (run !== current) return;
    run = null;
    setButton('idle');
  };

  const stopRecording = async (current) => {
    if (!current.recording) return;
    current.recording = false; // once: a release and the hub's end of speech may both stop it
    clearTimeout(current.limit);
    setButton('waiting');
    if (current.microphone) await current.microphone.stop().catch(() => {}); // its last samples still go out
    current.sending = false;
    current.flush();
    current.send(JSON.stringify({ type: 'end' }));
  };

  const handleEvent = (current, event) => {
    const data = event.data || {};
    switch (event.type) {
      case 'run-start':
        status.textContent = `Listening (${LANGUAGES[data.language] || data.language}, ${data.engine})…`;
        break;
      case 'stt-vad-start':
        status.textContent = 'Hearing you…';
        break;
      case 'stt-vad-end':
        status.textContent = 'Thinking…';
        stopRecording(current); // the hub heard the end of speech: no need to hold on
        break;
      case 'stt-end':
        current.heard = data.accepted ? data.text : '';
        heard.textContent = data.accepted ? data.text : `Not understood${data.best_guess ? ` (perhaps “${data.best_guess}”)` : ''}`;
        break;
      case 'intent-end':
        current.reply = data;
        showReply(data);
        status.textContent = data.ok ? 'Done.' : 'Nothing was done.';
        break;
      case 'tts-end':
        if (data.wav_base64) playWav(data.wav_base64, player);
        break;
      case 'error':
        current.failed = true;
        problem.replaceChildren(
          notice('error', data.code === 'no-speech' ? 'Nothing was heard. Hold the button while you speak.' : data.message || 'The request failed.'),
        );
        status.textContent = 'Something went wrong.';
        if (current.recording) stopRecording(current);
        break;
      case 'run-end':
        current.ended = true;
        if (current.reply || current.heard) {
          remember({ via: 'spoken', heard: current.heard, answer: current.reply?.answer, ok: Boolean(current.reply?.ok) });
        }
        current.close();
        finish(current);
        break;
      default:
        break;
    }
  };

  const start = async () => {
    if (run) return;
    clear();
    problem.replaceChildren();
    const current = { recording: true, sending: true, queued: [], answered: false, ended: false, failed: false, heard: '', reply: null };
    run = current;
    setButton('recording');
    status.textContent = 'Opening the microphone…';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = new URLSearchParams({ home_id: homeId, language: settings.language, token: token() || '' });
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/voice/stream?${query}`);
    socket.binaryType = 'arraybuffer';
    current.send = (message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(message);
      else if (socket.readyState === WebSocket.CONNECTING) current.queued.push(message);
    };
    current.close = () => {
      if (socket.readyState <= WebSocket.OPEN) socket.close();
    };
    let samples = new Int16Array(0);
    const sendFrames = (all) => {
      while (samples.length >= FRAME_SAMPLES || (all && samples.length)) {
        const n = Math.min(samples.length, FRAME_SAMPLES);
        current.send(samples.slice(0, n).buffer);
        samples = samples.slice(n);
      }
    };
    current.flush = () => sendFrames(true);
    socket.onopen = () => {
      for (const message of current.queued.splice(0)) socket.send(message);
    };
    socket.onmessage = (message) => {
      current.answered = true;
      try {
        handleEvent(current, JSON.parse(message.data));
      } catch (err) {
        console.error('voice event not understood', err);
      }
    };
    socket.onclose = async (closed) => {
      if (current.recording) await stopRecording(current);
      if (!current.ended) {
        if (!current.answered && !current.failed) {
          // Refused before any answer: most likely an expired sign-in (4401), renewed here for the next press.
          await refresh();
          problem.replaceChildren(notice('error', 'The hub did not take the request (the sign-in may have expired and was renewed, or the hub cannot be reached). Press the button again.'));
        } else if (!current.failed) {
          problem.replaceChildren(notice('error', 'The hub closed the connection before answering.'));
        }
        status.textContent = 'Hold the button and speak, or type below.';
      }
      finish(current);
    };
    try {
      current.microphone = await openMicrophone((pcm) => {
        if (!current.sending) return;
        const joined = new Int16Array(samples.length + pcm.length);
        joined.set(samples);
        joined.set(pcm, samples.length);
        samples = joined;
        sendFrames(false);
      });
    } catch (err) {
      current.recording = false;
      current.failed = true;
      problem.replaceChildren(notice('error', microphoneWords(err)));
      status.textContent = 'The microphone could not be used.';
      current.close();
      finish(current);
      return;
    }
    if (!current.recording) {
      // let go (or stopped by the hub) while the microphone was opening
      current.sending = false;
      await current.microphone.stop().catch(() => {});
      return;
    }
    status.textContent = 'Listening…';
    current.limit = setTimeout(() => stopRecording(current), MAX_RECORD_MS);
  };

  // Hold to talk; a short press is a click that starts, and the next click stops.
  let pressedAt = 0;
  button.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) return;
    button.setPointerCapture?.(event.pointerId);
    pressedAt = Date.now();
    if (run?.recording) stopRecording(run);
    else start();
  });
  button.addEventListener('pointerup', () => {
    if (pressedAt && Date.now() - pressedAt >= HOLD_MS && run?.recording) stopRecording(run);
    pressedAt = 0;
  });
  button.addEventListener('keydown', (event) => {
    if (event.key !== ' ' && event.key !== 'Enter') return;
    event.preventDefault();
    if (event.repeat) return;
    if (run?.recording) stopRecording(run);
    else start();
  });
  button.addEventListener('contextmenu', (event) => event.preventDefault()); // a long press on a phone

  // -- typed alternative ------------------------------------------------------------------------------------
  const input = h('input', { type: 'text', name: 'text', maxlength: '500', required: true, autocomplete: 'off', placeholder: 'e.g. turn on the kitchen light' });
  const sendButton = h('button', { type: 'submit' }, 'Send');
  const typed = h('form', { class: 'row', 'aria-label': 'Type a request' }, h('div', { class: 'grow' }, field('Or type a request', input)), sendButton);
  typed.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    clear();
    heard.textContent = text;
    status.textContent = 'Thinking…';
    await busy(sendButton, async () => {
      try {
        const reply = await post('voice/text', { text, home_id: homeId });
        showReply(reply);
        status.textContent = reply.ok ? 'Done.' : 'Nothing was done.';
        remember({ via: 'typed', heard: text, answer: reply.answer, ok: Boolean(reply.ok) });
        input.value = '';
      } catch (err) {
        problem.replaceChildren(notice('error', describeError(err)));
        status.textContent = 'Something went wrong.';
      }
    });
  });

  add(
    root,
    header(`Talk to ${home.name}`),
    homeTabs(homeId, 'talk', home.role),
    h(
      'section',
      { class: 'panel talk' },
      h('div', { class: 'talk-press' }, button, status),
      typed,
    ),
    result,
    h('h2', {}, 'Earlier'),
    historyList,
    h(
      'details',
      { class: 'panel talk-settings', open: true },
      h('summary', {}, 'Voice settings'),
      h(
        'div',
        { class: 'two-fields' },
        field('Language', languagePick),
        field('Speech engine', enginePick),
        h('label', { class: 'switch' }, speakPick, 'Speak the answers'),
      ),
      mayChange ? null : h('p', { class: 'card-sub' }, 'Only the home’s owners can change these.'),
      settingsError,
    ),
  );

  return () => {
    if (run) {
      run.recording = false;
      run.sending = false;
      run.microphone?.stop().catch(() => {});
      run.close();
      run = null;
    }
    player.pause();
    if (player.src) URL.revokeObjectURL(player.src);
  };
}
