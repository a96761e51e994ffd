// The "Jobs" page, for every user: the caller's scheduled jobs (name, schedule, next run,
// active or paused, last run), a form to create or change one (cron with a time zone, an
// interval, or once; the prompt; the profile; tools a run may call unasked; notification
// destinations), run now, pause and resume, delete after a confirmation, and a job's runs
// with a link to its chat. Everything goes through /api/jobs (docs/jobs.md).

import { h, fmt } from './util.js';
import { attempt, cell, fetchQuietly, field, messages, table } from './team.js';
import { destinationsCard } from './destinations.js';

const UNITS = [['60', 'minutes'], ['3600', 'hours'], ['86400', 'days']];
const POLL_MS = 1500;  // while a run is running, its row is refreshed this often
const RUNS_SHOWN = 20;
const JOB_HEADINGS = ['Name', 'Schedule', 'Next run', 'State', 'Last run', ''];
const RUN_HEADINGS = ['Started', 'Trigger', 'Status', 'Duration', 'Tokens', 'Chat', 'Error'];
let shownPage = 0;  // the render that owns the page now; an older one stops polling

function zoneHere() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function zones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}

const stamp = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

/** "cron 0 9 * * 1-5 (Europe/Paris)", "every 2 hours", "once, 3/1/2026, 09:00:00". */
export function describeSchedule(schedule) {
  if (schedule.kind === 'cron') return `cron ${schedule.cron} (${schedule.timezone})`;
  if (schedule.kind === 'interval') {
    const [unit, name] = [...UNITS].reverse().find(([size]) =>
      schedule.seconds % Number(size) === 0) || ['1', 'seconds'];
    const count = schedule.seconds / Number(unit);
    return `every ${count} ${count === 1 ? name.replace(/s$/, '') : name}`;
  }
  return `once, ${stamp(schedule.at)}`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function usageText(usage) {
  if (!usage) return '–';
  return `${fmt(usage.input_tokens || 0)} in / ${fmt(usage.output_tokens || 0)} out`;
}

function statusBadge(status) {
  const kind = { succeeded: 'done', failed: 'error', interrupted: 'error', running: 'asking',
    paused: '', active: 'done' }[status] ?? '';
  return h('span', { class: `badge ${kind}`.trim(), text: status });
}

/** Each cell names its column (data-label): at phone width a row is a card, without the
 * table's header. */
function labelled(row, headings) {
  [...row.children].forEach((td, n) => { if (headings[n]) td.dataset.label = headings[n]; });
  return row;
}

/** A local "YYYY-MM-DDTHH:MM" for a datetime-local input. */
function localInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** Checkboxes for `names`, `checked` ticked; returns [node, () => ticked names]. */
function checkList(id, names, checked, empty) {
  const boxes = names.map((name) => h('input', { type: 'checkbox', value: name,
    checked: checked.includes(name) }));
  const node = h('div', { id, class: 'check-list' },
    ...boxes.map((box) => h('label', { class: 'team-check' }, box, ` ${box.value}`)),
    names.length ? null : h('span', { class: 'hint', text: empty }));
  return [node, () => boxes.filter((box) => box.checked).map((box) => box.value)];
}

/** The create / change form. `options`: profiles, default profile, tools, destinations. */
function jobForm(options, job, onSubmit, onCancel) {
  const schedule = job ? job.schedule : { kind: 'cron', cron: '0 9 * * 1-5',
    timezone: zoneHere() };
  const name = h('input', { id: 'job-name', required: true, maxLength: 64,
    pattern: '[\\w\\-]+', value: job ? job.name : '', placeholder: 'standup',
    title: 'Letters, digits, - and _' });
  const kind = h('select', { id: 'job-kind' },
    h('option', { value: 'cron', text: 'cron (with a time zone)' }),
    h('option', { value: 'interval', text: 'every …' }),
    h('option', { value: 'once', text: 'once' }));
  kind.value = schedule.kind;
  const cron = h('input', { id: 'job-cron', value: schedule.cron || '0 9 * * 1-5',
    maxLength: 120, spellcheck: 'false', title: 'minute hour day-of-month month day-of-week' });
  const zone = h('input', { id: 'job-timezone', list: 'job-zones',
    value: schedule.timezone || zoneHere(), maxLength: 64, spellcheck: 'false' });
  const zoneList = h('datalist', { id: 'job-zones' },
    ...zones().map((value) => h('option', { value })));
  const seconds = schedule.seconds || 3600;
  const [unitSize] = [...UNITS].reverse().find(([size]) => seconds % Number(size) === 0)
    || UNITS[0];
  const every = h('input', { id: 'job-every', type: 'number', min: 1, step: 1,
    value: String(seconds / Number(unitSize)) });
  const unit = h('select', { id: 'job-unit' },
    ...UNITS.map(([value, text]) => h('option', { value, text })));
  unit.value = unitSize;
  const at = h('input', { id: 'job-at', type: 'datetime-local',
    value: schedule.at ? localInput(schedule.at) : '' });
  const cronFields = h('div', { class: 'team-form-row' }, field('Cron expression', cron),
    field('Time zone', zone), zoneList);
  const everyFields = h('div', { class: 'team-form-row' }, field('Every', every),
    field('Unit', unit));
  const onceFields = h('div', { class: 'team-form-row' }, field('At (your local time)', at));
  const showKind = () => {
    cronFields.hidden = kind.value !== 'cron';
    everyFields.hidden = kind.value !== 'interval';
    onceFields.hidden = kind.value !== 'once';
  };
  kind.addEventListener('change', showKind);
  showKind();

  const prompt = h('textarea', { id: 'job-prompt', rows: 4, required: true,
    maxLength: 100000, placeholder: 'Write the standup report from yesterday\'s commits.' });
  prompt.value = job ? job.prompt : '';
  const profile = h('select', { id: 'job-profile' },
    h('option', { value: '', text: options.defaultProfile
      ? `default (${options.defaultProfile})` : 'default' }),
    ...options.profiles.map((value) => h('option', { value, text: value })));
  if (job && job.profile && !options.profiles.includes(job.profile)) {
    profile.append(h('option', { value: job.profile, text: job.profile }));  // kept as is
  }
  profile.value = job && job.profile ? job.profile : '';
  const enabled = h('input', { id: 'job-enabled', type: 'checkbox',
    checked: job ? job.enabled : true });
  const [tools, toolsTicked] = checkList('job-tools', options.tools,
    job ? job.allowed_tools : [], 'No tools are available.');
  const destinationsSet = h('fieldset', { class: 'job-set' },
    h('legend', { text: 'Send the result to' }));
  let destinationsTicked = () => [];
  /** (Re)list the destinations to choose from, keeping what is ticked. */
  function listDestinations(names, ticked) {
    const [list, tickedNow] = checkList('job-destinations', names, ticked,
      'No notification destinations yet (add one below); the result stays in the job\'s '
      + 'chat.');
    destinationsSet.querySelector('#job-destinations')?.remove();
    destinationsSet.append(list);
    destinationsTicked = tickedNow;
  }
  listDestinations(options.destinations, job ? job.destinations : []);

  function body() {
    const picked = { kind: kind.value };
    if (kind.value === 'cron') Object.assign(picked, { cron: cron.value.trim(),
      timezone: zone.value.trim() || 'UTC' });
    if (kind.value === 'interval') picked.seconds = Math.round(Number(every.value)
      * Number(unit.value));
    if (kind.value === 'once') {
      const when = new Date(at.value);
      picked.at = Number.isNaN(when.getTime()) ? at.value : when.toISOString();
    }
    return { name: name.value.trim(), schedule: picked, prompt: prompt.value,
      profile: profile.value || null, enabled: enabled.checked,
      allowed_tools: toolsTicked(), destinations: destinationsTicked() };
  }

  const form = h('form', { id: 'job-form', class: 'job-form' },
    h('div', { class: 'team-form-row' }, field('Name', name), field('Schedule', kind),
      field('Profile', profile)),
    cronFields, everyFields, onceFields,
    h('label', { class: 'team-field wide', for: 'job-prompt' }, h('span', { text: 'Prompt' }),
      prompt),
    h('fieldset', { class: 'job-set' },
      h('legend', { text: 'Tools a run may call unasked' }),
      h('p', { class: 'hint', text: 'Nobody is there to approve a call in a scheduled run: '
        + 'calls the permission policy would ask about are denied, except for these tools. '
        + 'The policy\'s "deny" still applies.' }), tools),
    destinationsSet,
    h('label', { class: 'team-check' }, enabled, ' active (runs on its schedule)'),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'primary', text: job ? 'Save job' : 'Create job' }),
      job ? h('button', { type: 'button', text: 'Cancel', onclick: onCancel }) : null));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    onSubmit(body());
  });
  form.listDestinations = (names) => listDestinations(names, destinationsTicked());
  return form;
}

