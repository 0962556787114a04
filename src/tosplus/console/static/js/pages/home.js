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

/** A device card; returns {el, twin(doc), telemetry(values, ts), presence(online, since)}. */
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
  const valueTs = {}; // key → ts of the value shown, so an old answer never overwrites a newer event
  let controls = null;
  if (model) {
    controls = controlsFor(model.thing_model, {
      onSet: async (key, value) => {
        const twin = await patch(`devices/${enc(device.id)}/twin/desired`, { [key]: value });
        card.twin(twin);
      },
    });
    el.append(controls.el);
    const actions = Object.entries(model.thing_model.actions || {});
    if (actions.length) {
      const onRun = async (name, params) => {
        const command = await post(`devices/${enc(device.id)}/commands`, { name, params, timeout_s: 10 });
        return commandWords(command, model.thing_model.actions[name].title || name);
      };
      el.append(
        h('details', { class: 'card-actions' }, h('summary', {}, 'Actions'), h('div', { class: 'controls-actions' }, actions.map(([n, s]) => actionControl(n, s, { onRun })))),
      );
    }
    el.addEventListener('control-error', (e) => toast(e.detail, 'error'));
  } else {
    el.append(h('p', { class: 'card-sub' }, 'This product’s controls could not be loaded.'));
  }

  const card = {
    el,
    loaded: false,
    twin(doc) {
      if (!controls) return;
      const reported = doc.reported || {};
      const desired = doc.desired || {};
      if ((reported.version ?? 0) >= reportedVersion) {
        reportedVersion = reported.version ?? 0;
        controls.update(reported.state || {});
      }
      if ((desired.version ?? 0) >= desiredVersion) {
        desiredVersion = desired.version ?? 0;
        controls.desired(desired.state || {});
      }
    },
    telemetry(values, ts) {
      if (!controls) return;
      const fresh = {};
      for (const [key, value] of Object.entries(values)) {
        if ((valueTs[key] ?? -1) <= ts) {
          valueTs[key] = ts;
          fresh[key] = value;
        }
      }
      controls.update(fresh);
    },
    presence(online, since) {
      el.dataset.online = String(!!online);
      el.classList.toggle('offline', !online);
      status.replaceChildren(onlineBadge(online));
      seen.textContent = online ? '' : `· last seen ${fmtAgo(since || Date.now())}`;
    },
    async load() {
      const [twin, latest] = await Promise.all([
        get(`devices/${enc(device.id)}/twin`),
        get(`devices/${enc(device.id)}/telemetry/latest`).catch(() => ({ values: {} })),
      ]);
      for (const [key, point] of Object.entries(latest.values || {})) card.telemetry({ [key]: point.value }, point.ts);
      card.twin(twin);
      card.loaded = true;
      el.dataset.loaded = 'true';
    },
  };
  return card;
}

/** Fetch card state as cards come into view, a few at a time. */
function lazyLoader(cards) {
  const queue = [];
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
        queue.push(cards.get(entry.target.dataset.deviceId));
      }
      pump();
    },
    { rootMargin: '400px' },
  );
  for (const card of cards.values()) observer.observe(card.el);
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

  const loader = lazyLoader(cards);
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
