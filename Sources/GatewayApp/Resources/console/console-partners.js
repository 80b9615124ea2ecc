// Partners: the list, and one partner by reference (credential ids and versions, the certificate's fingerprint; the
// API never answers a secret); a security account uploads a new API key and/or certificate with its private key,
// changes the base URL, auth form or default release, and removes a partner no merchant uses, each under the
// partner's ETag. The secret fields are emptied as soon as the upload is sent, whatever its answer, so no secret stays
// in the page.
import { call, isSecurity } from './console-api.js';
import { el, table, details, errorText, confirmButton } from './console-view.js';

const reference = (c) => c ? `${c.credential_id} v${c.version}` : 'none';

function partnerLink(id) { return el('a', { href: `#partner/${encodeURIComponent(id)}` }, id); }

/** Every partner. */
export async function render(view) {
  const { json } = await call('GET', '/admin/v1/partners');
  view.append(el('h2', {}, 'Partners'),
    table('Partners', [{ title: 'Id' }, { title: 'Environment' }, { title: 'Base URL' }, { title: 'API key' }, { title: 'Client key' }, { title: 'Certificate (SHA-256)' }, { title: 'Default release' }],
      json.partners.map((p) => [partnerLink(p.id), p.environment, el('span', { class: 'mono' }, p.base_url), reference(p.api_key), reference(p.client_key),
        el('span', { class: 'mono' }, p.client_certificate_fingerprint ?? '—'), p.default_release ?? 'none'])));
}

/** One partner, read from the list (the API has no single-partner read); its `etag` goes with every change. */
export async function renderOne(view, id) {
  view.append(el('p', {}, el('a', { href: '#partners' }, '← Partners')));
  const body = el('div', {});
  view.append(body);
  async function show(...message) {
    const [{ json }, releases] = await Promise.all([call('GET', '/admin/v1/partners'), call('GET', '/admin/v1/releases').then((r) => r.json).catch(() => null)]);
    const p = json.partners.find((x) => x.id === id);
    if (!p) { body.replaceChildren(el('h2', {}, `Partner ${id}`), ...message, el('p', { class: 'error', role: 'alert' }, 'No such partner.')); return; }
    const parts = [
      el('h2', {}, `Partner ${p.id}`),
      details([
        ['Environment', p.environment], ['Base URL', el('span', { class: 'mono' }, p.base_url)], ['Auth form', p.auth_form],
        ['API key', reference(p.api_key)], ['Client key', reference(p.client_key)],
        ['Certificate (SHA-256)', el('span', { class: 'mono', id: 'partner-fingerprint' }, p.client_certificate_fingerprint ?? '—')],
        ['Default release', p.default_release ?? 'none'],
      ], 'detail'),
      ...message,
      credentialsForm(p, show),
      changeForm(p, releases, show),
      el('h3', {}, 'Remove'),
      el('p', { class: 'note' }, 'Only a partner no merchant uses can be removed (move or remove its merchants first); its sealed key and client key go with it.'),
      confirmButton('partner-remove', `Remove partner ${p.id}…`, `Remove partner ${p.id} and its sealed secrets? This cannot be undone.`, `Yes, remove ${p.id}`, async () => {
        try {
          const { requestID } = await call('DELETE', `/admin/v1/partners/${encodeURIComponent(p.id)}`, { ifMatch: p.etag });
          body.replaceChildren(el('h2', {}, `Partner ${p.id}`), el('p', { id: 'partner-removed', role: 'alert' }, `Partner ${p.id} removed (request ${requestID}).`),
            el('p', {}, el('a', { href: '#partners' }, 'Back to the partners')));
        } catch (error) {
          await show(el('p', { id: 'partner-message', class: 'error', role: 'alert' }, `Remove refused: ${errorText(error)}`));
        }
      }, !isSecurity()),
    ];
    if (!isSecurity()) parts.push(el('p', { id: 'partner-read-only', class: 'note' }, 'Partners are changed by a security account only.'));
    body.replaceChildren(...parts);
  }
  await show();
}