export async function renderJobs(app, node) {
  const page = ++shownPage;
  const api = app.api;
  const msgs = messages('jobs');
  const formMsgs = messages('job-form');
  const runMsgs = messages('runs');
  const [wrap, rows] = table('jobs-table', JOB_HEADINGS);
  const formCard = h('section', { class: 'card team-card', 'aria-labelledby': 'job-form-heading' });
  const runsCard = h('section', { id: 'job-runs', class: 'card team-card', hidden: true,
    'aria-labelledby': 'runs-heading' });
  const options = { profiles: [], defaultProfile: null, tools: [], destinations: [] };
  let jobs = [];
  let jobFormNode = null;
  let runsOf = null;  // the job whose runs are shown
  let runningSeen = null;  // how many of its runs were running at the last look
  let timer = null;

  const here = () => page === shownPage && !node.hidden;
  const jobPath = (job, rest = '') => `/api/jobs/${encodeURIComponent(job.id)}${rest}`;

  async function loadOptions() {
    const [profiles, tools, destinations] = await Promise.all([
      fetchQuietly(msgs, () => api('GET', '/api/profiles')),
      fetchQuietly(msgs, () => api('GET', '/api/permissions/tools')),
      fetchQuietly(msgs, () => api('GET', '/api/notifications/destinations'))]);
    options.profiles = profiles ? Object.keys(profiles.profiles || {}) : [];
    options.defaultProfile = profiles ? profiles.default : null;
    options.tools = tools ? tools.tools : [];
    options.destinations = destinations ? destinations.destinations.map((d) => d.name) : [];
  }

  function showForm(job) {
    formCard.replaceChildren(
      h('h3', { id: 'job-form-heading', text: job ? `Change “${job.name}”` : 'New job' }),
      formMsgs.error, formMsgs.ok,
      jobFormNode = jobForm(options, job, (body) => save(job, body), () => showForm(null)));
    if (job) formCard.scrollIntoView({ block: 'nearest' });
  }

  async function save(job, body) {
    const saved = await attempt(formMsgs, () => (job
      ? api('PATCH', jobPath(job), body) : api('POST', '/api/jobs', body)),
    (result) => (job ? `Saved ${result.name}.` : `Created ${result.name}; its chat is `
      + `“Job: ${result.name}” in the chat list.`));
    if (!saved) return;
    if (!job) app.loadChats(true);  // the job's new chat
    showForm(null);  // the same message lines, so the message stays
    await load();
  }

  async function lastRun(job) {
    try {
      const listing = await api('GET', jobPath(job, '/runs?limit=1'));
      return listing.runs[0] || null;
    } catch {
      return null;
    }
  }

  function row(job, last) {
    const id = String(job.id);
    return labelled(h('tr', { dataset: { job: job.name, jobId: id } },
      h('td', {}, h('strong', { text: job.name }),
        job.note ? h('div', { class: 'hint', text: job.note }) : null),
      cell(describeSchedule(job.schedule)),
      cell(job.enabled && job.next_fire_at ? stamp(job.next_fire_at) : '–'),
      h('td', {}, statusBadge(job.enabled ? 'active' : 'paused')),
      h('td', { class: 'last-run' }, last ? statusBadge(last.status) : 'never',
        last ? ` ${stamp(last.started_at)}` : ''),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', text: 'Run now', onclick: () => runNow(job) }),
        h('button', { type: 'button', text: job.enabled ? 'Pause' : 'Resume',
          onclick: () => setEnabled(job, !job.enabled) }),
        h('button', { type: 'button', text: 'Edit', onclick: () => showForm(job) }),
        h('button', { type: 'button', text: 'Runs', onclick: () => showRuns(job) }),
        h('a', { href: `#/chats/${job.chat_id}`, class: 'button-link', text: 'Chat' }),
        h('button', { type: 'button', class: 'danger', text: 'Delete',
          onclick: () => remove(job) }))), JOB_HEADINGS);
  }

  async function load() {
    const listing = await fetchQuietly(msgs, () => api('GET', '/api/jobs'));
    if (!listing || !here()) return;
    jobs = listing.jobs;
    const lasts = await Promise.all(jobs.map(lastRun));
    if (!here()) return;
    rows.replaceChildren(...jobs.map((job, n) => row(job, lasts[n])));
    if (!jobs.length) {
      rows.append(h('tr', {}, h('td', { colspan: 6, class: 'hint',
        text: 'No jobs yet: create one below.' })));
    }
    if (runsOf) {
      runsOf = jobs.find((job) => job.id === runsOf.id) || null;
      if (runsOf) await loadRuns(); else runsCard.hidden = true;
    }
  }

  async function setEnabled(job, enabled) {
    const done = await attempt(msgs, () => api('PATCH', jobPath(job), { enabled }),
      `${job.name} is ${enabled ? 'active again: missed runs are skipped' : 'paused'}.`);
    if (done) await load();
  }

  async function remove(job) {
    if (!await app.confirm(`Delete the job “${job.name}”? Its chat and its runs are `
      + 'deleted with it.')) return;
    const done = await attempt(msgs, () => api('DELETE', jobPath(job)),
      `Deleted ${job.name}.`);
    if (!done) return;
    if (runsOf && runsOf.id === job.id) {
      runsOf = null;
      runsCard.hidden = true;
    }
    app.listItem(job.chat_id)?.remove();
    await load();
  }

  async function runNow(job) {
    const run = await attempt(msgs, () => api('POST', jobPath(job, '/run')),
      `${job.name} is running now.`);
    if (!run) return;
    runningSeen = Infinity;  // so the job's row shows the new run at the first look
    await showRuns(job, true);
  }

  async function showRuns(job, started = false) {
    if (!started) runningSeen = null;
    runsOf = job;
    await loadRuns();
    runsCard.scrollIntoView({ block: 'nearest' });
  }

  function runRow(run) {
    return labelled(h('tr', { dataset: { runId: String(run.id), status: run.status } },
      cell(stamp(run.started_at)), cell(run.trigger), h('td', {}, statusBadge(run.status)),
      cell(duration(run.duration_ms)), cell(usageText(run.usage)),
      h('td', {}, h('a', { href: `#/chats/${run.chat_id}`, class: 'open-chat',
        text: 'Open chat' })),
      cell(run.error || (run.stop_reason && run.stop_reason !== 'end_turn'
        ? run.stop_reason : ''))), RUN_HEADINGS);
  }

  async function loadRuns() {
    clearTimeout(timer);
    const job = runsOf;
    if (!job) return;
    const listing = await fetchQuietly(runMsgs, () =>
      api('GET', jobPath(job, `/runs?limit=${RUNS_SHOWN}`)));
    if (!listing || !here() || runsOf !== job) return;
    const [runsWrap, runRows] = table('runs-table', RUN_HEADINGS);
    runRows.append(...listing.runs.map(runRow));
    if (!listing.runs.length) {
      runRows.append(h('tr', {}, h('td', { colspan: 7, class: 'hint', text: 'No runs yet.' })));
    }
    runsCard.replaceChildren(
      h('h3', { id: 'runs-heading', text: `Runs of ${job.name}` }), runMsgs.error, runsWrap);
    runsCard.hidden = false;
    const running = listing.runs.filter((run) => run.status === 'running').length;
    const changed = runningSeen !== null && running !== runningSeen;
    runningSeen = running;
    if (running) timer = setTimeout(() => here() && loadRuns(), POLL_MS);
    if (changed) await refreshLastRun(job);
  }

  /** A run ended: the job's row shows it as its last run (and its next fire). */
  async function refreshLastRun(job) {
    const [fresh, last] = await Promise.all([
      fetchQuietly(msgs, () => api('GET', jobPath(job))), lastRun(job)]);
    const old = rows.querySelector(`tr[data-job-id="${CSS.escape(String(job.id))}"]`);
    if (fresh && old && here()) old.replaceWith(row(fresh, last));
  }

  const destinations = destinationsCard(app, async () => {
    await loadOptions();
    if (here() && jobFormNode) jobFormNode.listDestinations(options.destinations);
  });
  node.replaceChildren(
    h('section', { class: 'card team-card', 'aria-labelledby': 'jobs-heading' },
      h('h3', { id: 'jobs-heading', text: 'Scheduled jobs' }),
      h('p', { class: 'hint', text: 'A job runs its prompt on a schedule, as a turn in its '
        + 'own chat, and can send the result to your notification destinations.' }),
      msgs.error, msgs.ok, wrap),
    runsCard, formCard, destinations.card);
  await loadOptions();
  if (!here()) return;
  showForm(null);
  await Promise.all([load(), destinations.load()]);
}
