// Merchants: search and page through them, add one, import a CSV file; one merchant's state, suspend/resume, release
// pin, its partner, account and groups, and its removal (each sent with the ETag read, so a concurrent change is
// refused rather than overwritten), and its recent calls and refusals.
import { call, withQuery, mayChange } from './console-api.js';
import { el, badge, table, details, say, errorText, microsTime, confirmButton } from './console-view.js';
import { addForm, editForm, importForm } from './console-merchant-forms.js';

function statusBadge(status) { return badge(status, status === 'active' ? 'ok' : 'bad'); }

function merchantLink(id) { return el('a', { href: `#merchant/${encodeURIComponent(id)}` }, id); }

/** The list: `q` searches ids and accounts; pages go forward by cursor and back by the cursors already seen. */
export async function render(view) {
  const results = el('div', { id: 'merchant-results' });
  const search = el('input', { id: 'merchant-search', type: 'search', name: 'q', maxlength: 100, autocomplete: 'off' });
  const form = el('form', { role: 'search' }, el('label', {}, 'Id or account contains', search), el('button', { type: 'submit' }, 'Search'));
  let cursors = [null];
  // Answers can arrive out of order (a search typed while the first page loads): only the latest request's is shown.
  let latest = 0;
  async function show() {
    const mine = ++latest;
    const after = cursors.at(-1);
    const { json } = await call('GET', withQuery('/admin/v1/merchants', { q: search.value.trim(), after, limit: 50 }));
    if (mine !== latest) return;
    const previous = el('button', { type: 'button', class: 'secondary', disabled: cursors.length < 2 }, 'Previous page');
    const next = el('button', { type: 'button', class: 'secondary', disabled: !json.next_cursor }, 'Next page');
    previous.addEventListener('click', () => { cursors.pop(); show().catch((e) => say(errorText(e))); });
    next.addEventListener('click', () => { cursors.push(json.next_cursor); show().catch((e) => say(errorText(e))); });
    results.replaceChildren(
      table('Merchants', [{ title: 'Id' }, { title: 'Account' }, { title: 'Environment' }, { title: 'Status' }, { title: 'Release pin' }],
        json.merchants.map((m) => [merchantLink(m.id), el('span', { class: 'mono' }, m.account), m.environment, statusBadge(m.status), m.release ?? '—']),
        'no merchant matches.'),
      el('div', { class: 'actions' }, previous, next, el('span', { class: 'muted' }, `Page ${cursors.length}`)));
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); cursors = [null]; show().catch((e) => say(errorText(e))); });
  // After an import the list is read again from its first page, so added merchants show.
  const refresh = () => { cursors = [null]; return show().catch((e) => say(errorText(e))); };
  view.append(el('h2', {}, 'Merchants'), form, results, await addForm(), importForm(refresh));
  await show();
}

