// The TV page: a browser playing the TV. It connects to the hub as the screen (the device's id and secret,
// taken from the URL fragment so they never reach a server log, then removed from the address bar), shows the
// pairing code and its QR code, answers pairings as SPAKE2's side B, lists the players, and runs the arena
// game with their input frames. docs/sessions.md, "The TV and phone pages".
//
// A phone may open a direct path: a WebRTC data channel it offers through the session sockets (its messages
// come as from_controller, the TV's go back as to_controller). Only a player in the list may open one (the
// offer's DTLS fingerprint came over the phone's authenticated session socket); frames on it are checked here
// as the hub checks its own, and both paths feed the same newest-wins-by-seq rule.
//
// For tests and for a developer's console: window.tosGame.state() (players, positions, scores, paused),
// window.tosGame.code() (the code shown), window.tosGame.connected().

import { renderSVG } from '../vendor/uqr-0.1.3/uqr.js';
import { Arena, HEIGHT, WIDTH, frameProblem } from './tv-game.js';
import { Spake2, b64, equal, identities, pairingKeys, pairingPassword, unb64 } from './spake2.js';
import { CODE_TTL_S, MAX_ATTEMPTS, generateCode, grouped, pairUri } from './verhoeff.js';

const STORE = 'tosplus.tv'; // sessionStorage: this tab keeps its device credentials across a reload
const ECHO_EVERY_MS = 100; // latency echoes to each phone, at most this often (the pad measures its round trip)
const APPS = { arena: 'the arena game on this page' };
const DIRECT_MAX_BYTES = 1024; // an input frame, as on the hub
const DIRECT_RATE = 120; // frames a second and player over a direct channel, as on the hub

const $ = (id) => document.getElementById(id);

function readCredentials() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  let device = fragment.get('device') || fragment.get('device_id');
  let secret = fragment.get('secret');
  if (device && secret) {
    sessionStorage.setItem(STORE, JSON.stringify({ device, secret }));
    history.replaceState(null, '', location.pathname + location.search); // the secret leaves the address bar
  } else {
    try {
      ({ device, secret } = JSON.parse(sessionStorage.getItem(STORE) || '{}'));
    } catch {
      device = secret = null;
    }
  }
  return device && secret ? { device, secret } : null;
}

/** Pairing credentials of this TV's phones, kept in this browser (localStorage) so they can pair again. */
class Credentials {
  constructor(device) {
    this.key = `tosplus.tv.credentials.${device}`;
  }
  all() {
    try {
      return JSON.parse(localStorage.getItem(this.key) || '{}');
    } catch {
      return {};
    }
  }
  get(id) {
    const item = this.all()[id];
    return item ? unb64(item.secret) : null;
  }
  put(id, secret, info) {
    const items = this.all();
    items[id] = { secret: b64(secret), info };
    localStorage.setItem(this.key, JSON.stringify(items));
  }
  remove(id) {
    const items = this.all();
    delete items[id];
    localStorage.setItem(this.key, JSON.stringify(items));
  }
}

/** The screen's side of pairing: the code shown, its attempts, each attempt's keys (as tosplus.sdk.pairing). */
class ScreenPairing {
  constructor(device) {
    this.device = device;
    this.credentials = new Credentials(device);
    this.shown = null; // {code, expiresAt}
    this.attempts = 0;
    this.pending = new Map(); // attempt id -> {keys, credentialId, newCredentialId, who}
  }

  newCode() {
    this.shown = { code: generateCode(), expiresAt: Date.now() + CODE_TTL_S * 1000 };
    this.attempts = 0;
    this.dropCodeAttempts();
    return this.shown;
  }

  current() {
    if (this.shown && Date.now() >= this.shown.expiresAt) this.clear();
    return this.shown;
  }

  clear() {
    this.shown = null;
    this.dropCodeAttempts();
  }

  dropCodeAttempts() {
    for (const [id, a] of this.pending) if (!a.credentialId) this.pending.delete(id);
  }

