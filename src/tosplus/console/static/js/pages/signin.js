// Signing in: e-mail and password (a session cookie keeps the person signed in), creating an account, and
// the operator's admin token.

import * as api from '../api.js';
import { afterSignIn } from '../app.js';
import { add, busy, field, formValues, h, showError } from '../ui.js';

function page(root, title, form, ...links) {
  add(root, h('div', { class: 'panel narrow' }, h('h1', {}, title), form, h('p', { class: 'row' }, links)));
  form.querySelector('input')?.focus();
}

function submitting(form, slot, fn) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(slot, null);
    try {
      await busy(form.querySelector('button[type=submit]'), () => fn(formValues(form)));
      afterSignIn();
    } catch (err) {
      showError(slot, err);
    }
  });
}

export function signIn(root) {
  if (api.signedIn()) return afterSignIn();
  const slot = h('div');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Sign in' },
    field('E-mail', h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true })),
    field('Password', h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true })),
    slot,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  submitting(form, slot, (v) => api.signIn(v.email, v.password));
  page(
    root,
    'Sign in',
    form,
    h('a', { href: '#/signup' }, 'Create an account'),
    h('a', { href: '#/operator-token', class: 'small' }, 'Operator token'),
  );
}

export function signUp(root) {
  const slot = h('div');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Create account' },
    field('Name', h('input', { type: 'text', name: 'name', autocomplete: 'name', required: true, maxlength: 200 })),
    field('E-mail', h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true })),
    field(
      'Password',
      h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 }),
      'At least 8 characters',
    ),
    slot,
    h('button', { type: 'submit' }, 'Create account'),
  );
  submitting(form, slot, (v) => api.signUp(v.email, v.password, v.name));
  page(root, 'Create an account', form, h('a', { href: '#/signin' }, 'I have an account'));
}

export function operatorToken(root) {
  const slot = h('div');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Operator token' },
    h('p', { class: 'sub' }, "The hub's administrator token (TOSPLUS_ADMIN_TOKEN or the admin-token file). It is kept in this tab only."),
    field('Token', h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true })),
    slot,
    h('button', { type: 'submit' }, 'Sign in as operator'),
  );
  submitting(form, slot, (v) => api.signInWithToken(v.token.trim()));
  page(root, 'Operator sign-in', form, h('a', { href: '#/signin' }, 'Sign in with e-mail instead'));
}
