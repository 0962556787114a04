// Accepting an invitation from its link (#/invite/<code>). Someone not signed in is sent to sign in (or
// create an account) first and comes back here.

import { enc, post, reloadMe } from '../api.js';
import { go } from '../app.js';
import { add, busy, h, header, showError } from '../ui.js';

export function render(root, code) {
  const slot = h('div');
  const accept = h('button', { type: 'button' }, 'Join the home');
  accept.addEventListener('click', async () => {
    showError(slot, null);
    try {
      const home = await busy(accept, () => post('invitations/accept', { code }));
      reloadMe().catch(() => {});
      go(`/homes/${enc(home.id)}`);
    } catch (err) {
      showError(slot, err);
    }
  });
  add(root, 
    h(
      'div',
      { class: 'panel narrow stack' },
      header('Invitation'),
      h('p', {}, 'You have been invited to a home. Joining lets you see and use its devices, as the invitation allows.'),
      h('p', { class: 'sub' }, 'Code ', h('code', {}, code)),
      slot,
      h('div', { class: 'row' }, accept, h('a', { href: '#/' }, 'Not now')),
    ),
  );
}
