// The users page (admins): create, invite (a one-time sign-in link), promote, demote,
// deactivate and reactivate, groups, and each user's workspace quota (usage against the
// quota in force; set bytes and files, or back to the defaults). Everything goes through
// /api/users, /api/groups and /api/files/quota; deactivating a user shuts his tokens out
// at once.

import { fmt, h, say, when } from './util.js';
import { attempt, cell, fetchQuietly, field, messages, table } from './team.js';

const UNITS = [['B', 1], ['KiB', 1024], ['MiB', 1024 ** 2], ['GiB', 1024 ** 3],
  ['TiB', 1024 ** 4]];
const QUOTA_READERS = 4;  // workspaces whose usage is counted at once

/** Bytes for people: "1.5 GiB", "320 B". */
export function bytes(n) {
  if (typeof n !== 'number') return '–';
  let [unit, size] = UNITS[0];
  for (const [name, factor] of UNITS) if (n >= factor) [unit, size] = [name, factor];
  const value = n / size;
  return `${size === 1 ? fmt(n) : value.toLocaleString('en-US',
    { maximumFractionDigits: value < 10 ? 2 : 1 })} ${unit}`;
}

/** The largest unit that shows `n` bytes as a whole number (for the quota form). */
function unitFor(n) {
  let best = UNITS[0];
  for (const unit of UNITS) if (n >= unit[1] && n % unit[1] === 0) best = unit;
  return best;
}

/** "12 MiB of 2 GiB · 40 of 20,000 files"; the own quota (not the default) is marked. */
function quotaText(q) {
  const own = q.own.quota_bytes !== null || q.own.quota_files !== null;
  return `${bytes(q.used_bytes)} of ${bytes(q.quota_bytes)} · ${fmt(q.used_files)} of `
    + `${fmt(q.quota_files)} files${own ? ' (own quota)' : ''}`;
}

const over = (q) => q.used_bytes > q.quota_bytes || q.used_files > q.quota_files;

