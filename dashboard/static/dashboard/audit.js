// The audit log page (admins): tool calls with their approver, configuration changes
// with before and after (secrets masked by the server), sign-ins and token events.
// Read only: the API offers no way to change a record.

import { h, when } from './util.js';
import { attempt, cell, field, messages, table } from './team.js';

const KINDS = ['', 'tool_call', 'config', 'user', 'signin', 'token'];

function details(event) {
  const data = event.data || {};
  if (event.kind === 'tool_call') {
    const parts = [`decision ${data.decision}`];
    if (data.verdict) parts.push(`${data.verdict} by ${data.approver || 'nobody'}`);
    if (data.approver_client) parts.push(`from ${data.approver_client}`);
    parts.push(`status ${data.status}`);
    if (data.duration_ms !== null && data.duration_ms !== undefined) {
      parts.push(`${data.duration_ms} ms`);
    }
    return `${parts.join(', ')} · ${JSON.stringify(data.arguments)}`;
  }
  if (data.before || data.after) {
    return `before ${JSON.stringify(data.before || null)} → after ${JSON.stringify(data.after || null)}`;
  }
  return JSON.stringify(data);
}

export async function renderAudit(app, node) {
  const msgs = messages('audit');
  const kind = h('select', { id: 'audit-kind' },
    ...KINDS.map((k) => h('option', { value: k, text: k || 'every kind' })));
  const user = h('input', { id: 'audit-user', placeholder: 'username' });
  const filters = h('form', { id: 'audit-filters', class: 'team-form' },
    field('Kind', kind), field('Who', user),
    h('button', { type: 'submit', class: 'primary', text: 'Filter' }));
  const [wrap, rows] = table('audit-table', ['When', 'Kind', 'What', 'Who', 'Target',
    'Details']);
  const more = h('button', { type: 'button', id: 'audit-more', text: 'Older', hidden: true });
  let before = null;

  async function load(reset) {
    const params = new URLSearchParams({ limit: '50' });
    if (kind.value) params.set('kind', kind.value);
    if (user.value.trim()) params.set('user', user.value.trim());
    if (!reset && before) params.set('before', String(before));
    const page = await attempt(msgs, () => app.api('GET', `/api/audit?${params}`));
    if (!page) return;
    if (reset) rows.replaceChildren();
    rows.append(...page.events.map((event) => h('tr', { dataset: { kind: event.kind } },
      h('td', {}, h('time', { datetime: event.at, title: event.at, text: when(event.at) })),
      cell(event.kind), cell(event.action), cell(event.actor || '–'), cell(event.target),
      h('td', { class: 'audit-details', text: details(event) }))));
    before = page.next_before;
    more.hidden = !before;
  }

  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    load(true);
  });
  more.addEventListener('click', () => load(false));
  node.replaceChildren(h('section', { class: 'card team-card', 'aria-labelledby': 'audit-heading' },
    h('h3', { id: 'audit-heading', text: 'Audit log' }),
    h('p', { class: 'hint', text: 'Every tool call, configuration change, sign-in and '
      + 'token event, newest first. Records cannot be changed.' }),
    filters, msgs.error, wrap, more));
  await load(true);
}
