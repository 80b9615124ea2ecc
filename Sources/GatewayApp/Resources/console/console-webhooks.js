// Webhooks: destinations (secrets by reference only), the partners' signing keys by id, and the newest events with
// each delivery's state. An operator replays an event; a security account adds and removes destinations, adds,
// rotates (at Klarna) and removes signing keys. Secret fields are emptied as soon as a form is sent, whatever the
// answer, so no secret stays in the page; an event's body is never shown (the API answers its size and hash only).
import { call, withQuery, mayChange, isSecurity } from './console-api.js';
import { el, badge, table, details, errorText, confirmButton } from './console-view.js';

const reference = (c) => c ? `${c.credential_id} v${c.version}` : 'none';
// A state word with its shape and colour, never colour alone.
const stateKind = { delivered: 'ok', pending: 'warn', unrouted: 'warn', dead: 'bad', unroutable: 'bad' };
const state = (word) => badge(word, stateKind[word] ?? 'warn');

/** The page: three sections, each redrawn after a change made in it. */
export async function render(view) {
  const message = el('div', { id: 'webhooks-message' });
  const destinations = el('section', { id: 'webhook-destinations', 'aria-labelledby': 'webhook-destinations-title' });
  const keys = el('section', { id: 'webhook-keys', 'aria-labelledby': 'webhook-keys-title' });
  const events = el('section', { id: 'webhook-events', 'aria-labelledby': 'webhook-events-title' });
  view.append(el('h2', {}, 'Webhooks'), message, destinations, keys, events);
  if (!isSecurity()) view.append(el('p', { id: 'webhooks-read-only', class: 'note' }, 'Destinations and signing keys are changed by a security account only.'));
  const tell = (text, error = false) => message.replaceChildren(el('p', { role: 'alert', class: error ? 'error' : null }, text));
  const { json: partners } = await call('GET', '/admin/v1/partners');
  await Promise.all([showDestinations(destinations, tell), showKeys(keys, tell, partners.partners), showEvents(events, tell)]);
}

async function showDestinations(section, tell) {
  const { json } = await call('GET', '/admin/v1/webhooks/destinations');
  const remove = (d) => confirmButton(`destination-remove-${d.name}`, `Remove ${d.name}…`,
    `Remove destination ${d.name}? Its pending deliveries become dead.`, `Yes, remove ${d.name}`, async () => {
      try {
        const { requestID } = await call('DELETE', `/admin/v1/webhooks/destinations/${encodeURIComponent(d.name)}`, { ifMatch: d.etag });
        tell(`Destination ${d.name} removed (request ${requestID}).`);
      } catch (error) { tell(`Remove refused: ${errorText(error)}`, true); }
      await showDestinations(section, tell);
    }, !isSecurity());
  const replacing = el('div', { id: 'destination-replace' });
  // "Change…": the API replaces a destination whole under its etag, so its secret is typed again (it is sealed and
  // never answered); left empty, the destination's deliveries are no longer signed.
  const change = (d) => {
    const button = el('button', { type: 'button', class: 'secondary', id: `destination-change-${d.name}`, disabled: !isSecurity() }, `Change ${d.name}…`);
    button.addEventListener('click', () => {
      const newURL = el('input', { id: 'destination-new-url', type: 'url', required: true, autocomplete: 'off', maxlength: 2048, spellcheck: 'false', value: d.url });
      const newSecret = el('input', { id: 'destination-new-secret', type: 'password', autocomplete: 'off', spellcheck: 'false', maxlength: 4096 });
      const form = el('form', { id: 'destination-replace-form' }, el('label', { class: 'wide' }, 'URL', newURL),
        el('label', {}, 'Signing secret (typed again, or a new one)', newSecret), el('button', { type: 'submit' }, `Replace ${d.name}`));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const body = { url: newURL.value.trim() };
        if (newSecret.value) body.secret = newSecret.value;
        newSecret.value = '';
        try {
          const { json: now, requestID } = await call('PUT', `/admin/v1/webhooks/destinations/${encodeURIComponent(d.name)}`, { ifMatch: d.etag, body });
          tell(`Destination ${now.name} replaced (request ${requestID}): secret ${reference(now.secret)}.`);
        } catch (error) { tell(`Replace refused: ${errorText(error)} (the secret field was emptied)`, true); }
        await showDestinations(section, tell);
      });
      replacing.replaceChildren(el('h4', {}, `Replace destination ${d.name}`),
        el('p', { class: 'note' }, 'The destination is replaced whole: its secret is sealed and never shown, so type it again (or a new one); left empty, deliveries to it are no longer signed. A client certificate is changed with the API or the CLI.'),
        form);
      newURL.focus();
    });
    return button;
  };
  const name = el('input', { id: 'destination-name', required: true, autocomplete: 'off', maxlength: 64, spellcheck: 'false' });
  const url = el('input', { id: 'destination-url', type: 'url', required: true, autocomplete: 'off', maxlength: 2048, spellcheck: 'false', placeholder: 'https (http to loopback only)' });
  const secret = el('input', { id: 'destination-secret', type: 'password', autocomplete: 'off', spellcheck: 'false', maxlength: 4096 });
  const certificate = el('textarea', { id: 'destination-certificate', rows: 3, spellcheck: 'false', autocomplete: 'off', placeholder: '-----BEGIN CERTIFICATE----- (optional)' });
  const privateKey = el('textarea', { id: 'destination-private-key', rows: 3, spellcheck: 'false', autocomplete: 'off', placeholder: '-----BEGIN PRIVATE KEY----- (with the certificate)' });
  const form = el('form', { id: 'destination-add' }, el('label', {}, 'Name', name), el('label', { class: 'wide' }, 'URL', url),
    el('label', {}, 'Signing secret (optional)', secret), el('label', { class: 'wide' }, 'Client certificate (PEM, optional)', certificate),
    el('label', { class: 'wide' }, 'Its private key (PEM)', privateKey), el('button', { type: 'submit', disabled: !isSecurity() }, 'Add destination'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), url: url.value.trim() };
    if (secret.value) body.secret = secret.value;
    if (certificate.value.trim()) body.client_certificate_pem = certificate.value.trim() + '\n';
    if (privateKey.value.trim()) body.client_key_pem = privateKey.value.trim() + '\n';
    // Emptied before the answer comes, so a secret never outlives its sending in the page, refused or not.
    secret.value = '';
    privateKey.value = '';
    try {
      const { json: added, requestID } = await call('POST', '/admin/v1/webhooks/destinations', { body });
      tell(`Destination ${added.name} added (request ${requestID}): secret ${reference(added.secret)}.`);
    } catch (error) { tell(`Add refused: ${errorText(error)} (the secret fields were emptied)`, true); }
    await showDestinations(section, tell);
  });
  section.replaceChildren(el('h3', { id: 'webhook-destinations-title' }, 'Destinations'),
    table('Webhook destinations', [{ title: 'Name' }, { title: 'URL' }, { title: 'Secret' }, { title: 'Client certificate (SHA-256)' }, { title: 'Action' }],
      json.destinations.map((d) => [d.name, el('span', { class: 'mono' }, d.url), reference(d.secret), el('span', { class: 'mono' }, d.client_certificate_fingerprint ?? '—'),
        el('span', { class: 'actions' }, change(d), remove(d))])),
    replacing, form);
}

