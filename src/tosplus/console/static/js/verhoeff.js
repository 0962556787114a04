// Pairing codes: 7 random digits and a Verhoeff check digit, never a code people would try first.
// The same rules as tosplus.sdk.pairing (docs/sessions.md, "The code"): the TV page makes codes with them and
// the phone page checks the check digit before it sends anything, so a typo costs no attempt.

export const CODE_DIGITS = 8;
export const CODE_TTL_S = 300;
export const MAX_ATTEMPTS = 5;
export const URI_PREFIX = 'tosplus:pair:';

// Verhoeff's tables: the dihedral group D5, the permutation, and the inverse.
const D = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
  [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
  [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
  [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
  [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
  [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
  [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
  [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
  [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const P = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
  [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
  [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
  [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
  [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
  [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
  [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

const isDigits = (text) => /^[0-9]+$/.test(text);

/** The Verhoeff check digit to append to `digits`. */
export function verhoeffDigit(digits) {
  let c = 0;
  [...digits].reverse().forEach((ch, i) => {
    c = D[c][P[(i + 1) % 8][Number(ch)]];
  });
  return String(INV[c]);
}

/** Does `digits` end with its right Verhoeff check digit? */
export function verhoeffValid(digits) {
  if (!isDigits(digits)) return false;
  let c = 0;
  [...digits].reverse().forEach((ch, i) => {
    c = D[c][P[i % 8][Number(ch)]];
  });
  return c === 0;
}

/** Do the digits step by one constant amount (mod 10)? 0000000, 1234567, 7654321, 0246802, 9012345 ... */
function progression(digits) {
  const steps = new Set();
  for (let i = 1; i < digits.length; i++) steps.add((Number(digits[i]) - Number(digits[i - 1]) + 10) % 10);
  return steps.size <= 1;
}

/** Is `digits` one short block repeated (12121212, 12312312, 12341234)? */
function periodic(digits, longest = 4) {
  for (let n = 1; n <= longest; n++) {
    if (digits === digits.slice(0, n).repeat(Math.floor(digits.length / n) + 1).slice(0, digits.length)) return true;
  }
  return false;
}

/** A code people would try first, never issued (the rules of tosplus.sdk.pairing.is_trivial). */
export function isTrivial(code) {
  if (code.length !== CODE_DIGITS || !isDigits(code)) return true;
  const payload = code.slice(0, 7);
  return progression(payload) || periodic(payload) || periodic(code) || new Set(code).size <= 2;
}

/** A uniform random integer in [0, n) from the browser's CSPRNG (rejection sampling, no modulo bias). */
function randbelow(n) {
  const limit = Math.floor(0x100000000 / n) * n;
  const box = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(box);
    if (box[0] < limit) return box[0] % n;
  }
}

/** A fresh pairing code: 7 random digits and their Verhoeff check digit, never a trivial one. */
export function generateCode(random = randbelow) {
  for (;;) {
    const payload = String(random(10 ** 7)).padStart(7, '0');
    const code = payload + verhoeffDigit(payload);
    if (!isTrivial(code)) return code;
  }
}

export class CodeError extends Error {}

/** What a person typed, without spaces and dashes; CodeError (with words to show) when it cannot be a code. */
export function normaliseCode(text) {
  const code = String(text).replace(/[\s\-\u00a0]/g, '');
  if (code.length !== CODE_DIGITS || !isDigits(code)) throw new CodeError('A pairing code has 8 digits.');
  if (!verhoeffValid(code)) {
    throw new CodeError('This is not a pairing code (its check digit is wrong): look at the TV again.');
  }
  return code;
}

/** `1234 5678`, how screens show it. */
export const grouped = (code) => `${code.slice(0, 4)} ${code.slice(4)}`;

export const pairUri = (deviceId, code) => `${URI_PREFIX}${deviceId}:${code}`;

/** `{deviceId, code}` from a scanned `tosplus:pair:<device>:<code>`. */
export function parsePairUri(uri) {
  if (!uri.startsWith(URI_PREFIX)) throw new CodeError('This is not a TOS+ pairing QR code.');
  const rest = uri.slice(URI_PREFIX.length);
  const cut = rest.lastIndexOf(':');
  if (cut <= 0) throw new CodeError('This is not a TOS+ pairing QR code.');
  return { deviceId: rest.slice(0, cut), code: normaliseCode(rest.slice(cut + 1)) };
}
