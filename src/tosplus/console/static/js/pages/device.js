// One device: controls, twin (desired / reported / delta), telemetry chart, commands, dead letters, and
// what its home's owner may do with it (move, credentials, unbind).

import { enc, get, isOperator, patch, post, product, usingAdminToken } from '../api.js';
import { go } from '../app.js';
import { timeChart } from '../chart.js';
import { commandWords, controlsFor } from '../controls.js';
import * as live from '../live.js';
import { add, ask, busy, copy, fmtAgo, fmtTime, fmtValue, h, header, notice, onlineBadge, showError, table, toast } from '../ui.js';
import { isScreen, screenSection } from './screen.js';
import { paymentSection } from './wallet.js';

const RANGES = [
  ['15m', 'Last 15 min', 15 * 60e3, '15s'],
  ['1h', '1 h', 3600e3, '1m'],
  ['24h', '24 h', 86400e3, '15m'],
  ['7d', '7 d', 7 * 86400e3, '1h'],
];

const NOT_FOUND = 'This device does not exist, or you do not have access to it.';

export async function render(root, deviceId) {
  let device;
  try {
    device = await get(`devices/${enc(deviceId)}`);
  } catch (err) {
    add(root, header('Device'), notice('error', err.status === 404 ? NOT_FOUND : err.words || String(err)));
    return;
  }
  const [model, home] = await Promise.all([
    product(device.product_id).catch(() => null),
    device.home_id ? get(`homes/${enc(device.home_id)}`).catch(() => null) : Promise.resolve(null),
  ]);
  const role = isOperator() ? 'operator' : home?.role;
  const tm = model?.thing_model || { properties: {}, actions: {} };
  const cleanups = [];

  const presence = h('span', {}, onlineBadge(device.online));
  add(root, 
    header(device.name || device.id, presence),
    h(
      'p',
      { class: 'sub' },
      model ? model.name : device.product_id,
      home ? [' · ', h('a', { href: `#/homes/${enc(home.id)}` }, home.name)] : null,
      ` · last seen ${fmtAgo(device.last_seen)}`,
    ),
  );

  // Controls and twin
  const twinBox = h('div');
  const controls = controlsFor(tm, {
    onSet: async (key, value) => showTwin(await patch(`devices/${enc(deviceId)}/twin/desired`, { [key]: value })),
    onAction: async (name, params) => {
      const command = await post(`devices/${enc(deviceId)}/commands`, { name, params, timeout_s: 10 });
      loadCommands();
      return commandWords(command, tm.actions?.[name]?.title || name);
    },
  });
  controls.el.addEventListener('control-error', (e) => toast(e.detail, 'error'));
  add(root, h('div', { class: 'two' }, h('section', { class: 'panel' }, h('h2', {}, 'Controls'), controls.el), h('section', { class: 'panel' }, h('h2', {}, 'Twin'), twinBox)));

  let twinVersion = -1;
  function showTwin(twin) {
    const reported = twin.reported?.state || {};
    const desired = twin.desired?.state || {};
    if ((twin.reported?.version ?? 0) >= twinVersion) {
      twinVersion = twin.reported?.version ?? 0;
      controls.update(reported);
    }
    controls.desired(desired);
    const delta = twin.delta || {};
    const keys = [...new Set([...Object.keys(tm.properties || {}), ...Object.keys(desired), ...Object.keys(reported)])].filter(
      (k) => k in desired || k in reported,
    );
    const schema = (k) => tm.properties?.[k] || {};
    twinBox.replaceChildren(
      table(
        [
          ['Property', (k) => schema(k).title || k],
          ['Desired', (k) => fmtValue(desired[k], schema(k))],
          ['Reported', (k) => fmtValue(reported[k], schema(k))],
          ['Delta', (k) => (k in delta ? h('span', { class: 'badge badge-warn' }, 'waiting for the device') : '')],
        ],
        keys,
        'The device has not reported any state yet',
      ),
      h('p', { class: 'card-sub' }, `Desired version ${twin.desired?.version ?? 0} · reported version ${twin.reported?.version ?? 0}`),
    );
  }
  try {
    const [twin, latest] = await Promise.all([get(`devices/${enc(deviceId)}/twin`), get(`devices/${enc(deviceId)}/telemetry/latest`)]);
    controls.update(Object.fromEntries(Object.entries(latest.values || {}).map(([k, p]) => [k, p.value])));
    showTwin(twin);
  } catch (err) {
    showError(twinBox, err);
  }

  // Telemetry chart
  // Read-only numbers (measurements) first: they are what devices send as telemetry.
  const numeric = Object.entries(tm.properties || {})
    .filter(([, s]) => s.type === 'number' || s.type === 'integer')
    .sort(([, a], [, b]) => Number(!!b.readOnly) - Number(!!a.readOnly));
  if (numeric.length) add(root, await telemetrySection(deviceId, numeric, cleanups));

  // Commands and dead letters
  const commandsBox = h('div');
  const lettersBox = h('div');
  add(root, h('section', { class: 'panel' }, h('h2', {}, 'Commands'), commandsBox), h('section', { class: 'panel' }, h('h2', {}, 'Refused messages'), lettersBox));
  async function loadCommands() {
    try {
      const { items } = await get(`devices/${enc(deviceId)}/commands`, { limit: 20 });
      commandsBox.replaceChildren(
        table(
          [
            ['Sent', (c) => fmtTime(c.created_at)],
            ['Command', (c) => tm.actions?.[c.name]?.title || c.name],
            ['Outcome', (c) => commandWords(c, tm.actions?.[c.name]?.title || c.name).words],
          ],
          items,
          'No commands yet',
        ),
      );
    } catch (err) {
      showError(commandsBox, err);
    }
  }
  async function loadLetters() {
    try {
      const { items, total } = await get(`devices/${enc(deviceId)}/dead-letters`, { limit: 20 });
      lettersBox.replaceChildren(
        h('p', { class: 'sub' }, total ? `${total} message${total === 1 ? '' : 's'} from this device were refused by the hub.` : 'The hub has accepted everything this device sent.'),
        items.length
          ? table(
              [
                ['Received', (d) => fmtTime(d.received_at)],
                ['Reason', (d) => d.reason],
                ['Topic', (d) => h('code', {}, d.topic)],
              ],
              items,
            )
          : '',
      );
    } catch (err) {
      showError(lettersBox, err);
    }
  }
  loadCommands();
  loadLetters();

  // Paying with it (from the person's own wallet)
  if (home && !usingAdminToken()) add(root, paymentSection(device.id));
  if (home && !usingAdminToken() && isScreen(model)) add(root, screenSection(device, role));

  // Managing it
  if (home || isOperator()) add(root, manageSection(device, home, role));

  cleanups.push(
    live.subscribe(deviceId, (event) => {
      const data = event.data || {};
      if (event.type === 'twin') showTwin(data);
      else if (event.type === 'telemetry') controls.update(data.values || {});
      else if (event.type === 'presence') presence.replaceChildren(onlineBadge(data.online));
      else if (event.type === 'command') loadCommands();
      else if (event.type === 'dead_letter') loadLetters();
    }),
  );
  return () => cleanups.forEach((fn) => fn());
}

