// The person's account: API keys (the key is shown once) and sessions (signed-in browsers and apps).

import { del, get, post, signOutEverywhere, user } from '../api.js';
import { go } from '../app.js';
import { add, ask, busy, copy, fmtAgo, fmtTime, h, header, notice, showError, table } from '../ui.js';

export async function render(root) {
  const me = user();
  const slot = h('div');
  add(root, header('Account'), h('p', { class: 'sub' }, me ? `${me.name || ''} · ${me.email || ''}` : ''), slot);
  const keys = h('div');
  const sessions = h('div');
  const fail = (err) => showError(slot, err);

  // API keys
  const created = h('div');
  const keyName = h('input', { type: 'text', required: true, maxlength: 200, placeholder: 'e.g. Home Assistant', 'aria-label': 'Key name' });
  const create = h('button', { type: 'submit' }, 'Create key');
  const form = h('form', { class: 'row' }, keyName, create);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const key = await busy(create, () => post('me/api-keys', { name: keyName.value.trim() }));
      const input = h('input', { type: 'text', readonly: true, value: key.key, 'aria-label': 'New API key' });
      created.replaceChildren(
        notice('warn', 'Copy the key now: it is shown only once. It acts as you, so keep it secret.'),
        h('div', { class: 'secret' }, input, h('button', { type: 'button', class: 'secondary', onclick: () => copy(key.key, input) }, 'Copy')),
      );
      keyName.value = '';
      loadKeys();
    } catch (err) {
      fail(err);
    }
  });
  const loadKeys = async () => {
    try {
      const { items } = await get('me/api-keys');
      keys.replaceChildren(
        table(
          [
            ['Name', (k) => k.name],
            ['Starts with', (k) => h('code', {}, k.prefix)],
            ['Created', (k) => fmtTime(k.created_at)],
            ['Last used', (k) => fmtAgo(k.last_used_at)],
            [
              '',
              (k) => {
                const revoke = h('button', { type: 'button', class: 'secondary' }, 'Revoke');
                revoke.addEventListener('click', async () => {
                  if (!(await ask(`Revoke the key ${k.name}? Programs using it stop working.`, 'Revoke', true))) return;
                  try {
                    await busy(revoke, () => del(`me/api-keys/${encodeURIComponent(k.id)}`));
                    loadKeys();
                  } catch (err) {
                    fail(err);
                  }
                });
                return revoke;
              },
            ],
          ],
          items,
          'No API keys',
        ),
      );
    } catch (err) {
      showError(keys, err);
    }
  };

  // Sessions
  const loadSessions = async () => {
    try {
      const { items } = await get('me/sessions');
      sessions.replaceChildren(
        table(
          [
            ['Browser or app', (s) => h('span', {}, s.user_agent || 'unknown', s.current ? ' (this one)' : '')],
            ['From', (s) => s.ip || ''],
            ['Signed in', (s) => fmtTime(s.created_at)],
            ['Last used', (s) => fmtAgo(s.last_used_at)],
            [
              '',
              (s) => {
                if (s.current) return '';
                const end = h('button', { type: 'button', class: 'secondary' }, 'Sign out');
                end.addEventListener('click', async () => {
                  try {
                    await busy(end, () => del(`me/sessions/${encodeURIComponent(s.id)}`));
                    loadSessions();
                  } catch (err) {
                    fail(err);
                  }
                });
                return end;
              },
            ],
          ],
          items,
          'No sessions',
        ),
      );
    } catch (err) {
      showError(sessions, err);
    }
  };

  const everywhere = h('button', { type: 'button', class: 'danger' }, 'Sign out everywhere');
  everywhere.addEventListener('click', async () => {
    if (!(await ask('Sign out of every browser and app, this one included? API keys keep working.', 'Sign out everywhere', true))) return;
    try {
      await busy(everywhere, signOutEverywhere);
      go('/signin');
    } catch (err) {
      fail(err);
    }
  });

  add(root, 
    h('section', { class: 'panel stack' }, h('h2', {}, 'API keys'), h('p', { class: 'sub' }, 'For programs that use the hub’s API as you.'), form, created, keys),
    h('section', { class: 'panel stack' }, h('h2', {}, 'Sessions'), sessions, h('div', {}, everywhere)),
  );
  await Promise.all([loadKeys(), loadSessions()]);
}
