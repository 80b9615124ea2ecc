// The audit explorer's live view: follows the trail through GET /admin/v1/audit/tail with the explorer's filters,
// newest records on top, asking again 2 s after each answer while it is on and the page is shown.
import { call, withQuery } from './console-api.js';
import { el, badge, table, errorText, microsTime } from './console-view.js';

const pollMillis = 2000;
const kept = 100;

/** A "Follow live" switch and its table; `parameters()` gives the explorer's filters, `open(id)` shows one request.
 * Returns the elements and a function that stops following (called when the page is left). */
export function liveView(parameters, open, phaseBadge) {
  const toggle = el('button', { type: 'button', id: 'audit-follow', class: 'secondary', 'aria-pressed': 'false' }, 'Follow live');
  const line = el('p', { id: 'audit-live-state', role: 'status', class: 'muted' }, 'Not following.');
  const body = el('div', { id: 'audit-live' });
  let records = [];
  let cursor = null;
  let arrived = 0;
  let timer = null;
  // Bumped on every start and stop, so an answer or a timer of an earlier session changes nothing.
  let session = 0;
  let filters = {};

  function draw() {
    body.replaceChildren(table('Live records (newest first)', [{ title: 'Time (UTC)' }, { title: 'Phase' }, { title: 'Request id' }, { title: 'Caller' }, { title: 'Merchant' }, { title: 'Operation' }, { title: 'Status' }, { title: 'Error' }],
      records.map((r) => [microsTime(r.time_us), phaseBadge(r.phase), el('button', { type: 'button', class: 'linkish mono', onclick: () => open(r.request_id) }, r.request_id),
        r.caller_id ?? '—', r.merchant_id ?? '—', r.operation_id ?? '—', String(r.status ?? '—'), r.gateway_error_code ?? r.klarna_error_code ?? '—']),
      'no record yet.'));
  }

  // One tail call; again at once while the trail has more than a page waiting, so a burst is caught up before the pause.
  async function poll(first) {
    const mine = session;
    const { json } = await call('GET', withQuery('/admin/v1/audit/tail', { ...filters, after: cursor ?? '', limit: first ? 10 : 100 }));
    if (mine !== session) return;
    cursor = json.next_cursor;
    if (!first) arrived += json.records.length;
    records = [...json.records.reverse(), ...records].slice(0, kept);
    draw();
    line.replaceChildren(badge('following', 'ok'), ` ${arrived} new record(s) since following started; updated ${new Date().toISOString().slice(11, 19)} UTC.`);
    if (json.more) await poll(false);
  }

  // The next poll is scheduled when this one has answered, so two never overlap with the same cursor.
  function schedule() {
    const mine = session;
    timer = setTimeout(async () => {
      try { await poll(false); } catch (e) { line.replaceChildren(el('span', { class: 'error' }, `Follow failed: ${errorText(e)}`)); }
      if (mine === session) schedule();
    }, pollMillis);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    session += 1;
    toggle.textContent = 'Follow live';
    toggle.setAttribute('aria-pressed', 'false');
  }

  toggle.addEventListener('click', async () => {
    if (timer !== null) { stop(); line.textContent = 'Not following.'; return; }
    // The merchant, caller and error code filters as they are when following starts; a request id or a time range
    // names records that are already there, which a live view would never show.
    const { request_id: requestID, from, to, ...rest } = parameters();
    filters = rest;
    records = [];
    cursor = null;
    arrived = 0;
    toggle.textContent = 'Stop following';
    toggle.setAttribute('aria-pressed', 'true');
    session += 1;
    timer = 0;
    const mine = session;
    try { await poll(true); } catch (error) { stop(); line.replaceChildren(el('span', { class: 'error', role: 'alert' }, `Follow refused: ${errorText(error)}`)); return; }
    if (mine === session) schedule();
  });
  return { elements: [el('h3', {}, 'Live'), el('div', { class: 'actions' }, toggle), line, body], stop };
}