async function telemetrySection(deviceId, numeric, cleanups) {
  const keySelect = h(
    'select',
    { 'aria-label': 'Property' },
    numeric.map(([k, s]) => h('option', { value: k }, s.title || k)),
  );
  const box = h('div', { class: 'chart' });
  const slot = h('div');
  const from = h('input', { type: 'datetime-local', 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'To' });
  const custom = h('form', { class: 'row', hidden: true }, from, to, h('button', { type: 'submit' }, 'Show'));
  let range = '1h';
  let chart = null;
  const buttons = [...RANGES.map(([id, label]) => [id, label]), ['custom', 'Custom']].map(([id, label]) => {
    const b = h('button', { type: 'button', 'aria-pressed': String(id === range) }, label);
    b.addEventListener('click', () => {
      range = id;
      buttons.forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
      custom.hidden = id !== 'custom';
      if (id !== 'custom') draw();
    });
    return b;
  });
  custom.addEventListener('submit', (e) => {
    e.preventDefault();
    draw();
  });

  async function draw() {
    showError(slot, null);
    let start;
    let end = Date.now();
    let interval;
    if (range === 'custom') {
      start = from.value ? new Date(from.value).getTime() : NaN;
      end = to.value ? new Date(to.value).getTime() : Date.now();
      if (!(start < end)) return showError(slot, { words: 'Choose a start time before the end time' });
      // About 150 buckets over the range, at least a second each.
      interval = `${Math.max(1, Math.round((end - start) / 150 / 1000))}s`;
    } else {
      const [, , span, step] = RANGES.find(([id]) => id === range);
      start = end - span;
      interval = step;
    }
    const key = keySelect.value;
    const schema = Object.fromEntries(numeric)[key];
    try {
      const result = await get(`devices/${enc(deviceId)}/telemetry`, { key, from: Math.round(start), to: Math.round(end), agg: 'avg', interval });
      const xs = result.points.map((p) => p.ts / 1000);
      const ys = result.points.map((p) => p.value);
      if (chart) chart.destroy();
      box.replaceChildren();
      if (!xs.length) {
        box.append(h('p', { class: 'empty' }, 'No readings in this period'));
        chart = null;
        return;
      }
      chart = await timeChart(box, { label: schema.title || key, unit: schema.unit, xs, ys });
    } catch (err) {
      showError(slot, err);
    }
  }
  keySelect.addEventListener('change', draw);
  cleanups.push(() => chart && chart.destroy());
  const section = h('section', { class: 'panel' }, h('h2', {}, 'Telemetry'), h('div', { class: 'row' }, keySelect, h('div', { class: 'ranges' }, buttons)), custom, slot, box);
  draw();
  return section;
}

