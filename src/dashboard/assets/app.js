// Orrery dashboard: plain JS, no framework, nothing loaded from elsewhere.
//
// Every value shown comes from the control API, called with the token the operator typed
// (kept in this tab's sessionStorage only). Text from the engine (model answers, reasons)
// is always set as textContent, never parsed as HTML. Live updates arrive over the
// `/api/events` Server-Sent Events stream, read with a streaming fetch so the token goes
// in the Authorization header, never in a URL.
'use strict';

const TOKEN_KEY = 'orrery.token';
const PAGES = ['overview', 'positions', 'agents', 'journal', 'signals', 'models', 'venues', 'tree'];
const PAGE_SIZE = 50;
const MAX_LIVE = 100;

const S = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  canTrade: false,
  access: '',
  page: 'overview',
  status: null,
  ordersNext: null,
  journalNext: null,
  live: null,
  refreshTimer: null,
  // Navigation timing of the first page with data (read by the browser test).
  firstPaintMs: null,
};

// ---------------------------------------------------------------- helpers

function $(id) { return document.getElementById(id); }

// Builds an element; children are nodes or text (set as text, never as HTML).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function fmt(v) {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// Decimal strings stay exact for display; numbers only for signs and charts.
function num(v) { const n = Number(v); return Number.isFinite(n) ? n : 0; }
function money(v) {
  if (v === null || v === undefined) return '-';
  const n = num(v);
  return n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
function signed(v) { return num(v) > 0 ? 'pos' : num(v) < 0 ? 'neg' : ''; }
function time(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-'; }

// A table from rows: columns are [header, row => value or node, optional class].
function table(el, columns, rows, empty) {
  el.replaceChildren(h('thead', null, h('tr', null, columns.map(c => h('th', null, c[0])))));
  const body = h('tbody');
  if (!rows.length) {
    body.appendChild(h('tr', null, h('td', { class: 'empty', colspan: columns.length }, empty || 'none')));
  }
  for (const r of rows) body.appendChild(row(columns, r));
  el.appendChild(body);
  return body;
}

function row(columns, r) {
  return h('tr', null, columns.map(c => {
    const v = c[1](r);
    return h('td', { class: c[2] || null }, v instanceof Node ? v : fmt(v));
  }));
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function headers(extra) {
  const hd = Object.assign({}, extra || {});
  if (S.token) hd.Authorization = 'Bearer ' + S.token;
  return hd;
}

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || 'GET', headers: headers() };
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!res.ok) {
    const err = body && body.error ? body.error : { code: 'http_' + res.status, message: text || res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  if (body === null && path !== '/metrics') throw new ApiError(res.status, 'malformed', 'the engine sent no JSON');
  return path === '/metrics' ? text : body;
}

function showError(e) {
  const el = $('error');
  if (!e) { el.hidden = true; el.textContent = ''; return; }
  if (e.status === 401) { logout(e.message); return; }
  el.textContent = e.message || String(e);
  el.hidden = false;
}

// ---------------------------------------------------------------- confirmation

function confirmAction(text) {
  const dlg = $('confirm');
  $('confirm-text').textContent = text;
  return new Promise(resolve => {
    const done = ok => {
      $('confirm-yes').onclick = null;
      $('confirm-no').onclick = null;
      dlg.close();
      resolve(ok);
    };
    $('confirm-yes').onclick = () => done(true);
    $('confirm-no').onclick = () => done(false);
    dlg.showModal();
  });
}

async function act(label, fn) {
  try {
    await fn();
    showError(null);
  } catch (e) {
    showError(new ApiError(e.status, e.code, label + ': ' + e.message));
  }
  scheduleRefresh(0);
}

// A trading button: disabled for a read-only token, with a title that says why.
function tradeButton(label, attrs, onClick) {
  const b = h('button', Object.assign({ type: 'button' }, attrs), label);
  if (!S.canTrade) {
    b.disabled = true;
    b.title = 'needs the trading token';
  } else {
    b.addEventListener('click', onClick);
  }
  return b;
}

// ---------------------------------------------------------------- session and login

function showLogin(message) {
  $('login').hidden = false;
  $('tabs').hidden = true;
  $('main').hidden = true;
  $('forget').hidden = true;
  $('login-error').textContent = message || '';
  document.body.dataset.state = 'login';
}

function logout(message) {
  S.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  stopLive();
  showLogin(message);
}

async function start() {
  let session;
  try {
    session = await api('/api/dashboard/session');
  } catch (e) {
    if (e.status === 401) {
      // A token that was refused is forgotten, so a reload does not retry it.
      logout(S.token ? e.message : '');
      return;
    }
    showLogin('the engine did not answer: ' + e.message);
    return;
  }
  S.access = session.access;
  S.canTrade = session.can_trade;
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('main').hidden = false;
  $('forget').hidden = !S.token;
  $('access').textContent = session.access === 'open' ? 'no token needed' : session.access + ' token';
  $('access').className = 'badge ' + (session.can_trade ? 'good' : 'warn');
  document.body.classList.toggle('read-only', !S.canTrade);
  document.body.dataset.state = 'app';
  document.body.dataset.access = session.access;
  startLive();
  await route();
}

$('login-form').addEventListener('submit', ev => {
  ev.preventDefault();
  S.token = $('token-input').value.trim();
  $('token-input').value = '';
  if (S.token) sessionStorage.setItem(TOKEN_KEY, S.token);
  start();
});
$('forget').addEventListener('click', () => logout(''));

// ---------------------------------------------------------------- routing

async function route() {
  const want = (location.hash || '#overview').slice(1);
  S.page = PAGES.includes(want) ? want : 'overview';
  for (const p of PAGES) $('page-' + p).hidden = p !== S.page;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.page === S.page);
  await refresh(true);
}
window.addEventListener('hashchange', () => { if (document.body.dataset.state === 'app') route(); });

async function refresh(first) {
  const section = $('page-' + S.page);
  try {
    S.status = await api('/api/status');
    renderHeader(S.status);
    await RENDER[S.page](first);
    showError(null);
    section.dataset.loaded = String(Date.now());
    if (S.firstPaintMs === null) {
      S.firstPaintMs = performance.now();
      document.body.dataset.firstPaintMs = String(Math.round(S.firstPaintMs));
    }
  } catch (e) {
    showError(e);
  }
}

// Coalesces the reloads many events ask for into one, soon.
function scheduleRefresh(delay) {
  if (S.refreshTimer) return;
  S.refreshTimer = setTimeout(() => { S.refreshTimer = null; refresh(false); }, delay);
}

// ---------------------------------------------------------------- header and badges

function renderHeader(st) {
  const m = st.mode || {};
  const label = m.kill_switch ? 'halted (kill switch)' : (m.mode || '?');
  $('mode').textContent = 'mode: ' + label;
  $('mode').className = 'badge ' + (m.mode || '');
  $('mode').title = m.reason || '';
  $('badges').replaceChildren(...statusBadges(st).map(b => h('span', { class: 'badge ' + b.level, title: b.title || null, dataset: { badge: b.id } }, b.label)));
}

// One badge per condition an operator should see at a glance. Each is {id, label, level,
// title}; add new kinds of status here.
function statusBadges(st) {
  const out = [];
  if (st.mode && st.mode.kill_switch) out.push({ id: 'kill-switch', label: 'kill switch engaged', level: 'bad', title: st.mode.reason });
  for (const v of st.venues || []) {
    if (v.error) out.push({ id: 'venue-' + v.name, label: v.name + ': unavailable', level: 'bad', title: v.error });
    for (const c of v.connectors || []) {
      if (c.state !== 'ready') out.push({ id: 'connector-' + c.connector, label: c.connector + ': ' + c.state, level: c.state === 'probing' ? 'warn' : 'bad' });
    }
  }
  for (const a of st.agents || []) {
    if (a.paused) out.push({ id: 'paused-' + a.name, label: a.name + ' paused', level: 'warn', title: a.paused.reason });
  }
  const r = st.resources;
  if (r && r.level && r.level !== 'normal') {
    const paused = (r.paused_work || []).length ? '; paused: ' + r.paused_work.join(', ') : '';
    out.push({ id: 'resources', label: 'resources: ' + r.level, level: r.level === 'warn' ? 'warn' : 'bad', title: r.reason + paused });
  }
  return out;
}

// ---------------------------------------------------------------- overview

function totals(st) {
  const t = { equity: 0, realized: 0, unrealized: 0, exposure: 0, known: true };
  for (const v of st.venues || []) {
    if (!v.account) { t.known = false; continue; }
    t.equity += num(v.account.account_value);
    t.realized += num(v.realized_pnl_usd) - num(v.fees_usd);
    for (const p of v.position_pnl || []) {
      t.unrealized += num(p.unrealized_pnl_usd);
      t.exposure += Math.abs(num(p.exposure_usd));
    }
  }
  return t;
}

async function renderOverview() {
  const st = S.status;
  const t = totals(st);
  const card = (id, label, value, cls) => h('div', { class: 'card', id: 'card-' + id },
    h('div', { class: 'label' }, label), h('div', { class: 'value ' + (cls || '') }, value));
  $('cards').replaceChildren(
    card('mode', 'Mode', st.mode ? st.mode.mode : '?', st.mode ? st.mode.mode : ''),
    card('equity', 'Equity (USD)', t.known ? money(t.equity) : 'unknown'),
    card('realized', 'Realized PnL (after fees)', money(t.realized), signed(t.realized)),
    card('unrealized', 'Unrealized PnL', money(t.unrealized), signed(t.unrealized)),
    card('exposure', 'Exposure', money(t.exposure)),
    card('open-orders', 'Open orders', String((st.open_orders || []).length)),
    card('ledger', 'Orders in ledger', String(st.orders_in_ledger)),
  );
  const series = await api('/api/dashboard/equity?points=400');
  drawChart($('equity-chart'), series.points.map(p => [p.time_ms, num(p.equity_usd)]));
}

// An SVG line chart of [time_ms, value] pairs, drawn here (no library).
function drawChart(el, pts) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 1000, H = 220, L = 70, R = 10, T = 10, B = 24;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  if (pts.length < 2) {
    add('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'none' },
      pts.length ? 'one sample so far; the chart fills as the engine samples equity' : 'no equity samples yet');
    el.replaceChildren(svg);
    el.dataset.points = String(pts.length);
    return;
  }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    add('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' });
    add('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end', class: 'axis' }, money(v));
  }
  add('text', { x: L, y: H - 6, class: 'axis' }, time(t0));
  add('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, time(t1));
  const d = pts.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
  add('path', { d, class: 'line' });
  el.replaceChildren(svg);
  el.dataset.points = String(pts.length);
}

