// The phone's game pad and remote control (pad.html). The person is signed in with the console's session;
// the page lists their screens, pairs with the code the TV shows (SPAKE2 side A, the hub only relays), opens
// the controller's WebSocket and sends input frames: at most 60 a second while something changes, and a
// 5 Hz heartbeat otherwise. It measures its round trip from the TV's echoes (and tells the TV once a second),
// and after a drop (network gone, phone asleep) it connects again with its resume token and keeps its player
// slot. docs/sessions.md.
//
// The direct path: once connected it offers the TV a WebRTC data channel (signalled over the session's
// sockets, host candidates only: phone and TV on one network). While the channel is open the input frames go
// over it, unordered and never retransmitted (a late frame is worthless); everything else stays on the
// WebSocket. When the channel fails or closes, the next frame goes through the hub at once, and a new channel
// is tried later.
//
// For tests: window.tosPad.state() (paired, connected, slot, seq, rtt, path, ...), window.tosPad.dropDirect().

import { ApiError, del, get, post, restore, token } from './api.js';
import { Spake2, b64, equal, identities, pairingKeys, pairingPassword, unb64 } from './spake2.js';
import { CodeError, normaliseCode, parsePairUri } from './verhoeff.js';

const FRAME_MS = 1000 / 60; // at most 60 input frames a second
const HEARTBEAT_MS = 200; // 5 Hz while nothing changes, so the TV knows the pad is alive and the RTT stays fresh
const RTT_REPORT_MS = 1000; // the round trip measured here goes to the TV this often
const DIRECT_OPEN_MS = 5000; // a direct channel not open by then is given up (the hub carries on)
const DIRECT_RETRY_MS = [300, 10000, 30000, 60000]; // by failures in a row: a direct path that failed waits longer
const BY_TV = 'closed by the TV';
const DIRECT_BACKLOG_BYTES = 4096; // frames waiting in the channel beyond this: it is congested, use the hub now
const BUTTONS = { a: 1 << 0, b: 1 << 1, up: 1 << 12, down: 1 << 13, left: 1 << 14, right: 1 << 15 };
const KEYS = {
  ArrowUp: 'up',
  ArrowDown: 'down',
  ArrowLeft: 'left',
  ArrowRight: 'right',
  KeyW: 'up',
  KeyS: 'down',
  KeyA: 'left',
  KeyD: 'right',
  Space: 'a',
  KeyJ: 'a',
  KeyK: 'b',
  ShiftLeft: 'b',
};
const REMOTE_KEYS = [
  ['power', 'Power'],
  ['mute', 'Mute'],
  ['home', 'Home'],
  ['menu', 'Menu'],
  ['volume_up', 'Volume +'],
  ['volume_down', 'Volume −'],
  ['channel_up', 'Channel +'],
  ['channel_down', 'Channel −'],
  ['up', 'Up'],
  ['left', 'Left'],
  ['ok', 'OK'],
  ['right', 'Right'],
  ['down', 'Down'],
  ['back', 'Back'],
  ['play_pause', 'Play/Pause'],
];

const $ = (id) => document.getElementById(id);
const now = () => performance.timeOrigin + performance.now();

function say(id, words, kind = 'bad') {
  const el = $(id);
  el.textContent = words || '';
  el.dataset.kind = kind;
  el.hidden = !words;
}

class Pad {
  constructor() {
    this.session = null; // the hub's Session
    this.resumeToken = null;
    this.sessionKey = null;
    this.ws = null;
    this.welcomed = false;
    this.keepaliveS = 5;
    this.graceS = 60;
    this.lostAt = null;
    this.backoff = 300;
    this.retryTimer = null;
    this.buttons = 0;
    this.axes = [0, 0];
    this.tilt = false;
    this.seq = 0;
    this.lastSent = 0;
    this.frameTimer = null;
    this.rttMs = { hub: null, direct: null }; // round trip through each path, smoothed
    this.rttSamples = 0;
    this.direct = null; // {pc, channel, open, answered, chain, pending, timer} while a direct channel is tried or open
    this.directFailures = 0;
    this.directTimer = null;
    this.directAttempts = 0; // numbers each offer (n), so a late answer to an old one is not taken for the new
    this.frames = { hub: 0, direct: 0 };
    this.path = null; // the path of the last frame sent
    this.screenData = {};
    this.pressedBy = new Map(); // button name -> set of sources holding it (pointer ids, keys)
    this.apps = {};
    this.ended = null;
  }

