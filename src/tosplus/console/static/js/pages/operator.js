// The operator's view of the hub: device counts, ingest rate, products with their fleets, presence changes.

import { enc, get, isOperator } from '../api.js';
import { sparkline } from '../chart.js';
import * as live from '../live.js';
import { add, fmtTime, h, header, notice, showError, table } from '../ui.js';

const POLL_MS = 2000;

function stat(label) {
  const value = h('b', {}, '—');
  return { el: h('div', { class: 'stat' }, value, h('span', {}, label)), set: (v) => (value.textContent = v) };
}

/** Every device, a page of 1000 at a time (GET /devices pages by id). */
async function allDevices() {
  const out = [];
  let after = null;
  do {
    const page = await get('devices', { limit: 1000, after });
    out.push(...page.items);
    after = page.next;
  } while (after);
  return out;
}

export async function render(root) {
  if (!isOperator()) {
    add(root, header('Operator'), notice('error', 'This page is for the hub’s operators.'));
    return;
  }
  const slot = h('div');
  const stats = { total: stat('devices'), online: stat('online'), products: stat('products'), rate: stat('messages/s'), refused: stat('refused'), queued: stat('queued') };
  const spark = h('div', { class: 'chart', 'aria-label': 'Ingest rate' });
  const hubLine = h('p', { class: 'sub' });
  const fleets = h('div');
  const presenceList = h('ul', { class: 'results', id: 'presence' });
  add(root, 
    header('Operator'),
    hubLine,
    slot,
    h('div', { class: 'stats' }, Object.values(stats).map((s) => s.el)),
    h('section', { class: 'panel' }, h('h2', {}, 'Ingest rate'), spark),
    h('section', { class: 'panel' }, h('h2', {}, 'Products and fleets'), fleets),
    h('section', { class: 'panel' }, h('h2', {}, 'Presence changes'), presenceList),
  );

  // Ingest rate: messages/s from the difference of ingest.accepted between two polls.
  let chart = null;
  let last = null;
  let timer = null;
  let stopped = false;
  sparkline(spark, { points: 90 })
    .then((c) => (stopped ? c.destroy() : (chart = c)))
    .catch((err) => showError(spark, err));
  const poll = async () => {
    try {
      const hub = await get('hub');
      showError(slot, null);
      const now = performance.now();
      hubLine.textContent = `Version ${hub.version} · ${hub.database} · MQTT ${hub.mqtt.host}:${hub.mqtt.port} (${hub.mqtt.embedded ? 'embedded broker' : 'external broker'}) · started ${fmtTime(hub.started_at)}`;
      stats.total.set(hub.devices.total.toLocaleString());
      stats.online.set(hub.devices.online.toLocaleString());
      stats.products.set(hub.products.toLocaleString());
      stats.refused.set(hub.ingest.refused.toLocaleString());
      stats.queued.set(hub.ingest.queued.toLocaleString());
      if (last) {
        const rate = Math.max(0, (hub.ingest.accepted - last.accepted) / ((now - last.at) / 1000));
        stats.rate.set(rate >= 100 ? Math.round(rate).toLocaleString() : rate.toFixed(1));
        chart?.push(Date.now() / 1000, rate);
      }
      last = { accepted: hub.ingest.accepted, at: now };
    } catch (err) {
      showError(slot, err);
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };
  poll();

  // Fleets: devices counted per product, online counts kept current by presence events.
  const online = new Map(); // device id → online
  const productOf = new Map();
  let products = [];
  const drawFleets = () => {
    const rows = products.map((p) => {
      const ids = [...productOf].filter(([, pid]) => pid === p.id).map(([id]) => id);
      return { ...p, total: ids.length, online: ids.filter((id) => online.get(id)).length };
    });
    fleets.replaceChildren(
      table(
        [
          ['Product', (p) => h('span', {}, p.name, h('br'), h('code', {}, p.id))],
          ['Manufacturer', (p) => p.manufacturer],
          ['Devices', (p) => p.total.toLocaleString()],
          ['Online', (p) => `${p.online.toLocaleString()}${p.total ? ` (${Math.round((100 * p.online) / p.total)} %)` : ''}`],
          ['Properties', (p) => Object.keys(p.thing_model?.properties || {}).length],
        ],
        rows,
        'No products',
      ),
    );
  };
  try {
    const [productList, devices] = await Promise.all([get('products'), allDevices()]);
    products = productList.items;
    for (const d of devices) {
      online.set(d.id, !!d.online);
      productOf.set(d.id, d.product_id);
    }
    drawFleets();
  } catch (err) {
    showError(fleets, err);
  }

  let redraw = null;
  const unsubscribe = live.subscribe(null, (event) => {
    if (event.type !== 'presence' || !event.device_id) return;
    online.set(event.device_id, !!event.data?.online);
    presenceList.prepend(
      h(
        'li',
        {},
        `${new Date(event.ts).toLocaleTimeString()} `,
        h('a', { href: `#/devices/${enc(event.device_id)}` }, event.device_id),
        event.data?.online ? ' came online' : ` went offline${event.data?.reason ? ` (${event.data.reason})` : ''}`,
      ),
    );
    while (presenceList.children.length > 50) presenceList.lastChild.remove();
    // Many devices may change at once: redraw the table at most once a second.
    redraw ??= setTimeout(() => {
      redraw = null;
      drawFleets();
    }, 1000);
  });
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(redraw);
    unsubscribe();
    chart?.destroy();
  };
}