// ---------------------------------------------------------------- positions and orders

function orderColumns(withCancel) {
  // Open orders are the gateway's reports, history rows the ledger's (`type`, `origin`).
  const cols = [
    ['Created', o => o.created ? o.created.replace('T', ' ').slice(0, 19) : time(o.created_ms)],
    ['Client id', o => o.client_id],
    ['Venue', o => o.venue],
    ['Symbol', o => o.symbol],
    ['Side', o => o.side],
    ['Type', o => o.type || (o.limit_price ? 'limit' : 'market')],
    ['Size', o => o.size, 'num'],
    ['Limit', o => o.limit_price, 'num'],
    ['Filled', o => o.filled_size, 'num'],
    ['Status', o => o.status],
    ['Origin', o => o.origin],
  ];
  if (withCancel) {
    cols.push(['', o => tradeButton('Cancel', { class: 'danger', dataset: { cancel: o.client_id } }, () => {
      confirmAction(`Cancel ${o.side} ${o.size} ${o.symbol} on ${o.venue} (order ${o.client_id})?`).then(ok => {
        if (ok) act('cancel', () => api('/api/orders/cancel', { method: 'POST', body: { venue: o.venue, client_id: o.client_id } }));
      });
    })]);
  }
  return cols;
}

async function renderPositions(first) {
  const st = S.status;
  const rows = [];
  for (const v of st.venues || []) {
    const marks = {};
    for (const p of v.position_pnl || []) marks[p.symbol] = p;
    for (const p of v.positions || []) {
      if (num(p.size) === 0) continue;
      rows.push(Object.assign({ venue: v.name, pnl: marks[p.symbol] || {} }, p));
    }
  }
  table($('positions-table'), [
    ['Venue', p => p.venue],
    ['Symbol', p => p.symbol],
    ['Size', p => p.size, 'num'],
    ['Entry', p => p.entry_price, 'num'],
    ['Mark', p => p.mark_price, 'num'],
    ['Unrealized PnL', p => h('span', { class: signed(p.unrealized_pnl) }, p.unrealized_pnl), 'num'],
    ['Exposure', p => p.pnl.exposure_usd, 'num'],
    ['Leverage', p => p.leverage, 'num'],
    ['', p => tradeButton('Close', { class: 'danger', dataset: { close: p.venue + ':' + p.symbol } }, () => {
      confirmAction(`Close the whole ${p.symbol} position (${p.size}) on ${p.venue} at market?`).then(ok => {
        if (ok) act('close', () => api('/api/positions/close', { method: 'POST', body: { venue: p.venue, symbol: p.symbol, percent: 100 } }));
      });
    })],
  ], rows, 'no open positions').dataset.rows = String(rows.length);
  const open = (st.open_orders || []).map(o => Object.assign({ venue: o.venue }, o));
  table($('open-orders-table'), orderColumns(true), open, 'no open orders');
  if (first) {
    const page = await api(`/api/dashboard/orders?limit=${PAGE_SIZE}`);
    S.ordersNext = page.next;
    const body = table($('orders-table'), orderColumns(false), page.items, 'no orders yet');
    body.id = 'orders-body';
    $('orders-more').hidden = !page.next;
  }
}

