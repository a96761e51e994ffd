// The "Tokens" page, for every user: create an API token (name and expiry; the token is
// shown once), list one's tokens, revoke one. All through /api/tokens.

import { h, say, when } from './util.js';

const EXPIRIES = [['30', '30 days'], ['90', '90 days'], ['365', '1 year'], ['7', '7 days'],
  ['', 'never']];

function createForm(api, onCreated, messages) {
  const name = h('input', { id: 'token-name', maxlength: '100', required: true,
    placeholder: 'laptop CLI' });
  const expiry = h('select', { id: 'token-expiry' },
    ...EXPIRIES.map(([value, text]) => h('option', { value, text })));
  const form = h('form', { class: 'token-form' },
    h('div', { class: 'field' }, h('label', { for: 'token-name', text: 'Name' }), name),
    h('div', { class: 'field' }, h('label', { for: 'token-expiry', text: 'Expires in' }),
      expiry),
    h('button', { type: 'submit', class: 'primary' }, 'Create token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say(messages.error, '');
    const body = { name: name.value.trim() };
    if (expiry.value) body.expires_in_days = Number(expiry.value);
    try {
      const created = await api('POST', '/api/tokens', body);
      name.value = '';
      onCreated(created);
    } catch (err) {
      say(messages.error, err.detail);
    }
  });
  return form;
}

/** The new token, once: it cannot be shown again. */
function shownOnce(created) {
  const value = h('code', { id: 'new-token', class: 'secret', text: created.token });
  const copy = h('button', { type: 'button', class: 'small' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(created.token);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Copy failed';
    }
  });
  return h('div', { class: 'token-once', role: 'status' },
    h('p', { text: `Token “${created.name}” created. Copy it now: it is shown only once.` }),
    h('div', { class: 'token-value' }, value, copy));
}

export function renderTokens(app, container) {
  const messages = {
    error: h('p', { id: 'tokens-error', class: 'error', role: 'alert', hidden: true }),
  };
  const once = h('div', { id: 'token-once' });
  const rows = h('tbody');
  const table = h('table', { class: 'grid', id: 'token-table' },
    h('thead', {}, h('tr', {}, ...['Name', 'Starts with', 'Created', 'Expires', '']
      .map((text) => h('th', { scope: 'col', text })))), rows);

  async function load() {
    try {
      const listing = await app.api('GET', '/api/tokens');
      rows.replaceChildren(...listing.tokens.map(row));
    } catch (err) {
      say(messages.error, err.detail);
    }
  }

  function row(token) {
    const revoke = h('button', { type: 'button', class: 'danger small' }, 'Revoke');
    revoke.disabled = token.current;
    revoke.title = token.current ? 'This page signs in with this token' : '';
    revoke.addEventListener('click', async () => {
      say(messages.error, '');
      try {
        await app.api('DELETE', `/api/tokens/${encodeURIComponent(token.id)}`);
        await load();
      } catch (err) {
        say(messages.error, err.detail);
      }
    });
    return h('tr', { dataset: { tokenId: token.id } },
      h('td', {}, token.name,
        token.current ? h('span', { class: 'badge done', text: 'this page' }) : null),
      h('td', {}, h('code', { text: `${token.prefix}…` })),
      h('td', { text: when(token.created) }),
      h('td', { text: token.expiry ? when(token.expiry) : 'never' }),
      h('td', { class: 'row-actions' }, revoke));
  }

  container.replaceChildren(
    h('p', { class: 'hint', text: 'API tokens let the CLI, scripts and bots act as you. ' +
      'Revoke one you no longer use.' }),
    createForm(app.api, (created) => {
      once.replaceChildren(shownOnce(created));
      load();
    }, messages),
    messages.error, once, table);
  load();
}
