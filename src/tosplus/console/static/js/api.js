// The hub's API and the console's sign-in state.
//
// A person's access token lives only in this module's memory (never in storage), so a script injected
// elsewhere cannot read it back later; it is renewed through the HttpOnly session cookie. An operator who
// signs in with the admin token keeps it in sessionStorage (this tab only), since there is no cookie for it.

const BASE = '/api/v1';
const OPERATOR_KEY = 'tosplus.operatorToken';

let access = null; // the bearer token in use
let expiresAt = 0; // when `access` stops working (ms); 0 = does not expire (admin token)
let mode = null; // 'session' | 'operator-token' | null
let me = null; // GET /me, or a stand-in for the admin token
let refreshTimer = null;
let refreshing = null; // one refresh at a time, shared by concurrent callers

/** Listeners get 'change' when someone signs in or out. */
export const auth = new EventTarget();

export class ApiError extends Error {
  constructor(status, words, body = null) {
    super(words);
    this.status = status;
    this.words = words; // what the person is shown
    this.body = body;
  }
}

export function token() {
  return access;
}

export function user() {
  return me;
}

export function signedIn() {
  return access !== null;
}

export function isOperator() {
  return mode === 'operator-token' || me?.role === 'operator';
}

export function usingAdminToken() {
  return mode === 'operator-token';
}

/** Turn a failed response into words: RFC 7807 detail, else title, else a sentence for the status. */
async function problem(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's HTML page, say): fall back to the status
  }
  const words =
    (body && typeof body.detail === 'string' && body.detail) ||
    (body && typeof body.title === 'string' && body.title) ||
    {
      401: 'You are signed out; sign in again',
      403: 'You are not allowed to do this',
      404: 'Not found',
      429: 'Too many attempts; wait a moment and try again',
    }[response.status] ||
    `The hub answered with an error (${response.status})`;
  return new ApiError(response.status, words, body);
}

async function send(method, path, { body, form, headers = {}, query, anonymous = false } = {}) {
  let url = path.startsWith('/') ? path : `${BASE}/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      for (const item of Array.isArray(v) ? v : [v]) params.append(k, String(item));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (access && !anonymous && !headers.Authorization) init.headers.Authorization = `Bearer ${access}`;
  if (form) {
    init.body = new URLSearchParams(form);
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(url, init);
  } catch {
    throw new ApiError(0, 'The hub cannot be reached');
  }
}

/** Call the API; JSON in and out. A 401 renews the session once and retries, then signs out. */
export async function api(method, path, options = {}) {
  let response = await send(method, path, options);
  if (response.status === 401 && mode === 'session' && !options.noRetry) {
    if (await refresh()) response = await send(method, path, options);
  }
  if (response.status === 401 && !options.noRetry && access) {
    forget();
  }
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query) => api('GET', path, { query });
export const post = (path, body) => api('POST', path, { body });
export const patch = (path, body) => api('PATCH', path, { body });
export const del = (path) => api('DELETE', path);

function adopt(result, newMode) {
  access = result.access_token;
  mode = newMode;
  expiresAt = result.expires_in ? Date.now() + result.expires_in * 1000 : 0;
  if (result.user) me = { ...(me || {}), ...result.user };
  clearTimeout(refreshTimer);
  if (expiresAt) {
    // Renew a minute before expiry (half-way for short tokens), so calls never meet an expired token.
    const lifetime = result.expires_in * 1000;
    refreshTimer = setTimeout(refresh, Math.max(5000, Math.min(lifetime - 60000, lifetime / 2)));
  }
}

function forget() {
  const was = access !== null;
  access = null;
  me = null;
  mode = null;
  expiresAt = 0;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(OPERATOR_KEY);
  if (was) auth.dispatchEvent(new Event('change'));
}

/** Renew the access token with the session cookie; false when there is no session. */
export function refresh() {
  if (mode === 'operator-token') return Promise.resolve(true);
  refreshing ??= (async () => {
    try {
      const response = await send('POST', `${BASE}/auth/session/refresh`, {
        headers: { 'X-TOSPLUS-Console': '1' },
        anonymous: true,
      });
      if (!response.ok) {
        if (response.status === 401 || response.status === 403) forget();
        return false;
      }
      adopt(await response.json(), 'session');
      return true;
    } catch {
      return false; // unreachable hub: keep what we have and try again later
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// A laptop waking from sleep has missed the timer: renew at once if the token has run out meanwhile.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && mode === 'session' && expiresAt && Date.now() > expiresAt - 30000) {
    refresh();
  }
});

/** Load who is signed in: GET /me, with a stand-in for the admin token (which is not an account). */
async function loadMe() {
  try {
    me = await get('me');
  } catch (err) {
    if (mode !== 'operator-token') throw err;
    me = { id: null, name: 'Operator', email: null, role: 'operator', homes: [] };
  }
  if (mode === 'operator-token') me = { ...me, role: 'operator' };
}

/** On page load: the operator token of this tab, or the session cookie. True when signed in. */
export async function restore() {
  const saved = sessionStorage.getItem(OPERATOR_KEY);
  if (saved) {
    access = saved;
    mode = 'operator-token';
    try {
      await loadMe();
      return true;
    } catch {
      forget();
      return false;
    }
  }
  if (!(await refresh())) return false;
  try {
    await loadMe();
  } catch {
    // /me failing is not fatal: pages show their own errors
  }
  return true;
}

export async function signIn(email, password) {
  const response = await send('POST', `${BASE}/auth/session`, { body: { email, password }, anonymous: true });
  if (!response.ok) throw await problem(response);
  adopt(await response.json(), 'session');
  await loadMe().catch(() => {});
  auth.dispatchEvent(new Event('change'));
}

export async function signUp(email, password, name) {
  await api('POST', 'auth/signup', { body: { email, password, name }, noRetry: true });
  await signIn(email, password);
}

/** Sign in with the hub's admin token; checked against an operator-only route before it is kept. */
export async function signInWithToken(adminToken) {
  const response = await send('GET', `${BASE}/hub`, { headers: { Authorization: `Bearer ${adminToken}` } });
  if (!response.ok) {
    const err = await problem(response);
    if (response.status === 401 || response.status === 403) err.words = 'This token is not an operator token';
    throw err;
  }
  access = adminToken;
  mode = 'operator-token';
  expiresAt = 0;
  sessionStorage.setItem(OPERATOR_KEY, adminToken);
  await loadMe();
  auth.dispatchEvent(new Event('change'));
}

export async function signOut() {
  if (mode === 'session') {
    await send('DELETE', `${BASE}/auth/session`).catch(() => {});
  }
  forget();
}

export async function signOutEverywhere() {
  await api('POST', 'auth/signout-everywhere');
  await send('DELETE', `${BASE}/auth/session`).catch(() => {});
  forget();
}

export async function reloadMe() {
  await loadMe();
  return me;
}

// Thing models change rarely: fetch each product once per page load and share it between pages.
const products = new Map();

export function product(productId) {
  if (!products.has(productId)) {
    const pending = get(`products/${encodeURIComponent(productId)}`).catch((err) => {
      products.delete(productId); // let a later page try again
      throw err;
    });
    products.set(productId, pending);
  }
  return products.get(productId);
}

export const enc = encodeURIComponent;
