// The console's entry: login and logout, and a hash router over the pages. Each page is a module whose
// `render(view, argument)` fills the view and may return a function that stops its timers when the page is left.
import { call, setToken, setAccount, clearToken, loggedIn, isSecurity } from './console-api.js';
import { el, say, errorText } from './console-view.js';
import * as overview from './console-overview.js';
import * as merchants from './console-merchants.js';
import * as audit from './console-audit.js';
import * as more from './console-more.js';
import * as rateLimits from './console-rate-limits.js';
import * as policies from './console-policies.js';
import * as partners from './console-partners.js';
import * as admins from './console-admins.js';
import * as webhooks from './console-webhooks.js';

const pages = {
  overview: { title: 'Overview', render: overview.render },
  merchants: { title: 'Merchants', render: merchants.render },
  merchant: { title: 'Merchant', render: merchants.renderOne, nav: 'merchants' },
  audit: { title: 'Audit', render: audit.render },
  callers: { title: 'Callers', render: more.renderCallers },
  releases: { title: 'Releases', render: more.renderReleases },
  'rate-limits': { title: 'Rate limits', render: rateLimits.render },
  policies: { title: 'Policies', render: policies.render },
  partners: { title: 'Partners', render: partners.render },
  partner: { title: 'Partner', render: partners.renderOne, nav: 'partners' },
  webhooks: { title: 'Webhooks', render: webhooks.render },
  admins: { title: 'Admin accounts', render: admins.render },
};

let leave = null;

function showLogin(message = '') {
  if (leave) { leave(); leave = null; }
  clearToken();
  document.getElementById('app-view').replaceChildren();
  document.getElementById('app-view').hidden = true;
  document.getElementById('nav').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('nav-admins').hidden = true;
  document.getElementById('login-view').hidden = false;
  document.getElementById('login-error').textContent = message;
  document.getElementById('token').focus();
}

/** Shows the page the hash names (`#merchant/m1`, `#audit/request_id=…`); a session that expired goes back to login. */
async function route() {
  if (!loggedIn()) { showLogin(); return; }
  const [name, ...rest] = (location.hash.slice(1) || 'overview').split('/');
  const page = pages[name] ?? pages.overview;
  const argument = decodeURIComponent(rest.join('/'));
  if (leave) { leave(); leave = null; }
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#${page.nav ?? name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${page.title} · klarna-gateway console`;
  const view = el('div', {});
  document.getElementById('app-view').replaceChildren(view);
  say('');
  try {
    leave = (await page.render(view, argument)) ?? null;
  } catch (error) {
    if (error.status === 401) { showLogin('The token is no longer valid; log in again.'); return; }
    view.append(el('p', { class: 'error', role: 'alert' }, errorText(error)));
  }
}

// Set once the form is submitted, so that the certificate check made on opening, answered later, cannot undo it.
let submitted = false;

async function logIn(event) {
  event.preventDefault();
  submitted = true;
  const input = document.getElementById('token');
  const value = input.value.trim();
  // The field is emptied at once so the token does not stay in the page's DOM.
  input.value = '';
  // An empty field logs in with the browser's client certificate alone.
  setToken(value === '' ? null : value);
  if (!(await enter())) {
    showLogin(value === '' ? 'No admin account holds this browser\'s client certificate; paste a token.' : 'That token is not valid.');
  }
}

/** Asks the API whose credentials these are; on success opens the console, else false (a 401), or shows why. */
async function enter() {
  try {
    const { json } = await call('GET', '/admin/v1/account');
    setAccount(json);
    document.getElementById('who').textContent = `${json.name} (${json.role})`;
    // Only a security account may read admin accounts; the others are not offered the page.
    document.getElementById('nav-admins').hidden = !isSecurity();
  } catch (error) {
    if (error.status === 401) return false;
    showLogin(errorText(error));
    return true;
  }
  document.getElementById('login-error').textContent = '';
  document.getElementById('login-view').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('app-view').hidden = false;
  if (!location.hash || location.hash === '#') location.hash = '#overview';
  await route();
  document.getElementById('main').focus();
  return true;
}

/** On opening: an admin whose client certificate the TLS listener verified needs no token, so the API is asked
 * first; only over HTTPS, since no certificate can come over plain HTTP. */
async function start() {
  if (location.protocol === 'https:') {
    setToken(null);
    if (await enter() || submitted) return;
  }
  showLogin();
}

function logOut() {
  showLogin('Logged out.');
  history.replaceState(null, '', location.pathname);
}

// No form ever navigates: a native submit would reload the page and drop the session's token (it lives only in
// memory), which is what an Enter pressed before a page had bound its own handler used to do.
document.addEventListener('submit', (event) => event.preventDefault(), true);
document.getElementById('login-form').addEventListener('submit', logIn);
document.getElementById('logout').addEventListener('click', logOut);
window.addEventListener('hashchange', route);
start();
