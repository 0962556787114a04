// Scenes of a home: list, run (with each device's result), and the editor, which uses the same generated
// controls as the device cards but only records values instead of sending them.

import { del, enc, get, patch, post, product } from '../api.js';
import { go } from '../app.js';
import { inputFields, propertyControl, writable } from '../controls.js';
import { add, ask, busy, field, fmtTime, fmtValue, h, header, homeTabs, notice, showError } from '../ui.js';

const STATUS_WORDS = {
  applied: 'Applied',
  offline: 'Offline: it will be applied when the device is back',
  refused: 'Refused',
  timeout: 'No answer within 5 s',
};

const OUTCOME = {
  applied: ['ok', 'Every device applied the scene.'],
  partial: ['warn', 'Some devices did not apply the scene.'],
  failed: ['error', 'No device applied the scene.'],
};

async function loadHome(root, homeId) {
  try {
    return await get(`homes/${enc(homeId)}`);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words));
    return null;
  }
}

/** A run's outcome and every device's result, in words. */
export function runResults(run, deviceName) {
  const [kind, words] = OUTCOME[run.outcome] || ['info', `Outcome: ${run.outcome}`];
  return h(
    'div',
    { class: 'run', dataset: { outcome: run.outcome } },
    notice(kind, words),
    h(
      'ul',
      { class: 'results' },
      (run.results || []).map((r) =>
        h(
          'li',
          { dataset: { deviceId: r.device_id, status: r.status } },
          h('strong', {}, deviceName(r.device_id)),
          ': ',
          h('span', { class: `status-${r.status}` }, STATUS_WORDS[r.status] || r.status),
          r.detail ? ` (${r.detail})` : '',
        ),
      ),
    ),
    h('p', { class: 'card-sub' }, `Ran ${fmtTime(run.started_at)}${run.finished_at ? `, took ${((run.finished_at - run.started_at) / 1000).toFixed(1)} s` : ''}`),
  );
}

function describeAction(action, deviceName) {
  if (action.command) return `${deviceName(action.device_id)}: ${action.command.name}`;
  const values = Object.entries(action.desired || {})
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${fmtValue(v)}`)
    .join(', ');
  return `${deviceName(action.device_id)}: ${values}`;
}

export async function render(root, homeId) {
  const home = await loadHome(root, homeId);
  if (!home) return;
  const names = new Map((home.devices || []).map((d) => [d.id, d.name || d.id]));
  const deviceName = (id) => names.get(id) || 'a device no longer in this home';
  const slot = h('div');
  const list = h('div', { class: 'stack' });
  add(root, 
    header(home.name, h('a', { href: `#/homes/${enc(homeId)}/scenes/new`, class: 'button' }, 'New scene')),
    homeTabs(homeId, 'scenes', home.role),
    slot,
    list,
  );
  let scenes;
  try {
    ({ items: scenes } = await get(`homes/${enc(homeId)}/scenes`));
  } catch (err) {
    showError(slot, err);
    return;
  }
  if (!scenes.length) list.append(h('p', { class: 'empty' }, 'No scenes yet. A scene sets several devices at once, e.g. “Good night”.'));
  for (const scene of scenes) {
    const result = h('div', { class: 'scene-result' });
    const run = h('button', { type: 'button' }, 'Run');
    run.addEventListener('click', async () => {
      result.replaceChildren(notice('info', 'Running…'));
      try {
        const outcome = await busy(run, () => post(`scenes/${enc(scene.id)}/run`));
        result.replaceChildren(runResults(outcome, deviceName));
      } catch (err) {
        showError(result, err);
      }
    });
    const remove = h('button', { type: 'button', class: 'secondary' }, 'Delete');
    remove.addEventListener('click', async () => {
      if (!(await ask(`Delete the scene ${scene.name}?`, 'Delete', true))) return;
      try {
        await busy(remove, () => del(`scenes/${enc(scene.id)}`));
        go(`/homes/${homeId}/scenes`);
      } catch (err) {
        showError(result, err);
      }
    });
    list.append(
      h(
        'article',
        { class: 'panel', dataset: { sceneId: scene.id } },
        h('div', { class: 'card-head' }, h('h3', {}, scene.name), h('div', { class: 'row' }, run, h('a', { href: `#/homes/${enc(homeId)}/scenes/${enc(scene.id)}`, class: 'button secondary' }, 'Edit'), remove)),
        h('ul', { class: 'card-sub' }, (scene.actions || []).map((a) => h('li', {}, describeAction(a, deviceName)))),
        result,
      ),
    );
    // The last run, so the page says how it went last time.
    get(`scenes/${enc(scene.id)}/runs`)
      .then(({ items }) => {
        if (items.length && !result.childNodes.length) result.append(h('details', {}, h('summary', {}, `Last run: ${items[0].outcome}`), runResults(items[0], deviceName)));
      })
      .catch(() => {});
  }
}