  // -- pairing ------------------------------------------------------------------------------------------------

  async pair(deviceId, typed, name) {
    say('pair-message', '');
    let code;
    try {
      code = normaliseCode(typed);
    } catch (err) {
      if (err instanceof CodeError) return say('pair-message', err.message);
      throw err;
    }
    $('pair-button').disabled = true;
    say('pair-message', 'Pairing…', 'info');
    try {
      const spake = new Spake2('A', pairingPassword({ code }), identities(deviceId));
      const msgA = spake.start();
      const started = await post('sessions/pairings', { device_id: deviceId, msg_a: b64(msgA), name });
      const msgB = unb64(started.msg_b);
      let keys = null;
      try {
        keys = pairingKeys(spake.finish(msgB), msgA, msgB);
      } catch {
        keys = null;
      }
      if (!keys || !equal(keys.confirmB, unb64(started.confirm_b))) {
        // The TV's confirmation does not match: the code is wrong. End the attempt now (it counts as a miss).
        await del(`sessions/pairings/${encodeURIComponent(started.attempt_id)}`).catch(() => {});
        return say('pair-message', 'The code is wrong: check the code on the TV and try again.');
      }
      const done = await post(`sessions/pairings/${encodeURIComponent(started.attempt_id)}/confirm`, {
        confirm_a: b64(keys.confirmA),
      });
      this.sessionKey = keys.session;
      this.session = done.session;
      this.resumeToken = done.resume_token;
      this.wsPath = done.ws_path;
      this.keepaliveS = done.keepalive_s || 5;
      this.graceS = done.resume_grace_s || 60;
      this.ended = null;
      say('pair-message', '');
      showPad(this);
      this.connect();
    } catch (err) {
      say('pair-message', err instanceof ApiError ? err.words : `Pairing failed: ${err.message}`);
    } finally {
      $('pair-button').disabled = false;
    }
  }

  // -- the controller's connection -------------------------------------------------------------------------

