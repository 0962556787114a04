// Merchants, for the people who run them (and operators): the list, and one merchant's orders with refunds,
// its refunds, and the settlement statement of a day (table, payments by hour, CSV download).

import { ApiError, api, enc, get, refresh, token } from '../api.js';
import { add, badge, busy, field, fmtTime, h, header, notice, showError, table, toast } from '../ui.js';
import { newKey, parseFen, yuan } from './wallet.js';

const NOT_FOUND = 'This merchant does not exist, or you do not run it.';
const STATES = {
  SUCCESS: ['Paid', 'ok'],
  USERPAYING: ['Waiting for the customer', 'warn'],
  PROCESSING: ['Processing', 'warn'],
  CLOSED: ['Refused', 'bad'],
  REVOKED: ['Reversed', 'muted'],
};
const MOVEMENTS = { payment: 'Payment', fee: 'Platform fee', refund: 'Refund', fee_refund: 'Fee given back', reversal: 'Reversal', other: 'Other' };

function utcToday() {
  return new Date().toISOString().slice(0, 10);
}

export async function render(root) {
  const slot = h('div');
  add(root, header('Merchants'), slot);
  try {
    const { items } = await get('merchants');
    add(
      root,
      table(
        [
          ['Merchant', (m) => h('a', { href: `#/merchants/${enc(m.id)}` }, m.name)],
          ['Balance', (m) => h('span', { class: 'money' }, yuan(m.balance))],
          ['Platform fee', (m) => `${(m.fee_bps / 100).toFixed(2)} %`],
          ['Since', (m) => fmtTime(m.created_at)],
        ],
        items,
        'You run no merchant on this hub. An operator creates merchants and names who runs them.',
      ),
    );
  } catch (err) {
    showError(slot, err);
  }
}

