// A home: its rooms with a card per device, each showing live state and the controls of its product.
//
// Speed with hundreds of devices: one request gives the home with all its devices; each product's thing
// model is fetched once; cards are drawn at once, and each card's twin and latest telemetry are fetched only
// when the card comes into view, at most a few requests at a time. Live events then keep cards current.

import { enc, get, patch, post, product } from '../api.js';
import { actionControl, commandWords, controlsFor } from '../controls.js';
import * as live from '../live.js';
import { add, fmtAgo, h, header, homeTabs, notice, onlineBadge, toast } from '../ui.js';

const PARALLEL = 6; // a browser opens about six connections per host anyway

/**
 * A device card: name, product, presence at once; its controls are built when it comes near the screen
 * (`build`), so a home with hundreds of devices draws quickly. State that arrives before is kept and shown
 * then. Returns {el, build(), load(), twin(doc), telemetry(values, ts), presence(online, since)}.
 */
export function deviceCard(device, model) {
  const link = h('a', { href: `#/devices/${enc(device.id)}` }, h('h3', {}, device.name || device.id));
  const status = h('span', {}, onlineBadge(device.online));
  const seen = h('span', { class: 'card-sub' }, device.online ? '' : `· last seen ${fmtAgo(device.last_seen)}`);
  const el = h(
    'article',
    { class: `card${device.online ? '' : ' offline'}`, dataset: { deviceId: device.id, online: String(!!device.online) } },
    h('div', { class: 'card-head' }, link, status),
    h('div', { class: 'card-sub' }, model ? model.name : device.product_id, ' ', seen),
  );
  let reportedVersion = -1;
  let desiredVersion = -1;
  const values = {}; // what the device reported or measured: key → {value, ts}
  let desired = {};
  let controls = null;

  const card = {
    el,
    loaded: false,
    build() {
      if (controls || !model) {
        if (!model && !el.querySelector('.card-note')) el.append(h('p', { class: 'card-sub card-note' }, 'This product’s controls could not be loaded.'));
        return;
      }
      const tm = model.thing_model;
      controls = controlsFor(tm, {
        onSet: async (key, value) => card.twin(await patch(`devices/${enc(device.id)}/twin/desired`, { [key]: value })),
        state: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.value])),
      });
      controls.update(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.value])));
      controls.desired(desired);
      el.append(controls.el);
      const actions = Object.entries(tm.actions || {});
      if (actions.length) {
        const onRun = async (name, params) => {
          const command = await post(`devices/${enc(device.id)}/commands`, { name, params, timeout_s: 10 });
          return commandWords(command, tm.actions[name].title || name);
        };
        const list = h('div', { class: 'controls-actions' }, actions.map(([n, sch]) => actionControl(n, sch, { onRun })));
        el.append(h('details', { class: 'card-actions' }, h('summary', {}, 'Actions'), list));
      }
      el.addEventListener('control-error', (e) => toast(e.detail, 'error'));
    },
    /** [key, value, ts] newer than what is shown (an old answer must not overwrite a newer event). */
    values(entries) {
      const changed = {};
      for (const [key, value, ts] of entries) {
        if ((values[key]?.ts ?? -1) <= ts) {
          values[key] = { value, ts };
          changed[key] = value;
        }
      }
      controls?.update(changed);
    },
    twin(doc) {
      const reported = doc.reported || {};
      if ((reported.version ?? 0) >= reportedVersion) {
        reportedVersion = reported.version ?? 0;
        const updated = reported.updated || {};
        card.values(Object.entries(reported.state || {}).map(([k, v]) => [k, v, updated[k] ?? 0]));
      }
      const wanted = doc.desired || {};
      if ((wanted.version ?? 0) >= desiredVersion) {
        desiredVersion = wanted.version ?? 0;
        desired = wanted.state || {};
        controls?.desired(desired);
      }
    },
    telemetry(fresh, ts) {
      card.values(Object.entries(fresh).map(([k, v]) => [k, v, ts]));
    },
    presence(online, since) {
      el.dataset.online = String(!!online);
      el.classList.toggle('offline', !online);
      status.replaceChildren(onlineBadge(online));
      seen.textContent = online ? '' : `· last seen ${fmtAgo(since || Date.now())}`;
    },
    async load() {
      card.build();
      const [twin, latest] = await Promise.all([
        get(`devices/${enc(device.id)}/twin`),
        get(`devices/${enc(device.id)}/telemetry/latest`).catch(() => ({ values: {} })),
      ]);
      card.values(Object.entries(latest.values || {}).map(([k, p]) => [k, p.value, p.ts]));
      card.twin(twin);
      card.loaded = true;
      el.dataset.loaded = 'true';
    },
  };
  return card;
}

