// Members and invitations of a home: roles, removing, inviting (the code is shown once), transferring
// ownership, leaving.

import { del, enc, get, patch, post, reloadMe, user } from '../api.js';
import { go } from '../app.js';
import { add, ask, busy, copy, field, fmtTime, h, header, homeTabs, notice, showError, table, toast } from '../ui.js';

const ROLES = [
  ['owner', 'Owner'],
  ['member', 'Member'],
  ['guest', 'Guest'],
];

function roleSelect(value, label) {
  return h('select', { 'aria-label': label }, ROLES.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
}

export async function render(root, homeId) {
  let home;
  try {
    home = await get(`homes/${enc(homeId)}`);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words));
    return;
  }
  const me = user();
  const owner = home.role === 'owner';
  const slot = h('div');
  add(root, header(home.name), homeTabs(homeId, 'members', home.role), slot);
  const fail = (err) => showError(slot, err);
  const reload = () => go(`/homes/${homeId}/members`);

  const members = home.members || [];
  add(root, 
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Members'),
      table(
        [
          ['Name', (m) => h('span', {}, m.name || m.email, m.user_id === me?.id ? ' (you)' : '', h('br'), h('small', { class: 'card-sub' }, m.email))],
          [
            'Role',
            (m) => {
              if (!owner || m.user_id === me?.id) return ROLES.find(([v]) => v === m.role)?.[1] || m.role;
              const who = m.name || m.email;
              const select = roleSelect(m.role, `Role of ${who}`);
              const save = async (body) => {
                try {
                  await patch(`homes/${enc(homeId)}/members/${enc(m.user_id)}`, body);
                  m.role = body.role;
                  toast('Role changed');
                  return true;
                } catch (err) {
                  fail(err);
                  return false;
                }
              };
              // A guest needs the devices they may use (and maybe an end date): ask before saving.
              const access = guestAccess(home, m, who, async (body) => {
                if (await save(body)) access.hidden = true;
              });
              access.hidden = true;
              select.addEventListener('change', async () => {
                if (select.value === 'guest') {
                  access.hidden = false;
                  return;
                }
                access.hidden = true;
                if (!(await save({ role: select.value }))) select.value = m.role;
              });
              const edit = h('button', { type: 'button', class: 'link', hidden: m.role !== 'guest' }, 'Devices…');
              edit.addEventListener('click', () => (access.hidden = !access.hidden));
              return h('div', { class: 'stack' }, select, edit, access);
            },
          ],
          ['Joined', (m) => fmtTime(m.joined_at)],
          ['Until', (m) => (m.expires_at ? fmtTime(m.expires_at) : '—')],
          [
            '',
            (m) => {
              if (!owner || m.user_id === me?.id) return '';
              const remove = h('button', { type: 'button', class: 'secondary' }, 'Remove');
              remove.addEventListener('click', async () => {
                if (!(await ask(`Remove ${m.name || m.email} from ${home.name}?`, 'Remove', true))) return;
                try {
                  await busy(remove, () => del(`homes/${enc(homeId)}/members/${enc(m.user_id)}`));
                  reload();
                } catch (err) {
                  fail(err);
                }
              });
              return remove;
            },
          ],
        ],
        members,
      ),
    ),
  );

  if (owner) {
    add(root, inviteSection(home, fail));
    add(root, await invitationsSection(homeId, fail));
    const others = members.filter((m) => m.user_id !== me?.id);
    if (others.length) {
      const who = h('select', { 'aria-label': 'New owner' }, others.map((m) => h('option', { value: m.user_id }, m.name || m.email)));
      const transfer = h('button', { type: 'submit', class: 'danger' }, 'Transfer ownership');
      const form = h('form', { class: 'row' }, who, transfer);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const name = who.selectedOptions[0].textContent;
        if (!(await ask(`Make ${name} the owner of ${home.name}? You become a member.`, 'Transfer', true))) return;
        try {
          await busy(transfer, () => post(`homes/${enc(homeId)}/transfer`, { user_id: who.value }));
          reload();
        } catch (err) {
          fail(err);
        }
      });
      add(root, h('section', { class: 'panel' }, h('h2', {}, 'Transfer ownership'), form));
    }
  }

  if (me?.id) {
    const leave = h('button', { type: 'button', class: 'danger' }, 'Leave this home');
    leave.addEventListener('click', async () => {
      if (!(await ask(`Leave ${home.name}? You will no longer see its devices.`, 'Leave', true))) return;
      try {
        await busy(leave, () => del(`homes/${enc(homeId)}/members/${enc(me.id)}`));
        reloadMe().catch(() => {});
        go('/');
      } catch (err) {
        fail(err);
      }
    });
    add(root, h('section', { class: 'panel' }, h('h2', {}, 'Leave'), leave));
  }
}

