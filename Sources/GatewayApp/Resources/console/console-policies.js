// Policies: the access and rate-limit policies in force, a proposed file checked as a reload would check it, then
// applied as a new stored version (in force on every instance: docs/admin-api.md, "Policies"), and the history of
// stored versions with a rollback to any of them.
import { call, mayChange, isSecurity } from './console-api.js';
import { el, badge, details, errorText } from './console-view.js';
import { historyTable } from './console-policy-history.js';

// [kind, title, the role that may apply it]: access grants callers their rights, so it is the security role's.
const kinds = [['access', 'Access (policies/access.yaml)', 'security'], ['rate-limits', 'Rate limits (policies/rate-limits.yaml)', 'operator']];

/** Whether the logged-in account may apply and roll back `kind`. */
function mayApply(kind) { return kind === 'access' ? isSecurity() : mayChange(); }

/** One policy: its version, source and text as read, a form that validates a proposed file, an Apply button once it
 * is valid (sent with the ETag read with the section, so a change by anyone in between is refused with 412), the
 * history. After a change the section is read again, with `outcome` on top. */
async function section(kind, title, role, outcome) {
  const { json, etag } = await call('GET', `/admin/v1/policies/${kind}`);
  const node = el('section', { 'aria-labelledby': `policy-${kind}-title`, id: `policy-${kind}` });
  const refresh = async (message) => node.replaceWith(await section(kind, title, role, message));
  const said = el('div', { id: `policy-${kind}-outcome` }, outcome ? el('p', { role: 'alert' }, outcome) : null);
  const refused = (what) => (error) => said.replaceChildren(el('p', { class: 'error', role: 'alert' }, `${what} refused: ${errorText(error)}`));
  const proposed = el('textarea', { id: `policy-${kind}-yaml`, rows: 8, maxlength: 60000, spellcheck: 'false', autocomplete: 'off', class: 'mono' });
  const result = el('div', { id: `policy-${kind}-result` });
  const apply = el('button', { type: 'button', id: `policy-${kind}-apply`, disabled: true }, 'Apply');
  // The text validated last, and only it, is what Apply sends: an edit after the check needs a new check.
  let validated = null;
  proposed.addEventListener('input', () => { validated = null; apply.disabled = true; });
  const form = el('form', { id: `policy-${kind}-form` }, el('label', { class: 'wide' }, 'Proposed file (YAML)', proposed),
    el('button', { type: 'submit', disabled: !mayChange() }, 'Validate'), ' ', apply);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    validated = null;
    apply.disabled = true;
    try {
      const { json: v } = await call('POST', `/admin/v1/policies/${kind}/validate`, { body: { yaml: proposed.value } });
      result.replaceChildren(details([
        ['Result', badge('valid', 'ok')], ['Version', v.version], ['Differs from the one in force', v.changed ? 'yes' : 'no (the same version)'],
        ...v.warnings.map((w) => ['Warning', w]),
      ]));
      validated = proposed.value;
      apply.disabled = !mayApply(kind) || !v.changed;
    } catch (error) { result.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Not valid: ${errorText(error)}`)); }
  });
  apply.addEventListener('click', async () => {
    apply.disabled = true;
    try {
      const { json: a, requestID } = await call('PUT', `/admin/v1/policies/${kind}`, { ifMatch: etag, body: { yaml: validated } });
      await refresh(`Applied version ${a.version} (request ${requestID}); every instance serves it once it has reloaded.`);
    } catch (error) { refused('Apply')(error); }
  });
  const rollBack = async (version) => {
    try {
      const { requestID } = await call('POST', `/admin/v1/policies/${kind}/rollback`, { ifMatch: etag, body: { version } });
      await refresh(`Rolled back to version ${version} (request ${requestID}).`);
    } catch (error) { refused('Rollback')(error); }
  };
  const source = json.source === 'store' ? `stored, applied by ${json.applied_by} at ${json.applied_at}` : 'the config’s file';
  node.append(el('h3', { id: `policy-${kind}-title` }, title), said,
    details([['Version', el('span', { class: 'mono' }, json.version)], ['Source', source], ['Snapshot', String(json.snapshot)]]),
    el('pre', { class: 'mono scroll policy', tabindex: '0', 'aria-label': `${title} in force` }, JSON.stringify(json.policy, null, 2)),
    ...(mayChange() && !mayApply(kind) ? [el('p', { class: 'note' }, `Applying the ${kind} policy needs a ${role} account; yours may validate.`)] : []),
    form, result, await historyTable(kind, json.version, mayApply(kind), rollBack));
  return node;
}

/** The page: both policies; validating needs an operator or security account, applying the role each names. */
export async function render(view) {
  view.append(el('h2', {}, 'Policies'),
    el('p', { class: 'muted' }, 'As every instance serves them, every default filled in: the newest version applied here or with klarna-gateway policies, else the config’s file. A proposed file is checked first; once valid it can be applied.'),
    ...(mayChange() ? [] : [el('p', { class: 'note' }, 'Your role is viewer: validating needs an operator or security account.')]));
  for (const [kind, title, role] of kinds) view.append(await section(kind, title, role));
}
