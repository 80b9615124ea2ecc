// Callers (add, new token, revoke) and releases (calendar, availability per environment, roll-out preview, apply and
// roll back), over the admin API.
import { call, withQuery, mayChange } from './console-api.js';
import { el, badge, table, details, errorText } from './console-view.js';
import { releaseCalendar } from './console-release-calendar.js';

/** Callers: their state, whether they hold a token (never the token), add, rotate a token, revoke. A new token is
 * shown once, in this page only, until the page is left or redrawn: the API never answers it again. */
export async function renderCallers(view) {
  const body = el('div', {});
  const id = el('input', { id: 'caller-id', required: true, autocomplete: 'off', maxlength: 64 });
  const add = el('form', { id: 'caller-add' }, el('label', {}, 'New caller id', id), el('button', { type: 'submit', disabled: !mayChange() }, 'Add caller'));
  view.append(el('h2', {}, 'Callers'), add, body);
  // The token once: monospaced, with the reminder that it cannot be shown again.
  const shownOnce = (callerID, token) => [el('p', { role: 'alert' }, `Token of ${callerID}, shown once (copy it now; it cannot be shown again):`),
    el('p', { id: 'caller-token', class: 'mono' }, token)];
  async function show(...message) {
    const { json } = await call('GET', '/admin/v1/callers');
    const revoke = (c) => {
      const button = el('button', { type: 'button', class: 'danger', disabled: !mayChange() || c.status !== 'active' }, `Revoke ${c.id}`);
      button.addEventListener('click', async () => {
        try { await call('POST', `/admin/v1/callers/${encodeURIComponent(c.id)}/revoke`); await show(`Caller ${c.id} revoked.`); }
        catch (error) { await show(`Revoke refused: ${errorText(error)}`); }
      });
      return button;
    };
    const rotate = (c) => {
      const button = el('button', { type: 'button', disabled: !mayChange() || !c.token }, `New token for ${c.id}`);
      button.addEventListener('click', async () => {
        try {
          const { json: r } = await call('POST', `/admin/v1/callers/${encodeURIComponent(c.id)}/rotate-token`);
          await show(...shownOnce(c.id, r.token));
        } catch (error) { await show(`Rotation refused: ${errorText(error)}`); }
      });
      return button;
    };
    body.replaceChildren(
      ...message.map((m) => typeof m === 'string' ? el('p', { role: 'alert' }, m) : m),
      table('Callers', [{ title: 'Id' }, { title: 'Status' }, { title: 'Token' }, { title: 'Certificate (SHA-256)' }, { title: 'Action' }],
        json.callers.map((c) => [c.id, badge(c.status, c.status === 'active' ? 'ok' : 'bad'), c.token ? 'yes' : 'no', el('span', { class: 'mono' }, c.certificate_fingerprint ?? '—'), el('span', {}, rotate(c), ' ', revoke(c))])));
  }
  add.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { json: a } = await call('POST', '/admin/v1/callers', { body: { id: id.value.trim() } });
      id.value = '';
      await show(...shownOnce(a.caller.id, a.token));
    } catch (error) { await show(`Add refused: ${errorText(error)}`); }
  });
  await show();
}

