// The person's wallet: balance, top-ups, the history with a chart of the balance, the devices that pay from it
// (limits, suspend and resume, remove, the pay code a screen device would show) and the payment requests
// waiting for the person's confirmation. Also the "Payment" panel of the device page.
//
// Money is integers of fen everywhere; yuan are only ever text (shown, or typed and parsed back to fen).

import { api, enc, get, patch, post, usingAdminToken } from '../api.js';
import { timeChart } from '../chart.js';
import { add, ask, badge, busy, field, fmtTime, h, header, notice, showError, table, toast } from '../ui.js';

const PAGE = 50;
const CODE_POLL_MS = 3000; // how often a shown pay code is checked (a used one is replaced at once)

/** Fen (an integer) as yuan text: 123456 → "¥1,234.56". */
export function yuan(fen) {
  const n = Number(fen) || 0;
  const abs = Math.abs(n);
  const whole = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${n < 0 ? '-' : ''}¥${whole}.${String(abs % 100).padStart(2, '0')}`;
}

/** Yuan as typed ("12", "12.5", "¥1,234.56") → fen as an integer, without floating point; null if it is not
 * an amount. */
export function parseFen(text) {
  const clean = String(text ?? '').trim().replace(/^¥\s*/, '').replace(/,(?=\d{3}(\D|$))/g, '');
  const m = clean.match(/^(\d{1,13})(?:\.(\d{1,2}))?$/);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
}

/** An Idempotency-Key (crypto.getRandomValues works without HTTPS, unlike randomUUID). */
export function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A yuan field that must hold an amount: its value in fen, or an error in words. */
function fenOf(input, what) {
  const fen = parseFen(input.value);
  if (fen === null || fen <= 0) throw { words: `${what}: enter an amount in yuan, like 12.50` };
  return fen;
}

/** A text field for yuan (labelled by the field() around it). */
function yuanInput(name, value) {
  return h('input', { type: 'text', inputmode: 'decimal', name, required: true, value: value === undefined ? '' : (value / 100).toFixed(2), autocomplete: 'off' });
}

const KIND_WORDS = { top_up: 'Top-up', payment: 'Payment', refund: 'Refund', reversal: 'Payment reversed', other: 'Other' };
const INTENT_WAITING = 'requires_confirmation';

export async function render(root) {
  if (usingAdminToken()) {
    add(root, header('Wallet'), notice('info', 'Wallets belong to people: sign in with an account to see yours.'));
    return;
  }
  const slot = h('div');
  const stats = h('div', { class: 'stats balances', id: 'wallet-balance' });
  const intentsBox = h('div');
  const intentsPanel = h('section', { class: 'panel', hidden: true }, h('h2', {}, 'Waiting for your confirmation'), intentsBox);
  const devicesBox = h('div', { class: 'grid', id: 'payment-devices' });
  const chartBox = h('div', { class: 'chart' });
  const historyBox = h('div', { id: 'wallet-history' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older');
  const refreshButton = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const timers = new Set();
  let chart = null;
  let history = [];
  let opening = 0;
  let nextBefore = null;
  let devices = [];
  let wallet = null;

  add(
    root,
    header('Wallet', refreshButton),
    slot,
    stats,
    intentsPanel,
    topUpForm(() => loadAll()),
    h('section', { class: 'panel' }, h('h2', {}, 'Devices that pay'), h('p', { class: 'sub' }, 'Enable payment on a device from its page. Limits are per device; suspend a device that is lost.'), devicesBox),
    h('section', { class: 'panel' }, h('h2', {}, 'History'), chartBox, historyBox, h('div', {}, more)),
  );

  function showBalance() {
    const stat = (label, fen, id) => h('div', { class: 'stat', dataset: { stat: id, fen: String(fen) } }, h('b', {}, yuan(fen)), h('span', {}, label));
    stats.replaceChildren(stat('Balance', wallet.balance, 'balance'), stat('Available', wallet.available, 'available'), stat('Reserved', wallet.pending, 'pending'));
  }

  async function loadHistory(older = false) {
    const page = await get('wallet/history', { limit: PAGE, before: older ? nextBefore : undefined });
    history = older ? [...history, ...page.items] : page.items;
    opening = page.opening_balance;
    nextBefore = page.next_before;
    more.hidden = nextBefore === null;
    historyBox.replaceChildren(historyTable(history));
    await drawChart();
  }

  async function drawChart() {
    const posted = history.filter((i) => i.state === 'posted').reverse(); // oldest first
    if (chart) chart.destroy();
    chart = null;
    chartBox.replaceChildren();
    if (!posted.length) return;
    const xs = [posted[0].created_at / 1000 - 1, ...posted.map((i) => i.created_at / 1000)];
    const ys = [opening, ...posted.map((i) => i.balance_after)].map((fen) => fen / 100); // for drawing only
    chart = await timeChart(chartBox, { label: 'Balance', unit: '¥', height: 200, xs, ys });
  }

  async function loadDevices() {
    devices = (await get('wallet/payment-devices')).items;
    devicesBox.replaceChildren(...devices.map((d) => deviceCard(d, { reload: loadAll, fail, showCode: (d2) => showPayCode(d2, loadAll, timers) })));
    if (!devices.length) devicesBox.replaceChildren(h('p', { class: 'empty' }, 'No device pays from this wallet yet.'));
  }

  async function loadIntents() {
    const { items } = await get('payment-intents', { status: INTENT_WAITING, limit: 50 });
    intentsPanel.hidden = !items.length;
    intentsBox.replaceChildren(
      table(
        [
          ['Asked', (i) => fmtTime(i.created_at)],
          ['From', (i) => i.merchant?.name || i.merchant?.id || ''],
          ['For', (i) => i.description || ''],
          ['Device', (i) => devices.find((d) => d.device_id === i.device_id)?.device?.name || i.device_id],
          ['Amount', (i) => h('span', { class: 'money' }, yuan(i.amount))],
          ['', (i) => intentButtons(i)],
        ],
        items,
      ),
    );
  }

  function intentButtons(intent) {
    const confirm = h('button', { type: 'button' }, 'Confirm');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const error = h('div');
    confirm.addEventListener('click', async () => {
      showError(error, null);
      try {
        await busy(confirm, () => api('POST', `payment-intents/${enc(intent.id)}/confirm`, { headers: { 'Idempotency-Key': newKey() } }));
        toast(`Paid ${yuan(intent.amount)} to ${intent.merchant?.name || 'the merchant'}`);
        loadAll();
      } catch (err) {
        showError(error, err);
      }
    });
    cancel.addEventListener('click', async () => {
      if (!(await ask(`Refuse to pay ${yuan(intent.amount)} to ${intent.merchant?.name || 'the merchant'}?`, 'Refuse', true))) return;
      try {
        await busy(cancel, () => api('POST', `payment-intents/${enc(intent.id)}/cancel`, { headers: { 'Idempotency-Key': newKey() } }));
        loadAll();
      } catch (err) {
        showError(error, err);
      }
    });
    return h('div', { class: 'row', dataset: { intentId: intent.id } }, confirm, cancel, error);
  }

  function fail(err) {
    showError(slot, err);
  }

  async function loadAll() {
    try {
      wallet = await get('wallet');
      showBalance();
      await loadDevices(); // before the intents, which name their devices
      await Promise.all([loadIntents(), loadHistory()]);
      showError(slot, null);
    } catch (err) {
      fail(err);
    }
  }

  refreshButton.addEventListener('click', () => busy(refreshButton, loadAll));
  more.addEventListener('click', () => busy(more, () => loadHistory(true).catch(fail)));
  await loadAll();
  return () => {
    timers.forEach((stop) => stop());
    if (chart) chart.destroy();
  };
}

function historyTable(items) {
  return table(
    [
      ['When', (i) => fmtTime(i.created_at)],
      [
        'What',
        (i) =>
          h(
            'span',
            {},
            KIND_WORDS[i.kind] || i.kind,
            i.merchant ? ` · ${i.merchant.name}` : '',
            i.description ? ` · ${i.description}` : '',
            i.state === 'reserved' ? [' ', badge('Reserved', 'warn')] : null,
          ),
      ],
      ['Device', (i) => i.device?.name || (i.device ? i.device.id : '')],
      ['Amount', (i) => h('span', { class: `money money-${i.direction}`, dataset: { fen: String(i.direction === 'in' ? i.amount : -i.amount) } }, `${i.direction === 'in' ? '+' : '-'}${yuan(i.amount)}`)],
      ['Balance after', (i) => (i.balance_after === null ? '—' : h('span', { class: 'money' }, yuan(i.balance_after)))],
    ],
    items,
    'No money has moved yet. Top up to start.',
  );
}

function topUpForm(done) {
  const slot = h('div');
  const card = h('input', { type: 'text', name: 'card', inputmode: 'numeric', autocomplete: 'cc-number', required: true, maxlength: 32, placeholder: '4242 4242 4242 4242' });
  const amount = yuanInput('amount');
  amount.placeholder = '100.00';
  const submit = h('button', { type: 'submit' }, 'Top up');
  const form = h('form', { class: 'stack', 'aria-label': 'Top up' }, h('div', { class: 'two-fields' }, field('Card number', card), field('Amount (¥)', amount)), slot, h('div', {}, submit));
  // One key per request as typed: a retry after "the hub cannot be reached" cannot charge twice, and a changed
  // amount or card is a new request.
  let key = newKey();
  form.addEventListener('input', () => {
    key = newKey();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(slot, null);
    try {
      const fen = fenOf(amount, 'Amount');
      const wallet = await busy(submit, () => api('POST', 'wallet/top-ups', { body: { amount: fen, card_number: card.value.replace(/[\s-]/g, '') }, headers: { 'Idempotency-Key': key } }));
      key = newKey();
      amount.value = '';
      toast(`Topped up ${yuan(fen)}: the balance is ${yuan(wallet.balance)}`);
      done();
    } catch (err) {
      if (err.status) key = newKey(); // the hub judged it; the next attempt is a new request
      showError(slot, err);
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Top up'), form, h('p', { class: 'sub' }, 'A simulated card network: any card number with a valid check digit is accepted.'));
}

function deviceCard(token, { reload, fail, showCode }) {
  const device = token.device || {};
  const name = device.name || token.device_id;
  const active = token.status === 'active';
  const limitsSlot = h('div');
  const limitsForm = h(
    'form',
    { class: 'stack', 'aria-label': `Limits of ${name}`, hidden: true },
    h(
      'div',
      { class: 'two-fields' },
      field('Per payment (¥)', yuanInput('per_payment_limit', token.per_payment_limit)),
      field('Per day (¥)', yuanInput('daily_limit', token.daily_limit)),
      field('Confirm on the device above (¥)', yuanInput('confirm_above', token.confirm_above)),
    ),
    limitsSlot,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save limits')),
  );
  limitsForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(limitsSlot, null);
    try {
      const body = {
        per_payment_limit: fenOf(limitsForm.elements.per_payment_limit, 'Per payment'),
        daily_limit: fenOf(limitsForm.elements.daily_limit, 'Per day'),
        confirm_above: parseFen(limitsForm.elements.confirm_above.value),
      };
      if (body.confirm_above === null) throw { words: 'Confirm above: enter an amount in yuan, like 200 (0: confirm every payment)' };
      if (body.per_payment_limit > body.daily_limit) throw { words: 'The limit per payment cannot be above the limit per day' };
      await busy(limitsForm.querySelector('button'), () => patch(`devices/${enc(token.device_id)}/payment-token`, body));
      toast(`Limits of ${name} saved`);
      reload();
    } catch (err) {
      showError(limitsSlot, err);
    }
  });

  const codeButton = h('button', { type: 'button', disabled: !active }, 'Show pay code');
  codeButton.addEventListener('click', () => showCode(token));
  const toggle = h('button', { type: 'button', class: active ? 'danger' : '' }, active ? 'Suspend' : 'Resume');
  toggle.addEventListener('click', async () => {
    if (active && !(await ask(`Suspend payment on ${name}? It cannot pay until you resume it (do this at once if it is lost).`, 'Suspend', true))) return;
    try {
      await busy(toggle, () => patch(`devices/${enc(token.device_id)}/payment-token`, { status: active ? 'suspended' : 'active' }));
      toast(active ? `Payment on ${name} suspended` : `Payment on ${name} resumed`);
      reload();
    } catch (err) {
      fail(err);
    }
  });
  const limitsButton = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false' }, 'Change limits');
  limitsButton.addEventListener('click', () => {
    limitsForm.hidden = !limitsForm.hidden;
    limitsButton.setAttribute('aria-expanded', String(!limitsForm.hidden));
  });
  const remove = h('button', { type: 'button', class: 'secondary' }, 'Remove');
  remove.addEventListener('click', async () => {
    if (!(await ask(`Stop ${name} paying from your wallet? Enabling payment again gives it a new token.`, 'Remove', true))) return;
    try {
      await busy(remove, () => api('DELETE', `devices/${enc(token.device_id)}/payment-token`));
      toast(`${name} no longer pays from your wallet`);
      reload();
    } catch (err) {
      fail(err);
    }
  });
  const spentShare = token.daily_limit ? Math.min(100, Math.round((token.spent_today * 100) / token.daily_limit)) : 0;
  const meter = h('div', { class: 'meter', role: 'img', 'aria-label': `${spentShare} % of today's limit spent` }, h('span'));
  meter.firstChild.style.width = `${spentShare}%`;
  return h(
    'article',
    { class: 'card', dataset: { deviceId: token.device_id, status: token.status } },
    h('div', { class: 'card-head' }, h('a', { href: `#/devices/${enc(token.device_id)}` }, h('h3', {}, name)), active ? badge('Active', 'ok') : badge('Suspended', 'bad')),
    h('div', { class: 'card-sub' }, [device.product_name || device.product_id, device.home_name].filter(Boolean).join(' · ')),
    h(
      'dl',
      { class: 'limits' },
      h('dt', {}, 'Per payment'),
      h('dd', { dataset: { limit: 'per_payment' } }, yuan(token.per_payment_limit)),
      h('dt', {}, 'Per day'),
      h('dd', { dataset: { limit: 'daily' } }, yuan(token.daily_limit)),
      h('dt', {}, 'Confirm on the device above'),
      h('dd', { dataset: { limit: 'confirm_above' } }, yuan(token.confirm_above)),
      h('dt', {}, 'Spent today'),
      h('dd', { dataset: { limit: 'spent_today' } }, `${yuan(token.spent_today)} of ${yuan(token.daily_limit)}`),
    ),
    meter,
    h('div', { class: 'row' }, codeButton, toggle, limitsButton, remove),
    limitsForm,
  );
}

