// The merchants page's forms: add a merchant, import a CSV file of them, and change one's partner, account and
// groups (with the ETag read, so a concurrent change is refused with 412 rather than overwritten). An own API key is
// not offered: it is a secret, set with the CLI.
import { call, mayChange } from './console-api.js';
import { el, errorText } from './console-view.js';

/** Groups typed as `eu, nordics`: trimmed, empty ones left out. */
function groupList(text) { return text.split(',').map((g) => g.trim()).filter(Boolean); }

/** A select of the partners (id and environment); `chosen` is selected. */
async function partnerSelect(id, chosen) {
  const { json } = await call('GET', '/admin/v1/partners');
  return el('select', { id, required: true }, json.partners.map((p) => el('option', { value: p.id, selected: p.id === chosen }, `${p.id} (${p.environment})`)));
}

/** "Add a merchant": id, partner, account KRN, groups; on success the new merchant's page is opened. */
export async function addForm() {
  const readOnly = !mayChange();
  const id = el('input', { id: 'merchant-new-id', required: true, maxlength: 64, autocomplete: 'off' });
  const partner = await partnerSelect('merchant-new-partner', null);
  const account = el('input', { id: 'merchant-new-account', required: true, maxlength: 200, autocomplete: 'off', placeholder: 'krn:partner:global:account:test:…' });
  const groups = el('input', { id: 'merchant-new-groups', maxlength: 500, autocomplete: 'off', placeholder: 'eu, nordics' });
  const message = el('div', { id: 'merchant-add-message' });
  const form = el('form', { id: 'merchant-add' }, el('label', {}, 'Id', id), el('label', {}, 'Partner', partner), el('label', {}, 'Account', account),
    el('label', {}, 'Groups (comma-separated)', groups), el('button', { type: 'submit', disabled: readOnly }, 'Add merchant'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { json } = await call('POST', '/admin/v1/merchants', { body: { id: id.value.trim(), partner_id: partner.value, account: account.value.trim(), groups: groupList(groups.value) } });
      location.hash = `#merchant/${encodeURIComponent(json.id)}`;
    } catch (error) { message.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Add refused: ${errorText(error)}`)); }
  });
  return el('section', { 'aria-labelledby': 'merchant-add-title' }, el('h3', { id: 'merchant-add-title' }, 'Add a merchant'), form, message);
}

/** "Change": the merchant's partner, account and groups, sent as a PATCH of what changed through `act`. */
export async function editForm(m, act) {
  const partner = await partnerSelect('merchant-edit-partner', m.partner_id);
  const account = el('input', { id: 'merchant-edit-account', required: true, maxlength: 200, autocomplete: 'off', value: m.account });
  const groups = el('input', { id: 'merchant-edit-groups', maxlength: 500, autocomplete: 'off', value: m.groups.join(', ') });
  const form = el('form', { id: 'merchant-edit' }, el('label', {}, 'Partner', partner), el('label', {}, 'Account', account),
    el('label', {}, 'Groups (comma-separated)', groups), el('button', { type: 'submit', disabled: !mayChange() }, 'Save changes'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const change = {};
    if (partner.value !== m.partner_id) change.partner_id = partner.value;
    if (account.value.trim() !== m.account) change.account = account.value.trim();
    const newGroups = groupList(groups.value);
    if (newGroups.join(',') !== m.groups.join(',')) change.groups = newGroups;
    act('Change', 'PATCH', `/admin/v1/merchants/${encodeURIComponent(m.id)}`, change);
  });
  return el('section', { 'aria-labelledby': 'merchant-edit-title' }, el('h3', { id: 'merchant-edit-title' }, 'Change partner, account or groups'), form);
}

// The API takes an import of at most 8 MiB; a bigger file is refused here before it is sent.
const maximumImportBytes = 8 * 1024 * 1024;

/** "Import from CSV": a file of `id,partner,account[,group]` lines sent as it is to the import, which takes all of it
 * or nothing. The answer's counts are shown; a 400's problems one per line, as the API numbers them. */
export function importForm(refresh) {
  const file = el('input', { id: 'merchant-import-file', type: 'file', accept: '.csv,text/csv', required: true });
  const message = el('div', { id: 'merchant-import-message' });
  const form = el('form', { id: 'merchant-import' }, el('label', {}, 'CSV file (id,partner,account[,group])', file),
    el('button', { type: 'submit', disabled: !mayChange() }, 'Import'));
  const show = (...nodes) => message.replaceChildren(...nodes.filter(Boolean));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) { show(el('p', { class: 'error', role: 'alert' }, 'Choose a CSV file first.')); return; }
    if (chosen.size > maximumImportBytes) { show(el('p', { class: 'error', role: 'alert' }, 'The file is over 8 MiB: split it.')); return; }
    show(el('p', { class: 'muted', role: 'status' }, `Importing ${chosen.name}…`));
    try {
      const { json, requestID } = await call('POST', '/admin/v1/merchants/import', { raw: await chosen.text(), contentType: 'text/csv' });
      form.reset();
      show(el('p', { role: 'alert' }, `Imported ${chosen.name}: ${json.added} added, ${json.updated} updated (request ${requestID}).`));
      await refresh();
    } catch (error) {
      // The import's refusal is its first line, then one problem per line ("line 3: …").
      const [first, ...problems] = error.message.split('\n');
      show(el('p', { class: 'error', role: 'alert' }, `Import refused: ${first}`, ` · ${error.code ?? ''} · request ${error.requestID ?? '—'}`),
        problems.length ? el('ul', { id: 'merchant-import-problems' }, problems.map((p) => el('li', {}, p))) : null);
    }
  });
  return el('section', { 'aria-labelledby': 'merchant-import-title' }, el('h3', { id: 'merchant-import-title' }, 'Import merchants from CSV'),
    el('p', { class: 'note' }, 'All or nothing: existing merchants keep their status, own key and pin; their partner, account and groups are replaced. Groups are separated by ";".'),
    form, message);
}
