// Rate limits: who is throttled now on this instance (refreshed while shown), and one merchant's or caller's room
// per rule, over the admin API.
import { call, withQuery } from './console-api.js';
import { el, badge, table, errorText, ms, say } from './console-view.js';

const refreshMillis = 5000;

/** Who a throttled key is: the ids its rule keys on, a merchant linked to its page. */
function who(t) {
  const merchant = t.merchant_id ? el('a', { href: `#merchant/${encodeURIComponent(t.merchant_id)}` }, `merchant ${t.merchant_id}`) : null;
  const parts = [merchant, t.partner_id ? `partner ${t.partner_id}` : null, t.caller_id ? `caller ${t.caller_id}` : null].filter(Boolean);
  return parts.length === 0 ? 'everyone (global)' : el('span', {}, parts.flatMap((p, i) => (i === 0 ? [p] : [' × ', p])));
}

/** Its state as a word: held by Klarna, throttled (with the wait) or room again (listed because it was recently). */
function state(t) {
  if (t.held_for_ms > 0) return badge(`held by Klarna ${t.held_for_ms} ms`, 'bad');
  if (t.throttled_now) return badge(`throttled, retry in ${t.retry_after_ms} ms`, 'bad');
  return badge('has room again', 'ok');
}

/** The throttled keys, a page at a time: `cursors` holds the cursor of each page shown before, for Back. */
async function fillThrottled(body, filter) {
  const { json } = await call('GET', withQuery('/admin/v1/rate-limits/throttled', { rule: filter.rule, after: filter.cursors.at(-1) ?? '', limit: 50 }));
  const older = el('button', { type: 'button', disabled: filter.cursors.length === 0 }, 'Previous page');
  const newer = el('button', { type: 'button', disabled: json.next_cursor === null }, 'Next page');
  older.addEventListener('click', () => { filter.cursors.pop(); fillThrottled(body, filter).catch((e) => say(errorText(e))); });
  newer.addEventListener('click', () => { filter.cursors.push(json.next_cursor); fillThrottled(body, filter).catch((e) => say(errorText(e))); });
  const now = json.throttled.filter((t) => t.throttled_now).length;
  body.replaceChildren(
    el('p', { id: 'throttled-count' }, `${now} throttled now, ${json.throttled.length - now} throttled in the last ${json.window_seconds / 60} minutes with room again (this page).`),
    ...(json.complete ? [] : [el('p', { class: 'note' }, 'More keys were throttled than the limiter remembers (10,000): the list is not complete.')]),
    ...(json.clustered ? [el('p', { class: 'note' }, 'Cluster mode: room is leased from the shared ledger, so remaining is not known here.')] : []),
    table('Throttled keys', [{ title: 'Who' }, { title: 'Rule' }, { title: 'Category' }, { title: 'Rate/s', num: true }, { title: 'Burst', num: true },
      { title: 'Remaining', num: true }, { title: 'Refused', num: true }, { title: 'Delayed', num: true }, { title: 'Last', num: true }, { title: 'State' }],
    json.throttled.map((t) => [who(t), t.rule, t.category ?? '—', String(t.rate ?? '—'), String(t.burst ?? '—'), String(t.remaining ?? '—'),
      String(t.refused), String(t.delayed), t.last_throttled_ms_ago === null ? '—' : `${ms(t.last_throttled_ms_ago)} ago`, state(t)]),
    'no key is throttled or was in the window.'),
    el('p', {}, older, ' ', newer),
    el('p', { class: 'muted' }, `Updated ${new Date().toISOString().slice(11, 19)} UTC; refreshes every ${refreshMillis / 1000} s.`));
}

/** One merchant's or caller's room per rule, and Klarna's holds. */
function roomForm() {
  const kind = el('select', { id: 'limits-kind' }, el('option', { value: 'merchants' }, 'Merchant'), el('option', { value: 'callers' }, 'Caller'));
  const id = el('input', { id: 'limits-id', required: true, autocomplete: 'off', maxlength: 100 });
  const result = el('div', { id: 'limits-result' });
  const form = el('form', {}, el('label', {}, 'Kind', kind), el('label', {}, 'Id', id), el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { json } = await call('GET', `/admin/v1/rate-limits/${kind.value}/${encodeURIComponent(id.value.trim())}`);
      result.replaceChildren(
        ...(json.clustered ? [el('p', { class: 'note' }, 'Cluster mode: room is leased from the shared ledger, so remaining is not known here.')] : []),
        table('Rules', [{ title: 'Rule' }, { title: 'Category' }, { title: 'Rate/s', num: true }, { title: 'Burst', num: true }, { title: 'Remaining', num: true }, { title: 'Full again in', num: true }, { title: 'State' }],
          json.rules.map((r) => [r.rule, r.category ?? '—', String(r.rate ?? '—'), String(r.burst ?? '—'), String(r.remaining ?? '—'), ms(r.reset_after_ms),
            r.held_for_ms > 0 ? badge(`held by Klarna ${r.held_for_ms} ms`, 'bad') : r.remaining === 0 ? badge('throttled', 'bad') : badge('has room', 'ok')]),
          'no limit or hold applies.'));
    } catch (error) { result.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(error))); }
  });
  return [form, result];
}

/** The rate-limits page: the throttled keys (refreshed every 5 s while shown), then the room of one merchant or caller. */
export async function render(view) {
  const filter = { rule: '', cursors: [] };
  const rule = el('select', { id: 'throttled-rule' }, el('option', { value: '' }, 'every rule'),
    ['merchant', 'partner', 'caller', 'caller_merchant', 'global'].map((r) => el('option', { value: r }, r)));
  const body = el('div', { id: 'throttled' });
  rule.addEventListener('change', () => { filter.rule = rule.value; filter.cursors = []; fillThrottled(body, filter).catch((e) => say(errorText(e))); });
  view.append(el('h2', {}, 'Rate limits'), el('p', { class: 'muted' }, 'State of this instance’s limiter.'),
    el('h3', {}, 'Who is throttled now'), el('form', {}, el('label', {}, 'Rule', rule)), body,
    el('h3', {}, 'Room of one merchant or caller'), ...roomForm());
  await fillThrottled(body, filter);
  const timer = setInterval(() => fillThrottled(body, filter).catch((e) => say(`Refresh failed: ${errorText(e)}`)), refreshMillis);
  return () => clearInterval(timer);
}
