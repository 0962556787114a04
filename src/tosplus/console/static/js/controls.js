// Controls generated from a product's thing model (W3C WoT TD-like): a boolean property is a switch, a
// bounded number a slider, a string enum a select, a read-only property a value; an action is a button,
// with a small form when it takes input. The same controls serve device cards, the device page and the
// scene editor: what a change does is the caller's `onSet` / `onAction`.

import { describeError, fmtValue, h } from './ui.js';

const same = (a, b) => a === b || JSON.stringify(a) === JSON.stringify(b);

function titleOf(key, schema) {
  return schema.title || key.replace(/_/g, ' ');
}

/** Step of a slider: 1 for integers, else about a hundredth of the range rounded to 1, 2 or 5 × 10^n. */
function stepOf(schema) {
  if (schema.multipleOf) return schema.multipleOf;
  if (schema.type === 'integer') return 1;
  const raw = (schema.maximum - schema.minimum) / 100;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
}

function coerce(schema, raw) {
  if (schema.type === 'integer') return Number.parseInt(raw, 10);
  if (schema.type === 'number') return Number.parseFloat(raw);
  return raw;
}

/** True when the property can be changed by a person (not read-only, a type we have a control for). */
export function writable(schema) {
  return !schema.readOnly && ['boolean', 'number', 'integer', 'string'].includes(schema.type);
}

/**
 * One property. `onSet(key, value)` (a promise) makes it a control; without it, a read-only value.
 * With `record`, a change is only noted by `onSet` (the scene editor), not sent and waited for.
 * Returns {el, set(value), pending(bool), get()}.
 */
export function propertyControl(key, schema, { onSet = null, value, record = false } = {}) {
  const title = titleOf(key, schema);
  const shown = h('span', { class: 'prop-value' }, fmtValue(value, schema));
  let current = value;
  let input = null;

  if (!onSet || !writable(schema)) {
    const el = h('div', { class: 'prop readonly', dataset: { prop: key } }, h('span', { class: 'prop-label' }, title), shown);
    return {
      el,
      set(v) {
        current = v;
        shown.textContent = fmtValue(v, schema);
        el.dataset.value = JSON.stringify(v ?? null);
      },
      pending() {},
      get: () => current,
    };
  }

  const el = h('div', { class: 'prop', dataset: { prop: key } });
  // `record`: the scene editor only notes the value, nothing waits for a device.
  const change = async (newValue, restore) => {
    if (!record) el.classList.add('pending');
    input.disabled = true;
    try {
      await onSet(key, newValue);
    } catch (err) {
      el.classList.remove('pending');
      restore();
      el.dispatchEvent(new CustomEvent('control-error', { bubbles: true, detail: describeError(err) }));
    } finally {
      input.disabled = false;
    }
  };

  if (schema.type === 'boolean') {
    input = h('input', { type: 'checkbox', role: 'switch', 'aria-label': title, checked: !!value });
    input.addEventListener('change', () => change(input.checked, () => (input.checked = !!current)));
    el.classList.add('prop-switch');
    el.append(h('label', { class: 'switch' }, input, h('span', { class: 'prop-label' }, title)), shown);
  } else if ((schema.type === 'number' || schema.type === 'integer') && schema.minimum !== undefined && schema.maximum !== undefined) {
    input = h('input', {
      type: 'range',
      min: schema.minimum,
      max: schema.maximum,
      step: stepOf(schema),
      value: value ?? schema.minimum,
      'aria-label': title,
    });
    // While dragging, show the value under the thumb; send only when let go.
    input.addEventListener('input', () => (shown.textContent = fmtValue(coerce(schema, input.value), schema)));
    input.addEventListener('change', () =>
      change(coerce(schema, input.value), () => {
        input.value = current ?? schema.minimum;
        shown.textContent = fmtValue(current, schema);
      }),
    );
    el.classList.add('prop-slider');
    el.append(h('span', { class: 'prop-label' }, title), shown, input);
  } else if (schema.type === 'string' && Array.isArray(schema.enum)) {
    input = h(
      'select',
      { 'aria-label': title },
      value === undefined || value === null ? h('option', { value: '' }, '—') : null,
      schema.enum.map((option) => h('option', { value: option, selected: option === value }, option)),
    );
    input.addEventListener('change', () => change(input.value, () => (input.value = current ?? '')));
    el.append(h('span', { class: 'prop-label' }, title), input);
  } else {
    const numeric = schema.type === 'number' || schema.type === 'integer';
    input = h('input', {
      type: numeric ? 'number' : 'text',
      value: value ?? '',
      'aria-label': title,
      min: schema.minimum,
      max: schema.maximum,
      step: numeric ? (schema.type === 'integer' ? 1 : 'any') : null,
      maxlength: schema.maxLength,
    });
    input.addEventListener('change', () => change(coerce(schema, input.value), () => (input.value = current ?? '')));
    el.append(h('span', { class: 'prop-label' }, title), input);
  }

  const showInput = (v) => {
    if (document.activeElement === input && input.type !== 'checkbox') return; // do not fight the person
    if (input.type === 'checkbox') input.checked = !!v;
    else if (v !== undefined && v !== null) input.value = v;
  };
  return {
    el,
    /** The value the device reported: shown as text, and in the control unless a change is pending. */
    set(v) {
      current = v;
      el.dataset.value = JSON.stringify(v ?? null);
      shown.textContent = fmtValue(v, schema);
      showInput(v);
    },
    /** The hub holds `desired`, which the device has not reported yet: the control shows where it is going. */
    pending(isPending, desired) {
      el.classList.toggle('pending', !!isPending);
      el.dataset.pending = isPending ? 'true' : 'false';
      el.title = isPending ? 'Waiting for the device to apply this' : '';
      showInput(isPending ? desired : current);
    },
    get: () => (input.type === 'checkbox' ? input.checked : input.value === '' ? undefined : coerce(schema, input.value)),
  };
}