/** Releases: the calendar per environment, and a roll-out preview (how many merchants would move) before its apply. */
export async function renderReleases(view) {
  const { json } = await call('GET', '/admin/v1/releases');
  view.append(el('h2', {}, 'Releases'), el('p', { class: 'muted' }, `Calendar for ${json.today} (snapshot ${json.snapshot}).`), releaseCalendar(json));
  for (const environment of json.environments) {
    view.append(el('h3', {}, `${environment.environment}: latest ${environment.latest ?? 'none'}`),
      table(`Releases in ${environment.environment}`, [{ title: 'Release' }, { title: 'Name' }, { title: 'API' }, { title: 'Available from' }, { title: 'Available' }, { title: 'Pinned merchants', num: true }],
        environment.releases.map((r) => [r.id, r.name, r.api_major, r.available_from ?? '—', r.available ? badge('available', 'ok') : badge('not yet', 'warn'), String(r.pinned_merchants)])));
  }
  view.append(table('Roll-outs in force', [{ title: 'Release' }, { title: 'Percent', num: true }, { title: 'Group' }], json.rollouts.map((r) => [r.release, String(r.percent), r.group ?? 'all'])));
  const environment = el('select', { id: 'rollout-environment' }, json.environments.map((e) => el('option', { value: e.environment }, e.environment)));
  const release = el('select', { id: 'rollout-release' }, [...new Set(json.environments.flatMap((e) => e.releases.map((r) => r.id)))].map((id) => el('option', { value: id }, id)));
  const percent = el('input', { id: 'rollout-percent', type: 'range', min: 0, max: 100, step: 1, value: 10 });
  const percentText = el('output', { for: 'rollout-percent' }, '10 %');
  percent.addEventListener('input', () => { percentText.textContent = `${percent.value} %`; });
  const group = el('input', { id: 'rollout-group', autocomplete: 'off' });
  const result = el('div', { id: 'rollout-result' });
  const form = el('form', {}, el('label', {}, 'Environment', environment), el('label', {}, 'Release', release),
    el('label', {}, 'Percent', percent, percentText), el('label', {}, 'Group (optional)', group), el('button', { type: 'submit' }, 'Preview'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      // The roll-outs' ETag as the preview is made: an apply after someone else changed any roll-out is refused (412).
      const [{ json: p }, { etag }] = await Promise.all([
        call('GET', withQuery('/admin/v1/releases/rollout-preview', { environment: environment.value, release: release.value, percent: percent.value, group: group.value.trim(), limit: 20 })),
        call('GET', '/admin/v1/releases/rollouts')]);
      const chosen = { release: p.release, percent: p.percent, group: p.group };
      const apply = el('button', { type: 'button', id: 'rollout-apply', disabled: !mayChange() }, `Apply ${chosen.release} to ${chosen.percent} %${chosen.group ? ` of ${chosen.group}` : ''}`);
      const outcome = el('div', { id: 'rollout-outcome' });
      apply.addEventListener('click', async () => {
        apply.disabled = true;
        try {
          const { json: a, etag: after } = await call('POST', '/admin/v1/releases/rollouts', { ifMatch: etag, body: chosen });
          const back = el('button', { type: 'button', id: 'rollout-rollback', class: 'danger' }, `Roll back ${chosen.release}`);
          back.addEventListener('click', async () => {
            back.disabled = true;
            try {
              const { json: b } = await call('DELETE', `/admin/v1/releases/rollouts/${encodeURIComponent(chosen.release)}`, { ifMatch: after });
              outcome.replaceChildren(el('p', { role: 'alert' }, `Rolled back ${chosen.release}: ${b.removed} roll-out(s) ended.`));
            } catch (error) { outcome.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Roll back refused: ${errorText(error)}`)); }
          });
          outcome.replaceChildren(el('p', { role: 'alert' }, `Applied: the roll-out covers ${a.merchants} merchant(s); pinned merchants keep their pin.`), back);
        } catch (error) { outcome.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Apply refused: ${errorText(error)}`)); }
      });
      result.replaceChildren(details([
        ['Merchants in environment', String(p.merchants)], ['Would move', String(p.moving)],
        ['Available today', p.available ? badge('yes', 'ok') : badge('no: moved merchants’ calls would be refused', 'bad')],
      ]), table('Moves', [{ title: 'From' }, { title: 'To' }, { title: 'Merchants', num: true }], p.changes.map((c) => [c.from ?? 'none', c.to ?? 'none', String(c.merchants)])),
      ...(mayChange() ? [] : [el('p', { class: 'note' }, 'Your role is viewer: applying needs an operator or security account.')]), apply, outcome);
    } catch (error) { result.replaceChildren(el('p', { class: 'error', role: 'alert' }, errorText(error))); }
  });
  view.append(el('h3', {}, 'Roll-out preview'), form, result);
}
