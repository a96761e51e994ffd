// The usage page: tokens and cost over time and by user or model as charts (Chart.js,
// vendored under vendor/chartjs and loaded only here), the sums as a table, budgets
// with what is left, and a CSV export. Members see their own usage; admins anyone's.

import { h, fmt } from './util.js';
import { attempt, cell, field, messages, table } from './team.js';

const CHART_URL = new URL('./vendor/chartjs/chart.umd.min.js', import.meta.url).href;
const GROUPINGS = ['day', 'month', 'user', 'profile', 'model'];
const COLORS = { input: '#4c78a8', output: '#f58518', other: '#54a24b' };
let chartLibrary = null;

/** Chart.js, loaded on first use (a classic script: it defines window.Chart). */
function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  chartLibrary = chartLibrary || new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = CHART_URL;
    script.onload = () => resolve(window.Chart);
    script.onerror = () => reject(new Error('The chart library could not be loaded.'));
    document.head.append(script);
  });
  return chartLibrary;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function tokenChart(Chart, canvas, groups, title, horizontal) {
  return new Chart(canvas, {
    type: 'bar',
    data: {
      labels: groups.map((g) => g.key),
      datasets: [
        { label: 'input tokens', data: groups.map((g) => g.input_tokens),
          backgroundColor: COLORS.input, stack: 'tokens' },
        { label: 'output tokens', data: groups.map((g) => g.output_tokens),
          backgroundColor: COLORS.output, stack: 'tokens' },
      ],
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      indexAxis: horizontal ? 'y' : 'x',
      plugins: { title: { display: true, text: title }, legend: { position: 'bottom' } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
    },
  });
}

function chartBox(id, label) {
  const canvas = h('canvas', { id, role: 'img', 'aria-label': label });
  return [h('div', { class: 'chart-box' }, canvas), canvas];
}

function budgetLine(budget) {
  const who = budget.user ? budget.user : `group ${budget.group}`;
  const parts = [];
  if (budget.limit_tokens !== null) {
    parts.push(`${fmt(budget.used_tokens)} of ${fmt(budget.limit_tokens)} tokens`);
  }
  if (budget.limit_cost !== null) parts.push(`${budget.used_cost} of ${budget.limit_cost} cost`);
  const left = budget.remaining.tokens === 0 || budget.remaining.cost === '0';
  return h('li', { class: left ? 'budget used-up' : 'budget' },
    `${who}, ${budget.period}ly: ${parts.join(' and ')}`
    + (left ? ` — used up; turns are refused until ${new Date(budget.resets_at).toLocaleString()}`
      : ''));
}

export async function renderUsage(app, node) {
  const api = app.api;
  const admin = Boolean(app.me && app.me.is_staff);
  const msgs = messages('usage');
  const today = new Date();
  const from = h('input', { id: 'usage-from', type: 'date',
    value: isoDay(new Date(today.getTime() - 29 * 86400000)) });
  const to = h('input', { id: 'usage-to', type: 'date', value: isoDay(today) });
  const user = h('input', { id: 'usage-user', placeholder: admin ? 'everyone' : '',
    disabled: !admin, value: admin ? '' : app.me.username });
  const groupBy = h('select', { id: 'usage-group' },
    ...GROUPINGS.map((g) => h('option', { value: g, text: `by ${g}` })));
  const exportBtn = h('button', { type: 'button', id: 'usage-export', text: 'Export CSV' });
  const filters = h('form', { id: 'usage-filters', class: 'team-form' },
    field('From', from), field('To', to), field('User', user), field('Table', groupBy),
    h('button', { type: 'submit', class: 'primary', text: 'Show' }), exportBtn);
  const totals = h('p', { id: 'usage-totals', class: 'usage-totals' });
  const [timeBox, timeCanvas] = chartBox('usage-time-chart', 'Tokens per day');
  const [splitBox, splitCanvas] = chartBox('usage-split-chart',
    admin ? 'Tokens by user' : 'Tokens by model');
  const [wrap, rows] = table('usage-table', ['Key', 'Calls', 'Input tokens',
    'Output tokens', 'Cost', 'Model time']);
  const budgets = h('ul', { id: 'usage-budgets', class: 'budgets' });
  const charts = [];

  function query(extra) {
    const params = new URLSearchParams(extra);
    if (from.value) params.set('from', from.value);
    if (to.value) params.set('to', to.value);
    if (user.value.trim()) params.set('user', user.value.trim());
    return params;
  }

  async function load() {
    const split = admin && !user.value.trim() ? 'user' : 'model';
    const [daily, bySplit, byTable, budgetList] = await Promise.all([
      attempt(msgs, () => api('GET', `/api/usage?${query({ group_by: 'day' })}`)),
      attempt(msgs, () => api('GET', `/api/usage?${query({ group_by: split })}`)),
      attempt(msgs, () => api('GET', `/api/usage?${query({ group_by: groupBy.value })}`)),
      attempt(msgs, () => api('GET', '/api/budgets')),
    ]);
    if (!daily || !bySplit || !byTable) return;
    const sum = daily.totals;
    totals.textContent = `${fmt(sum.calls)} model calls · ${fmt(sum.input_tokens)} input and `
      + `${fmt(sum.output_tokens)} output tokens` + (sum.cost ? ` · cost ${sum.cost}` : '');
    rows.replaceChildren(...byTable.groups.map((g) => h('tr', {},
      cell(g.key), cell(fmt(g.calls)), cell(fmt(g.input_tokens)), cell(fmt(g.output_tokens)),
      cell(g.cost ?? '–'), cell(`${(g.duration_ms / 1000).toFixed(1)} s`))));
    budgets.replaceChildren(...(budgetList ? budgetList.budgets.map(budgetLine) : []));
    if (budgetList && !budgetList.budgets.length) {
      budgets.append(h('li', { text: 'No budget applies.' }));
    }
    try {
      const Chart = await loadChart();
      charts.splice(0).forEach((chart) => chart.destroy());
      // A page drawn again (a second visit, a second load at once) leaves charts on
      // canvases that are gone or about to be reused: drop them, one chart per canvas.
      Object.values(Chart.instances).forEach((chart) => {
        if (!chart.canvas.isConnected || chart.canvas === timeCanvas
            || chart.canvas === splitCanvas) chart.destroy();
      });
      charts.push(tokenChart(Chart, timeCanvas, daily.groups, 'Tokens per day', false));
      charts.push(tokenChart(Chart, splitCanvas, bySplit.groups, `Tokens by ${split}`, true));
    } catch (err) {
      msgs.error.textContent = err.message;
      msgs.error.hidden = false;
    }
  }

  async function download() {
    const response = await fetch(`/api/usage/export?${query({})}`,
      { headers: { Authorization: `Bearer ${app.token()}` } });
    if (!response.ok) return;
    const link = h('a', { href: URL.createObjectURL(await response.blob()),
      download: 'usage.csv' });
    link.click();
    URL.revokeObjectURL(link.href);
  }

  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  exportBtn.addEventListener('click', download);
  node.replaceChildren(
    h('section', { class: 'card team-card', 'aria-labelledby': 'usage-heading' },
      h('h3', { id: 'usage-heading', text: admin ? 'Usage' : 'Your usage' }),
      filters, msgs.error, totals, h('div', { class: 'charts' }, timeBox, splitBox)),
    h('section', { class: 'card team-card', 'aria-labelledby': 'usage-table-heading' },
      h('h3', { id: 'usage-table-heading', text: 'Sums' }), wrap),
    h('section', { class: 'card team-card', 'aria-labelledby': 'budgets-heading' },
      h('h3', { id: 'budgets-heading', text: 'Budgets' }), budgets));
  await load();
}
