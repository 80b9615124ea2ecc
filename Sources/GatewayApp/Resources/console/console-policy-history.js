// A policy's stored versions, newest first, each with a rollback to it (docs/admin-api.md, "Policies").
import { call, withQuery } from './console-api.js';
import { el, table } from './console-view.js';

/** The newest 10 versions of `kind`; `rollBack(version)` runs when one's button is pressed. The version in force and a
 * return to the file offer none; without the role, every button is disabled. */
export async function historyTable(kind, current, allowed, rollBack) {
  const { json } = await call('GET', withQuery(`/admin/v1/policies/${kind}/history`, { limit: 10 }));
  const rows = json.versions.map((v) => {
    const button = el('button', { type: 'button', class: 'secondary', disabled: !allowed || v.version === null || v.version === current }, 'Roll back to this');
    button.addEventListener('click', () => { button.disabled = true; rollBack(v.version); });
    return [el('span', { class: 'mono' }, v.version ?? 'the file'), v.applied_by, v.applied_at, v.comment ?? '—', button];
  });
  return el('div', { id: `policy-${kind}-history` },
    table(`Stored versions, newest first`, [{ title: 'Version' }, { title: 'Applied by' }, { title: 'At' }, { title: 'Comment' }, { title: '' }], rows,
      'none: the config’s file is in force.'));
}
