// Audit explorer: search the trail by request id, merchant, caller, error code and time; follow it live; one
// request's records (intent and outcome) in full; the writer's state and last checkpoint.
import { call, withQuery, mayChange } from './console-api.js';
import { el, badge, table, details, field, say, errorText, microsTime } from './console-view.js';
import { liveView } from './console-audit-live.js';

const filters = [
  ['request_id', 'Request id'], ['merchant', 'Merchant'], ['caller', 'Caller'], ['error_code', 'Error code'],
  ['from', 'From (UTC, e.g. 2026-12-05T03:00:00Z)'], ['to', 'To (UTC)'],
];

function phaseBadge(phase) { return badge(phase, phase === 'refusal' ? 'bad' : phase === 'intent' ? 'warn' : 'ok'); }

/** The explorer; `argument` is a request id to open at once (`#audit/<id>`). */
export async function render(view, argument) {
  const inputs = Object.fromEntries(filters.map(([name]) => [name, el('input', { id: `audit-${name}`, name, maxlength: 200, autocomplete: 'off' })]));
  if (argument) inputs.request_id.value = argument;
  const form = el('form', { role: 'search' }, filters.map(([name, label]) => el('label', {}, label, inputs[name])), el('button', { type: 'submit' }, 'Search'));
  const state = el('div', { id: 'audit-state' });
  const results = el('div', { id: 'audit-results' });
  const one = el('div', { id: 'audit-record' });
  const live = liveView(() => Object.fromEntries(filters.map(([name]) => [name, inputs[name].value.trim()])), (id) => showRequest(id), phaseBadge);
  view.append(el('h2', {}, 'Audit'), state, form, results, ...live.elements, one);
  let cursors = [null];
  // Only the latest search's answer is shown, whatever order the answers arrive in.
  let latest = 0;
  // Bound before the first await: a search typed while the trail's state loads is run, not lost.
  form.addEventListener('submit', (event) => { event.preventDefault(); cursors = [null]; search().catch((e) => say(errorText(e))); });

  const { json: status } = await call('GET', '/admin/v1/audit/status');
  const verdict = el('div', { id: 'audit-verify', role: 'status' });
  const verify = el('button', { type: 'button', id: 'verify', class: 'secondary', disabled: !mayChange() }, 'Verify the trail now');
  verify.addEventListener('click', async () => {
    verify.disabled = true;
    verdict.replaceChildren(el('p', { class: 'muted' }, 'Verifying: every record is read…'));
    try {
      const { json: v } = await call('GET', '/admin/v1/audit/verification');
      const first = v.problems[0];
      verdict.replaceChildren(details([
        ['Verification', v.intact ? badge('intact', 'ok') : badge(`broken: ${v.problem_count} problem(s)`, 'bad')],
        ['Records checked', `${v.records_checked} (seq ${v.anchor_seq + 1}…${v.last_seq})`],
        ['Checkpoints checked', `${v.checkpoints_checked} (newest ${v.newest_checkpoint_seq})`],
        ...(first ? [['First bad sequence number', `${first.seq}: ${first.kind} (${first.detail})`]] : []),
        ...v.notes.map((note) => ['Note', note]),
      ]));
    } catch (error) {
      verdict.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(error)));
    } finally {
      verify.disabled = false;
    }
  });
  state.replaceChildren(...(status.enabled
    ? [details([
      ['Writer', badge(status.healthy ? 'healthy' : 'unhealthy', status.healthy ? 'ok' : 'bad')],
      ['Last record', String(status.last_seq)], ['Last checkpoint', String(status.last_checkpoint_seq)],
    ]), el('div', { class: 'actions' }, verify, mayChange() ? null : el('span', { class: 'note' }, 'Verifying needs an operator or security account.')), verdict]
    : [el('p', {}, badge('disabled', 'warn'), ' The gateway records no audit trail.')]));

  async function search() {
    const mine = ++latest;
    const parameters = Object.fromEntries(filters.map(([name]) => [name, inputs[name].value.trim()]));
    const { json } = await call('GET', withQuery('/admin/v1/audit/records', { ...parameters, after: cursors.at(-1), limit: 50 }));
    if (mine !== latest) return;
    const open = (r) => el('button', { type: 'button', class: 'linkish mono', onclick: () => showRequest(r.request_id) }, r.request_id);
    const previous = el('button', { type: 'button', class: 'secondary', disabled: cursors.length < 2 }, 'Previous page');
    const next = el('button', { type: 'button', class: 'secondary', disabled: !json.next_cursor }, 'Next page');
    previous.addEventListener('click', () => { cursors.pop(); search().catch((e) => say(errorText(e))); });
    next.addEventListener('click', () => { cursors.push(json.next_cursor); search().catch((e) => say(errorText(e))); });
    results.replaceChildren(
      table('Records', [{ title: 'Time (UTC)' }, { title: 'Phase' }, { title: 'Request id' }, { title: 'Caller' }, { title: 'Merchant' }, { title: 'Operation' }, { title: 'Status' }, { title: 'Error' }],
        json.records.map((r) => [microsTime(r.time_us), phaseBadge(r.phase), open(r), r.caller_id ?? '—', r.merchant_id ?? '—', r.operation_id ?? '—', String(r.status ?? '—'), r.gateway_error_code ?? r.klarna_error_code ?? '—']),
        'no record matches.'),
      el('div', { class: 'actions' }, previous, next, el('span', { class: 'muted' }, `Page ${cursors.length}`)));
    if (json.records.length > 0 && parameters.request_id) await showRequest(parameters.request_id);
  }

  async function showRequest(requestID) {
    const { json } = await call('GET', withQuery('/admin/v1/audit/records', { request_id: requestID, limit: 50 }));
    const shown = ['time_us', 'phase', 'seq', 'node_id', 'caller_id', 'auth_method', 'client_address', 'merchant_id', 'partner_id', 'account', 'environment',
      'operation_id', 'method', 'path', 'release', 'idempotency_key', 'correlation_id', 'status', 'gateway_error_code', 'klarna_error_code', 'klarna_error_id',
      'request_bytes', 'response_bytes', 'upstream_attempts', 'upstream_latency_us', 'credential_id', 'credential_version', 'hash'];
    one.replaceChildren(el('h3', { id: 'audit-record-title', tabindex: '-1' }, `Request ${requestID}`),
      ...json.records.map((r) => el('section', { 'aria-label': `${r.phase} record` }, el('h4', {}, phaseBadge(r.phase), ` record ${r.seq}`),
        details(shown.map((name) => [name, name === 'time_us' ? microsTime(r[name]) : r[name] === null || r[name] === undefined ? '—' : String(r[name])])))));
    one.querySelector('#audit-record-title').focus();
  }

  await search();
  return live.stop;
}