export async function renderUsers(app, node) {
  const api = app.api;
  const msgs = messages('users');
  const invite = h('p', { id: 'invite-link', class: 'invite', role: 'status', hidden: true });
  const [wrap, rows] = table('users-table', ['User', 'Email', 'Role', 'Status', 'Groups',
    'Last sign-in', 'Workspace', '']);
  const quotaMsgs = messages('quota');
  const quotas = new Map();  // username: his last quota read, shown until counted again
  const quotaCard = quotaEditor(api, quotaMsgs, (q) => showQuota(q));

  const username = h('input', { id: 'new-username', required: true, maxLength: 150,
    autocomplete: 'off', pattern: '[\\w.@+\\-]+' });
  const email = h('input', { id: 'new-email', type: 'email', autocomplete: 'off' });
  const staff = h('input', { id: 'new-staff', type: 'checkbox' });
  const groups = h('input', { id: 'new-groups', placeholder: 'group, other group' });
  const create = h('form', { id: 'user-form', class: 'team-form' },
    field('Username', username), field('Email', email), field('Groups', groups),
    h('label', { class: 'team-check' }, staff, ' admin'),
    h('button', { type: 'submit', class: 'primary', text: 'Create user' }));

  const groupName = h('input', { id: 'new-group', required: true, maxLength: 150 });
  const groupForm = h('form', { id: 'group-form', class: 'team-form' },
    field('New group', groupName), h('button', { type: 'submit', text: 'Add group' }));
  const groupList = h('p', { id: 'group-list', class: 'hint' });

  async function change(user, body, done) {
    await attempt(msgs, () => api('PATCH', `/api/users/${encodeURIComponent(user)}`, body),
      done);
    await load();
  }

  async function showInvite(user) {
    const link = await attempt(msgs, () =>
      api('POST', `/api/users/${encodeURIComponent(user)}/invite`));
    if (!link) return;
    invite.replaceChildren(`One-time sign-in link for ${user} (works once, until `
      + `${new Date(link.expires_at).toLocaleString()}): `, h('code', { text: link.url }));
    invite.hidden = false;
  }

  function actions(user) {
    const name = user.username;
    const self = app.me && app.me.username === name;
    return h('td', { class: 'row-actions' },
      h('button', { type: 'button', text: user.is_staff ? 'Make member' : 'Make admin',
        disabled: self, onclick: () => change(name, { is_staff: !user.is_staff },
          `${name} is now ${user.is_staff ? 'a member' : 'an admin'}.`) }),
      h('button', { type: 'button', class: user.is_active ? 'danger' : '',
        text: user.is_active ? 'Deactivate' : 'Activate', disabled: self,
        onclick: () => change(name, { is_active: !user.is_active },
          `${name} is ${user.is_active ? 'deactivated: his tokens stop working' : 'active again'}.`) }),
      h('button', { type: 'button', text: 'Invite link', disabled: !user.is_active,
        onclick: () => showInvite(name) }));
  }

  /** The user's workspace cell shows what `q` says. */
  function showQuota(q) {
    quotas.set(q.user, q);
    const target = [...rows.querySelectorAll('tr')].find((tr) => tr.dataset.user === q.user);
    const text = target && target.querySelector('td.workspace .quota-text');
    if (!text) return;
    text.textContent = quotaText(q);
    text.classList.toggle('over-quota', over(q));
  }

  function workspaceCell(name, q) {
    return h('td', { class: 'workspace' },
      h('span', { class: q && over(q) ? 'quota-text over-quota' : 'quota-text',
        text: q ? quotaText(q) : '…' }),
      h('button', { type: 'button', text: 'Quota', 'aria-controls': 'quota-card',
        'aria-label': `Workspace quota of ${name}`, onclick: () => quotaCard.open(name) }));
  }

  /** Count the workspaces a few at a time (each is a walk of the user's folder). */
  async function loadQuotas(names) {
    const queue = [...names];
    const reader = async () => {
      while (queue.length) {
        const name = queue.shift();
        try {
          showQuota(await api('GET', `/api/files/quota?user=${encodeURIComponent(name)}`));
        } catch (err) {
          const text = rows.querySelector(
            `tr[data-user="${CSS.escape(name)}"] td.workspace .quota-text`);
          if (text) text.textContent = `unknown (${err.message})`;
        }
      }
    };
    await Promise.all(Array.from({ length: QUOTA_READERS }, reader));
  }

  async function load() {
    const [listing, groupsBody] = await Promise.all([
      fetchQuietly(msgs, () => api('GET', '/api/users')),
      fetchQuietly(msgs, () => api('GET', '/api/groups'))]);
    if (!listing) return;
    rows.replaceChildren(...listing.users.map((user) => h('tr', {
      dataset: { user: user.username } },
    cell(user.username), cell(user.email || ''), cell(user.is_staff ? 'admin' : 'member'),
    cell(user.is_active ? (user.has_password ? 'active' : 'active, no password')
      : 'deactivated'),
    cell(user.groups.join(', ')), cell(user.last_login ? when(user.last_login) : 'never'),
    workspaceCell(user.username, quotas.get(user.username)),
    actions(user))));
    loadQuotas(listing.users.map((user) => user.username));
    if (groupsBody) {
      groupList.textContent = groupsBody.groups.length
        ? 'Groups: ' + groupsBody.groups.map((g) => `${g.name} (${g.members.length})`).join(', ')
        : 'No groups yet.';
    }
  }

  create.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { username: username.value.trim(), email: email.value.trim(),
      is_staff: staff.checked,
      groups: groups.value.split(',').map((g) => g.trim()).filter(Boolean) };
    const made = await attempt(msgs, () => api('POST', '/api/users', body),
      (user) => `Created ${user.username}. Send an invite link so he can set a password.`);
    if (made) {
      create.reset();
      await load();
    }
  });
  groupForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const made = await attempt(msgs, () => api('POST', '/api/groups',
      { name: groupName.value.trim() }), 'Group added.');
    if (made) {
      groupForm.reset();
      await load();
    }
  });

  node.replaceChildren(
    h('section', { class: 'card team-card', 'aria-labelledby': 'users-heading' },
      h('h3', { id: 'users-heading', text: 'Users' }), msgs.error, msgs.ok, invite, wrap),
    quotaCard.node,
    h('section', { class: 'card team-card', 'aria-labelledby': 'new-user-heading' },
      h('h3', { id: 'new-user-heading', text: 'Add a user' }), create, groupForm, groupList));
  await load();
}

/**
 * The workspace quota of one user: usage against the quota in force, a form for his own
 * bytes and files (an empty field: the default), and a way back to the defaults.
 * `changed(q)` is told of every quota read or saved.
 */
