"""Auditor: renders ``fednode audit report --html`` as one self-contained HTML file.

Figures are PNGs embedded as base64 ``data:`` URIs, so the file opens offline anywhere.
:func:`render_html` is pure; ``collect_report_data`` (report_data.py) does the reading.
"""

from __future__ import annotations

import base64
import html

from fednode.aggregator.acceptance import describe_rule
from fednode.auditor.plots import (
    plot_gas_bytes,
    plot_learning,
    plot_privacy,
    plot_provenance,
    plot_site_metrics,
    plot_update_norms,
)
from fednode.auditor.report_data import ReportData, collect_report_data

__all__ = ["collect_report_data", "render_html"]

_STYLE = """body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
.ok{color:#080}.bad{color:#b00}code{font-size:12px}img{max-width:100%}"""


def _image(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    return (f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def _audit_rows(data: ReportData) -> str:
    rows = []
    for v in data.audit.verdicts:
        found = [f"{f.kind}: {f.detail}" for f in v.findings]
        problems = "; ".join([v.detail] * (not v.match) + found)
        status = "<span class=ok>match</span>" if v.ok else "<span class=bad>FAILED</span>"
        rows.append(f"<tr><td>v{v.version}</td><td><code>0x{v.committed_digest}</code></td>"
                    f"<td>{status}</td><td>{html.escape(problems)}</td></tr>")
    return "".join(rows)


def _update_rows(data: ReportData) -> str:
    return "".join(
        f"<tr><td>{u.update_id}</td><td><code>{u.edge}</code></td><td>v{u.base_version}</td>"
        f"<td>{u.num_examples}</td><td>{u.epsilon_micro / 1e6:g}</td><td>{len(u.payload)}</td>"
        f"<td>{u.block_number}</td><td><code>{data.sealers.get(u.block_number, '')}</code></td>"
        f"<td>{data.gas.get('0x' + u.tx_hash.hex(), '')}</td></tr>"
        for u in data.updates
    )


def _evaluation_rows(data: ReportData) -> str:
    rows = []
    for gate in data.acceptance():
        css = {"accepted": "ok", "rejected": "bad"}.get(gate.state.value, "")
        sites = ", ".join(f"<code>{html.escape(edge[:10])}…</code> {metric:.3f}"
                          for edge, metric in sorted(gate.metrics.items()))
        missing = ", ".join(f"<code>{html.escape(e[:10])}…</code>" for e in gate.missing) or "-"
        rows.append(f"<tr><td>v{gate.version}</td><td class={css}>{gate.state.value}</td>"
                    f"<td>{sites}</td><td>{missing}</td></tr>")
    return "".join(rows)


def render_html(data: ReportData) -> str:
    """The whole report as one HTML string (see the module docstring)."""
    task = data.task
    figures = "".join(_image(*plot(data)) for plot in (
        plot_learning, plot_site_metrics, plot_update_norms, plot_privacy, plot_gas_bytes,
        plot_provenance))
    verdict = ("<p class=ok>every version recomputed bit for bit, no findings</p>" if data.audit.ok
               else "<p class=bad>audit FAILED</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>fednode audit report: task {task.task_id}</title><style>{_STYLE}</style></head><body>
<h1>Audit report: task {task.task_id} “{html.escape(task.spec.name)}”</h1>
<p>state {task.state.name}, {len(data.versions) - 1} versions, {len(data.updates)} updates,
rule {html.escape(task.spec.aggregation)}, publisher <code>{task.publisher}</code>,
spec digest <code>0x{task.spec_digest.hex()}</code></p>
<h2>Verification</h2>{verdict}
<table><tr><th>version</th><th>digest</th><th>result</th><th>detail</th></tr>
{_audit_rows(data)}</table>
<h2>Per-site evaluations and acceptance gate</h2>
<p>acceptance gate: {html.escape(describe_rule(task.spec))}; each site's metric signed by its
edge on chain</p>
<table><tr><th>version</th><th>gate</th><th>site metrics</th><th>not yet evaluated</th></tr>
{_evaluation_rows(data)}</table>
<h2>Figures</h2>{figures}
<h2>Updates</h2><table><tr><th>id</th><th>edge</th><th>base</th><th>examples</th><th>epsilon</th>
<th>bytes</th><th>block</th><th>sealed by</th><th>gas</th></tr>{_update_rows(data)}</table>
</body></html>
"""
