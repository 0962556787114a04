// The console's shell: hash routes to page modules, the header, and who is signed in.
//
// Each page module exports `render(root, params)`; it may return a cleanup function, called when the
// person leaves the page (live subscriptions, timers). Page modules are imported on first use, so the first
// load fetches only the shell and the page shown.

import * as api from './api.js';
import * as live from './live.js';
import { describeError, h, notice } from './ui.js';

// [pattern, module, export, needs sign-in]
const ROUTES = [
  [/^\/signin$/, 'signin', 'signIn', false],
  [/^\/signup$/, 'signin', 'signUp', false],
  [/^\/operator-token$/, 'signin', 'operatorToken', false],
  [/^\/(homes)?$/, 'homes', 'render', true],
  [/^\/homes\/([^/]+)$/, 'home', 'render', true],
  [/^\/homes\/([^/]+)\/members$/, 'members', 'render', true],
  [/^\/homes\/([^/]+)\/bind$/, 'bind', 'render', true],
  [/^\/homes\/([^/]+)\/rooms$/, 'rooms', 'render', true],
  [/^\/homes\/([^/]+)\/scenes$/, 'scenes', 'render', true],
  [/^\/homes\/([^/]+)\/scenes\/new$/, 'scenes', 'edit', true],
  [/^\/homes\/([^/]+)\/scenes\/([^/]+)$/, 'scenes', 'edit', true],
  [/^\/homes\/([^/]+)\/audit$/, 'audit', 'render', true],
  [/^\/homes\/([^/]+)\/talk$/, 'talk', 'render', true],
  [/^\/audit$/, 'audit', 'render', true],
  [/^\/devices\/([^/]+)$/, 'device', 'render', true],
  [/^\/invite\/([^/]+)$/, 'invite', 'render', true],
  [/^\/operator$/, 'operator', 'render', true],
  [/^\/account$/, 'account', 'render', true],
  [/^\/wallet$/, 'wallet', 'render', true],
  [/^\/merchants$/, 'merchant', 'render', true],
  [/^\/merchants\/([^/]+)$/, 'merchant', 'show', true],
];

const view = document.getElementById('view');
const nav = document.getElementById('nav');
let cleanup = null;
let returnTo = null; // where to go after signing in (an invitation link, say)

function path() {
  return decodeURI(location.hash.replace(/^#/, '')) || '/';
}

export function go(hashPath) {
  if (location.hash === `#${hashPath}`) route();
  else location.hash = hashPath;
}

/** After signing in: back to where the person was going. */
export function afterSignIn() {
  const fallback = api.usingAdminToken() ? '/operator' : '/';
  const target = returnTo && returnTo !== '/' && !/^\/(signin|signup|operator-token)$/.test(returnTo) ? returnTo : fallback;
  returnTo = null;
  go(target);
}

// "Merchants" is in the header for operators and for people who run a merchant (asked once per person).
let runsMerchants = null; // [user id, Promise<boolean>]

function merchantsLink(me) {
  const link = h('a', { href: '#/merchants', hidden: !api.isOperator() }, 'Merchants');
  if (!api.isOperator()) {
    if (!runsMerchants || runsMerchants[0] !== me?.id) {
      runsMerchants = [me?.id, api.get('merchants').then((r) => r.items.length > 0, () => false)];
    }
    runsMerchants[1].then((yes) => {
      link.hidden = !yes;
    });
  }
  return link;
}

function renderNav() {
  const me = api.user();
  if (!api.signedIn()) {
    nav.replaceChildren(h('a', { href: '#/signin' }, 'Sign in'), h('a', { href: '#/signup' }, 'Create account'));
    return;
  }
  const signOut = h('button', { type: 'button', class: 'link' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    await api.signOut();
    go('/signin');
  });
  const links = [
    h('a', { href: '#/' }, 'Homes'),
    api.usingAdminToken() ? null : h('a', { href: '#/wallet' }, 'Wallet'),
    api.usingAdminToken() ? null : h('a', { href: 'pad.html' }, 'Game pad'),
    merchantsLink(me),
    api.isOperator() ? h('a', { href: '#/operator' }, 'Operator') : null,
    api.isOperator() ? h('a', { href: '#/audit' }, 'Audit') : null,
    api.usingAdminToken() ? null : h('a', { href: '#/account', title: me?.email || '' }, 'Account'),
    signOut,
  ];
  nav.replaceChildren(...links.filter(Boolean));
}

function renderLiveStatus() {
  const el = document.getElementById('live-status');
  const words = { live: 'Live', connecting: 'Connecting…', offline: 'Not live', idle: '' }[live.status.state];
  el.textContent = words;
  el.className = `live-${live.status.state}`;
  el.title = live.status.state === 'live' ? 'Changes appear as they happen' : 'Changes appear when the page is reloaded';
}

async function route() {
  const current = path();
  const match = ROUTES.map(([re, mod, fn, needsAuth]) => [current.match(re), mod, fn, needsAuth]).find(([m]) => m);
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a page failing to clean up must not stop the next one
    }
    cleanup = null;
  }
  const root = h('div', { class: 'page' });
  view.replaceChildren(root);
  if (!match) {
    root.append(notice('error', 'This page does not exist.'), h('p', {}, h('a', { href: '#/' }, 'Go to your homes')));
    return;
  }
  const [m, mod, fn, needsAuth] = match;
  if (needsAuth && !api.signedIn()) {
    returnTo = current;
    go('/signin');
    return;
  }
  try {
    const page = await import(`./pages/${mod}.js`);
    if (!root.isConnected) return; // the person already went elsewhere
    const result = await page[fn](root, ...m.slice(1).map(decodeURIComponent));
    if (typeof result === 'function') {
      if (root.isConnected) cleanup = result;
      else result();
    }
  } catch (err) {
    if (root.isConnected) root.replaceChildren(notice('error', describeError(err)));
  }
  document.title = `${view.querySelector('h1')?.textContent || 'Console'} · TOS+`;
}

async function start() {
  api.auth.addEventListener('change', () => {
    renderNav();
    if (!api.signedIn()) {
      live.close();
      if (!/^\/(signin|signup|operator-token|invite\/.*)$/.test(path())) {
        returnTo = path();
        go('/signin');
      }
    }
  });
  live.status.addEventListener('change', renderLiveStatus);
  renderLiveStatus();
  await api.restore();
  renderNav();
  window.addEventListener('hashchange', route);
  await route();
  document.body.dataset.ready = 'true'; // tests wait for this
}

start();