function quotaEditor(api, msgs, changed) {
  let user = null;
  let defaultBytes = 0;
  const heading = h('h3', { id: 'quota-heading', text: 'Workspace quota' });
  const usage = h('p', { id: 'quota-usage' });
  const defaults = h('p', { id: 'quota-defaults', class: 'hint' });
  const size = h('input', { id: 'quota-bytes', type: 'number', min: '0', step: 'any',
    inputMode: 'decimal' });
  const unit = h('select', { id: 'quota-unit', 'aria-label': 'Unit' },
    ...UNITS.map(([name, factor]) => h('option', { value: String(factor), text: name })));
  const files = h('input', { id: 'quota-files', type: 'number', min: '0', step: '1',
    inputMode: 'numeric' });
  const reset = h('button', { type: 'button', id: 'quota-reset', text: 'Back to default' });
  const close = h('button', { type: 'button', class: 'ghost', text: 'Close' });
  const form = h('form', { id: 'quota-form', class: 'team-form' },
    field('Bytes', h('span', { class: 'quota-size' }, size, unit)),
    field('Files', files),
    h('button', { type: 'submit', class: 'primary', text: 'Save quota' }), reset, close);
  const node = h('section', { id: 'quota-card', class: 'card team-card', hidden: true,
    'aria-labelledby': 'quota-heading' }, heading, msgs.error, msgs.ok, usage, form,
  defaults);
  const path = () => `/api/files/quota?user=${encodeURIComponent(user)}`;
  // The default in the chosen unit, shown in the empty field.
  const sizeHint = () => {
    size.placeholder = `default ${(defaultBytes / Number(unit.value))
      .toLocaleString('en-US', { maximumFractionDigits: 3 })}`;
  };

  function show(q) {
    heading.textContent = `Workspace quota of ${q.user}`;
    usage.textContent = `Uses ${quotaText(q)}.`;
    usage.classList.toggle('over-quota', over(q));
    if (over(q)) usage.textContent += ' Over the quota: uploads and the agent\'s writes '
      + 'are refused until files are removed or the quota is raised.';
    const ownBytes = q.own.quota_bytes;
    if (ownBytes === null) {
      size.value = '';
      unit.value = String(1024 ** 3);
    } else {
      const [, factor] = unitFor(ownBytes);
      unit.value = String(factor);
      size.value = String(ownBytes / factor);
    }
    files.value = q.own.quota_files === null ? '' : String(q.own.quota_files);
    defaultBytes = q.default.quota_bytes;
    sizeHint();
    files.placeholder = `default ${fmt(q.default.quota_files)}`;
    defaults.textContent = `An empty field uses the default (${bytes(q.default.quota_bytes)}, `
      + `${fmt(q.default.quota_files)} files; GATEWAY_FILES_QUOTA_BYTES and `
      + 'GATEWAY_FILES_QUOTA_FILES). A change applies to the next upload and tool call.';
    reset.disabled = q.own.quota_bytes === null && q.own.quota_files === null;
    changed(q);
  }

  unit.addEventListener('change', () => sizeHint());

  async function save(body, done) {
    const q = await attempt(msgs, () => api('PUT', path(), body), done);
    if (q) show(q);
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const raw = size.value.trim();
    const quotaBytes = raw === '' ? null : Math.round(Number(raw) * Number(unit.value));
    if (quotaBytes !== null && !(quotaBytes >= 0 && Number.isSafeInteger(quotaBytes))) {
      say(msgs.error, 'The size must be a number of bytes from 0 up.');
      return;
    }
    const quotaFiles = files.value.trim() === '' ? null : Number(files.value);
    await save({ quota_bytes: quotaBytes, quota_files: quotaFiles },
      (q) => `Saved: ${q.user} may keep ${bytes(q.quota_bytes)} in `
        + `${fmt(q.quota_files)} files.`);
  });
  reset.addEventListener('click', () => save({ quota_bytes: null, quota_files: null },
    (q) => `${q.user} is back to the default quota.`));
  close.addEventListener('click', () => { node.hidden = true; });

  return {
    node,
    async open(name) {
      user = name;
      say(msgs.error, '');
      say(msgs.ok, '');
      heading.textContent = `Workspace quota of ${name}`;
      usage.textContent = 'Counting…';
      node.hidden = false;
      const q = await fetchQuietly(msgs, () => api('GET', path()));
      if (q && q.user === user) show(q);
      node.scrollIntoView({ block: 'nearest' });
      size.focus();
    },
  };
}