export async function show(root, merchantId) {
  let merchant;
  try {
    merchant = await get(`merchants/${enc(merchantId)}`);
  } catch (err) {
    add(root, header('Merchant'), notice('error', err.status === 404 ? NOT_FOUND : err.words || String(err)));
    return;
  }
  const base = `merchants/${enc(merchantId)}`;
  const slot = h('div');
  const stats = h('div', { class: 'stats balances', id: 'merchant-balance' });
  const ordersBox = h('div', { id: 'merchant-orders' });
  const refundsBox = h('div', { id: 'merchant-refunds' });
  const statementBox = h('div', { id: 'merchant-statement' });
  const refreshButton = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  add(
    root,
    header(merchant.name, refreshButton),
    h('p', { class: 'sub' }, h('a', { href: '#/merchants' }, 'Merchants'), ` · platform fee ${(merchant.fee_bps / 100).toFixed(2)} % · ${merchant.currency}`),
    slot,
    stats,
    h('section', { class: 'panel' }, h('h2', {}, 'Orders'), ordersBox),
    h('section', { class: 'panel' }, h('h2', {}, 'Refunds'), refundsBox),
    statementSection(base, merchantId, statementBox),
  );

  function showBalance(m) {
    const stat = (label, fen, id) => h('div', { class: 'stat', dataset: { stat: id, fen: String(fen) } }, h('b', {}, yuan(fen)), h('span', {}, label));
    stats.replaceChildren(stat('Balance', m.balance, 'balance'), stat('Available', m.available, 'available'));
  }

  async function loadOrders() {
    const { items } = await get(`${base}/orders`, { limit: 100 });
    ordersBox.replaceChildren(
      table(
        [
          ['When', (o) => fmtTime(o.created_at)],
          ['Order', (o) => h('span', {}, h('code', {}, o.out_trade_no), o.description ? ` · ${o.description}` : '')],
          ['Amount', (o) => h('span', { class: 'money' }, yuan(o.amount))],
          [
            'State',
            (o) => {
              const [words, kind] = STATES[o.state] || [o.state, 'muted'];
              const refunded = o.refunded_amount ? badge(o.refundable_amount ? 'Partly refunded' : 'Refunded', 'muted') : null;
              return h('span', { class: 'row', dataset: { state: o.state } }, badge(words, kind), refunded, o.state === 'CLOSED' && o.reason ? h('small', {}, o.reason) : null);
            },
          ],
          ['Refunded', (o) => (o.refunded_amount ? h('span', { class: 'money' }, yuan(o.refunded_amount)) : '—')],
          ['', (o) => (o.refundable_amount > 0 ? refundButton(o) : '')],
        ],
        items,
        'No orders yet',
      ),
    );
    for (const row of ordersBox.querySelectorAll('tbody tr')) row.dataset.order = row.querySelector('code')?.textContent || '';
  }

  async function loadRefunds() {
    const { items } = await get(`${base}/refunds`, { limit: 100 });
    refundsBox.replaceChildren(
      table(
        [
          ['When', (r) => fmtTime(r.created_at)],
          ['Order', (r) => h('code', {}, r.out_trade_no)],
          ['Amount', (r) => h('span', { class: 'money' }, yuan(r.amount))],
          ['Fee given back', (r) => h('span', { class: 'money' }, yuan(r.fee_refund))],
          ['Reason', (r) => r.reason || ''],
          ['State', (r) => (r.state === 'SUCCEEDED' ? badge('Refunded', 'ok') : badge('Processing', 'warn'))],
        ],
        items,
        'No refunds yet',
      ),
    );
  }

  function refundButton(order) {
    const button = h('button', { type: 'button', class: 'secondary' }, 'Refund');
    button.addEventListener('click', () => refundDialog(order));
    return button;
  }

  function refundDialog(order) {
    const amount = h('input', { type: 'text', inputmode: 'decimal', name: 'amount', required: true, autocomplete: 'off', value: (order.refundable_amount / 100).toFixed(2) });
    const reason = h('input', { type: 'text', name: 'reason', maxlength: 200, placeholder: 'e.g. the customer changed their mind' });
    const errorSlot = h('div');
    const submit = h('button', { type: 'submit' }, 'Refund');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h(
      'form',
      { class: 'stack', 'aria-label': `Refund order ${order.out_trade_no}` },
      h('h2', {}, `Refund order ${order.out_trade_no}`),
      h('p', { class: 'sub' }, `Paid ${yuan(order.amount)}; ${yuan(order.refundable_amount)} can still be refunded. The money goes back to the wallet that paid.`),
      field('Amount (¥)', amount),
      field('Reason', reason, 'Optional; the merchant sees it'),
      errorSlot,
      h('div', { class: 'row' }, submit, cancel),
    );
    const dialog = h('dialog', { class: 'ask refund' }, form);
    const key = newKey(); // one refund per dialog: pressing Refund again cannot refund twice
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => dialog.remove());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      showError(errorSlot, null);
      const fen = parseFen(amount.value);
      try {
        if (fen === null || fen <= 0) throw { words: 'Enter the amount to refund in yuan, like 12.50' };
        if (fen > order.refundable_amount) {
          throw { words: `That is more than was paid and not yet refunded: at most ${yuan(order.refundable_amount)} can be refunded` };
        }
        const made = await busy(submit, () =>
          api('POST', `${base}/orders/${enc(order.out_trade_no)}/refunds`, { body: { amount: fen, reason: reason.value.trim() || null }, headers: { 'Idempotency-Key': key } }),
        );
        dialog.close();
        toast(`Refunded ${yuan(made.amount)} of order ${order.out_trade_no}`);
        loadAll();
      } catch (err) {
        showError(errorSlot, err);
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    amount.select();
  }

  async function loadAll() {
    try {
      showBalance(await get(base));
      await Promise.all([loadOrders(), loadRefunds()]);
      showError(slot, null);
    } catch (err) {
      showError(slot, err);
    }
    statementBox.dispatchEvent(new Event('reload'));
  }

  refreshButton.addEventListener('click', () => busy(refreshButton, loadAll));
  await loadAll();
}

