// Policies: the access and rate-limit policies this instance runs, and a proposed file checked as a reload would
// check it, without applying it (policies are files deployed to every instance: docs/admin-api.md, "Policies").
import { call, mayChange } from './console-api.js';
import { el, badge, details, errorText } from './console-view.js';

const kinds = [['access', 'Access (policies/access.yaml)'], ['rate-limits', 'Rate limits (policies/rate-limits.yaml)']];

/** One policy: its version and text as read, and a form that validates a proposed file. */
async function section(kind, title) {
  const { json } = await call('GET', `/admin/v1/policies/${kind}`);
  const proposed = el('textarea', { id: `policy-${kind}-yaml`, rows: 8, maxlength: 60000, spellcheck: 'false', autocomplete: 'off', class: 'mono' });
  const result = el('div', { id: `policy-${kind}-result` });
  const form = el('form', { id: `policy-${kind}-form` }, el('label', { class: 'wide' }, 'Proposed file (YAML)', proposed),
    el('button', { type: 'submit', disabled: !mayChange() }, 'Validate'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { json: v } = await call('POST', `/admin/v1/policies/${kind}/validate`, { body: { yaml: proposed.value } });
      result.replaceChildren(details([
        ['Result', badge('valid', 'ok')], ['Version', v.version], ['Differs from the one in force', v.changed ? 'yes' : 'no (the same version)'],
        ...v.warnings.map((w) => ['Warning', w]),
      ]));
    } catch (error) { result.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Not valid: ${errorText(error)}`)); }
  });
  return el('section', { 'aria-labelledby': `policy-${kind}-title` },
    el('h3', { id: `policy-${kind}-title` }, title),
    details([['Version', el('span', { class: 'mono' }, json.version)], ['Snapshot', String(json.snapshot)]]),
    el('pre', { class: 'mono scroll policy', tabindex: '0', 'aria-label': `${title} in force` }, JSON.stringify(json.policy, null, 2)),
    form, result);
}

/** The page: both policies; validating needs an operator or security account. */
export async function render(view) {
  view.append(el('h2', {}, 'Policies'),
    el('p', { class: 'muted' }, 'As this instance read them, every default filled in. A change is made in the file and deployed to every instance; here a proposed file is only checked.'),
    ...(mayChange() ? [] : [el('p', { class: 'note' }, 'Your role is viewer: validating needs an operator or security account.')]));
  for (const [kind, title] of kinds) view.append(await section(kind, title));
}
