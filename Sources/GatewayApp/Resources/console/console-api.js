// The admin API as the console calls it. The token lives in this module's memory only, never in storage or a
// cookie: a reload forgets it, and no other page can read it or make the browser send it.
let token = null;

/** Keeps the token for the calls that follow. */
export function setToken(value) { token = value; }

/** Forgets the token and the account. */
export function clearToken() { token = null; account = null; }

// The account the token belongs to ({ name, role }), read at login.
let account = null;

/** Keeps the logged-in account. */
export function setAccount(value) { account = value; }

/** Whether the logged-in account may change merchants and callers (operator or security). */
export function mayChange() { return account !== null && account.role !== 'viewer'; }

/** Whether the logged-in account may manage admin accounts and partners (security). */
export function isSecurity() { return account !== null && account.role === 'security'; }

/** The logged-in account's name, or null. */
export function accountName() { return account?.name ?? null; }

/** Whether an account is logged in: by its token, or by the browser's client certificate alone (no token). */
export function loggedIn() { return account !== null; }

/** A refusal of the API, with its error code and request id. */
export class APIError extends Error {
  constructor(status, body, requestID) {
    super(body?.error_message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error_code ?? null;
    this.requestID = requestID;
  }
}

/** One call: resolves to { json, etag, requestID } or throws an APIError. `body` is sent as JSON; `raw` as it is,
 * with `contentType` (a CSV file for the merchant import). */
export async function call(method, path, { body, ifMatch, raw, contentType } = {}) {
  // Without a token the TLS handshake's client certificate is the only credential, so no Authorization is sent.
  const headers = token === null ? { Accept: 'application/json' } : { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (raw !== undefined) headers['Content-Type'] = contentType ?? 'text/plain';
  if (ifMatch) headers['If-Match'] = ifMatch;
  const response = await fetch(path, {
    method, headers, body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit', cache: 'no-store', redirect: 'error',
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  const requestID = response.headers.get('Klarna-Gateway-Request-Id');
  if (!response.ok) throw new APIError(response.status, json, requestID);
  return { json, etag: response.headers.get('ETag'), requestID };
}

/** `path?name=value&…` with the empty values left out. */
export function withQuery(path, parameters) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