function statementSection(base, merchantId, box) {
  const day = h('input', { type: 'date', name: 'day', required: true, value: utcToday(), max: utcToday(), 'aria-label': 'Day (UTC)' });
  const showButton = h('button', { type: 'submit' }, 'Show');
  const download = h('button', { type: 'button', class: 'secondary' }, 'Download CSV');
  const slot = h('div');
  const form = h('form', { class: 'row', 'aria-label': 'Statement' }, day, showButton, download);

  async function load() {
    showError(slot, null);
    try {
      const statement = await get(`${base}/statements/${enc(day.value)}`);
      box.replaceChildren(...statementView(statement));
    } catch (err) {
      box.replaceChildren();
      showError(slot, err);
    }
  }

  async function downloadCsv() {
    showError(slot, null);
    const url = `/api/v1/${base}/statements/${enc(day.value)}.csv`;
    const fetchCsv = () => fetch(url, { headers: { Authorization: `Bearer ${token()}` }, credentials: 'same-origin' });
    try {
      let response = await fetchCsv().catch(() => null);
      if (response && response.status === 401 && (await refresh())) response = await fetchCsv().catch(() => null);
      if (!response) throw new ApiError(0, 'The hub cannot be reached');
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        throw new ApiError(response.status, problem.detail || problem.title || 'The statement could not be downloaded');
      }
      const link = h('a', { href: URL.createObjectURL(await response.blob()), download: `statement-${merchantId}-${day.value}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (err) {
      showError(slot, err);
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(showButton, load);
  });
  download.addEventListener('click', () => busy(download, downloadCsv));
  box.addEventListener('reload', load);
  return h(
    'section',
    { class: 'panel' },
    h('h2', {}, 'Statement'),
    h('p', { class: 'sub' }, 'Every movement of the merchant’s money in one day (UTC), from the ledger.'),
    form,
    slot,
    box,
  );
}

function statementView(s) {
  const totals = Object.entries(s.totals).filter(([, t]) => t.count);
  const summary = h(
    'dl',
    { class: 'limits' },
    h('dt', {}, 'Opening balance'),
    h('dd', { dataset: { total: 'opening' } }, yuan(s.opening_balance)),
    totals.map(([kind, t]) => [h('dt', {}, `${MOVEMENTS[kind] || kind} (${t.count})`), h('dd', { dataset: { total: kind } }, yuan(t.amount))]),
    h('dt', {}, s.final ? 'Closing balance' : 'Balance so far'),
    h('dd', { dataset: { total: 'closing' } }, yuan(s.closing_balance)),
  );
  return [
    h('p', { class: 'sub' }, s.final ? `${s.date}: final` : `${s.date}: the day is not over; more may come until midnight UTC`),
    hourBars(s.movements.filter((m) => m.kind === 'payment')),
    summary,
    table(
      [
        ['Time', (m) => fmtTime(m.created_at)],
        ['Kind', (m) => MOVEMENTS[m.kind] || m.kind],
        ['Order', (m) => (m.out_trade_no ? h('code', {}, m.out_trade_no) : '')],
        ['Refund', (m) => (m.out_refund_no ? h('code', {}, m.out_refund_no) : '')],
        ['Amount', (m) => h('span', { class: `money money-${m.amount < 0 ? 'out' : 'in'}` }, yuan(m.amount))],
        ['Balance after', (m) => h('span', { class: 'money' }, yuan(m.balance_after))],
      ],
      s.movements,
      'No money moved on this day',
    ),
  ];
}

/** Payments of the day by hour (UTC) as bars: plain elements, no chart library needed for 24 bars. */
function hourBars(payments) {
  const sums = Array.from({ length: 24 }, () => ({ count: 0, fen: 0 }));
  for (const m of payments) {
    const hour = new Date(m.created_at).getUTCHours();
    sums[hour].count += 1;
    sums[hour].fen += m.amount;
  }
  const top = Math.max(1, ...sums.map((s) => s.fen));
  const total = sums.reduce((n, s) => n + s.count, 0);
  const bars = sums.map((s, hour) => {
    const label = `${String(hour).padStart(2, '0')}:00 UTC: ${s.count} payment${s.count === 1 ? '' : 's'}, ${yuan(s.fen)}`;
    const bar = h('span', { class: 'bar', title: label, dataset: { hour: String(hour), count: String(s.count), fen: String(s.fen) } });
    bar.style.height = `${Math.round((s.fen * 100) / top)}%`;
    return h('div', { class: 'bar-slot' }, bar, h('small', {}, hour % 6 === 0 ? String(hour) : ''));
  });
  return h(
    'figure',
    { class: 'hours' },
    h('div', { class: 'bars', role: 'img', 'aria-label': `Payments by hour (UTC): ${total} in all` }, bars),
    h('figcaption', { class: 'sub' }, `Payments by hour (UTC): ${total} in all`),
  );
}
