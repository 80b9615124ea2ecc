// Overview: traffic of the last minutes from the audit trail, breakers and calls in flight, the audit writer's
// health; refreshed every 5 s while the page is shown.
import { call } from './console-api.js';
import { el, badge, table, details, ms, say, errorText } from './console-view.js';

const refreshMillis = 5000;

function breakerBadge(state) {
  return badge(state, state === 'closed' ? 'ok' : state === 'open' ? 'bad' : 'warn');
}

async function fill(body, minutes) {
  const [traffic, upstreams, audit] = await Promise.all([
    call('GET', `/admin/v1/audit/traffic?minutes=${minutes}`).then((r) => r.json, (error) => ({ error })),
    call('GET', '/admin/v1/upstreams').then((r) => r.json),
    call('GET', '/admin/v1/audit/status').then((r) => r.json),
  ]);
  const parts = [];
  if (traffic.error) {
    parts.push(el('p', { class: 'muted' }, traffic.error.status === 404 ? 'Traffic figures come from the audit trail, which is disabled.' : errorText(traffic.error)));
  } else {
    parts.push(el('h3', {}, `Traffic, last ${minutes} minutes`));
    parts.push(details([
      ['Requests/s', String(traffic.requests_per_second)],
      ['Calls', String(traffic.calls)],
      ['Errors', String(traffic.errors)],
      ['Upstream p50', ms(traffic.upstream_latency_ms.p50)],
      ['Upstream p99', ms(traffic.upstream_latency_ms.p99)],
      ['Calls in flight', String(upstreams.calls_in_flight)],
    ], 'figures'));
    if (traffic.truncated) parts.push(el('p', { class: 'note' }, 'More than 20,000 records in the window: figures cover its oldest part.'));
    const most = Math.max(1, ...traffic.per_minute.map((m) => m.calls));
    parts.push(table('Calls per minute', [{ title: 'Minute (UTC)' }, { title: 'Calls' }, { title: 'Errors', num: true }],
      traffic.per_minute.map((m) => [m.minute.slice(11, 16), [el('span', { class: 'bar', style: null, 'data-width': m.calls, 'aria-hidden': 'true' }), String(m.calls)], String(m.errors)])));
    // Widths are set through the CSSOM, which the Content-Security-Policy allows (a style attribute it would not).
    for (const bar of parts.at(-1).querySelectorAll?.('.bar') ?? []) bar.style.width = `${Math.round((Number(bar.dataset.width) / most) * 160)}px`;
    parts.push(table('Errors by code', [{ title: 'Code' }, { title: 'Calls', num: true }], traffic.errors_by_code.map((e) => [e.code, String(e.calls)])));
    const breakers = new Map(upstreams.hosts.map((h) => [h.host, h.breaker]));
    parts.push(table('Per upstream host', [{ title: 'Host' }, { title: 'Calls', num: true }, { title: 'Errors', num: true }, { title: 'p50', num: true }, { title: 'p99', num: true }, { title: 'Breaker' }],
      traffic.hosts.map((h) => [h.host, String(h.calls), String(h.errors), ms(h.upstream_latency_ms.p50), ms(h.upstream_latency_ms.p99), breakers.has(h.host) ? breakerBadge(breakers.get(h.host)) : '—'])));
    parts.push(table('Statuses', [{ title: 'Status' }, { title: 'Calls', num: true }], traffic.by_status.map((s) => [s.status, String(s.calls)])));
  }
  parts.push(table('Breakers', [{ title: 'Host' }, { title: 'Breaker' }], upstreams.hosts.map((h) => [h.host, breakerBadge(h.breaker)]), 'no upstream host called yet.'));
  parts.push(el('h3', {}, 'Audit writer'));
  parts.push(audit.enabled
    ? details([
      ['State', badge(audit.healthy ? 'healthy' : 'unhealthy', audit.healthy ? 'ok' : 'bad')],
      ['Queue depth', String(audit.queue_depth)],
      ['Last record', String(audit.last_seq)],
      ['Last checkpoint', String(audit.last_checkpoint_seq)],
      ['Refused, queue full', String(audit.queue_full_refusals)],
      ['Last error', audit.last_error ?? 'none'],
    ])
    : el('p', {}, badge('disabled', 'warn'), ' The gateway records no audit trail.'));
  parts.push(el('p', { class: 'muted' }, `Updated ${new Date().toISOString().slice(11, 19)} UTC; refreshes every ${refreshMillis / 1000} s.`));
  body.replaceChildren(...parts);
}

/** The overview page. */
export async function render(view) {
  let minutes = 5;
  const select = el('select', { id: 'window' }, [5, 15, 60].map((m) => el('option', { value: m }, `${m} minutes`)));
  const body = el('div', { id: 'overview-body' });
  select.addEventListener('change', () => { minutes = Number(select.value); fill(body, minutes).catch((e) => say(errorText(e))); });
  view.append(el('h2', {}, 'Overview'), el('form', {}, el('label', {}, 'Window', select)), body);
  await fill(body, minutes);
  const timer = setInterval(() => fill(body, minutes).catch((e) => say(`Refresh failed: ${errorText(e)}`)), refreshMillis);
  return () => clearInterval(timer);
}