  url() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${this.wsPath}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.ws || !this.session || this.ended) return;
    if (!navigator.onLine) return this.status('Offline: waiting for the network…', true);
    this.status('Connecting…');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token: token(), resume_token: this.resumeToken }));
    ws.onmessage = (event) => {
      try {
        this.handle(JSON.parse(event.data));
      } catch {
        // not JSON: ignore
      }
    };
    ws.onclose = (event) => this.closed(ws, event);
  }

  closed(ws, event) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.welcomed = false;
    clearInterval(this.keepalive);
    this.dropDirect(this.direct, 'the session socket closed', false);
    this.lostAt ??= Date.now();
    const reason = event.reason ? `: ${event.reason}` : '';
    if (event.code === 4000 || event.code === 4404 || event.code === 4403) {
      return this.end(event.code === 4000 ? `The session ended${reason}.` : `The session is gone${reason}.`);
    }
    if (event.code === 4409) return this.end('This session was taken over by another connection.');
    if (event.code === 4401) {
      restore().then((ok) => (ok ? this.retry() : this.end('You are signed out: sign in again.')));
      return;
    }
    if (Date.now() - this.lostAt > this.graceS * 1000) return this.end('The connection was lost for too long.');
    this.status(navigator.onLine ? 'Connection lost; connecting again…' : 'Offline: waiting for the network…', true);
    this.retry();
  }

  retry() {
    if (!navigator.onLine) return; // the 'online' event reconnects
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(5000, this.backoff * 2);
  }

  /** The network went away (or the test says so): drop the socket now rather than wait for it to time out. */
  offline() {
    const ws = this.ws;
    if (ws) {
      this.ws = null;
      this.welcomed = false;
      clearInterval(this.keepalive);
      this.dropDirect(this.direct, 'offline', false);
      this.lostAt ??= Date.now();
      ws.onclose = null;
      ws.close();
    }
    this.status('Offline: waiting for the network…', true);
  }

  online() {
    this.backoff = 300;
    this.connect();
  }

  end(words) {
    this.ended = words;
    this.session = null;
    this.resumeToken = null;
    clearInterval(this.keepalive);
    this.dropDirect(this.direct, 'ended', false);
    showPairing();
    say('pair-message', words, 'info');
  }

  leave() {
    if (this.ws && this.welcomed) this.ws.send(JSON.stringify({ type: 'close' }));
    else if (this.session) del(`sessions/${encodeURIComponent(this.session.session_id)}`).catch(() => {});
    this.end('You left the game.');
  }

  send(doc) {
    if (!this.ws || !this.welcomed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(doc));
    return true;
  }

  handle(doc) {
    switch (doc.type) {
      case 'welcome':
        this.welcomed = true;
        this.session = doc.session;
        this.keepaliveS = doc.keepalive_s || this.keepaliveS;
        this.graceS = doc.resume_grace_s || this.graceS;
        this.lostAt = null;
        this.backoff = 300;
        clearInterval(this.keepalive);
        this.keepalive = setInterval(() => this.send({ type: 'ping', t: Date.now() }), this.keepaliveS * 1000);
        const where = doc.session.screen_online === false ? 'an offline TV' : 'the TV';
        this.status(`Player ${doc.session.slot} on ${where}`);
        this.sendFrame();
        this.directFailures = 0;
        this.planDirect();
        break;
      case 'from_screen':
        if (doc.data?.rtc) this.directSignal(doc.data.rtc);
        else this.fromScreen(doc.data || {});
        break;
      case 'app.state':
        this.apps[doc.app_id] = doc.state;
        say('app-message', `${doc.app_id}: ${doc.state}${doc.detail ? ` (${doc.detail})` : ''}`, 'info');
        break;
      case 'screen.offline':
        this.status('The TV is offline; your slot is kept.', true);
        break;
      case 'screen.online':
        this.status(`Player ${this.session?.slot} on the TV`);
        break;
      case 'error':
        say('pad-message', `The hub refused ${doc.for || 'a message'}: ${doc.detail}`);
        break;
      case 'closed':
      case 'kicked':
        this.ended = `The session ended (${doc.reason || doc.type}).`;
        break;
      default:
        break;
    }
  }

  fromScreen(data) {
    Object.assign(this.screenData, data);
    this.echo(data, 'hub');
    if (data.rumble && navigator.vibrate) navigator.vibrate(Math.min(400, Number(data.rumble) || 80));
    const colour = this.screenData.colour;
    if (colour) document.body.style.setProperty('--player', colour);
    $('pad-score').textContent = `${this.screenData.score ?? 0} pts`;
    this.showPath();
  }

  /** The TV's echo of a frame, back on the path the frame took: a round trip on this phone's clock only. */
  echo(data, path) {
    if (typeof data.echo_seq !== 'number' || typeof data.t_sent !== 'number') return;
    const sample = now() - data.t_sent;
    const old = this.rttMs[path];
    this.rttMs[path] = old === null ? sample : old + 0.2 * (sample - old);
    this.rttSamples += 1;
  }

  /** The round trip of the path in use (the other one's until the first echo on it). */
  rtt() {
    const using = this.path === 'direct' ? 'direct' : 'hub';
    return this.rttMs[using] ?? this.rttMs[using === 'hub' ? 'direct' : 'hub'];
  }

  reportRtt() {
    this.showPath();
    const rtt = this.rtt();
    if (rtt === null || !this.welcomed) return;
    const round = (v) => (v === null ? null : Math.round(v * 10) / 10);
    this.toScreen({
      rtt_ms: round(rtt),
      rtt_hub_ms: round(this.rttMs.hub),
      rtt_direct_ms: round(this.rttMs.direct),
      path: this.path,
    });
  }

  toScreen(data) {
    return this.send({ type: 'to_screen', data });
  }

  showPath() {
    const el = $('pad-rtt');
    const rtt = this.rtt();
    const path = this.path === 'direct' ? 'direct' : 'via hub';
    el.textContent = rtt === null ? '' : `${path} · round trip ${rtt.toFixed(0)} ms`;
    el.dataset.path = this.path || '';
  }

  // -- the direct path (WebRTC data channel to the TV) ------------------------------------------------------

  planDirect() {
    clearTimeout(this.directTimer);
    if (this.direct || !this.welcomed || typeof RTCPeerConnection !== 'function') return;
    const wait = DIRECT_RETRY_MS[Math.min(this.directFailures, DIRECT_RETRY_MS.length - 1)];
    this.directTimer = setTimeout(() => this.openDirect(), wait);
  }

  openDirect() {
    if (this.direct || !this.welcomed) return;
    // No STUN or TURN server: host candidates only, so a channel opens only when phone and TV share a network.
    const pc = new RTCPeerConnection({ iceServers: [] });
    const channel = pc.createDataChannel('input', { ordered: false, maxRetransmits: 0 });
    this.directAttempts += 1;
    const n = this.directAttempts;
    const direct = { n, pc, channel, open: false, offered: false, chain: Promise.resolve(), pending: [], timer: null };
    this.direct = direct;
    pc.onicecandidate = (e) => {
      if (!e.candidate || this.direct !== direct) return;
      const message = { rtc: { candidate: e.candidate.toJSON(), n } };
      if (direct.offered) this.toScreen(message);
      else direct.pending.push(message); // the offer goes first
    };
    pc.onconnectionstatechange = () => {
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState)) this.dropDirect(direct, pc.connectionState);
    };
    channel.onopen = () => {
      if (this.direct !== direct) return;
      direct.open = true;
      clearTimeout(direct.timer);
      this.directFailures = 0;
      this.showPath();
    };
    channel.onclose = () => this.dropDirect(direct, 'closed');
    channel.onmessage = (e) => {
      try {
        this.echo(JSON.parse(e.data), 'direct');
      } catch {
        // not JSON: ignore
      }
    };
    direct.timer = setTimeout(() => direct.open || this.dropDirect(direct, 'did not open in time'), DIRECT_OPEN_MS);
    pc.createOffer()
      .then(async (offer) => {
        await pc.setLocalDescription(offer);
        if (this.direct !== direct) return;
        direct.offered = this.toScreen({ rtc: { type: 'offer', sdp: offer.sdp, n } });
        for (const message of direct.pending.splice(0)) this.toScreen(message);
      })
      .catch(() => this.dropDirect(direct, 'no offer'));
  }

  /** The TV's answer and candidates, in order (a candidate must wait for the answer). */
  directSignal(rtc) {
    const direct = this.direct;
    if (!direct || rtc.n !== direct.n) return; // about an earlier offer
    if (rtc.close) return this.dropDirect(direct, BY_TV);
    const step =
      rtc.type === 'answer' && typeof rtc.sdp === 'string'
        ? () => direct.pc.setRemoteDescription({ type: 'answer', sdp: rtc.sdp })
        : rtc.candidate
          ? () => direct.pc.addIceCandidate(rtc.candidate).catch(() => {}) // one bad candidate is not the end
          : null;
    if (step) direct.chain = direct.chain.then(step).catch(() => this.dropDirect(direct, 'bad answer'));
  }

  /** The channel failed or closed (or the test says so): input goes through the hub from the next frame on. */
  dropDirect(direct = this.direct, why = 'dropped', retry = true) {
    if (!direct || this.direct !== direct) return;
    this.direct = null;
    clearTimeout(direct.timer);
    direct.channel.onclose = direct.channel.onmessage = direct.pc.onconnectionstatechange = null;
    direct.channel.close();
    direct.pc.close();
    this.directWhy = why;
    if (direct.offered && why !== BY_TV) this.toScreen({ rtc: { close: true, n: direct.n } }); // the TV lets go too
    if (this.welcomed) this.sendFrame(); // the state now, through the hub (a frame lost on the way is replaced)
    if (!retry) return this.showPath();
    this.directFailures += 1;
    this.planDirect();
    this.showPath();
  }

  status(words, bad = false) {
    const el = $('pad-status');
    el.textContent = words;
    el.classList.toggle('bad', bad);
  }

  // -- input ----------------------------------------------------------------------------------------------------

  press(button, source, down) {
    const holders = this.pressedBy.get(button) || new Set();
    if (down) holders.add(source);
    else holders.delete(source);
    this.pressedBy.set(button, holders);
    const bit = BUTTONS[button];
    const buttons = holders.size ? this.buttons | bit : this.buttons & ~bit;
    document.querySelectorAll(`[data-button="${button}"]`).forEach((el) => el.classList.toggle('held', !!holders.size));
    if (buttons !== this.buttons) {
      this.buttons = buttons;
      this.changed();
    }
  }

  releaseAll() {
    for (const button of this.pressedBy.keys()) this.pressedBy.set(button, new Set());
    document.querySelectorAll('[data-button].held').forEach((el) => el.classList.remove('held'));
    if (this.buttons !== 0) {
      this.buttons = 0;
      this.changed();
    }
  }

  setAxes(x, y) {
    const round = (v) => Math.round(Math.max(-1, Math.min(1, v)) * 100) / 100;
    const axes = [round(x), round(y)];
    if (axes[0] === this.axes[0] && axes[1] === this.axes[1]) return;
    this.axes = axes;
    this.changed();
  }

  /** Something changed: send now if the last frame is older than a 60th of a second, else right after. */
  changed() {
    const wait = this.lastSent + FRAME_MS - now();
    if (wait <= 0) this.sendFrame();
    else if (!this.frameTimer) this.frameTimer = setTimeout(() => this.sendFrame(), wait);
  }

  sendFrame() {
    clearTimeout(this.frameTimer);
    this.frameTimer = null;
    const t = now();
    const frame = { type: 'input', seq: this.seq + 1, t_sent: t, buttons: this.buttons >>> 0, axes: this.axes };
    let path = null;
    const direct = this.direct;
    const ready = direct?.open && direct.channel.readyState === 'open';
    if (ready && this.welcomed && direct.channel.bufferedAmount < DIRECT_BACKLOG_BYTES) {
      try {
        direct.channel.send(JSON.stringify(frame));
        path = 'direct';
      } catch {
        this.dropDirect(direct, 'send failed'); // which sends this frame through the hub
        return;
      }
    } else if (this.send(frame)) {
      path = 'hub';
    }
    if (path) {
      this.seq += 1;
      this.lastSent = t;
      this.frames[path] += 1;
      if (path !== this.path) {
        this.path = path;
        this.showPath();
      }
    }
  }

  heartbeat() {
    if (now() - this.lastSent >= HEARTBEAT_MS - 5) this.sendFrame();
  }

  state() {
    return {
      paired: this.session !== null,
      connected: this.welcomed,
      session_id: this.session?.session_id ?? null,
      slot: this.session?.slot ?? null,
      seq: this.seq,
      buttons: this.buttons,
      axes: this.axes,
      rtt_ms: this.rtt(),
      rtt_hub_ms: this.rttMs.hub,
      rtt_direct_ms: this.rttMs.direct,
      rtt_samples: this.rttSamples,
      path: this.path,
      direct: this.direct ? (this.direct.open ? 'open' : 'connecting') : 'off',
      direct_why: this.directWhy ?? null,
      frames: { ...this.frames },
      screen: this.screenData,
      apps: this.apps,
      has_session_key: this.sessionKey !== null,
      ended: this.ended,
    };
  }
}