$('orders-more').addEventListener('click', async () => {
  try {
    const page = await api(`/api/dashboard/orders?limit=${PAGE_SIZE}&before=${encodeURIComponent(S.ordersNext)}`);
    S.ordersNext = page.next;
    for (const o of page.items) $('orders-body').appendChild(row(orderColumns(false), o));
    $('orders-more').hidden = !page.next;
  } catch (e) { showError(e); }
});

// ---------------------------------------------------------------- agents

async function renderAgents() {
  const rep = await api('/api/agents');
  const body = table($('agents-table'), [
    ['Name', a => a.name],
    ['Kind', a => a.kind],
    ['State', a => a.paused ? 'paused' : a.state],
    ['Every', a => a.schedule ? a.schedule.interval : '-'],
    ['Runs', a => a.runs, 'num'],
    ['Failures', a => a.failures, 'num'],
    ['Last run', a => time(a.last_run_ms)],
    ['Next run', a => a.paused ? '-' : time(a.next_run_ms)],
    ['Note', a => a.pause_reason || a.last_error || a.warning],
    ['', a => h('span', null,
      a.paused
        ? tradeButton('Resume', { dataset: { resume: a.name } }, () => act('resume', () => api(`/api/agents/${encodeURIComponent(a.name)}/resume`, { method: 'POST', body: { reason: 'resumed from the dashboard' } })))
        : tradeButton('Pause', { dataset: { pause: a.name } }, () => act('pause', () => api(`/api/agents/${encodeURIComponent(a.name)}/pause`, { method: 'POST', body: { reason: 'paused from the dashboard' } }))),
      ' ',
      tradeButton('Run now', { dataset: { runNow: a.name } }, () => act('run now', () => api(`/api/agents/${encodeURIComponent(a.name)}/run-now`, { method: 'POST' }))))],
  ], rep.agents, 'no agents configured');
  body.dataset.rows = String(rep.agents.length);
  table($('agent-decisions-table'), [
    ['Time', d => time(d.time_ms)],
    ['Agent', d => d.agent],
    ['Symbol', d => d.symbol],
    ['Action', d => d.action],
    ['Confidence', d => d.confidence, 'num'],
    ['Votes', d => d.votes],
    ['Outcome', d => d.outcome],
    ['Reason', d => d.reason || d.error],
  ], S.status.decisions || [], 'no decisions yet');
}

