// Small DOM and formatting helpers shared by every page.
// Text from the hub always goes in through textContent (never innerHTML), so a device or home name
// cannot inject markup.

/** h('div', {class: 'x', onclick: fn}, 'text', child) builds an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = value; // properties, not attributes: they must follow later changes too
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children to `el`, flattening arrays and skipping null/false (Element.append would print them). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Words for any error: the hub's problem detail, or a plain sentence; never a stack trace. */
export function describeError(err) {
  if (err && typeof err.words === 'string') return err.words; // the hub's words, or ours (api.js)
  console.error(err); // a fault of the console itself: for developers, not shown to people
  return 'Something went wrong in the console; reloading the page may help';
}

/** A message box (role=alert for errors so screen readers announce it). */
export function notice(kind, text) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Put an error (or nothing) in a slot element. */
export function showError(slot, err) {
  slot.replaceChildren(err ? notice('error', describeError(err)) : '');
}

/** A short message in the corner that goes away by itself. */
export function toast(text, kind = 'info') {
  const area = document.getElementById('toasts');
  if (!area) return;
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  area.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** A modal question; resolves true when confirmed. Uses <dialog> so focus and Escape behave natively. */
export function ask(question, okLabel = 'OK', danger = false) {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { class: 'ask' },
      h('p', {}, question),
      h(
        'form',
        { method: 'dialog', class: 'row' },
        h('button', { value: 'cancel', class: 'secondary' }, 'Cancel'),
        h('button', { value: 'ok', class: danger ? 'danger' : '' }, okLabel),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Disable a button while an async action runs, so a double click does not send twice. */
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

/** A form field: label + control (+ optional hint). */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('small', {}, hint) : null);
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

export function fmtTime(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function fmtAgo(ms) {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtTime(ms);
}

/** A property value for people: units, On/Off, rounded numbers. */
export function fmtValue(value, schema = {}) {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'boolean') return value ? 'On' : 'Off';
  if (typeof value === 'number') {
    const text = Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
    return schema.unit ? `${text} ${schema.unit}` : text;
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind}` }, text);
}

export function onlineBadge(online) {
  return badge(online ? 'Online' : 'Offline', online ? 'ok' : 'muted');
}

/** Page heading with an optional line of links/buttons. */
export function header(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), actions.length ? h('div', { class: 'row' }, actions) : null);
}

/** Tabs of a home's pages. */
export function homeTabs(homeId, active, role) {
  const tabs = [
    ['devices', 'Devices', `#/homes/${homeId}`],
    ['scenes', 'Scenes', `#/homes/${homeId}/scenes`],
    ['talk', 'Talk', `#/homes/${homeId}/talk`],
    ['bind', 'Add device', `#/homes/${homeId}/bind`],
    ['rooms', 'Rooms', `#/homes/${homeId}/rooms`],
    ['members', 'Members', `#/homes/${homeId}/members`],
  ];
  if (role === 'owner' || role === 'operator') tabs.push(['audit', 'Audit log', `#/homes/${homeId}/audit`]);
  return h(
    'nav',
    { class: 'tabs', 'aria-label': 'Home' },
    tabs.map(([key, label, href]) =>
      h('a', { href, class: key === active ? 'active' : '', 'aria-current': key === active ? 'page' : null }, label),
    ),
  );
}

/** A table from rows; `columns` = [[heading, row => cell]]. Wrapped so it scrolls inside itself on phones. */
export function table(columns, rows, empty = 'Nothing yet') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', {}, title)))),
      h(
        'tbody',
        {},
        rows.map((row) => h('tr', {}, columns.map(([title, cell]) => h('td', { 'data-label': title }, cell(row))))),
      ),
    ),
  );
}

/** Copy text and say so (clipboard access needs a secure context; fall back to selecting it). */
export async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    toast('Copied');
  } catch {
    if (input) input.select();
    toast('Select the text and copy it');
  }
}

/** Run async `tasks` (functions) with at most `limit` at a time. */
export async function pool(tasks, limit) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      try {
        await task();
      } catch {
        // each task shows its own failure; one failing must not stop the others
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