// -- the page ---------------------------------------------------------------------------------------------------

function showPairing() {
  $('pad-view').hidden = true;
  $('pair-view').hidden = false;
  loadScreens();
}

function showPad(pad) {
  $('pair-view').hidden = true;
  $('pad-view').hidden = false;
  $('pad-player').textContent = `Player ${pad.session.slot}`;
  say('pad-message', '');
}

async function loadScreens() {
  const select = $('pair-screen');
  try {
    const { items } = await get('screens');
    const usable = items.filter((s) => s.may_control);
    select.replaceChildren(
      ...usable.map((s) => {
        const option = document.createElement('option');
        option.value = s.id;
        const state = !s.session_ready ? 'not connected' : s.pairing_open ? 'shows a code' : 'no code shown';
        option.textContent = `${s.name || s.id} — ${state}, ${s.players}/${s.max_players} players`;
        return option;
      }),
    );
    $('pair-none').hidden = usable.length > 0;
    const ready = usable.find((s) => s.session_ready && s.pairing_open);
    if (ready && !select.dataset.touched) select.value = ready.id;
  } catch (err) {
    say('pair-message', err.words || err.message);
  }
}

function wirePairing(pad) {
  const form = $('pair-form');
  $('pair-screen').addEventListener('change', (e) => (e.target.dataset.touched = '1'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    pad.pair(form.elements.screen.value, form.elements.code.value, form.elements.name.value.trim() || 'Phone');
  });
  $('pair-refresh').addEventListener('click', loadScreens);
  const scan = $('pair-scan');
  if (!('BarcodeDetector' in window)) return;
  scan.hidden = false;
  scan.addEventListener('click', () => scanCode(pad, form));
}

