// Admin pages: model profiles, the tool permission policy and the sandbox config, all
// through the REST API (members only read them, so the page is for admins).

import { h, say, fmt } from './util.js';

const PROVIDERS = ['openai', 'ollama', 'anthropic'];
const MODES = {
  interactive: 'interactive — ask before every tool call',
  autonomous: 'autonomous — run every tool call',
  readonly: 'readonly — deny everything but read',
};
const LEVELS = ['allow', 'ask', 'deny'];

function field(label, input, hint) {
  return h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input,
    hint ? h('small', { class: 'hint', text: hint }) : null);
}

function status(name) {
  return {
    error: h('p', { id: `${name}-error`, class: 'error', role: 'alert', hidden: true }),
    ok: h('p', { id: `${name}-ok`, class: 'ok', role: 'status', hidden: true }),
  };
}

async function attempt(messages, action, done) {
  say(messages.error, '');
  say(messages.ok, '');
  try {
    const result = await action();
    if (done) say(messages.ok, done);
    return result;
  } catch (err) {
    say(messages.error, err.detail);
    return undefined;
  }
}

// -- profiles -----------------------------------------------------------------------------
function profilesSection(api) {
  const messages = status('profiles');
  const rows = h('tbody');
  const table = h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ...['Name', 'Provider', 'Model', 'Base URL', 'API key',
      'Context window', ''].map((text) => h('th', { scope: 'col', text })))), rows);

  async function load() {
    const listing = await attempt(messages, () => api('GET', '/api/profiles'));
    if (!listing) return;
    rows.replaceChildren();
    for (const [name, p] of Object.entries(listing.profiles)) {
      const isDefault = name === listing.default;
      rows.append(h('tr', { dataset: { profile: name } },
        h('td', {}, name, isDefault ? h('span', { class: 'badge done', text: 'default' }) : null),
        h('td', { text: p.provider }), h('td', { text: p.model }),
        h('td', { text: p.base_url || '—' }), h('td', { text: p.api_key || '—' }),
        h('td', { text: p.context_window ? fmt(p.context_window) : 'model default' }),
        h('td', { class: 'row-actions' },
          h('button', { type: 'button', onclick: () => startEdit(name, p) }, 'Edit'),
          h('button', { type: 'button', onclick: () => testConnection(name) },
            'Test connection'),
          isDefault ? null : h('button', { type: 'button', onclick: async () => {
            await attempt(messages, () => api('PUT', '/api/profiles/default', { name }),
              `${name} is now the default profile.`);
            load();
          } }, 'Make default'),
          h('button', { type: 'button', class: 'danger', onclick: async () => {
            if (!window.confirm(`Delete the profile ${name}?`)) return;
            await attempt(messages, () => api('DELETE', `/api/profiles/${name}`),
              `Deleted ${name}.`);
            load();
          } }, 'Delete'))));
    }
    if (!rows.childNodes.length) {
      rows.append(h('tr', {}, h('td', { colspan: 7, text: 'No profile yet: add one below.' })));
    }
  }

  const inputs = {
    name: h('input', { id: 'pf-name', required: true, pattern: '[\\-a-zA-Z0-9_]+',
      maxlength: 64 }),
    provider: h('select', { id: 'pf-provider' },
      ...PROVIDERS.map((p) => h('option', { value: p, text: p }))),
    model: h('input', { id: 'pf-model', required: true, maxlength: 200,
      placeholder: 'gpt-4o-mini', list: 'pf-models' }),
    base_url: h('input', { id: 'pf-base-url', type: 'url',
      placeholder: 'https://…/v1 (optional)' }),
    api_key: h('input', { id: 'pf-api-key', type: 'password', autocomplete: 'off' }),
    context_window: h('input', { id: 'pf-context-window', type: 'number', min: 256 }),
    max_output_tokens: h('input', { id: 'pf-max-output', type: 'number', min: 1 }),
  };
  // The models the provider serves, offered as the Model field's choices.
  const modelChoices = h('datalist', { id: 'pf-models' });
  let editing = null;  // the name of the profile being edited, or null when adding
  const heading = h('h4', { text: 'Add a profile' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add profile');
  const cancelEdit = h('button', { type: 'button', hidden: true, onclick: () => endEdit() },
    'Cancel');

  async function testConnection(name) {
    const listing = await attempt(messages, () => api('GET', `/api/profiles/${name}/models`));
    if (!listing) return;
    say(messages.ok, `${name}: connected; the provider serves ${listing.models.length} ` +
      'model(s).');
    if (editing === name) {
      modelChoices.replaceChildren(...listing.models.map((id) => h('option', { value: id })));
    }
  }

  function startEdit(name, p) {
    editing = name;
    inputs.name.value = name;
    inputs.name.disabled = true;
    inputs.provider.value = p.provider;
    inputs.model.value = p.model;
    inputs.base_url.value = p.base_url || '';
    inputs.api_key.value = '';
    inputs.api_key.placeholder = p.api_key ? `${p.api_key} (empty: keep it)` : '';
    inputs.context_window.value = p.context_window || '';
    inputs.max_output_tokens.value = p.max_output_tokens || '';
    heading.textContent = `Edit ${name}`;
    submit.textContent = 'Save changes';
    cancelEdit.hidden = false;
    testConnection(name);
    inputs.model.focus();
  }

  function endEdit() {
    editing = null;
    form.reset();
    inputs.name.disabled = false;
    inputs.api_key.placeholder = '';
    modelChoices.replaceChildren();
    heading.textContent = 'Add a profile';
    submit.textContent = 'Add profile';
    cancelEdit.hidden = true;
  }

  const form = h('form', { class: 'form-grid', onsubmit: async (event) => {
    event.preventDefault();
    const profile = { provider: inputs.provider.value, model: inputs.model.value.trim() };
    if (inputs.base_url.value.trim() || editing) profile.base_url = inputs.base_url.value.trim();
    if (inputs.api_key.value) profile.api_key = inputs.api_key.value;
    for (const key of ['context_window', 'max_output_tokens']) {
      if (inputs[key].value) profile[key] = Number(inputs[key].value);
      else if (editing) profile[key] = null;
    }
    const name = editing || inputs.name.value.trim();
    const done = editing ? `Saved ${name}.` : `Added ${name}.`;
    const saved = await attempt(messages, () => (editing
      ? api('PATCH', `/api/profiles/${name}`, profile)
      : api('POST', '/api/profiles', { name, profile })));
    if (saved) {
      endEdit();
      await load();  // (clears the messages, so say it after)
      say(messages.ok, done);
    }
  } },
  field('Name', inputs.name, 'letters, digits, - and _'),
  field('Provider', inputs.provider), field('Model', inputs.model),
  field('Base URL', inputs.base_url), field('API key', inputs.api_key, 'stored encrypted'),
  field('Context window', inputs.context_window, 'tokens; empty: the model\'s'),
  field('Max output tokens', inputs.max_output_tokens), modelChoices,
  h('div', { class: 'form-actions' }, submit, cancelEdit));

  load();
  return h('section', { class: 'card', 'aria-labelledby': 'profiles-heading' },
    h('h3', { id: 'profiles-heading', text: 'Model profiles' }),
    h('div', { class: 'table-wrap' }, table), messages.error, messages.ok,
    heading, form);
}

// -- permissions --------------------------------------------------------------------------
function permissionsSection(api) {
  const messages = status('permissions');
  const mode = h('select', { id: 'perm-mode' },
    ...Object.entries(MODES).map(([value, text]) => h('option', { value, text })));
  const overrides = h('div', { class: 'overrides' });
  const selects = new Map();

  async function load() {
    const [policy, tools] = await Promise.all([
      attempt(messages, () => api('GET', '/api/permissions')),
      attempt(messages, () => api('GET', '/api/permissions/tools')),
    ]);
    if (!policy || !tools) return;
    mode.value = policy.mode;
    overrides.replaceChildren();
    selects.clear();
    for (const tool of tools.tools) {
      const select = h('select', { id: `perm-tool-${tool}` },
        h('option', { value: '', text: 'as the mode says' }),
        ...LEVELS.map((level) => h('option', { value: level, text: level })));
      select.value = policy.tool_overrides[tool] || '';
      selects.set(tool, select);
      overrides.append(field(tool, select));
    }
  }

  const form = h('form', { onsubmit: async (event) => {
    event.preventDefault();
    const toolOverrides = {};
    for (const [tool, select] of selects) if (select.value) toolOverrides[tool] = select.value;
    await attempt(messages, () => api('PUT', '/api/permissions',
      { mode: mode.value, tool_overrides: toolOverrides }), 'Saved the permission policy.');
  } },
  field('Mode', mode),
  h('h4', { text: 'Per tool (beats the mode)' }), overrides,
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' },
    'Save permissions')));
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'perm-heading' },
    h('h3', { id: 'perm-heading', text: 'Tool permissions' }), form, messages.error,
    messages.ok);
}

