// The releases page's calendar: month by month, the day each release becomes available in each environment, from
// the calendar the gateway holds (GET /admin/v1/releases), with today's month marked.
import { el, table } from './console-view.js';

const monthNames = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** `2024-11` as `2024-11 (November)`. */
function monthLabel(month) { return `${month} (${monthNames[Number(month.slice(5, 7)) - 1]})`; }

/** One release on its day: the date, id and name, and in words whether it is the latest or not yet available. */
function entry(release, latest) {
  const words = [release.available_from, release.id];
  if (release.name !== release.id) words.push(`(${release.name})`);
  if (release.id === latest) words.push('· latest');
  if (!release.available) words.push('· upcoming');
  return el('div', {}, words.join(' '));
}

/** The calendar as a table: a row per month in which a release starts (and today's), a column per environment. */
export function releaseCalendar(releases) {
  const environments = releases.environments.map((e) => e.environment);
  const todayMonth = releases.today.slice(0, 7);
  const months = new Map([[todayMonth, new Map()]]);
  for (const environment of releases.environments) {
    for (const release of environment.releases.filter((r) => r.available_from)) {
      const month = release.available_from.slice(0, 7);
      if (!months.has(month)) months.set(month, new Map());
      const cell = months.get(month);
      if (!cell.has(environment.environment)) cell.set(environment.environment, []);
      cell.get(environment.environment).push(entry(release, environment.latest));
    }
  }
  const rows = [...months.keys()].sort().map((month) => [
    el('span', {}, monthLabel(month), month === todayMonth ? el('strong', {}, ` ◆ today ${releases.today}`) : null),
    ...environments.map((environment) => months.get(month).get(environment) ?? '—'),
  ]);
  return el('section', { id: 'release-calendar', 'aria-labelledby': 'release-calendar-title' },
    el('h3', { id: 'release-calendar-title' }, 'Release calendar'),
    table('Release calendar by month', [{ title: 'Month' }, ...environments.map((e) => ({ title: e }))], rows));
}
