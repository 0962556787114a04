// The homes the person belongs to, and creating a home with its first rooms.

import { enc, get, isOperator, post, reloadMe } from '../api.js';
import { go } from '../app.js';
import { add, badge, busy, field, h, header, notice, showError } from '../ui.js';

const ROLE_WORDS = { owner: 'Owner', member: 'Member', guest: 'Guest', operator: 'Operator' };

function homeCard(home) {
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return h(
    'article',
    { class: 'card', dataset: { homeId: home.id } },
    h(
      'div',
      { class: 'card-head' },
      h('a', { href: `#/homes/${enc(home.id)}` }, h('h3', {}, home.name)),
      home.role ? badge(ROLE_WORDS[home.role] || home.role, 'muted') : null,
    ),
    h(
      'div',
      { class: 'card-sub' },
      [plural(home.devices ?? 0, 'device'), plural(home.rooms ?? 0, 'room'), plural(home.members ?? 0, 'member')].join(' · '),
    ),
  );
}

export async function render(root) {
  const list = h('div', { class: 'grid', id: 'homes' });
  const slot = h('div');
  add(root, 
    header('Homes', isOperator() ? h('a', { href: '#/operator', class: 'button secondary' }, 'Operator view') : null),
    slot,
    list,
    createForm(),
  );
  try {
    const { items } = await get('homes');
    list.replaceChildren(...items.map(homeCard));
    if (!items.length) list.replaceChildren(h('p', { class: 'empty' }, 'You are not in any home yet. Create one below, or open an invitation link.'));
  } catch (err) {
    showError(slot, err);
  }
}

function createForm() {
  const slot = h('div');
  const rooms = h('input', { type: 'text', name: 'rooms', placeholder: 'Living room, Kitchen, Bedroom' });
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Create a home' },
    field('Name', h('input', { type: 'text', name: 'name', required: true, maxlength: 200, placeholder: 'Home' })),
    field('Rooms', rooms, 'Separated by commas; you can change them later'),
    slot,
    h('div', {}, h('button', { type: 'submit' }, 'Create home')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(slot, null);
    const data = new FormData(form);
    const roomNames = String(data.get('rooms') || '')
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean);
    try {
      const home = await busy(form.querySelector('button'), () => post('homes', { name: String(data.get('name')).trim(), rooms: roomNames }));
      reloadMe().catch(() => {});
      go(`/homes/${home.id}`);
    } catch (err) {
      showError(slot, err);
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Create a home'), form, notice('info', 'You become its owner and can invite others.'));
}