/**
 * Build and fetch cards as they come near the screen, a few requests at a time. The first `firstCount`
 * cards in page order start at once, without waiting for the first layout to say which are visible.
 */
function lazyLoader(cards, ordered, firstCount = 12) {
  const queue = [];
  const seen = new Set();
  const enqueue = (card) => {
    if (card && !seen.has(card)) {
      seen.add(card);
      queue.push(card);
    }
  };
  let active = 0;
  const pump = () => {
    while (active < PARALLEL && queue.length) {
      const card = queue.shift();
      active++;
      card
        .load()
        .catch(() => card.el.append(notice('error', 'The state of this device could not be loaded')))
        .finally(() => {
          active--;
          pump();
        });
    }
  };
  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        enqueue(cards.get(entry.target.dataset.deviceId));
      }
      pump();
    },
    { rootMargin: '400px' },
  );
  ordered.slice(0, firstCount).forEach(enqueue);
  pump();
  for (const card of ordered) if (!seen.has(card)) observer.observe(card.el);
  return {
    /** After missed events: load again what was loaded, and the rest as it comes into view. */
    reload() {
      for (const card of cards.values()) if (card.loaded && !queue.includes(card)) queue.push(card);
      pump();
    },
    stop() {
      observer.disconnect();
      queue.length = 0;
    },
  };
}

export async function render(root, homeId) {
  let home;
  try {
    home = await get(`homes/${enc(homeId)}`);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words || String(err)));
    return;
  }
  // People find their devices by name; the hub lists them by id.
  const devices = [...(home.devices || [])].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
  const models = new Map();
  await Promise.all(
    [...new Set(devices.map((d) => d.product_id))].map((pid) =>
      product(pid)
        .then((p) => models.set(pid, p))
        .catch(() => {}),
    ),
  );

  const cards = new Map();
  const byRoom = new Map((home.rooms || []).map((r) => [r.id, []]));
  const unassigned = [];
  for (const device of devices) {
    const card = deviceCard(device, models.get(device.product_id));
    cards.set(device.id, card);
    (byRoom.get(device.room_id) || unassigned).push(card);
  }
  const section = (title, list) =>
    h('section', { class: 'room' }, h('h2', {}, title, h('small', {}, `${list.length} device${list.length === 1 ? '' : 's'}`)), list.length ? h('div', { class: 'grid' }, list.map((c) => c.el)) : h('p', { class: 'empty' }, 'No devices in this room'));

  add(root, 
    header(home.name, h('a', { href: `#/homes/${enc(homeId)}/bind`, class: 'button' }, 'Add a device')),
    homeTabs(homeId, 'devices', home.role),
    devices.length ? null : notice('info', 'No devices yet. Add one with the code it shows or the sticker on it.'),
    (home.rooms || []).map((room) => section(room.name, byRoom.get(room.id))),
    unassigned.length ? section('Not in a room', unassigned) : null,
  );
  root.dataset.cards = String(cards.size); // the benchmark waits for this

  const ordered = [...(home.rooms || []).flatMap((room) => byRoom.get(room.id)), ...unassigned];
  const loader = lazyLoader(cards, ordered);
  const unsubscribe = live.subscribe(null, (event) => {
    if (event.type === 'reconnected' || event.type === 'lagged') return loader.reload();
    const card = cards.get(event.device_id);
    if (!card) return;
    const data = event.data || {};
    if (event.type === 'twin') card.twin(data);
    else if (event.type === 'telemetry') card.telemetry(data.values || {}, data.ts ?? event.ts);
    else if (event.type === 'presence') card.presence(data.online, event.ts);
  });
  return () => {
    unsubscribe();
    loader.stop();
  };
}
