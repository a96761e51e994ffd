// Notification destinations, on the Jobs page: where a job sends its result (Discord,
// Slack, a signed JSON webhook, e-mail). List, add, enable or disable, delete, and the
// latest deliveries. Through /api/notifications (docs/jobs.md); the API never shows a
// target in full (a webhook URL's path is its credential).

import { h, when } from './util.js';
import { attempt, cell, fetchQuietly, field, messages, table } from './team.js';

const KINDS = [
  ['discord', 'Discord webhook', 'https://discord.com/api/webhooks/…'],
  ['slack', 'Slack incoming webhook', 'https://hooks.slack.com/services/…'],
  ['webhook', 'Signed JSON webhook', 'https://ops.example/hooks/gateway'],
  ['email', 'E-mail', 'me@example.com, you@example.com'],
];
const DELIVERIES_SHOWN = 10;

/** The destinations card; `changed()` runs after an add or a delete (the job form's
 * choices follow). */
export function destinationsCard(app, changed) {
  const api = app.api;
  const msgs = messages('destinations');
  const [wrap, rows] = table('destinations-table', ['Name', 'Kind', 'Target', 'State', '']);
  const [logWrap, logRows] = table('deliveries-table', ['When', 'Destination', 'Title',
    'Status', 'Attempts']);

  const name = h('input', { id: 'dest-name', required: true, maxLength: 64,
    pattern: '[\\w\\-]+', placeholder: 'team-discord', title: 'Letters, digits, - and _' });
  const kind = h('select', { id: 'dest-kind' },
    ...KINDS.map(([value, text]) => h('option', { value, text })));
  const target = h('input', { id: 'dest-target', required: true, maxLength: 2000,
    autocomplete: 'off', spellcheck: 'false' });
  const secret = h('input', { id: 'dest-secret', type: 'password', minLength: 16,
    maxLength: 200, autocomplete: 'new-password' });
  const secretField = field('Signing secret (16+ characters)', secret);
  const showKind = () => {
    const [, , example] = KINDS.find(([value]) => value === kind.value);
    target.placeholder = example;
    target.type = kind.value === 'email' ? 'text' : 'url';
    secretField.hidden = kind.value !== 'webhook';
    secret.required = kind.value === 'webhook';
  };
  kind.addEventListener('change', showKind);
  showKind();
  const form = h('form', { id: 'destination-form', class: 'team-form' },
    field('Name', name), field('Kind', kind), field('URL or addresses', target), secretField,
    h('button', { type: 'submit', class: 'primary', text: 'Add destination' }));

  function row(destination) {
    const path = `/api/notifications/destinations/${encodeURIComponent(destination.id)}`;
    return h('tr', { dataset: { destination: destination.name } },
      cell(destination.name), cell(destination.kind), h('td', {},
        h('code', { text: destination.target })),
      cell(destination.enabled ? 'enabled' : 'disabled'),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', text: destination.enabled ? 'Disable' : 'Enable',
          onclick: async () => {
            const done = await attempt(msgs, () => api('PATCH', path,
              { enabled: !destination.enabled }));
            if (done) await load();
          } }),
        h('button', { type: 'button', class: 'danger', text: 'Delete', onclick: async () => {
          if (!await app.confirm(`Delete the destination “${destination.name}”? Jobs stop `
            + 'sending to it.')) return;
          const done = await attempt(msgs, () => api('DELETE', path),
            `Deleted ${destination.name}.`);
          if (done) {
            await load();
            changed();
          }
        } })));
  }

  async function load() {
    const [listing, log] = await Promise.all([
      fetchQuietly(msgs, () => api('GET', '/api/notifications/destinations')),
      fetchQuietly(msgs, () => api('GET', '/api/notifications/deliveries'))]);
    if (listing) {
      rows.replaceChildren(...listing.destinations.map(row));
      if (!listing.destinations.length) {
        rows.append(h('tr', {}, h('td', { colspan: 5, class: 'hint',
          text: 'None yet. A job without a destination keeps its result in its chat.' })));
      }
    }
    if (log) {
      logRows.replaceChildren(...log.deliveries.slice(0, DELIVERIES_SHOWN).map((d) =>
        h('tr', { dataset: { status: d.status } }, cell(when(d.created_at)),
          cell(d.destination), cell(d.title), cell(d.status), cell(d.attempts))));
      logBox.hidden = !log.deliveries.length;
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), kind: kind.value, target: target.value.trim() };
    if (kind.value === 'webhook') body.secret = secret.value;
    const made = await attempt(msgs, () => api('POST', '/api/notifications/destinations',
      body), (created) => `Added ${created.name}.`);
    if (!made) return;
    form.reset();
    showKind();
    await load();
    changed();
  });

  const logBox = h('div', { hidden: true }, h('h4', { text: 'Latest deliveries' }), logWrap);
  const card = h('section', { class: 'card team-card', 'aria-labelledby': 'destinations-heading' },
    h('h3', { id: 'destinations-heading', text: 'Notification destinations' }),
    msgs.error, msgs.ok, wrap, form, logBox);
  return { card, load };
}
