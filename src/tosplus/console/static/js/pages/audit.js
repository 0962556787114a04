// The audit log: a home's (for its owners) at #/homes/<id>/audit, the whole hub's (operators) at #/audit.

import { enc, get, isOperator } from '../api.js';
import { add, fmtTime, h, header, homeTabs, notice, showError, table } from '../ui.js';

const PAGE = 100;

/** An entry's detail as `key: value` pairs rather than raw JSON. */
function detailWords(detail) {
  if (!detail) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v !== null && typeof v === 'object' ? Object.entries(v).map(([a, b]) => `${a} ${b}`).join(', ') : v}`)
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
            ['What', (e) => e.action],
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