/** Devices a guest may use and until when; `onSave({role: 'guest', devices, expires_at})`. */
function guestAccess(home, member, who, onSave) {
  const allowed = new Set(member.devices || []);
  const until = h('input', { type: 'datetime-local', 'aria-label': `Guest access of ${who} until` });
  if (member.expires_at) until.value = new Date(member.expires_at - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const boxes = (home.devices || []).map((d) => h('input', { type: 'checkbox', value: d.id, checked: allowed.has(d.id), 'aria-label': `${who} may use ${d.name || d.id}` }));
  const button = h('button', { type: 'submit' }, 'Save guest access');
  const form = h(
    'form',
    { class: 'stack panel', 'aria-label': `Guest access of ${who}` },
    h('strong', {}, `Devices ${who} may use`),
    (home.devices || []).map((d, i) => h('label', { class: 'row' }, boxes[i], d.name || d.id)),
    field('Until (optional)', until),
    h('div', {}, button),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    await busy(button, () =>
      onSave({ role: 'guest', devices: boxes.filter((b) => b.checked).map((b) => b.value), expires_at: until.value ? new Date(until.value).getTime() : null }),
    );
  });
  return form;
}

function inviteSection(home, fail) {
  const result = h('div');
  const role = roleSelect('member', 'Role');
  const guestBox = h(
    'div',
    { class: 'stack', hidden: true },
    field('Guest until', h('input', { type: 'datetime-local', name: 'guest_until' })),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Devices the guest may use'),
      (home.devices || []).map((d) => h('label', { class: 'row' }, h('input', { type: 'checkbox', name: 'devices', value: d.id }), d.name || d.id)),
    ),
  );
  role.addEventListener('change', () => (guestBox.hidden = role.value !== 'guest'));
  const send = h('button', { type: 'submit' }, 'Create invitation');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Invite' },
    field('Role', role),
    field('E-mail', h('input', { type: 'email', name: 'email' }), 'Optional: only this account can accept it'),
    field('Valid for (hours)', h('input', { type: 'number', name: 'valid_hours', min: 1, max: 720, value: 72 })),
    guestBox,
    h('div', {}, send),
    result,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { role: role.value, valid_hours: Number(data.get('valid_hours')) || 72 };
    if (data.get('email')) body.email = String(data.get('email')).trim();
    if (role.value === 'guest') {
      body.devices = data.getAll('devices');
      if (data.get('guest_until')) body.guest_expires_at = new Date(String(data.get('guest_until'))).getTime();
    }
    try {
      const invitation = await busy(send, () => post(`homes/${enc(home.id)}/invitations`, body));
      const link = `${location.origin}${location.pathname}#/invite/${invitation.code}`;
      const input = h('input', { type: 'text', readonly: true, value: link, 'aria-label': 'Invitation link' });
      result.replaceChildren(
        notice('ok', `Invitation code ${invitation.code}. It is shown only now, works once, and expires ${fmtTime(invitation.expires_at)}.`),
        h('div', { class: 'secret' }, input, h('button', { type: 'button', class: 'secondary', onclick: () => copy(link, input) }, 'Copy link')),
      );
    } catch (err) {
      fail(err);
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Invite someone'), form);
}

async function invitationsSection(homeId, fail) {
  const box = h('div');
  const load = async () => {
    try {
      const { items } = await get(`homes/${enc(homeId)}/invitations`);
      box.replaceChildren(
        table(
          [
            ['Role', (i) => i.role],
            ['For', (i) => i.email || 'anyone with the code'],
            ['Expires', (i) => fmtTime(i.expires_at)],
            [
              '',
              (i) => {
                const revoke = h('button', { type: 'button', class: 'secondary' }, 'Revoke');
                revoke.addEventListener('click', async () => {
                  try {
                    await busy(revoke, () => del(`homes/${enc(homeId)}/invitations/${enc(i.id)}`));
                    load();
                  } catch (err) {
                    fail(err);
                  }
                });
                return revoke;
              },
            ],
          ],
          items,
          'No open invitations',
        ),
      );
    } catch (err) {
      showError(box, err);
    }
  };
  await load();
  return h('section', { class: 'panel' }, h('h2', {}, 'Open invitations'), box);
}