// -- sandbox ------------------------------------------------------------------------------
function sandboxSection(api) {
  const messages = status('sandbox');
  const inputs = {
    enabled: h('input', { type: 'checkbox', id: 'sb-enabled' }),
    network_enabled: h('input', { type: 'checkbox', id: 'sb-network' }),
    memory_limit_mb: h('input', { type: 'number', min: 32, id: 'sb-memory' }),
    cpu_seconds: h('input', { type: 'number', min: 1, id: 'sb-cpu' }),
    timeout_seconds: h('input', { type: 'number', min: 1, id: 'sb-timeout' }),
    workspace_mode: h('select', { id: 'sb-workspace' },
      h('option', { value: 'rw', text: 'read-write' }),
      h('option', { value: 'ro', text: 'read-only' })),
  };

  // Whether bubblewrap can run here, as /health reports it.
  const availability = h('p', { id: 'sb-status', class: 'hint', role: 'status' });

  async function load() {
    const [config, health] = await Promise.all([
      attempt(messages, () => api('GET', '/api/config/sandbox')),
      attempt(messages, () => api('GET', '/health')),
    ]);
    const box = health && health.sandbox;
    if (box) {
      availability.textContent = box.available
        ? `The sandbox is available on this server${box.enabled ? ' and on' : ' (off)'}.`
        : `The sandbox is not available on this server: ${box.reason || 'unknown reason'}.`;
      availability.className = box.available ? 'hint ok' : 'error';
    }
    if (!config) return;
    for (const [key, input] of Object.entries(inputs)) {
      if (input.type === 'checkbox') input.checked = !!config[key];
      else input.value = config[key];
    }
  }

  const check = (label, input) => h('div', { class: 'field check' }, input,
    h('label', { for: input.id, text: label }));
  const form = h('form', { class: 'form-grid', onsubmit: async (event) => {
    event.preventDefault();
    const body = {};
    for (const [key, input] of Object.entries(inputs)) {
      if (input.type === 'checkbox') body[key] = input.checked;
      else if (input.type === 'number') body[key] = Number(input.value);
      else body[key] = input.value;
    }
    await attempt(messages, () => api('PUT', '/api/config/sandbox', body),
      'Saved the sandbox config.');
  } },
  check('Run tools in the sandbox', inputs.enabled),
  check('Network inside the sandbox', inputs.network_enabled),
  field('Memory limit (MB)', inputs.memory_limit_mb),
  field('CPU seconds', inputs.cpu_seconds),
  field('Timeout (seconds)', inputs.timeout_seconds),
  field('Workspace', inputs.workspace_mode),
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' },
    'Save sandbox config')));
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'sandbox-heading' },
    h('h3', { id: 'sandbox-heading', text: 'Sandbox' }), availability, form, messages.error,
    messages.ok);
}

/** Fill `container` with the admin pages (or say they are for admins). */
export function renderSettings(app, container) {
  if (!app.me || !app.me.is_staff) {
    container.replaceChildren(h('p', { class: 'error', role: 'alert',
      text: 'Only admins change profiles, permissions and the sandbox.' }));
    return;
  }
  container.replaceChildren(profilesSection(app.api), permissionsSection(app.api),
    sandboxSection(app.api));
}
