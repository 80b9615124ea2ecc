// DOM helpers. Every text goes in as a text node, never parsed as markup, so nothing the API returns (merchant ids,
// error messages, audit fields) can become markup or script.

/** An element with attributes (`on…` functions become listeners) and children (strings become text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A state as a word beside its colour and shape, so it reads without colour. */
export function badge(text, kind) { return el('span', { class: `badge ${kind}` }, text); }

/** A table: `columns` of { title, num }, `rows` of cells (nodes or text); a caption names it for screen readers. */
export function table(caption, columns, rows, empty = 'None.') {
  if (rows.length === 0) return el('p', { class: 'muted' }, `${caption}: ${empty}`);
  // Focusable, so a table wider than a phone can be scrolled with the keyboard.
  return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': caption }, el('table', {},
    el('caption', { class: 'muted' }, caption),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', class: c.num ? 'num' : null }, c.title)))),
    el('tbody', {}, rows.map((row) => el('tr', {}, row.map((cell, i) => el('td', { class: columns[i].num ? 'num' : null }, cell)))))));
}

/** A definition list of [term, value] pairs; `figures` groups each pair in a div (HTML allows it) to lay them out as tiles. */
export function details(pairs, className = 'detail') {
  const pair = ([term, value]) => [el('dt', {}, term), el('dd', {}, value ?? '—')];
  if (className === 'figures') return el('dl', { class: className }, pairs.map((p) => el('div', {}, pair(p))));
  return el('dl', { class: className }, pairs.flatMap(pair));
}

/** A labelled input. */
export function field(label, attributes) {
  return el('label', {}, label, el('input', attributes));
}

/** The status line at the bottom (announced to screen readers). */
export function say(text) { document.getElementById('status').textContent = text; }

/** An error as text: the API's message, its code and request id. */
export function errorText(error) {
  const parts = [error.message];
  if (error.code) parts.push(error.code);
  if (error.requestID) parts.push(`request ${error.requestID}`);
  return parts.join(' · ');
}

/** Milliseconds as text, or a dash. */
export function ms(value) { return value === null || value === undefined ? '—' : `${value} ms`; }

/** Microseconds since the epoch as an ISO time. */
export function microsTime(micros) { return new Date(Number(micros) / 1000).toISOString().replace('.000Z', 'Z'); }

/** A button that asks before it acts: a click shows `question` (role="alert") with `yesLabel` and Cancel in its place;
 * Cancel puts the button back, Yes runs `onYes`. Focus goes to Cancel, so an Enter pressed by habit removes nothing.
 * Ids: `id`, `id-yes`, `id-cancel`, `id-question`. */
export function confirmButton(id, label, question, yesLabel, onYes, disabled = false) {
  const box = el('span', { class: 'confirm' });
  const button = el('button', { type: 'button', class: 'danger', id, disabled }, label);
  button.addEventListener('click', () => {
    const yes = el('button', { type: 'button', class: 'danger', id: `${id}-yes` }, yesLabel);
    const cancel = el('button', { type: 'button', class: 'secondary', id: `${id}-cancel` }, 'Cancel');
    cancel.addEventListener('click', () => { box.replaceChildren(button); button.focus(); });
    yes.addEventListener('click', () => { yes.disabled = true; cancel.disabled = true; onYes(); });
    box.replaceChildren(el('span', { id: `${id}-question`, role: 'alert' }, question), ' ', yes, ' ', cancel);
    cancel.focus();
  });
  box.append(button);
  return box;
}