/** The editor: #/homes/<id>/scenes/new or #/homes/<id>/scenes/<scene id>. */
export async function edit(root, homeId, sceneId) {
  const home = await loadHome(root, homeId);
  if (!home) return;
  const slot = h('div');
  let scene = { name: '', actions: [] };
  if (sceneId) {
    try {
      const { items } = await get(`homes/${enc(homeId)}/scenes`);
      scene = items.find((s) => s.id === sceneId);
      if (!scene) throw { words: 'This scene does not exist any more.' };
    } catch (err) {
      add(root, notice('error', err.words));
      return;
    }
  }
  const devices = [...(home.devices || [])].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
  const models = new Map();
  await Promise.all(
    [...new Set(devices.map((d) => d.product_id))].map((pid) =>
      product(pid)
        .then((p) => models.set(pid, p.thing_model))
        .catch(() => {}),
    ),
  );

  const name = h('input', { type: 'text', required: true, maxlength: 200, value: scene.name, 'aria-label': 'Scene name' });
  const editors = devices.map((d) => deviceEditor(d, models.get(d.product_id), scene.actions.filter((a) => a.device_id === d.id)));
  const save = h('button', { type: 'submit' }, 'Save scene');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Scene' },
    field('Name', name),
    h('h2', {}, 'Devices'),
    devices.length ? editors.map((e) => e.el) : h('p', { class: 'empty' }, 'This home has no devices yet.'),
    slot,
    h('div', { class: 'row' }, save, h('a', { href: `#/homes/${enc(homeId)}/scenes` }, 'Cancel')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(slot, null);
    const actions = editors.flatMap((ed) => ed.actions());
    if (!actions.length) return showError(slot, { words: 'Choose at least one device and what it should do' });
    const body = { name: name.value.trim(), actions };
    try {
      await busy(save, () => (sceneId ? patch(`scenes/${enc(sceneId)}`, body) : post(`homes/${enc(homeId)}/scenes`, body)));
      go(`/homes/${homeId}/scenes`);
    } catch (err) {
      showError(slot, err);
    }
  });
  add(root, header(sceneId ? `Edit ${scene.name}` : 'New scene'), homeTabs(homeId, 'scenes', home.role), h('section', { class: 'panel' }, form));
}

/** One device in the editor: pick it, then tick the properties to set (and/or one command). */
function deviceEditor(device, model, existing) {
  const desired = Object.assign({}, ...existing.filter((a) => a.desired).map((a) => a.desired));
  const command = existing.find((a) => a.command)?.command || null;
  const pick = h('input', { type: 'checkbox', checked: existing.length > 0, 'aria-label': `Include ${device.name || device.id}` });
  const body = h('div', { class: 'stack', hidden: !existing.length });
  pick.addEventListener('change', () => {
    body.hidden = !pick.checked;
    fieldset.classList.toggle('off', !pick.checked);
  });
  const rows = [];
  for (const [key, schema] of Object.entries(model?.properties || {})) {
    if (!writable(schema)) continue;
    const include = h('input', { type: 'checkbox', checked: key in desired, 'aria-label': `Set ${schema.title || key}` });
    let value = key in desired ? desired[key] : schema.type === 'boolean' ? false : schema.minimum ?? (schema.enum ? schema.enum[0] : '');
    // The control records the value; ticking "include" is what puts it in the scene.
    const control = propertyControl(key, schema, {
      value,
      record: true,
      onSet: async (_k, v) => {
        value = v;
        include.checked = true;
        control.set(v);
      },
    });
    control.set(value);
    rows.push({ key, include, get: () => value });
    body.append(h('div', { class: 'row scene-prop', dataset: { prop: key } }, include, h('div', { class: 'grow' }, control.el)));
  }
  const actionNames = Object.keys(model?.actions || {});
  let commandPart = () => null;
  if (actionNames.length) {
    const select = h('select', { 'aria-label': 'Command' }, h('option', { value: '' }, 'No command'), actionNames.map((n) => h('option', { value: n, selected: command?.name === n }, model.actions[n].title || n)));
    const paramsBox = h('div');
    let fields = null;
    const showParams = () => {
      fields = select.value ? inputFields(model.actions[select.value].input) : null;
      paramsBox.replaceChildren(...(fields ? fields.el : []));
    };
    select.addEventListener('change', showParams);
    showParams();
    commandPart = () => (select.value ? { name: select.value, params: fields && Object.keys(fields.values()).length ? fields.values() : null } : null);
    body.append(field('Command', select), paramsBox);
  }
  const fieldset = h(
    'fieldset',
    { class: `panel scene-device${existing.length ? '' : ' off'}`, dataset: { deviceId: device.id } },
    h('legend', {}, h('label', { class: 'pick' }, pick, h('span', {}, device.name || device.id))),
    body,
  );
  return {
    el: fieldset,
    actions() {
      if (!pick.checked) return [];
      const out = [];
      const values = Object.fromEntries(rows.filter((r) => r.include.checked).map((r) => [r.key, r.get()]));
      if (Object.keys(values).length) out.push({ device_id: device.id, desired: values });
      const cmd = commandPart();
      if (cmd) out.push({ device_id: device.id, command: cmd.params ? cmd : { name: cmd.name } });
      return out;
    },
  };
}