/** Input fields of an action's `input` object schema; returns {el, values()}. */
export function inputFields(input) {
  const props = (input && input.properties) || {};
  const required = new Set((input && input.required) || []);
  const fields = Object.entries(props).map(([key, schema]) => {
    const title = `${titleOf(key, schema)}${schema.unit ? ` (${schema.unit})` : ''}`;
    let control;
    if (schema.type === 'boolean') control = h('input', { type: 'checkbox', name: key });
    else if (Array.isArray(schema.enum))
      control = h('select', { name: key }, schema.enum.map((o) => h('option', { value: o }, o)));
    else if (schema.type === 'number' || schema.type === 'integer')
      control = h('input', {
        type: 'number',
        name: key,
        min: schema.minimum,
        max: schema.maximum,
        step: schema.type === 'integer' ? 1 : 'any',
        required: required.has(key),
        value: schema.default ?? (required.has(key) ? schema.minimum ?? '' : ''),
      });
    else control = h('input', { type: 'text', name: key, required: required.has(key) });
    return { key, schema, control, el: h('label', { class: 'field' }, h('span', { class: 'field-label' }, title), control) };
  });
  return {
    el: fields.map((f) => f.el),
    values() {
      const out = {};
      for (const { key, schema, control } of fields) {
        if (control.type === 'checkbox') out[key] = control.checked;
        else if (control.value !== '') out[key] = coerce(schema, control.value);
      }
      return out;
    },
  };
}

/** Words for a command's outcome (GET/POST /devices/{id}/commands). */
export function commandWords(command, title) {
  const result =
    command.result && typeof command.result === 'object'
      ? Object.entries(command.result)
          .map(([k, v]) => `${k.replace(/_/g, ' ')} ${fmtValue(v)}`)
          .join(', ')
      : command.result !== null && command.result !== undefined
        ? fmtValue(command.result)
        : '';
  switch (command.state) {
    case 'SUCCEEDED':
      return { ok: true, words: `${title}: done${result ? ` (${result})` : ''}` };
    case 'FAILED':
      return { ok: false, words: `${title} failed: ${command.error || 'the device refused'}` };
    case 'TIMED_OUT':
      return { ok: false, words: `${title}: the device did not answer in time` };
    case 'EXPIRED':
      return { ok: false, words: `${title}: expired before the device came online` };
    case 'CANCELED':
      return { ok: false, words: `${title}: canceled` };
    case 'QUEUED':
      return { ok: true, words: `${title}: queued until the device is online` };
    default:
      return { ok: true, words: `${title}: sent, waiting for the device` };
  }
}

/** One action: a button, or a button that opens a small form when the action takes input. */
export function actionControl(name, schema, { onRun }) {
  const title = titleOf(name, schema);
  const status = h('span', { class: 'action-status', role: 'status' });
  const run = async (button, params) => {
    button.disabled = true;
    status.textContent = `${title}…`;
    status.className = 'action-status';
    try {
      const { ok, words } = await onRun(name, params);
      status.textContent = words;
      status.classList.add(ok ? 'ok' : 'bad');
    } catch (err) {
      status.textContent = describeError(err);
      status.classList.add('bad');
    } finally {
      button.disabled = false;
    }
  };
  const hasInput = schema.input && schema.input.properties && Object.keys(schema.input.properties).length;
  if (!hasInput) {
    const button = h('button', { type: 'button', class: 'secondary', title: schema.description || null }, title);
    button.addEventListener('click', () => run(button, undefined));
    return h('div', { class: 'action', dataset: { action: name } }, button, status);
  }
  const fields = inputFields(schema.input);
  const submit = h('button', { type: 'submit' }, 'Run');
  const form = h('form', { class: 'action-form' }, fields.el, submit);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run(submit, fields.values());
  });
  return h(
    'details',
    { class: 'action', dataset: { action: name } },
    h('summary', { title: schema.description || null }, title),
    form,
    status,
  );
}

/**
 * Every property (and, with `onAction`, every action) of a thing model.
 * Returns {el, update(state), desired(state)}: `update` shows reported/telemetry values, `desired` marks
 * properties whose desired value the device has not reported yet.
 */
export function controlsFor(model, { onSet = null, onAction = null, state = {}, only = null } = {}) {
  const props = (model && model.properties) || {};
  const controls = new Map();
  const writableEls = [];
  const readEls = [];
  for (const [key, schema] of Object.entries(props)) {
    if (only && !only.includes(key)) continue;
    const control = propertyControl(key, schema, { onSet, value: state[key] });
    controls.set(key, control);
    (onSet && writable(schema) ? writableEls : readEls).push(control.el);
  }
  const actions = onAction
    ? Object.entries((model && model.actions) || {}).map(([name, schema]) => actionControl(name, schema, { onRun: onAction }))
    : [];
  const el = h(
    'div',
    { class: 'controls' },
    writableEls.length ? h('div', { class: 'controls-set' }, writableEls) : null,
    readEls.length ? h('div', { class: 'controls-read' }, readEls) : null,
    actions.length ? h('div', { class: 'controls-actions' }, actions) : null,
  );
  let reported = { ...state };
  let wanted = {};
  const mark = () => {
    for (const [key, control] of controls) {
      const isPending = key in wanted && wanted[key] !== null && !same(wanted[key], reported[key]);
      control.pending(isPending, wanted[key]);
    }
  };
  return {
    el,
    update(values) {
      reported = { ...reported, ...values };
      for (const [key, value] of Object.entries(values)) controls.get(key)?.set(value);
      mark();
    },
    desired(values) {
      wanted = { ...(values || {}) };
      mark();
    },
  };
}
