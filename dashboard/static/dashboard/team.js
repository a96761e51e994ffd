// Pieces shared by the team pages (users, usage, audit): messages, tables, buttons.

import { h, say } from './util.js';

/** An error line and an ok line for one section. */
export function messages(name) {
  return {
    error: h('p', { id: `${name}-error`, class: 'error', role: 'alert', hidden: true }),
    ok: h('p', { id: `${name}-ok`, class: 'ok', role: 'status', hidden: true }),
  };
}

/** Run `action`; its error goes to `msgs.error`, `done` (if any) to `msgs.ok`. */
export async function attempt(msgs, action, done) {
  say(msgs.error, '');
  say(msgs.ok, '');
  try {
    const result = await action();
    if (done) say(msgs.ok, typeof done === 'function' ? done(result) : done);
    return result;
  } catch (err) {
    say(msgs.error, err.detail);
    return undefined;
  }
}

/** A table with a header row; returns [wrapper, tbody]. */
export function table(id, headings) {
  const body = h('tbody');
  const wrap = h('div', { class: 'table-wrap' },
    h('table', { id, class: 'grid' },
      h('thead', {}, h('tr', {}, ...headings.map((text) => h('th', { scope: 'col', text })))),
      body));
  return [wrap, body];
}

export function cell(text) {
  return h('td', { text: text === null || text === undefined ? '–' : String(text) });
}

/** A labelled form control. */
export function field(label, input) {
  return h('label', { class: 'team-field' }, h('span', { text: label }), input);
}

/** Like `attempt`, for reloads after an action: leaves the action's messages alone. */
export async function fetchQuietly(msgs, action) {
  try {
    return await action();
  } catch (err) {
    say(msgs.error, err.detail);
    return undefined;
  }
}