/** The pay code in a dialog, as the device's screen would show it: QR code and digits, replaced when its
 * minute ends or when it was used (checked every few seconds; a payment also refreshes the wallet). */
function showPayCode(token, reload, timers) {
  const name = token.device?.name || token.device_id;
  const qr = h('img', { class: 'qr', alt: `QR code of the pay code of ${name}`, width: 200, height: 200 });
  const bars = h('img', { class: 'barcode', alt: `Barcode of the pay code of ${name}` });
  const digits = h('p', { class: 'code-digits' });
  const countdown = h('p', { class: 'sub', role: 'timer' });
  const slot = h('div');
  const close = h('button', { type: 'button', class: 'secondary' }, 'Close');
  const dialog = h(
    'dialog',
    { class: 'paycode', 'aria-label': 'Pay code' },
    h('h2', {}, `Pay with ${name}`),
    h('p', { class: 'sub' }, 'Show this to the cashier. It is the code a device with a screen would show; each code pays once and changes every minute.'),
    qr,
    bars,
    digits,
    countdown,
    slot,
    h('div', { class: 'row' }, close),
  );
  let shown = null;
  let expiresAt = 0;
  let stopped = false;
  async function fetchCode() {
    try {
      const code = await get(`devices/${enc(token.device_id)}/payment-token/pay-code`);
      if (stopped) return;
      showError(slot, null);
      if (code.code !== shown) {
        // Replaced: it paid, or its minute ended (a payment in its last seconds is only seen after the minute
        // turned, so the two cannot be told apart by the time): refresh the wallet either way.
        const replaced = shown !== null;
        shown = code.code;
        qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(code.qr_svg)}`;
        bars.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(code.barcode_svg)}`;
        digits.textContent = code.grouped;
        digits.dataset.code = code.code;
        if (replaced) reload();
      }
      expiresAt = Date.now() + code.expires_in_s * 1000;
      tick();
    } catch (err) {
      if (stopped) return;
      shown = null;
      qr.removeAttribute('src');
      bars.removeAttribute('src');
      digits.textContent = '';
      delete digits.dataset.code;
      showError(slot, err);
    }
  }
  function tick() {
    const left = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
    countdown.textContent = shown ? `A new code in ${left} s` : '';
  }
  let sinceCheck = 0;
  const timer = setInterval(() => {
    tick();
    sinceCheck += 1000;
    if ((shown && Date.now() >= expiresAt) || sinceCheck >= CODE_POLL_MS) {
      sinceCheck = 0;
      fetchCode();
    }
  }, 1000);
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    timers.delete(stop);
    if (dialog.open) dialog.close();
    dialog.remove();
  };
  timers.add(stop);
  close.addEventListener('click', stop);
  dialog.addEventListener('close', stop);
  document.body.append(dialog);
  dialog.showModal();
  fetchCode();
}

