// Adding a device to a home with its binding code: typed (XXXX-XXXX, as the device shows it or on its
// sticker) or scanned from its QR code (tosplus:bind:<code>) where the browser has BarcodeDetector.

import { enc, get, post } from '../api.js';
import { go } from '../app.js';
import { add, busy, field, h, header, homeTabs, notice, showError } from '../ui.js';

const CODE = /^[0-9A-HJKMNP-TV-Z]{8}$/; // Crockford base32 without I, L, O, U

/** People type codes in any case, with or without the dash. */
export function normaliseCode(text) {
  return text.toUpperCase().replace(/^TOSPLUS:BIND:/, '').replace(/[\s-]/g, '');
}

export async function render(root, homeId) {
  let home;
  try {
    home = await get(`homes/${enc(homeId)}`);
  } catch (err) {
    add(root, notice('error', err.status === 404 ? 'This home does not exist, or you are not a member of it.' : err.words));
    return;
  }
  const slot = h('div');
  const code = h('input', {
    type: 'text',
    name: 'code',
    required: true,
    autocomplete: 'off',
    autocapitalize: 'characters',
    spellcheck: 'false',
    placeholder: 'XXXX-XXXX',
    maxlength: 20,
    class: 'mono',
  });
  const room = h(
    'select',
    { name: 'room_id' },
    h('option', { value: '' }, 'No room'),
    (home.rooms || []).map((r) => h('option', { value: r.id }, r.name)),
  );
  const name = h('input', { type: 'text', name: 'name', maxlength: 200, placeholder: 'e.g. Desk lamp' });
  const submit = h('button', { type: 'submit' }, 'Add device');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Add a device' },
    field('Binding code', code, 'Shown on the device’s screen or printed on its sticker'),
    field('Room', room),
    field('Name', name, 'Optional'),
    slot,
    h('div', { class: 'row' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(slot, null);
    const value = normaliseCode(code.value);
    if (!CODE.test(value)) {
      showError(slot, { words: 'A binding code has 8 letters and digits, like 7K3M-9QXD (no I, L, O or U)' });
      return;
    }
    try {
      const device = await busy(submit, () =>
        post(`homes/${enc(homeId)}/devices/bind`, { code: value, room_id: room.value || null, name: name.value.trim() || null }),
      );
      go(`/devices/${enc(device.id)}`);
    } catch (err) {
      showError(slot, err);
    }
  });

  const scanBox = h('div');
  let stopScan = null;
  if ('BarcodeDetector' in window && navigator.mediaDevices?.getUserMedia) {
    const scan = h('button', { type: 'button', class: 'secondary' }, 'Scan the QR code');
    scan.addEventListener('click', async () => {
      if (stopScan) return stopScan();
      stopScan = await startScan(scanBox, (text) => {
        code.value = normaliseCode(text);
        stopScan?.();
        form.requestSubmit();
      }).catch((err) => {
        showError(slot, { words: err.name === 'NotAllowedError' ? 'The camera may not be used; type the code instead' : 'The camera could not be started; type the code instead' });
        return null;
      });
      scan.textContent = stopScan ? 'Stop scanning' : 'Scan the QR code';
      if (stopScan) {
        const stop = stopScan;
        stopScan = () => {
          stop();
          stopScan = null;
          scan.textContent = 'Scan the QR code';
        };
      }
    });
    submit.after(scan);
  }

  add(root, header(home.name), homeTabs(homeId, 'bind', home.role), h('section', { class: 'panel' }, h('h2', {}, 'Add a device'), form, scanBox));
  code.focus();
  return () => stopScan?.();
}

/** Show the camera and look for a tosplus:bind QR code a few times a second; returns the stop function. */
async function startScan(box, found) {
  const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
  const video = h('video', { class: 'scan', playsinline: true, muted: true });
  video.srcObject = stream;
  box.replaceChildren(video);
  await video.play();
  let timer = null;
  const stop = () => {
    clearTimeout(timer);
    stream.getTracks().forEach((t) => t.stop());
    box.replaceChildren();
  };
  const tick = async () => {
    try {
      for (const code of await detector.detect(video)) {
        if (/^tosplus:bind:/i.test(code.rawValue)) return found(code.rawValue);
      }
    } catch {
      // a frame that cannot be read: try the next one
    }
    timer = setTimeout(tick, 250);
  };
  tick();
  return stop;
}
