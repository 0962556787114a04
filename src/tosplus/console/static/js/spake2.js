// SPAKE2 over Ed25519, compatible with the Python `spake2` package (0.9, its default Ed25519 parameters), and
// the key schedule TOS+ pairing derives from it (docs/sessions.md, "SPAKE2").
//
// The construction is python-spake2's, step by step, so both sides agree byte for byte:
//   M, N        = arbitrary_element(b"M"), arbitrary_element(b"N"): HKDF-SHA256(seed, salt "", info
//                 "SPAKE2 arbitrary element", 48 bytes) read big-endian mod p as y, then y, y+1, ... until
//                 (xrecover(y), y) is on the curve, times the cofactor 8 (nobody knows their discrete log)
//   w           = HKDF-SHA256(password, salt "", info "SPAKE2 pw", 48 bytes) big-endian mod L
//   side A      sends "A" || (x·G + w·M),  side B sends "B" || (y·G + w·N)
//   K           = x·(Y* − w·N) on A, y·(X* − w·M) on B
//   key         = SHA-256(SHA-256(pw) || SHA-256(idA) || SHA-256(idB) || X* || Y* || K)
//
// The curve arithmetic is @noble/curves' ed25519 (vendored); the hashes are @noble/hashes rather than
// crypto.subtle because a TV or phone reaching the hub at http://<lan address> is not a secure context, where
// browsers withhold crypto.subtle (crypto.getRandomValues stays available).

import { ed25519 } from '../vendor/noble-curves-2.4.0/ed25519.js';
import { hkdf } from '../vendor/noble-hashes-2.0.1/hkdf.js';
import { hmac } from '../vendor/noble-hashes-2.0.1/hmac.js';
import { sha256 } from '../vendor/noble-hashes-2.0.1/sha2.js';

const Point = ed25519.Point;
const Fp = Point.Fp;
const Q = Fp.ORDER; // 2^255 - 19
const L = Point.Fn.ORDER; // the prime subgroup's order
const D = Fp.div(Fp.neg(121665n), 121666n);
const I = Fp.pow(2n, (Q - 1n) / 4n); // a square root of -1
const ENC = new TextEncoder();

export const SIDE_A = 0x41; // "A"
export const SIDE_B = 0x42; // "B"

export class Spake2Error extends Error {}

export function bytes(value) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return ENC.encode(value);
  throw new TypeError('expected a string or a Uint8Array');
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bigEndian(b) {
  let n = 0n;
  for (const byte of b) n = (n << 8n) | BigInt(byte);
  return n;
}

/** python-spake2's xrecover: the even x for y, which is on the curve only when y is the y of a point. */
function xrecover(y) {
  const xx = Fp.mul(Fp.sub(Fp.mul(y, y), 1n), Fp.inv(Fp.add(Fp.mul(D, Fp.mul(y, y)), 1n)));
  let x = Fp.pow(xx, (Q + 3n) / 8n);
  if (Fp.sub(Fp.mul(x, x), xx) !== 0n) x = Fp.mul(x, I);
  if (x % 2n !== 0n) x = Q - x;
  return x;
}

function onCurve(x, y) {
  const xx = Fp.mul(x, x);
  const yy = Fp.mul(y, y);
  return Fp.sub(Fp.sub(Fp.sub(yy, xx), 1n), Fp.mul(D, Fp.mul(xx, yy))) === 0n;
}

/** An element of the prime-order subgroup whose discrete log nobody knows, derived from `seed`. */
export function arbitraryElement(seed) {
  const expanded = hkdf(sha256, bytes(seed), new Uint8Array(0), bytes('SPAKE2 arbitrary element'), 48);
  const y0 = bigEndian(expanded) % Q;
  for (let plus = 0n; ; plus += 1n) {
    const y = (y0 + plus) % Q;
    const x = xrecover(y);
    if (!onCurve(x, y)) continue;
    const p8 = Point.fromAffine({ x, y }).multiplyUnsafe(8n);
    if (p8.is0()) continue;
    return p8;
  }
}

export function passwordToScalar(password) {
  return bigEndian(hkdf(sha256, bytes(password), new Uint8Array(0), bytes('SPAKE2 pw'), 48)) % L;
}

const M = arbitraryElement('M');
const N = arbitraryElement('N');

