// The rooms of a home: add, rename, delete (devices of a deleted room stay in the home).

import { del, enc, get, patch, post } from '../api.js';
import { go } from '../app.js';
import { add, ask, busy, h, header, homeTabs, notice, showError, table, toast } from '../ui.js';

export async function render(root, homeId) {
  let home;
  try {
    home = await get(`homes/${enc(homeId)}`);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words));
    return;
  }
  const slot = h('div');
  const owner = home.role === 'owner';
  const reload = () => go(`/homes/${homeId}/rooms`);
  const count = (roomId) => (home.devices || []).filter((d) => d.room_id === roomId).length;
  add(root, header(home.name), homeTabs(homeId, 'rooms', home.role), slot);
  add(root, 
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Rooms'),
      table(
        [
          [
            'Name',
            (room) => {
              if (!owner) return room.name;
              const input = h('input', { type: 'text', value: room.name, 'aria-label': `Name of ${room.name}`, maxlength: 200 });
              input.addEventListener('change', async () => {
                try {
                  await patch(`homes/${enc(homeId)}/rooms/${enc(room.id)}`, { name: input.value.trim() });
                  toast('Room renamed');
                } catch (err) {
                  input.value = room.name;
                  showError(slot, err);
                }
              });
              return input;
            },
          ],
          ['Devices', (room) => String(count(room.id))],
          [
            '',
            (room) => {
              if (!owner) return '';
              const remove = h('button', { type: 'button', class: 'secondary' }, 'Delete');
              remove.addEventListener('click', async () => {
                if (!(await ask(`Delete ${room.name}? Its devices stay in the home, without a room.`, 'Delete', true))) return;
                try {
                  await busy(remove, () => del(`homes/${enc(homeId)}/rooms/${enc(room.id)}`));
                  reload();
                } catch (err) {
                  showError(slot, err);
                }
              });
              return remove;
            },
          ],
        ],
        home.rooms || [],
        'No rooms yet',
      ),
    ),
  );
  if (owner) {
    const name = h('input', { type: 'text', required: true, maxlength: 200, 'aria-label': 'New room', placeholder: 'Room name' });
    const addButton = h('button', { type: 'submit' }, 'Add room');
    const form = h('form', { class: 'row' }, name, addButton);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await busy(addButton, () => post(`homes/${enc(homeId)}/rooms`, { name: name.value.trim() }));
        reload();
      } catch (err) {
        showError(slot, err);
      }
    });
    add(root, h('section', { class: 'panel' }, h('h2', {}, 'Add a room'), form));
  }
}