/** "Upload credentials": a new API key, and/or a certificate with its private key (PEM), under the partner's ETag. */
function credentialsForm(p, show) {
  const apiKey = el('input', { id: 'partner-api-key', type: 'password', autocomplete: 'off', spellcheck: 'false', maxlength: 4096 });
  const certificate = el('textarea', { id: 'partner-certificate', rows: 4, spellcheck: 'false', autocomplete: 'off', placeholder: '-----BEGIN CERTIFICATE-----' });
  const privateKey = el('textarea', { id: 'partner-private-key', rows: 4, spellcheck: 'false', autocomplete: 'off', placeholder: '-----BEGIN PRIVATE KEY-----' });
  const form = el('form', { id: 'partner-credentials' },
    el('label', { class: 'wide' }, `New API key (klarna_${p.environment}_api_…)`, apiKey),
    el('label', { class: 'wide' }, 'New client certificate (PEM, leaf first)', certificate),
    el('label', { class: 'wide' }, 'Its private key (PEM, EC P-256)', privateKey),
    el('button', { type: 'submit', disabled: !isSecurity() }, 'Upload credentials'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const upload = {};
    if (apiKey.value.trim()) upload.api_key = apiKey.value.trim();
    if (certificate.value.trim()) upload.certificate_pem = certificate.value.trim() + '\n';
    if (privateKey.value.trim()) upload.private_key_pem = privateKey.value.trim() + '\n';
    // Emptied before the answer comes, so a secret never outlives its sending in the page, refused or not.
    apiKey.value = '';
    certificate.value = '';
    privateKey.value = '';
    if (Object.keys(upload).length === 0) { await show(el('p', { id: 'partner-message', class: 'error', role: 'alert' }, 'Nothing to upload: fill in a key, or a certificate with its key.')); return; }
    try {
      const { json: now, requestID } = await call('PUT', `/admin/v1/partners/${encodeURIComponent(p.id)}/credentials`, { ifMatch: p.etag, body: upload });
      await show(el('p', { id: 'partner-message', role: 'alert' },
        `Credentials uploaded (request ${requestID}): API key ${reference(now.api_key)}, client key ${reference(now.client_key)}, certificate SHA-256 ${now.client_certificate_fingerprint ?? '—'}.`));
    } catch (error) {
      await show(el('p', { id: 'partner-message', class: 'error', role: 'alert' }, `Upload refused: ${errorText(error)} (the fields were emptied; fill them in again)`));
    }
  });
  return el('section', { 'aria-labelledby': 'partner-credentials-title' }, el('h3', { id: 'partner-credentials-title' }, 'Upload credentials'),
    el('p', { class: 'note' }, 'Checked as the CLI checks them, then sealed with the master key as the next version; afterwards the page shows only references (credential id, version, fingerprint). Leave a part empty to keep it.'),
    form);
}

/** "Change": base URL, auth form and default release (a release available in the partner's environment, or none);
 * only what changed is sent, with the partner's ETag. */
function changeForm(p, releases, show) {
  const baseURL = el('input', { id: 'partner-base-url', type: 'url', required: true, maxlength: 2048, autocomplete: 'off', spellcheck: 'false', value: p.base_url });
  const authForm = el('select', { id: 'partner-auth-form' }, [['raw', 'raw (Basic KEY)'], ['empty-user', 'empty-user (Basic :KEY)']]
    .map(([value, text]) => el('option', { value, selected: value === p.auth_form }, text)));
  const offered = releases?.environments.find((e) => e.environment === p.environment)?.releases.filter((r) => r.available || r.id === p.default_release) ?? [];
  const release = el('select', { id: 'partner-default-release' }, el('option', { value: '' }, 'none (the newest available)'),
    offered.map((r) => el('option', { value: r.id, selected: r.id === p.default_release }, r.id)));
  const form = el('form', { id: 'partner-edit' }, el('label', { class: 'wide' }, 'Base URL', baseURL), el('label', {}, 'Auth form', authForm),
    el('label', {}, 'Default release', release), el('button', { type: 'submit', disabled: !isSecurity() }, 'Save changes'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const change = {};
    if (baseURL.value.trim() !== p.base_url) change.base_url = baseURL.value.trim();
    if (authForm.value !== p.auth_form) change.auth_form = authForm.value;
    if ((release.value || null) !== p.default_release) change.default_release = release.value || null;
    if (Object.keys(change).length === 0) { await show(el('p', { id: 'partner-message', role: 'alert' }, 'Nothing changed.')); return; }
    try {
      const { requestID } = await call('PATCH', `/admin/v1/partners/${encodeURIComponent(p.id)}`, { ifMatch: p.etag, body: change });
      await show(el('p', { id: 'partner-message', role: 'alert' }, `Change: done (request ${requestID}).`));
    } catch (error) {
      await show(el('p', { id: 'partner-message', class: 'error', role: 'alert' }, `Change refused: ${errorText(error)}`));
    }
  });
  return el('section', { 'aria-labelledby': 'partner-edit-title' }, el('h3', { id: 'partner-edit-title' }, 'Change base URL, auth form or default release'), form);
}