  /** [msg_b, confirm_b] for a phone's msg_a, or throws an Error whose message is the reason for the hub. */
  answer(doc) {
    const credentialId = doc.credential_id || null;
    let password;
    if (credentialId) {
      const secret = this.credentials.get(credentialId);
      if (!secret) throw new Error('unknown_credential');
      password = pairingPassword({ secret });
    } else {
      const shown = this.current();
      if (!shown) throw new Error('no_code');
      if (this.attempts >= MAX_ATTEMPTS) {
        this.clear();
        throw new Error('burnt');
      }
      this.attempts += 1;
      this.dropCodeAttempts(); // one attempt at a time: a new one replaces one not finished
      password = pairingPassword({ code: shown.code });
    }
    let msgA;
    try {
      msgA = unb64(String(doc.msg_a || ''));
    } catch {
      throw new Error('malformed');
    }
    const spake = new Spake2('B', password, identities(this.device, credentialId));
    const msgB = spake.start();
    let key;
    try {
      key = spake.finish(msgA);
    } catch {
      throw new Error('malformed');
    }
    const keys = pairingKeys(key, msgA, msgB);
    this.pending.set(String(doc.attempt), {
      keys,
      credentialId,
      newCredentialId: doc.new_credential_id || null,
      who: { user: doc.user || null, controller_name: doc.controller_name || null },
    });
    return [msgB, keys.confirmB];
  }

  /** Does the phone's confirmation match? On a code pairing that worked, the code is used up. */
  verify(attemptId, confirmA) {
    const attempt = this.pending.get(attemptId);
    this.pending.delete(attemptId);
    if (!attempt || !equal(attempt.keys.confirmA, confirmA)) {
      if (attempt && !attempt.credentialId && this.attempts >= MAX_ATTEMPTS) this.clear();
      return null;
    }
    if (!attempt.credentialId) {
      this.clear();
      if (attempt.newCredentialId) this.credentials.put(attempt.newCredentialId, attempt.keys.credential, attempt.who);
    }
    return attempt;
  }
}

class Tv {
  constructor({ device, secret }) {
    this.device = device;
    this.secret = secret;
    this.discriminator = crypto.getRandomValues(new Uint16Array(1))[0] & 0xfff;
    this.pairing = new ScreenPairing(device);
    this.arena = new Arena($('arena'));
    this.arena.onHit = (shooter, target) => {
      this.tellPlayer(shooter, {});
      this.tellPlayer(target, { rumble: 150 });
    };
    this.controllers = new Map(); // session id -> the hub's view
    this.lastEcho = new Map(); // session id -> when the last echo went
    this.peers = new Map(); // session id -> its phone's direct channel {pc, channel, chain, answered, pending, ...}
    this.ws = null;
    this.isConnected = false;
    this.backoff = 500;
    this.keepalive = null;
    this.renewTimer = null;
    this.windowOpen = false; // the hub has opened pairing for the code shown
    this.log = [];
  }

