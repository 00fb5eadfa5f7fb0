"""Auditor: the dashboard's single HTML page (plain HTML + JS, no CDN, no build step)."""

from __future__ import annotations

__all__ = ["PAGE"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2330}
header{background:#1d3557;color:#fff;padding:12px 24px;display:flex;justify-content:space-between}
main{display:grid;grid-template-columns:1fr 1fr;gap:16px;padding:16px 24px}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px #0002}
section.wide{grid-column:1 / span 2}
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;width:100%;font-size:12px}
td,th{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left}
tr.click{cursor:pointer}tr.click:hover{background:#eef3fb}
.ok{color:#0a7d28;font-weight:600}.bad{color:#b00020;font-weight:600}
.bar{background:#e3e6ea;border-radius:3px;height:10px;width:160px;display:inline-block}
.fill{background:#457b9d;height:10px;border-radius:3px}.mono{font-family:monospace}
.tag{background:#e8eef9;border-radius:3px;padding:1px 5px;margin-right:3px;font-size:11px}
ul.tree{font-size:12px;font-family:monospace;line-height:1.5}
"""

_SCRIPT = """
const $ = (id) => document.getElementById(id);
const short = (a) => a ? a.slice(0, 8) + '…' + a.slice(-4) : '';
const esc = (s) => String(s).replace(/[&<>'"]/g, c => '&#' + c.charCodeAt(0) + ';');
let currentTask = null, currentTrace = null;
async function get(path) { const r = await fetch(path); if (!r.ok) throw new Error(path); return r.json(); }
function bar(spent, budget) {
  if (!budget) return `${spent.toFixed(2)} (no budget)`;
  const pct = Math.min(100, 100 * spent / budget);
  return `<span class="bar"><div class="fill" style="width:${pct}%"></div></span> ${spent.toFixed(2)} / ${budget}`;
}
async function loadStatus() {
  const s = await get('/api/status');
  $('status').textContent = s.head === null ? 'in-memory ledger' : `head block ${s.head}, sealed by ${short(s.sealer)}`;
}
async function loadConsortium() {
  const c = await get('/api/consortium');
  $('members').innerHTML = c.members.map(m => `<tr><td>${esc(m.name)}</td><td class="mono">${short(m.address)}</td>
    <td>${m.roles.map(r => `<span class="tag">${esc(r.replace('_ROLE', ''))}</span>`).join('')}</td>
    <td class="mono">${short(m.validator)}</td></tr>`).join('');
  $('signers').textContent = `${c.signers.length} Clique signers`;
}
async function loadTasks() {
  const t = await get('/api/tasks');
  $('tasks').innerHTML = t.tasks.map(x => `<tr class="click" data-task="${x.task_id}" onclick="showTask(${x.task_id})">
    <td>${x.task_id}</td><td>${esc(x.name)}</td><td>${x.state}</td><td>v${x.latest_version} / ${x.rounds}</td>
    <td>${x.updates}</td><td>${x.live_round ? `v${x.live_round.version}: ${x.live_round.submitted}/${x.live_round.needed} updates` : '—'}</td></tr>`).join('');
  if (currentTask === null && t.tasks.length) showTask(t.tasks[t.tasks.length - 1].task_id);
}
async function showTask(id) {
  currentTask = id;
  const t = await get(`/api/tasks/${id}`);
  $('task-title').textContent = `Task ${t.task_id} “${t.name}” — ${t.state}, ${t.aggregation}`;
  $('task-audit').innerHTML = t.audit_ok ? '<span class="ok">audit: every version recomputed bit for bit</span>'
                                         : '<span class="bad">audit FAILED</span>';
  const gateCss = {accepted: 'ok', rejected: 'bad'};
  $('versions').innerHTML = t.versions.map(v => `<tr class="click" onclick="showTrace('${v.digest}')">
    <td>v${v.version}</td><td class="mono">${short(v.digest)}</td><td>${v.updates.length}</td><td>${v.block}</td>
    <td>${v.ok ? '<span class="ok">✓ match</span>' : `<span class="bad">✗ ${esc(v.detail + ' ' + (v.findings || []).join('; '))}</span>`}</td>
    <td class="gate ${gateCss[v.acceptance] || ''}">${esc(v.acceptance || '')}</td></tr>`).join('');
  const sites = Object.keys(t.site_metrics);
  const versions = [...new Set(sites.flatMap(s => Object.keys(t.site_metrics[s])))].sort((a, b) => a - b);
  $('metrics-title').textContent = `Per-site metrics (signed evaluations, gate: ${t.acceptance_rule})`;
  $('metrics-head').innerHTML = '<th>site</th>' + versions.map(v => `<th>v${v}</th>`).join('');
  $('metrics').innerHTML = sites.map(s => `<tr><td class="mono">${short(s)}</td>` + versions.map(v => {
    const m = t.site_metrics[s][v]; if (!m) return '<td></td>';
    return `<td class="${m.metric >= t.metric_floor ? '' : 'bad'}">${m.metric.toFixed(3)}${m.secondary === null ? '' : ' / ' + m.secondary.toFixed(3)}</td>`; }).join('') + '</tr>').join('')
    || '<tr><td>no evaluations on chain yet</td></tr>';
  $('privacy').innerHTML = Object.entries(t.privacy_spent).map(([e, s]) =>
    `<tr><td class="mono">${short(e)}</td><td>${bar(s, t.epsilon_budget)}</td></tr>`).join('') || '<tr><td>no updates yet</td></tr>';
  const keep = t.versions.some(v => v.digest === currentTrace);
  if (t.versions.length) await showTrace(keep ? currentTrace : t.versions[t.versions.length - 1].digest);
}
async function showTrace(digest) {
  currentTrace = digest;
  const tr = await get(`/api/trace/${digest}`);
  if (digest !== currentTrace) return;  // a later click won the race
  $('trace-title').textContent = `Provenance of ${short(tr.digest)} (task ${tr.task_id}, v${tr.version})`;
  $('trace').innerHTML = tr.lineage.slice().reverse().map(v => `<li>v${v.version} <b>${short(v.digest)}</b>
    by ${short(v.aggregator)}, block ${v.block_number}${v.sealer ? ' sealed by ' + short(v.sealer) : ''}, gate ${esc(v.acceptance)}<ul>` +
    (v.evaluations || []).map(e => `<li>evaluation by edge ${short(e.edge)}: ${e.metric.toFixed(3)} on ${e.num_examples} examples, block ${e.block_number}</li>`).join('') +
    v.updates.map(u => `<li>update ${u.update_id} from edge ${short(u.edge)} on v${u.base_version}: ${u.num_examples} examples,
      ε ${(u.epsilon_micro / 1e6).toFixed(2)}, ${u.payload_bytes} B, block ${u.block_number}${u.sealer ? ' sealed by ' + short(u.sealer) : ''}</li>`).join('') +
    '</ul></li>').join('');
}
async function refresh() {
  try { await Promise.all([loadStatus(), loadConsortium(), loadTasks()]); if (currentTask !== null) await showTask(currentTask); $('error').textContent = ''; }
  catch (e) { $('error').textContent = 'refresh failed: ' + e.message; }
}
refresh(); setInterval(refresh, 5000);
"""

PAGE = f"""<!doctype html><html><head><meta charset="utf-8"><title>fednode dashboard</title>
<style>{_STYLE}</style></head><body>
<header><b>fednode consortium dashboard</b><span id="status">connecting…</span></header>
<div id="error" class="bad" style="padding:0 24px"></div>
<main>
<section><h2>Consortium members <small id="signers"></small></h2>
<table><thead><tr><th>name</th><th>address</th><th>roles</th><th>validator</th></tr></thead>
<tbody id="members"></tbody></table></section>
<section><h2>Tasks</h2><table><thead><tr><th>id</th><th>name</th><th>state</th><th>version</th>
<th>updates</th><th>live round</th></tr></thead><tbody id="tasks"></tbody></table></section>
<section class="wide"><h2 id="task-title">Task</h2><div id="task-audit"></div>
<table><thead><tr><th>version</th><th>digest</th><th>updates</th><th>block</th><th>audit</th><th>gate</th></tr></thead>
<tbody id="versions"></tbody></table></section>
<section><h2 id="metrics-title">Per-site metrics (signed evaluations)</h2>
<table><thead><tr id="metrics-head"></tr></thead><tbody id="metrics"></tbody></table></section>
<section><h2>Privacy budgets</h2><table><tbody id="privacy"></tbody></table></section>
<section class="wide"><h2 id="trace-title">Provenance</h2><ul class="tree" id="trace"></ul></section>
</main><script>{_SCRIPT}</script></body></html>
"""