// ---------------------------------------------------------------- journal

const JOURNAL_COLUMNS = [
  ['Time', d => time(d.time_ms)],
  ['Agent', d => d.agent],
  ['Symbol', d => d.symbol],
  ['Mode', d => d.mode],
  ['Verdict', d => d.action],
  ['Confidence', d => d.confidence, 'num'],
  ['Votes', d => d.votes_summary],
  ['Outcome', d => d.outcome],
  ['Orders', d => (d.orders || []).length, 'num'],
];

function journalRow(d) {
  const tr = row(JOURNAL_COLUMNS, d);
  tr.className = 'clickable';
  tr.dataset.decision = d.id;
  tr.addEventListener('click', () => showDecision(d.id, tr));
  return tr;
}

async function renderJournal(first) {
  if (!first) return;
  const page = await api(`/api/dashboard/decisions?limit=${PAGE_SIZE}`);
  S.journalNext = page.next;
  const body = table($('journal-table'), JOURNAL_COLUMNS, [], 'no decisions yet');
  if (page.items.length) body.replaceChildren(...page.items.map(journalRow));
  body.id = 'journal-body';
  $('journal-more').hidden = !page.next;
}

$('journal-more').addEventListener('click', async () => {
  try {
    const page = await api(`/api/dashboard/decisions?limit=${PAGE_SIZE}&before=${encodeURIComponent(S.journalNext)}`);
    S.journalNext = page.next;
    for (const d of page.items) $('journal-body').appendChild(journalRow(d));
    $('journal-more').hidden = !page.next;
  } catch (e) { showError(e); }
});