  start() {
    this.connect();
    let last = performance.now();
    setInterval(() => {
      const now = performance.now();
      this.arena.step(Math.min(0.05, (now - last) / 1000), now / 1000);
      last = now;
    }, 1000 / 60);
    const frame = () => {
      this.arena.draw();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    setInterval(() => this.renderPlayers(), 250);
  }

  url() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/sessions/screen`;
  }

  send(doc) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(doc));
  }

  connect() {
    this.status('Connecting to the hub…');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () =>
      ws.send(
        JSON.stringify({
          type: 'hello',
          device_id: this.device,
          secret: this.secret,
          discriminator: this.discriminator,
          max_players: 8,
        }),
      );
    ws.onmessage = (event) => {
      let doc;
      try {
        doc = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handle(doc);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.isConnected = false;
      this.windowOpen = false;
      clearInterval(this.keepalive);
      if (event.code === 4401 || event.code === 4403) {
        this.status(`The hub refused this TV: ${event.reason || 'wrong device id or secret'}.`, true);
        this.showCode(null);
        return;
      }
      if (event.code === 4409) {
        this.status('This TV was opened somewhere else.', true);
        this.showCode(null);
        return;
      }
      this.status('Connection lost; connecting again…', true);
      setTimeout(() => this.connect(), this.backoff * (0.5 + Math.random() / 2));
      this.backoff = Math.min(30000, this.backoff * 2);
    };
  }

  handle(doc) {
    switch (doc.type) {
      case 'welcome':
        this.isConnected = true;
        this.backoff = 500;
        clearInterval(this.keepalive);
        this.keepalive = setInterval(() => this.send({ type: 'ping', t: Date.now() }), (doc.keepalive_s || 5) * 1000);
        // The hub's list is the truth after a reconnect: players who left meanwhile go, the others keep their state.
        const present = new Set((doc.controllers || []).map((c) => c.session_id));
        for (const id of [...this.controllers.keys()]) {
          if (!present.has(id)) this.controller('controller.left', { session_id: id });
        }
        for (const c of doc.controllers || []) {
          this.controller(c.state === 'connected' ? 'controller.connected' : 'controller.lost', c);
        }
        this.status('Connected. Pair a phone with the code.');
        this.openPairing(this.pairing.current() || this.pairing.newCode());
        break;
      case 'pairing.opened':
        this.windowOpen = true;
        this.showCode(this.pairing.current());
        break;
      case 'pairing.closed':
        if (doc.reason === 'replaced') break;
        this.windowOpen = false;
        if (['used', 'burnt', 'expired'].includes(doc.reason)) this.openPairing(this.pairing.newCode());
        else if (doc.reason !== 'closed_by_screen') {
          this.pairing.clear();
          this.showCode(null);
          if (doc.reason === 'unbound' || doc.reason === 'deleted') this.status('This TV is in no home.', true);
        }
        break;
      case 'pair.request':
        this.answer(doc);
        break;
      case 'pair.confirm':
        this.verify(doc);
        break;
      case 'pair.cancel':
        this.pairing.pending.delete(String(doc.attempt));
        break;
      case 'credential.revoked':
        this.pairing.credentials.remove(String(doc.credential_id));
        break;
      case 'input':
        this.input(doc);
        break;
      case 'from_controller':
        this.fromController(doc);
        break;
      case 'remote':
        this.note(`${this.who(doc)} pressed ${doc.key}`);
        break;
      case 'text':
        this.note(`${this.who(doc)} typed “${doc.text}”`);
        break;
      case 'app':
        this.app(doc);
        break;
      case 'error':
        this.note(`The hub refused ${doc.for || 'a message'}: ${doc.detail}`);
        break;
      default:
        if (typeof doc.type === 'string' && doc.type.startsWith('controller.')) this.controller(doc.type, doc);
    }
  }

  openPairing(shown) {
    this.windowOpen = false;
    this.send({ type: 'pairing.open', expires_in_s: Math.max(1, (shown.expiresAt - Date.now()) / 1000) });
    clearTimeout(this.renewTimer);
    // The hub closes an expired window too; renewing here keeps a code on screen if that message is missed.
    this.renewTimer = setTimeout(() => this.openPairing(this.pairing.newCode()), shown.expiresAt - Date.now() + 1000);
  }

  answer(doc) {
    const attempt = String(doc.attempt || '');
    try {
      const [msgB, confirmB] = this.pairing.answer(doc);
      this.send({ type: 'pair.answer', attempt, msg_b: b64(msgB), confirm_b: b64(confirmB) });
    } catch (err) {
      this.send({ type: 'pair.answer', attempt, error: err.message });
    }
  }

  verify(doc) {
    const attempt = String(doc.attempt || '');
    let confirmA;
    try {
      confirmA = unb64(String(doc.confirm_a || ''));
    } catch {
      confirmA = new Uint8Array(0);
    }
    const ok = this.pairing.verify(attempt, confirmA);
    this.send({ type: 'pair.verdict', attempt, ok: Boolean(ok) });
    if (!ok) this.note('A phone tried a wrong code.');
  }

  controller(kind, doc) {
    const id = doc.session_id;
    if (!id) return;
    if (kind === 'controller.left' || kind === 'controller.lost') this.closePeer(id); // its right to play is paused
    if (kind === 'controller.left') {
      this.controllers.delete(id);
      this.arena.leave(id);
      this.note(`${doc.user_name || doc.name || 'A player'} left (${doc.reason || 'closed'}).`);
      return;
    }
    this.controllers.set(id, doc);
    const player = this.arena.join(doc);
    if (kind === 'controller.lost') this.arena.pause(id, true);
    if (kind === 'controller.connected' || kind === 'controller.resumed') this.arena.pause(id, false);
    if (kind === 'controller.joined') this.note(`${doc.user_name || doc.name} joined as player ${doc.slot}.`);
    if (kind !== 'controller.lost') this.tellPlayer(player, {});
  }

  /** A frame from either path; the echo goes back on the path it came by, so the phone times each path. */
  input(frame, channel = null) {
    const player = this.arena.input(frame, Date.now(), channel ? 'direct' : 'hub');
    if (!player) return;
    const now = Date.now();
    if (now - (this.lastEcho.get(player.id) || 0) >= ECHO_EVERY_MS) {
      this.lastEcho.set(player.id, now);
      const echo = { echo_seq: frame.seq, t_sent: frame.t_sent };
      if (channel) {
        if (channel.readyState === 'open') channel.send(JSON.stringify(echo));
      } else this.tellPlayer(player, echo);
    }
  }

  // -- the direct path ---------------------------------------------------------------------------------------

  fromController(doc) {
    const id = doc.session_id;
    const data = doc.data;
    const c = this.controllers.get(id);
    if (!c || !data || typeof data !== 'object') return; // not a player of this TV
    if (data.rtc && typeof data.rtc === 'object') this.signal(id, c, data.rtc);
    else if ('rtt_ms' in data) this.arena.report(id, data);
  }

  signal(id, controller, rtc) {
    if (rtc.type === 'offer' && typeof rtc.sdp === 'string') {
      if (controller.state !== 'connected' || typeof RTCPeerConnection !== 'function') return;
      this.closePeer(id); // a new offer replaces a channel that is still there
      return this.answerOffer(id, rtc.sdp, rtc.n ?? null);
    }
    const peer = this.peers.get(id);
    if (!peer || (rtc.n ?? null) !== peer.n) return; // about an earlier offer
    if (rtc.close) return this.closePeer(id);
    if (rtc.candidate && typeof rtc.candidate === 'object') {
      peer.chain = peer.chain.then(() => peer.pc.addIceCandidate(rtc.candidate)).catch(() => {});
    }
  }

  answerOffer(id, sdp, n) {
    const pc = new RTCPeerConnection({ iceServers: [] }); // host candidates only, as the phone
    const peer = { n, pc, channel: null, chain: Promise.resolve(), answered: false, pending: [], second: 0, count: 0 };
    this.peers.set(id, peer);
    const tell = (data) => this.send({ type: 'to_controller', session_id: id, data });
    pc.onicecandidate = (e) => {
      if (!e.candidate || this.peers.get(id) !== peer) return;
      const data = { rtc: { candidate: e.candidate.toJSON(), n } };
      if (peer.answered) tell(data);
      else peer.pending.push(data); // the answer goes first
    };
    pc.onconnectionstatechange = () => {
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState)) this.closePeer(id, peer, true);
    };
    pc.ondatachannel = (e) => {
      const channel = e.channel;
      if (this.peers.get(id) !== peer || peer.channel) return channel.close();
      peer.channel = channel;
      channel.onopen = () => this.arena.setDirect(id, true);
      if (channel.readyState === 'open') this.arena.setDirect(id, true);
      channel.onclose = () => this.closePeer(id, peer, true);
      channel.onmessage = (m) => this.directFrame(id, peer, m.data);
    };
    peer.chain = peer.chain
      .then(async () => {
        await pc.setRemoteDescription({ type: 'offer', sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        if (this.peers.get(id) !== peer) return;
        tell({ rtc: { type: 'answer', sdp: answer.sdp, n } });
        peer.answered = true;
        for (const data of peer.pending.splice(0)) tell(data);
      })
      .catch(() => this.closePeer(id, peer, true));
  }

  /** A frame over a direct channel: the channel is the session's, so the frame's own ids are not trusted. */
  directFrame(id, peer, text) {
    if (typeof text !== 'string' || text.length > DIRECT_MAX_BYTES) return;
    const second = Math.floor(Date.now() / 1000);
    if (second !== peer.second) [peer.second, peer.count] = [second, 0];
    if (++peer.count > DIRECT_RATE) return;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const c = this.controllers.get(id);
    if (!c || frameProblem(frame) !== null) return;
    this.input({ ...frame, type: 'input', session_id: id, slot: c.slot, t_hub: null }, peer.channel);
  }

  /** Let go of a phone's channel; ``tell``: it failed here, so the phone falls back now rather than on a timeout. */
  closePeer(id, only = null, tell = false) {
    const peer = this.peers.get(id);
    if (!peer || (only && peer !== only)) return;
    this.peers.delete(id);
    if (tell) this.send({ type: 'to_controller', session_id: id, data: { rtc: { close: true, n: peer.n } } });
    peer.pc.onconnectionstatechange = null;
    if (peer.channel) peer.channel.onclose = peer.channel.onmessage = null;
    peer.channel?.close();
    peer.pc.close();
    this.arena.setDirect(id, false);
  }

  tellPlayer(player, extra) {
    this.send({
      type: 'to_controller',
      session_id: player.id,
      data: { slot: player.slot, colour: player.colour, score: player.score, ...extra },
    });
  }

  app(doc) {
    const known = Object.hasOwn(APPS, doc.app_id);
    let state = known ? (this.arena.running ? 'running' : 'stopped') : 'not_installed';
    if (known && doc.op === 'launch') this.arena.running = true;
    if (known && doc.op === 'stop') this.arena.running = false;
    if (known) state = this.arena.running ? 'running' : 'stopped';
    const reply = { type: 'app.state', request_id: doc.request_id, app_id: doc.app_id, state };
    if (!known) reply.detail = `no app “${doc.app_id}” on this TV`;
    this.send(reply);
    this.note(`${doc.session_id ? this.who(doc) : 'The console'}: ${doc.op} ${doc.app_id} → ${state}`);
  }

  who(doc) {
    const c = this.controllers.get(doc.session_id);
    return c ? c.user_name || c.name : `player ${doc.slot}`;
  }

  // -- what the TV shows ---------------------------------------------------------------------------------------

  status(words, bad = false) {
    const el = $('tv-status');
    el.textContent = words;
    el.classList.toggle('bad', bad);
  }

  note(words) {
    this.log.unshift(words);
    this.log.length = Math.min(this.log.length, 6);
    $('tv-log').replaceChildren(
      ...this.log.map((w) => {
        const li = document.createElement('li');
        li.textContent = w;
        return li;
      }),
    );
  }

  showCode(shown) {
    const code = $('pair-code');
    const qr = $('pair-qr');
    if (!shown) {
      code.textContent = '—';
      code.dataset.code = '';
      qr.removeAttribute('src');
      return;
    }
    code.textContent = grouped(shown.code);
    code.dataset.code = shown.code;
    const svg = renderSVG(pairUri(this.device, shown.code), { ecc: 'M', border: 2 });
    qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  }

  renderPlayers() {
    const { players } = this.arena.state();
    const rows = players.map((p) => {
      const li = document.createElement('li');
      li.className = p.paused ? 'paused' : '';
      li.dataset.slot = p.slot;
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.style.background = p.colour;
      const name = document.createElement('strong');
      name.textContent = `${p.slot}. ${p.user_name || p.name}`;
      const facts = document.createElement('span');
      facts.className = 'facts';
      const ms = (v) => `${Math.round(v) || 0} ms`; // never "-0 ms"
      // Phone→TV on each path (from the phone's clock: an estimate), hub→TV, and the phone's own round trip.
      const latency = [];
      if (p.direct_ms !== null) latency.push(`direct ≈${ms(p.direct_ms)}`);
      if (p.hub_to_screen_ms !== null) latency.push(`via hub ≈${ms(p.one_way_ms)} (hub→TV ${ms(p.hub_to_screen_ms)})`);
      if (p.rtt_ms !== null) latency.push(`round trip ${ms(p.rtt_ms)}`);
      facts.textContent = `${p.score} pts · ${p.paused ? 'paused' : latency.join(' · ') || 'no input yet'}`;
      const path = document.createElement('span');
      path.className = `path ${p.path || 'none'}`;
      path.textContent = p.path === 'direct' ? 'direct' : p.path === 'hub' ? 'via hub' : '';
      name.append(' ', path);
      li.append(dot, name, facts);
      return li;
    });
    $('players').replaceChildren(...rows);
    $('players-empty').hidden = rows.length > 0;
  }
}

function askForCredentials() {
  const form = $('tv-setup');
  form.hidden = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const device = form.elements.device.value.trim();
    const secret = form.elements.secret.value.trim();
    if (!device || !secret) return;
    sessionStorage.setItem(STORE, JSON.stringify({ device, secret }));
    form.hidden = true;
    boot({ device, secret });
  });
}

function boot(credentials) {
  const canvas = $('arena');
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const tv = new Tv(credentials);
  window.tosGame = {
    state: () => tv.arena.state(),
    code: () => (tv.windowOpen ? (tv.pairing.current()?.code ?? null) : null), // a code phones may use now
    connected: () => tv.isConnected,
    direct: () => [...tv.peers.entries()].map(([id, p]) => ({ session_id: id, channel: p.channel?.readyState ?? null })),
    deviceId: tv.device,
  };
  tv.start();
  document.body.dataset.ready = '1';
}

const credentials = readCredentials();
if (credentials) boot(credentials);
else {
  askForCredentials();
  document.body.dataset.ready = '1';
}