/** Scan the TV's QR code (tosplus:pair:<device>:<code>) with the camera, where the browser can. */
async function scanCode(pad, form) {
  const video = $('pair-video');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
  } catch {
    return say('pair-message', 'The camera is not available: type the code instead.');
  }
  video.hidden = false;
  video.srcObject = stream;
  await video.play();
  const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
  const stop = () => {
    stream.getTracks().forEach((t) => t.stop());
    video.hidden = true;
  };
  for (let i = 0; i < 150; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const found = await detector.detect(video).catch(() => []);
    const raw = found.find((f) => f.rawValue.startsWith('tosplus:pair:'))?.rawValue;
    if (!raw) continue;
    stop();
    try {
      const { deviceId, code } = parsePairUri(raw);
      form.elements.code.value = code;
      return pad.pair(deviceId, code, form.elements.name.value.trim() || 'Phone');
    } catch (err) {
      return say('pair-message', err.message);
    }
  }
  stop();
  say('pair-message', 'No pairing QR code was seen: type the code instead.');
}

function wirePad(pad) {
  for (const el of document.querySelectorAll('[data-button]')) {
    const button = el.dataset.button;
    el.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      el.setPointerCapture?.(e.pointerId);
      pad.press(button, `p${e.pointerId}`, true);
    });
    for (const kind of ['pointerup', 'pointercancel', 'lostpointercapture']) {
      el.addEventListener(kind, (e) => pad.press(button, `p${e.pointerId}`, false));
    }
    el.addEventListener('contextmenu', (e) => e.preventDefault());
  }
  window.addEventListener('keydown', (e) => {
    if ($('pad-view').hidden || $('tab-pad').hidden || e.target.closest?.('input, textarea, select')) return;
    const button = KEYS[e.code];
    if (!button) return;
    e.preventDefault();
    if (!e.repeat) pad.press(button, e.code, true);
  });
  window.addEventListener('keyup', (e) => {
    const button = KEYS[e.code];
    if (button) pad.press(button, e.code, false);
  });
  window.addEventListener('blur', () => pad.releaseAll()); // a key held while the page lost focus
  document.addEventListener('visibilitychange', () => document.hidden && pad.releaseAll());

  // Tilt: the phone held flat is the centre; 30 degrees either way is full stick.
  const tilt = $('pad-tilt');
  const onTilt = (e) => pad.setAxes((e.gamma || 0) / 30, (e.beta || 0) / 30);
  tilt.addEventListener('change', async () => {
    if (tilt.checked) {
      if (typeof DeviceOrientationEvent?.requestPermission === 'function') {
        const answer = await DeviceOrientationEvent.requestPermission().catch(() => 'denied');
        if (answer !== 'granted') {
          tilt.checked = false;
          return say('pad-message', 'Tilt needs the motion sensors permission.');
        }
      }
      window.addEventListener('deviceorientation', onTilt);
    } else {
      window.removeEventListener('deviceorientation', onTilt);
      pad.setAxes(0, 0);
    }
  });

  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener('click', () => {
      for (const other of document.querySelectorAll('[role="tab"]')) {
        const selected = other === tab;
        other.setAttribute('aria-selected', String(selected));
        $(other.getAttribute('aria-controls')).hidden = !selected;
      }
      pad.releaseAll();
    });
  }

  const keys = $('remote-keys');
  for (const [key, label] of REMOTE_KEYS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `key key-${key}`;
    b.textContent = label;
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => pad.send({ type: 'remote', key }));
    keys.append(b);
  }
  $('remote-text').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = e.target.elements.text;
    if (!input.value) return;
    if (input.value.length > 500) return say('pad-message', 'At most 500 characters at a time.');
    pad.send({ type: 'text', text: input.value });
    input.value = '';
  });
  $('remote-app').addEventListener('submit', (e) => {
    e.preventDefault();
    const op = e.submitter?.value || 'launch';
    const appId = e.target.elements.app.value.trim();
    if (!appId) return;
    say('app-message', `${op} ${appId}…`, 'info');
    const requestId = crypto.getRandomValues(new Uint32Array(2)).join('-');
    pad.send({ type: 'app', op, app_id: appId, params: {}, request_id: requestId });
  });
  $('pad-leave').addEventListener('click', () => pad.leave());

  setInterval(() => pad.heartbeat(), HEARTBEAT_MS / 2);
  setInterval(() => pad.reportRtt(), RTT_REPORT_MS);
  window.addEventListener('offline', () => pad.offline());
  window.addEventListener('online', () => pad.online());
}

async function boot() {
  const pad = new Pad();
  window.tosPad = {
    state: () => pad.state(),
    offline: () => pad.offline(),
    online: () => pad.online(),
    dropDirect: () => pad.dropDirect(pad.direct, 'dropped by hand'),
  };
  wirePairing(pad);
  wirePad(pad);
  if (!(await restore())) {
    $('signin-view').hidden = false;
  } else {
    showPairing();
  }
  document.body.dataset.ready = '1';
}

boot();