async function showDecision(id, tr) {
  for (const r of document.querySelectorAll('#journal-body tr.selected')) r.classList.remove('selected');
  if (tr) tr.classList.add('selected');
  const el = $('journal-detail');
  try {
    const d = await api('/api/journal/' + encodeURIComponent(id));
    const members = d.members || [];
    const facts = [
      ['Decision', d.id], ['Time', d.time], ['Agent', d.agent], ['Venue / symbol', d.venue + ' ' + d.symbol],
      ['Model', d.model], ['Verdict', d.action], ['Confidence', d.confidence], ['Quorum', d.quorum],
      ['Reason', d.reason], ['Error', d.error], ['Outcome', d.outcome], ['PnL (USD)', d.pnl_usd],
      ['Latency (ms)', d.latency_ms], ['Prompt hash ok', d.prompt_hash_ok],
    ];
    const membersTable = h('table', { id: 'members-table' });
    table(membersTable, [
      ['Member', m => m.member],
      ['Deployment', m => m.deployment],
      ['Verdict', m => m.verdict],
      ['Confidence', m => m.confidence, 'num'],
      ['Latency (ms)', m => m.latency_ms, 'num'],
      ['Tokens', m => (m.prompt_tokens || 0) + ' + ' + (m.completion_tokens || 0), 'num'],
      ['Cost (USD)', m => m.cost_usd, 'num'],
      ['Reason / error', m => m.reason || m.error],
      ['Answer', m => h('pre', null, m.raw_answer || '')],
    ], members, 'no member answers (not a model decision)');
    el.replaceChildren(...[
      h('h2', null, 'Decision ' + d.id),
      h('table', null, h('tbody', null, facts.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, fmt(v)))))),
      h('h2', null, 'Members'),
      membersTable,
      d.raw_answer ? h('h2', null, 'Answer') : null,
      d.raw_answer ? h('pre', null, d.raw_answer) : null,
      h('h2', null, 'Prompt'),
      h('pre', { id: 'decision-prompt' }, (d.system ? d.system + '\n\n' : '') + (d.prompt || '')),
    ].filter(Boolean));
    el.dataset.decision = d.id;
    el.hidden = false;
  } catch (e) { showError(e); }
}

// ---------------------------------------------------------------- signals, models

async function renderSignals() {
  const sigs = await api('/api/signals');
  table($('signals-table'), [
    ['Time', s => time(s.time_ms)],
    ['Source', s => s.source],
    ['Symbol', s => s.symbol],
    ['Kind', s => s.kind],
    ['Direction', s => s.direction],
    ['Value', s => s.value, 'num'],
    ['Confidence', s => s.confidence, 'num'],
    ['Expires', s => time(s.expires_ms)],
    ['Evidence', s => s.evidence],
  ], sigs, 'no live signals');
}