/** The device page's "Payment" panel: enable payment from the person's wallet, or say how it is set up. */
export function paymentSection(deviceId) {
  const box = h('div');
  const section = h('section', { class: 'panel', id: 'device-payment' }, h('h2', {}, 'Payment'), box);
  const enableForm = () => {
    const slot = h('div');
    const defaults = { per_payment_limit: 200000, daily_limit: 500000, confirm_above: 20000 };
    const form = h(
      'form',
      { class: 'stack', 'aria-label': 'Enable payment' },
      h('p', { class: 'sub' }, 'Let this device pay at shop counters and in apps, from your wallet. The device never learns whose wallet it is.'),
      h(
        'div',
        { class: 'two-fields' },
        field('Per payment (¥)', yuanInput('per_payment_limit', defaults.per_payment_limit)),
        field('Per day (¥)', yuanInput('daily_limit', defaults.daily_limit)),
        field('Confirm on the device above (¥)', yuanInput('confirm_above', defaults.confirm_above)),
      ),
      slot,
      h('div', {}, h('button', { type: 'submit' }, 'Enable payment')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      showError(slot, null);
      try {
        const body = {
          per_payment_limit: fenOf(form.elements.per_payment_limit, 'Per payment'),
          daily_limit: fenOf(form.elements.daily_limit, 'Per day'),
          confirm_above: parseFen(form.elements.confirm_above.value),
        };
        if (body.confirm_above === null) throw { words: 'Confirm above: enter an amount in yuan, like 200 (0: confirm every payment)' };
        const token = await busy(form.querySelector('button'), () => post(`devices/${enc(deviceId)}/payment-token`, body));
        toast('Payment enabled');
        showToken(token);
      } catch (err) {
        showError(slot, err);
      }
    });
    return form;
  };
  const showToken = (token) =>
    box.replaceChildren(
      h(
        'p',
        { dataset: { paymentStatus: token.status } },
        token.status === 'active' ? badge('Payment enabled', 'ok') : badge('Payment suspended', 'bad'),
        ` Up to ${yuan(token.per_payment_limit)} a payment and ${yuan(token.daily_limit)} a day. `,
        h('a', { href: '#/wallet' }, 'Manage it in the wallet'),
      ),
    );
  get(`devices/${enc(deviceId)}/payment-token`)
    .then(showToken)
    .catch((err) => {
      if (err.status === 404) box.replaceChildren(enableForm());
      else if (err.status === 403) section.hidden = true; // may see the device, not pay with it
      else showError(box, err);
    });
  return section;
}