function manageSection(device, home, role) {
  const slot = h('div');
  const owner = role === 'owner' || role === 'operator';
  const out = h('section', { class: 'panel stack' }, h('h2', {}, 'Manage'), slot);
  if (home) {
    const roomSelect = h(
      'select',
      { 'aria-label': 'Room' },
      h('option', { value: '' }, 'No room'),
      (home.rooms || []).map((r) => h('option', { value: r.id, selected: r.id === device.room_id }, r.name)),
    );
    const name = h('input', { type: 'text', value: device.name || '', 'aria-label': 'Name', maxlength: 200 });
    const save = h('button', { type: 'submit' }, 'Save');
    const form = h('form', { class: 'row' }, name, roomSelect, save);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await busy(save, () => patch(`homes/${enc(home.id)}/devices/${enc(device.id)}`, { name: name.value.trim() || null, room_id: roomSelect.value || null }));
        toast('Saved');
      } catch (err) {
        showError(slot, err);
      }
    });
    out.append(h('h3', {}, 'Name and room'), form);
  }
  if (owner) {
    const secretBox = h('div');
    const rotate = h('button', { type: 'button', class: 'secondary' }, 'New secret');
    const revoke = h('button', { type: 'button', class: 'secondary' }, 'Revoke credentials');
    rotate.addEventListener('click', async () => {
      if (!(await ask('The device stops working until it is given the new secret. Make a new secret?', 'Make new secret', true))) return;
      try {
        const result = await busy(rotate, () => post(`devices/${enc(device.id)}/credentials/rotate`));
        const input = h('input', { type: 'text', readonly: true, value: result.secret, 'aria-label': 'New secret' });
        secretBox.replaceChildren(notice('warn', 'The new secret is shown only now. Give it to the device.'), h('div', { class: 'secret' }, input, h('button', { type: 'button', class: 'secondary', onclick: () => copy(result.secret, input) }, 'Copy')));
      } catch (err) {
        showError(slot, err);
      }
    });
    revoke.addEventListener('click', async () => {
      if (!(await ask('No secret will work until a new one is made, and the device is disconnected. Revoke?', 'Revoke', true))) return;
      try {
        await busy(revoke, () => post(`devices/${enc(device.id)}/credentials/revoke`));
        secretBox.replaceChildren(notice('ok', 'Credentials revoked: the device cannot connect until a new secret is made.'));
      } catch (err) {
        showError(slot, err);
      }
    });
    out.append(h('h3', {}, 'Credentials'), h('div', { class: 'row' }, rotate, revoke), secretBox);
  }
  if (home && owner) {
    const unbind = h('button', { type: 'button', class: 'danger' }, 'Remove from this home');
    unbind.addEventListener('click', async () => {
      if (!(await ask(`Remove ${device.name || device.id} from ${home.name}? Its credentials are revoked and its settings cleared.`, 'Remove', true))) return;
      try {
        await busy(unbind, () => post(`homes/${enc(home.id)}/devices/${enc(device.id)}/unbind`));
        toast('Device removed from the home');
        go(`/homes/${home.id}`);
      } catch (err) {
        showError(slot, err);
      }
    });
    out.append(h('h3', {}, 'Unbind'), h('div', {}, unbind));
  }
  return out;
}