/** The blinding elements, encoded (for tests that compare them with Python's). */
export const params = { M: M.toBytes(), N: N.toBytes() };

function randomScalar() {
  // 64 random bytes reduced mod L, as python-spake2 does (the bias is negligible); never 0.
  for (;;) {
    const s = bigEndian(crypto.getRandomValues(new Uint8Array(64))) % L;
    if (s !== 0n) return s;
  }
}

/** One side of one SPAKE2 exchange: `start()` once, `finish(theirMessage)` once; the key is 32 bytes. */
export class Spake2 {
  constructor(side, password, { idA = '', idB = '' } = {}) {
    if (side !== 'A' && side !== 'B') throw new Spake2Error('side is "A" or "B"');
    this.side = side;
    this.pw = bytes(password);
    this.idA = bytes(idA);
    this.idB = bytes(idB);
    this.w = passwordToScalar(this.pw);
    this.started = false;
    this.finished = false;
  }

  start() {
    if (this.started) throw new Spake2Error('start() can only be called once');
    this.started = true;
    this.scalar = randomScalar();
    const blind = this.side === 'A' ? M : N;
    const elem = Point.BASE.multiply(this.scalar).add(blind.multiplyUnsafe(this.w));
    this.outbound = elem.toBytes();
    return concat(Uint8Array.of(this.side === 'A' ? SIDE_A : SIDE_B), this.outbound);
  }

  finish(message) {
    if (!this.started) throw new Spake2Error('call start() first');
    if (this.finished) throw new Spake2Error('finish() can only be called once');
    this.finished = true;
    if (!(message instanceof Uint8Array) || message.length !== 33) throw new Spake2Error('a message has 33 bytes');
    const theirSide = message[0];
    if (theirSide !== SIDE_A && theirSide !== SIDE_B) throw new Spake2Error('the message names no side');
    if (theirSide === (this.side === 'A' ? SIDE_A : SIDE_B)) throw new Spake2Error('the message is from my own side');
    const inbound = message.subarray(1);
    let elem;
    try {
      elem = Point.fromBytes(inbound);
    } catch {
      throw new Spake2Error('the message is not a point of the curve');
    }
    if (elem.is0() || !elem.isTorsionFree()) throw new Spake2Error('the message is not in the right group');
    if (equal(elem.toBytes(), this.outbound)) throw new Spake2Error('my own message was reflected back');
    const unblind = this.side === 'A' ? N : M;
    const negW = (L - this.w) % L;
    const k = elem.add(unblind.multiplyUnsafe(negW));
    const kBytes = k.is0() ? k.toBytes() : k.multiply(this.scalar).toBytes();
    const [x, y] = this.side === 'A' ? [this.outbound, inbound] : [inbound, this.outbound];
    return sha256(concat(sha256(this.pw), sha256(this.idA), sha256(this.idB), x, y, kBytes));
  }
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// -- TOS+ pairing (docs/sessions.md) ---------------------------------------------------------------------------

const DOMAIN = 'tos+pair/v1 ';

/** SPAKE2's identities: the controller (or the credential it uses) and the screen. */
export function identities(deviceId, credentialId = null) {
  return {
    idA: credentialId ? `tosplus credential ${credentialId}` : 'tosplus controller',
    idB: `tosplus screen ${deviceId}`,
  };
}

/** The password of a code pairing (`code:<8 digits>`) or a credential pairing (`credential:<secret>`). */
export function pairingPassword({ code = null, secret = null }) {
  if (secret) return concat(bytes('credential:'), secret);
  return bytes(`code:${code}`);
}

/** The confirmation MACs, session key and credential secret from the SPAKE2 key and the two messages. */
export function pairingKeys(key, msgA, msgB) {
  const th = sha256(concat(msgA, msgB));
  const kc = hmac(sha256, key, concat(bytes(`${DOMAIN}confirm`), th));
  return {
    confirmA: hmac(sha256, kc, bytes('controller')),
    confirmB: hmac(sha256, kc, bytes('screen')),
    session: hmac(sha256, key, concat(bytes(`${DOMAIN}session`), th)),
    credential: hmac(sha256, key, concat(bytes(`${DOMAIN}credential`), th)),
  };
}

export function b64(data) {
  let s = '';
  for (const byte of data) s += String.fromCharCode(byte);
  return btoa(s);
}

export function unb64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function hex(data) {
  return Array.from(data, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
