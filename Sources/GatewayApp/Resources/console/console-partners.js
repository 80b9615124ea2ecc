// Partners: the list, and one partner by reference (credential ids and versions, the certificate's fingerprint; the
// API never answers a secret); a security account uploads a new API key and/or certificate with its private key.
// The secret fields are emptied as soon as the upload is sent, whatever its answer, so no secret stays in the page.
import { call, isSecurity } from './console-api.js';
import { el, table, details, errorText } from './console-view.js';

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
    const { json } = await call('GET', '/admin/v1/partners');
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