async function renderModels() {
  const rep = await api('/api/models');
  table($('models-table'), [
    ['Deployment', d => d.deployment],
    ['Model', d => d.model],
    ['Provider', d => d.provider + ' / ' + d.provider_model],
    ['State', d => h('span', { class: 'badge ' + (d.state === 'ok' ? 'good' : 'bad') }, d.state)],
    ['Latency (ms, EWMA)', d => d.health && d.health.ewma_latency_ms, 'num'],
    ['Failures in a row', d => d.health && d.health.consecutive_failures, 'num'],
    ['Cooldown left (ms)', d => d.health && d.health.cooldown_remaining_ms, 'num'],
    ['In flight / queued', d => d.health ? d.health.in_flight + ' / ' + d.health.queued : '-', 'num'],
    ['Requests', d => d.usage && d.usage.requests, 'num'],
    ['Tokens', d => d.usage ? d.usage.prompt_tokens + ' + ' + d.usage.completion_tokens : '-', 'num'],
    ['Cost (USD)', d => d.usage && d.usage.cost_usd, 'num'],
  ], rep.deployments || [], 'no model deployments');
}

// ---------------------------------------------------------------- venues

// Prometheus text: [{name, labels, value}] of the series whose name passes `want`.
function parseMetrics(text, want) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line);
    if (!m || !want(m[1])) continue;
    out.push({ name: m[1], labels: m[3] || '', value: m[4] });
  }
  return out;
}

const VENUE_METRICS = /^orrery_(ratelimit_headroom_units|breaker_state|exchange_reconciliation_drift_total|stream_connected|stream_last_message_age_seconds)$/;

async function renderVenues() {
  const st = S.status;
  const conns = [];
  const feeds = [];
  for (const v of st.venues || []) {
    for (const c of v.connectors || []) conns.push(Object.assign({ venue: v.name }, c));
    // The market-data stream, and a user-data stream on a connection of its own.
    for (const f of [v.feed, v.feed && v.feed.user]) {
      if (!f) continue;
      for (const ch of f.channels || []) {
        feeds.push(Object.assign({ venue: v.name, conn: f.state, reconnects: f.reconnects }, ch));
      }
    }
  }
  table($('connectors-table'), [
    ['Venue', c => c.venue],
    ['Connector', c => c.connector],
    ['Endpoint', c => c.endpoint],
    ['State', c => h('span', { class: 'badge ' + (c.state === 'ready' ? 'good' : 'bad') }, c.state)],
    ['In flight', c => c.in_flight, 'num'],
  ], conns, 'no connectors');
  table($('feeds-table'), [
    ['Venue', f => f.venue],
    ['Channel', f => f.channel],
    ['Connection', f => f.conn],
    ['Reconnects', f => f.reconnects, 'num'],
    ['State', f => f.state],
    ['Last message (ms ago)', f => f.age_ms, 'num'],
    ['Messages', f => f.messages, 'num'],
  ], feeds, 'no streams (paper venues and venues without websockets are read over REST)');
  let series = [];
  try {
    series = parseMetrics(await api('/metrics'), n => VENUE_METRICS.test(n));
  } catch (e) {
    if (e.status !== 503) throw e;
  }
  table($('venue-metrics-table'), [
    ['Metric', s => s.name.replace(/^orrery_/, '')],
    ['Labels', s => s.labels],
    ['Value', s => s.value, 'num'],
  ], series, 'no rate-limit, breaker or drift series yet (they appear once a venue is called)');
}

// ---------------------------------------------------------------- supervision tree

async function renderTree() {
  const rep = await api('/api/tree');
  table($('tree-table'), [
    ['Actor', a => h('span', { class: 'indent-' + Math.min(4, a.depth) }, a.path.split('/').pop())],
    ['Path', a => a.path],
    ['Kind', a => a.kind],
    ['Restart', a => a.restart || a.strategy],
    ['State', a => h('span', { class: 'badge ' + (a.state === 'running' ? 'good' : 'bad') }, a.state)],
    ['Restarts', a => a.restarts, 'num'],
    ['Last failure', a => a.last_failure],
    ['Mailbox', a => a.mailbox_depth === null ? '-' : a.mailbox_depth + ' / ' + a.mailbox_capacity, 'num'],
  ], rep.actors || [], 'the tree is empty');
}