/** One merchant. */
export async function renderOne(view, id) {
  view.append(el('p', {}, el('a', { href: '#merchants' }, '← Merchants')));
  const body = el('div', {});
  view.append(body);
  async function show(message) {
    const [{ json: m, etag }, releases] = await Promise.all([
      call('GET', `/admin/v1/merchants/${encodeURIComponent(id)}`),
      call('GET', '/admin/v1/releases').then((r) => r.json).catch(() => null),
    ]);
    const act = async (label, method, path, payload) => {
      try {
        const { requestID } = await call(method, path, { ifMatch: etag, body: payload });
        await show(`${label}: done (request ${requestID}).`);
      } catch (error) {
        await show(`${label} refused: ${errorText(error)}`);
      }
    };
    const base = `/admin/v1/merchants/${encodeURIComponent(m.id)}`;
    const readOnly = !mayChange();
    const suspend = el('button', { type: 'button', class: 'danger', id: 'suspend', disabled: readOnly || m.status === 'suspended' }, 'Suspend');
    const resume = el('button', { type: 'button', id: 'resume', disabled: readOnly || m.status === 'active' }, 'Resume');
    suspend.addEventListener('click', () => act('Suspend', 'POST', `${base}/suspend`));
    resume.addEventListener('click', () => act('Resume', 'POST', `${base}/resume`));
    // A pin names a release by its id (`stable-v1`); its name (`stable/v1`) is only shown.
    const offered = releases?.environments.find((e) => e.environment === m.environment)?.releases.filter((r) => r.available) ?? [];
    const pin = el('select', { id: 'pin' }, el('option', { value: '' }, 'no pin (follow roll-outs)'),
      offered.map((r) => el('option', { value: r.id, selected: r.id === m.release }, r.name === r.id ? r.id : `${r.id} (${r.name})`)));
    const pinForm = el('form', {}, el('label', {}, 'Release pin', pin), el('button', { type: 'submit', disabled: readOnly }, 'Set pin'));
    pinForm.addEventListener('submit', (event) => { event.preventDefault(); act('Release pin', 'PUT', `${base}/release`, { release: pin.value || null }); });
    // The removal sends the ETag read with this page, so a merchant someone changed meanwhile is not removed (412).
    const remove = confirmButton('merchant-remove', 'Remove merchant…',
      `Remove merchant ${m.id} and its sealed secrets? Its calls are refused once the gateway reloads; this cannot be undone.`,
      `Yes, remove ${m.id}`, async () => {
        try {
          const { requestID } = await call('DELETE', base, { ifMatch: etag });
          body.replaceChildren(el('h2', {}, `Merchant ${m.id}`),
            el('p', { id: 'merchant-removed', role: 'alert' }, `Merchant ${m.id} removed (request ${requestID}).`),
            el('p', {}, el('a', { href: '#merchants' }, 'Back to the merchants')));
        } catch (error) {
          await show(`Remove refused: ${errorText(error)}`);
        }
      }, readOnly);
    const parts = [
      el('h2', {}, `Merchant ${m.id}`),
      details([
        ['Status', statusBadge(m.status)], ['Account', el('span', { class: 'mono' }, m.account)], ['Environment', m.environment],
        ['Partner', m.partner_id], ['Groups', m.groups.join(', ') || 'none'], ['Release pin', m.release ?? 'none'],
        ['Own API key', m.own_api_key ? `${m.own_api_key.credential_id} v${m.own_api_key.version}` : 'none (the partner’s)'],
      ]),
      el('div', { class: 'actions' }, suspend, resume, remove),
      pinForm,
      await editForm(m, act),
    ];
    if (readOnly) parts.push(el('p', { id: 'read-only', class: 'note' }, 'Your role is viewer: changes need an operator or security account.'));
    if (message) parts.push(el('p', { id: 'merchant-message', role: 'alert' }, message));
    parts.push(el('div', { id: 'merchant-calls' }, el('p', { class: 'muted' }, 'Loading recent calls…')));
    body.replaceChildren(...parts);
    await recentCalls(m.id, body.querySelector('#merchant-calls'));
  }
  await show();
}

/** The merchant's calls and refusals of the last 24 hours from the audit trail (a page of the oldest 100). */
async function recentCalls(id, into) {
  const from = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  let records;
  try {
    ({ json: { records } } = await call('GET', withQuery('/admin/v1/audit/records', { merchant: id, from, limit: 100 })));
  } catch (error) {
    into.replaceChildren(el('p', { class: 'muted' }, `Recent calls: ${errorText(error)}`));
    return;
  }
  const row = (r) => [microsTime(r.time_us), el('a', { href: `#audit/${encodeURIComponent(r.request_id)}`, class: 'mono' }, r.request_id), r.phase, r.operation_id ?? '—', String(r.status ?? '—'), r.gateway_error_code ?? r.klarna_error_code ?? '—'];
  const columns = [{ title: 'Time (UTC)' }, { title: 'Request id' }, { title: 'Phase' }, { title: 'Operation' }, { title: 'Status' }, { title: 'Error' }];
  into.replaceChildren(
    el('h3', {}, 'Refusals, last 24 hours'),
    table('Refusals', columns, records.filter((r) => r.phase === 'refusal').map(row)),
    el('h3', {}, 'Calls, last 24 hours'),
    table('Calls', columns, records.filter((r) => r.phase !== 'intent').map(row)));
}