async function showKeys(section, tell, partners) {
  const { json } = await call('GET', '/admin/v1/webhooks/keys');
  // Klarna's key ids are long KRNs: the button says "Remove key…" (its accessible name and the question name the key),
  // so that the id column keeps the row's width on a phone.
  const remove = (k) => named(confirmButton(`key-remove-${k.partner_id}-${k.key_id}`, 'Remove key…',
    `Remove signing key ${k.key_id} of ${k.partner_id}? Events signed with it are refused from now on.`, `Yes, remove ${k.key_id}`, async () => {
      try {
        const { requestID } = await call('DELETE', `/admin/v1/webhooks/keys/${encodeURIComponent(k.partner_id)}/${encodeURIComponent(k.key_id)}`);
        tell(`Signing key ${k.key_id} removed (request ${requestID}).`);
      } catch (error) { tell(`Remove refused: ${errorText(error)}`, true); }
      await showKeys(section, tell, partners);
    }, !isSecurity()), `Remove signing key ${k.key_id} of ${k.partner_id}`);
  const choose = (id) => el('select', { id }, partners.map((p) => el('option', { value: p.id }, p.id)));
  const partner = choose('key-partner');
  const keyID = el('input', { id: 'key-id', required: true, autocomplete: 'off', maxlength: 256, spellcheck: 'false' });
  const secret = el('input', { id: 'key-secret', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false', maxlength: 4096 });
  const add = el('form', { id: 'key-add' }, el('label', {}, 'Partner', partner), el('label', {}, 'Klarna key id', keyID), el('label', {}, 'Secret', secret),
    el('button', { type: 'submit', disabled: !isSecurity() }, 'Add key'));
  add.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { partner_id: partner.value, key_id: keyID.value.trim(), secret: secret.value };
    secret.value = '';
    try {
      const { json: k, requestID } = await call('POST', '/admin/v1/webhooks/keys', { body });
      tell(`Signing key ${k.key_id} of ${k.partner_id} sealed (request ${requestID}).`);
    } catch (error) { tell(`Add refused: ${errorText(error)} (the secret field was emptied)`, true); }
    await showKeys(section, tell, partners);
  });
  const rotating = choose('rotate-partner');
  const rotate = el('form', { id: 'key-rotate' }, el('label', {}, 'Partner', rotating), el('button', { type: 'submit', disabled: !isSecurity() }, 'Rotate at Klarna'));
  rotate.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { json: r, requestID } = await call('POST', '/admin/v1/webhooks/keys/rotate', { body: { partner_id: rotating.value } });
      tell(`New signing key ${r.key.key_id} of ${r.key.partner_id} sealed; webhooks moved: ${r.moved.length ? r.moved.join(', ') : 'none'} (request ${requestID}).`);
    } catch (error) { tell(`Rotation refused: ${errorText(error)}`, true); }
    await showKeys(section, tell, partners);
  });
  section.replaceChildren(el('h3', { id: 'webhook-keys-title' }, 'Signing keys'),
    table('Signing keys', [{ title: 'Partner' }, { title: 'Key id' }, { title: 'Sealed under master key', num: true }, { title: 'Action' }],
      json.keys.map((k) => [k.partner_id, el('span', { class: 'mono' }, k.key_id), `v${k.sealed_under}`, remove(k)])),
    el('p', { class: 'note' }, 'A key made at Klarna elsewhere is added with its secret; a rotation asks Klarna for a new key and moves every webhook of the partner to it (older keys stay accepted until removed).'),
    add, rotate);
}

