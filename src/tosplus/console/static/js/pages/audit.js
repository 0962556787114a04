// The audit log: a home's (for its owners) at #/homes/<id>/audit, the whole hub's (operators) at #/audit.

import { enc, get, isOperator } from '../api.js';
import { add, fmtTime, h, header, homeTabs, notice, showError, table } from '../ui.js';

const PAGE = 100;

// What each recorded action means, for people; an action not listed here is shown as recorded.
const ACTIONS = {
  'account.create': 'Created an account',
  'account.signup': 'Signed up',
  'account.signin_failed': 'Failed to sign in',
  'account.signout_everywhere': 'Signed out everywhere',
  'account.unlock': 'Unlocked an account',
  'home.create': 'Created the home',
  'home.rename': 'Renamed the home',
  'home.delete': 'Deleted the home',
  'home.transfer': 'Transferred ownership',
  'room.create': 'Added a room',
  'room.rename': 'Renamed a room',
  'room.delete': 'Deleted a room',
  'member.update': 'Changed a member’s role',
  'member.remove': 'Removed a member',
  'member.leave': 'Left the home',
  'invitation.create': 'Invited someone',
  'invitation.accept': 'Accepted an invitation',
  'invitation.revoke': 'Revoked an invitation',
  'device.bind': 'Added a device',
  'device.unbind': 'Removed a device',
  'device.update': 'Renamed or moved a device',
  'device.binding_code': 'Issued a binding code',
  'device.desired': 'Changed a device’s settings',
  'device.command': 'Sent a command',
  'scene.create': 'Created a scene',
  'scene.update': 'Changed a scene',
  'scene.delete': 'Deleted a scene',
  'scene.run': 'Ran a scene',
  'voice.settings': 'Changed the voice settings',
};

/** An entry's detail as `key: value` pairs rather than raw JSON (empty values left out). */
function detailWords(detail) {
  if (!detail) return '';
  if (typeof detail !== 'object') return String(detail);
  const words = (v) =>
    Array.isArray(v) ? v.map(words).join(', ') || 'none' : v !== null && typeof v === 'object' ? Object.entries(v).map(([a, b]) => `${a} ${words(b)}`).join(', ') : String(v);
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${words(v)}`)
    .join('; ');
}

export async function render(root, homeId) {
  let home = null;
  if (homeId) {
    try {
      home = await get(`homes/${enc(homeId)}`);
    } catch (err) {
      add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words));
      return;
    }
    add(root, header(`${home.name}: audit log`), homeTabs(homeId, 'audit', home.role));
  } else {
    add(root, header('Audit log'));
    if (!isOperator()) {
      add(root, notice('error', 'The hub’s audit log is for operators. Home owners find their home’s log on the home’s page.'));
      return;
    }
  }
  const names = new Map((home?.devices || []).map((d) => [d.id, d.name || d.id]));
  const slot = h('div');
  const rows = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older entries');
  add(root, h('section', { class: 'panel' }, slot, rows, more));
  const items = [];
  let before = null;
  const load = async () => {
    try {
      const query = { limit: PAGE, before };
      const page = await get(homeId ? `homes/${enc(homeId)}/audit` : 'audit', query);
      items.push(...page.items);
      rows.replaceChildren(
        table(
          [
            ['When', (e) => fmtTime(e.at)],
            ['Who', (e) => e.actor || e.actor_id || 'the hub'],
            ['What', (e) => ACTIONS[e.action] || e.action],
            ['Device', (e) => (e.device_id ? h('a', { href: `#/devices/${enc(e.device_id)}` }, names.get(e.device_id) || e.device_id) : '')],
            ['Detail', (e) => detailWords(e.detail)],
            ['From', (e) => e.ip || ''],
          ],
          items,
          'Nothing recorded yet',
        ),
      );
      // Pages go back in time from the oldest entry shown.
      const last = page.items[page.items.length - 1];
      before = last ? (page.next ?? last.id) : before;
      more.hidden = page.items.length < PAGE;
    } catch (err) {
      showError(slot, err);
    }
  };
  more.addEventListener('click', load);
  await load();
}