const RENDER = {
  overview: renderOverview,
  positions: renderPositions,
  agents: renderAgents,
  journal: renderJournal,
  signals: renderSignals,
  models: renderModels,
  venues: renderVenues,
  tree: renderTree,
};

// ---------------------------------------------------------------- live events

function describeEvent(ev) {
  switch (ev.kind) {
    case 'decision': return `decision ${ev.agent} ${ev.symbol}: ${ev.action || '-'} (${ev.outcome})`;
    case 'order': return `order ${ev.order.client_id} ${ev.order.side} ${ev.order.size} ${ev.order.symbol}: ${ev.order.status}`;
    case 'fill': return `fill ${ev.venue} ${ev.fill.symbol} ${ev.fill.side} ${ev.fill.size} @ ${ev.fill.price}`;
    case 'mode': return `mode ${ev.mode.mode}${ev.mode.kill_switch ? ' (kill switch)' : ''}: ${ev.mode.reason}`;
    case 'breaker': return `breaker ${ev.target}: ${ev.from || '?'} -> ${ev.record.state}`;
    case 'child_failed': return `actor ${ev.path} failed: ${ev.record.last_reason || ''} (restart ${ev.record.count})`;
    case 'unreadable': return `unreadable record ${ev.tree}/${ev.key}: ${ev.error}`;
    case 'lagged': return `missed ${ev.missed} events; reloaded`;
    default: return ev.kind;
  }
}

function onEvent(ev) {
  if (ev.kind === 'hello' || ev.kind === 'heartbeat') {
    $('live-state').textContent = 'live';
    $('live-state').className = 'badge on';
    return;
  }
  const li = h('li', {
    dataset: {
      kind: ev.kind,
      id: ev.kind === 'order' ? ev.order.client_id : (ev.id || ''),
      receivedMs: String(Date.now()),
      eventMs: String(ev.updated_ms || ev.time_ms || (ev.fill && ev.fill.time_ms) || (ev.mode && ev.mode.since_ms) || ''),
    },
  }, time(Date.now()) + '  ' + describeEvent(ev));
  const list = $('live-events');
  list.insertBefore(li, list.firstChild);
  while (list.children.length > MAX_LIVE) list.removeChild(list.lastChild);
  if (ev.kind === 'mode') renderHeader(Object.assign({}, S.status || {}, { mode: ev.mode }));
  // What is shown is reloaded once the burst is over (orders, positions, PnL).
  scheduleRefresh(ev.kind === 'lagged' ? 0 : 250);
  if (ev.kind === 'decision' && S.page === 'journal') {
    const body = $('journal-body');
    if (body) refresh(true);
  }
}

function stopLive() {
  if (S.live) { S.live.abort(); S.live = null; }
  $('live-state').textContent = 'live: off';
  $('live-state').className = 'badge off';
}

// Reads the SSE stream with fetch (the token in a header), reconnecting after a pause.
function startLive() {
  stopLive();
  const ctl = new AbortController();
  S.live = ctl;
  (async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await fetch('/api/events', { headers: headers({ Accept: 'text/event-stream' }), signal: ctl.signal });
        if (res.status === 401) { logout('the token is no longer accepted'); return; }
        if (!res.ok || !res.body) throw new Error('events: HTTP ' + res.status);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let at;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, at);
            buf = buf.slice(at + 2);
            const data = frame.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
            if (!data) continue;
            try { onEvent(JSON.parse(data)); } catch (e) { /* a frame we cannot read: skip it */ }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      $('live-state').textContent = 'live: reconnecting';
      $('live-state').className = 'badge warn';
      await new Promise(r => setTimeout(r, 2000));
    }
  })();
}

// Periodic refresh for what has no event (marks, feeds, agents' schedules).
setInterval(() => { if (document.body.dataset.state === 'app') scheduleRefresh(0); }, 10000);

start();