async function showEvents(section, tell, filter = '') {
  const { json } = await call('GET', withQuery('/admin/v1/webhooks/events', { state: filter, limit: 20 }));
  const choice = el('select', { id: 'events-state' }, ['', 'pending', 'delivered', 'dead', 'unroutable', 'unrouted']
    .map((s) => el('option', { value: s, selected: s === filter }, s || 'any state')));
  const form = el('form', { id: 'events-filter' }, el('label', {}, 'State', choice), el('button', { type: 'submit', class: 'secondary' }, 'Show'));
  form.addEventListener('submit', (event) => { event.preventDefault(); showEvents(section, tell, choice.value); });
  const shown = el('div', { id: 'event-detail' });
  const deliveries = (e) => e.deliveries.length === 0 ? el('span', { class: 'muted' }, 'none')
    : el('span', {}, e.deliveries.map((d) => el('span', { class: 'delivery' }, `${d.destination}: `, state(d.state), ` ${d.attempts} attempt(s)`, d.last_status ? ` · HTTP ${d.last_status}` : '', ' ')));
  const replay = (e) => {
    const button = el('button', { type: 'button', id: `replay-${e.event_id}`, disabled: !mayChange() || e.deliveries.length === 0 }, 'Replay');
    button.addEventListener('click', async () => {
      try {
        const { json: r, requestID } = await call('POST', `/admin/v1/webhooks/events/${encodeURIComponent(e.event_id)}/replay`);
        tell(`Event ${e.event_id}: ${r.replayed} deliveries due again (request ${requestID}).`);
      } catch (error) { tell(`Replay refused: ${errorText(error)}`, true); }
      await showEvents(section, tell, filter);
    });
    return button;
  };
  const open = (e) => {
    const button = el('button', { type: 'button', class: 'linkish' }, e.event_id);
    button.addEventListener('click', async () => {
      const { json: d } = await call('GET', `/admin/v1/webhooks/events/${encodeURIComponent(e.event_id)}`);
      shown.replaceChildren(el('h4', {}, `Event ${d.event_id}`),
        details([['Type', d.event_type], ['State', state(d.state)], ['Partner', d.partner_id], ['Signing key', d.signing_key_id], ['Account', d.account],
          ['Merchant', d.merchant_id ?? 'none (unroutable)'], ['Received (UTC)', d.received], ['Body', `${d.body_bytes} bytes, SHA-256 ${d.body_sha256} (not shown here)`]]),
        table('Attempts', [{ title: 'Destination' }, { title: 'Attempt', num: true }, { title: 'Time (UTC)' }, { title: 'Result' }, { title: 'Instance' }],
          d.attempts.map((a) => [a.destination, a.attempt, a.time, a.status ? `HTTP ${a.status}` : (a.error ?? 'no answer'), a.node_id])));
      shown.focus();
    });
    return button;
  };
  shown.setAttribute('tabindex', '-1');
  section.replaceChildren(el('h3', { id: 'webhook-events-title' }, 'Recent events'), form,
    table('Webhook events, newest first', [{ title: 'Event id' }, { title: 'Type' }, { title: 'Merchant' }, { title: 'Received (UTC)' }, { title: 'State' }, { title: 'Deliveries' }, { title: 'Action' }],
      json.events.map((e) => [open(e), e.event_type, e.merchant_id ?? '—', e.received, state(e.state), deliveries(e), replay(e)])),
    ...(mayChange() ? [] : [el('p', { id: 'events-read-only', class: 'note' }, 'Your role is viewer: a replay needs an operator or security account.')]),
    shown);
}

/** `box` (a confirmButton) with `label` as its button's accessible name. */
function named(box, label) {
  box.querySelector('button').setAttribute('aria-label', label);
  return box;
}
