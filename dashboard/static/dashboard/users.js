// The users page (admins): create, invite (a one-time sign-in link), promote, demote,
// deactivate and reactivate, and groups. Everything goes through /api/users and
// /api/groups; deactivating a user shuts his tokens out at once.

import { h, when } from './util.js';
import { attempt, cell, fetchQuietly, field, messages, table } from './team.js';

export async function renderUsers(app, node) {
  const api = app.api;
  const msgs = messages('users');
  const invite = h('p', { id: 'invite-link', class: 'invite', role: 'status', hidden: true });
  const [wrap, rows] = table('users-table', ['User', 'Email', 'Role', 'Status', 'Groups',
    'Last sign-in', '']);

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
    actions(user))));
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
    h('section', { class: 'card team-card', 'aria-labelledby': 'new-user-heading' },
      h('h3', { id: 'new-user-heading', text: 'Add a user' }), create, groupForm, groupList));
  await load();
}
