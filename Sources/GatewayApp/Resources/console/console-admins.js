// Admin accounts (security role): list, add (the new token shown once, with a copy hint), remove after a question.
// The API answers a token only in the addition's answer, so this page is the one place it can be copied from; it is
// kept in no variable and is gone once the list is redrawn or the page left.
import { call, isSecurity, accountName } from './console-api.js';
import { el, table, say, errorText, confirmButton } from './console-view.js';

/** The page; other roles are told it needs a security account and the API is not asked. */
export async function render(view) {
  view.append(el('h2', {}, 'Admin accounts'));
  if (!isSecurity()) {
    view.append(el('p', { id: 'admins-need-security', class: 'note' }, 'Admin accounts are listed and changed by a security account only.'));
    return;
  }
  const name = el('input', { id: 'admin-name', required: true, autocomplete: 'off', maxlength: 64, spellcheck: 'false' });
  const role = el('select', { id: 'admin-role' }, ['viewer', 'operator', 'security'].map((r) => el('option', { value: r }, r)));
  // A certificate fingerprint binds the account to a client certificate; without a token the certificate alone is
  // the account (no bearer secret to leak), which the API refuses without a fingerprint.
  const fingerprint = el('input', { id: 'admin-fingerprint', autocomplete: 'off', maxlength: 95, spellcheck: 'false', placeholder: '64 hex digits (optional)' });
  const noToken = el('input', { id: 'admin-no-token', type: 'checkbox' });
  const add = el('form', { id: 'admin-add' }, el('label', {}, 'Name', name), el('label', {}, 'Role', role),
    el('label', { class: 'wide' }, 'Client certificate SHA-256 fingerprint', fingerprint),
    el('label', { class: 'check' }, el('span', {}, noToken, ' No token: the certificate alone is the account')), el('button', { type: 'submit' }, 'Add admin'));
  const body = el('div', { id: 'admins' });
  view.append(add, body);

  // The token once: monospaced, selectable in one click, with what to do with it.
  function shownOnce(admin, token) {
    const text = el('p', { id: 'admin-token', class: 'mono', tabindex: '0' }, token);
    const copy = el('button', { type: 'button', id: 'admin-token-copy', class: 'secondary' }, 'Copy token');
    copy.addEventListener('click', async () => {
      // Selected first, so Ctrl+C (⌘C) works where the clipboard API is not allowed.
      const range = document.createRange();
      range.selectNodeContents(text);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      try { await navigator.clipboard.writeText(text.textContent); say('Token copied to the clipboard.'); }
      catch { say('The token is selected: press Ctrl+C (⌘C on a Mac) to copy it.'); }
    });
    return [el('p', { role: 'alert' }, `Token of ${admin.name} (${admin.role}), shown once: copy it now and hand it over safely; it cannot be shown again.`),
      text, el('div', { class: 'actions' }, copy)];
  }

  async function show(...message) {
    const { json } = await call('GET', '/admin/v1/admins');
    const me = accountName();
    const remove = (a) => confirmButton(`admin-remove-${a.name}`, `Remove ${a.name}…`,
      `Remove admin ${a.name} (${a.role})? Its token stops working at once.`, `Yes, remove ${a.name}`, async () => {
        try {
          const { requestID } = await call('DELETE', `/admin/v1/admins/${encodeURIComponent(a.name)}`);
          await show(`Admin ${a.name} removed (request ${requestID}).`);
        } catch (error) { await show(`Remove refused: ${errorText(error)}`); }
      }, a.name === me);
    body.replaceChildren(
      ...message.map((m) => typeof m === 'string' ? el('p', { role: 'alert', id: 'admins-message' }, m) : m),
      table('Admin accounts', [{ title: 'Name' }, { title: 'Role' }, { title: 'Created (UTC)' }, { title: 'Token' }, { title: 'Certificate (SHA-256)' }, { title: 'Action' }],
        json.admins.map((a) => [a.name, a.role, a.created, a.has_token ? 'yes' : 'no (certificate only)', el('span', { class: 'mono' }, a.certificate_fingerprint ?? '—'),
          a.name === me ? el('span', { class: 'muted' }, 'you (remove with another account)') : remove(a)])));
  }
  add.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const request = { name: name.value.trim(), role: role.value };
      if (fingerprint.value.trim()) request.certificate_fingerprint = fingerprint.value.trim();
      if (noToken.checked) request.token = false;
      const { json, requestID } = await call('POST', '/admin/v1/admins', { body: request });
      name.value = '';
      fingerprint.value = '';
      noToken.checked = false;
      if (json.token) await show(...shownOnce(json.admin, json.token));
      else await show(`Admin ${json.admin.name} (${json.admin.role}) added with no token (request ${requestID}): the client certificate ${json.admin.certificate_fingerprint} is the account.`);
    } catch (error) { await show(`Add refused: ${errorText(error)}`); }
  });
  await show();
}
