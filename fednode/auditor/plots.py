"""Auditor: the report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Pure: every function takes :class:`ReportData` (values) and returns bytes; nothing is shown
or written. Learning curves and per-site metrics come from the edges' signed on-chain
evaluations; the update-norm plot is an extra view of what each site sent.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fednode.auditor.report_data import (  # noqa: E402
    ReportData,
    privacy_series,
    site_metrics,
    update_norms,
)

__all__ = [
    "plot_gas_bytes", "plot_learning", "plot_privacy", "plot_provenance", "plot_site_metrics",
    "plot_update_norms",
]


def _png(fig) -> bytes:
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _short(address: str) -> str:
    return address[:6] + "…" + address[-4:]


def plot_learning(data: ReportData) -> tuple[str, bytes]:
    """Learning curves: each site's signed metric of every version it evaluated."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for edge, points in sorted(site_metrics(data.evaluations).items()):
        xs = sorted(points)
        ax.plot(xs, [points[x][0] for x in xs], marker="o", label=_short(edge))
    floor = data.task.spec.metric_floor
    if floor:
        ax.axhline(floor, color="red", linestyle="--", label=f"floor {floor:g}")
    title = ("learning curves per site (on-chain evaluations)" if data.evaluations
             else "learning curves per site: no evaluations on chain")
    ax.set(title=title, xlabel="global model version", ylabel="metric (site test split)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return title, _png(fig)


def plot_site_metrics(data: ReportData) -> tuple[str, bytes]:
    """Per-site metric of each version (grouped bars), with the gate's state per version."""
    metrics = site_metrics(data.evaluations)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    edges = sorted(metrics)
    width = 0.8 / max(len(edges), 1)
    for index, edge in enumerate(edges):
        xs = sorted(metrics[edge])
        ax.bar([x + index * width for x in xs], [metrics[edge][x][0] for x in xs], width,
               label=_short(edge))
    for gate in data.acceptance():
        ax.annotate(gate.state.value[0].upper(), (gate.version + 0.4 - width / 2, 1.02),
                    ha="center", fontsize=7)
    if data.task.spec.metric_floor:
        ax.axhline(data.task.spec.metric_floor, color="red", linestyle="--", label="floor")
    title = "per-site metric per version (A accepted, P pending, R rejected)"
    ax.set(title=title, xlabel="global model version", ylabel="metric", ylim=(0, 1.1))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return title, _png(fig)


def plot_update_norms(data: ReportData) -> tuple[str, bytes]:
    """Update norm per site per version (what each site sent, next to how it evaluates)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for edge, points in sorted(update_norms(data.versions, data.updates,
                                               compression=data.task.spec.compression).items()):
        xs = sorted(points)
        ax.plot(xs, [points[x][0] for x in xs], marker="o", label=_short(edge))
    title = "update norm per site and version"
    ax.set(title=title, xlabel="global model version", ylabel="‖delta‖₂")
    ax.legend(fontsize=7)
    return title, _png(fig)


def plot_privacy(data: ReportData) -> tuple[str, bytes]:
    """Cumulative epsilon per site over blocks, with the task's budget line."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for edge, points in sorted(privacy_series(data.updates).items()):
        ax.step(*zip(*points, strict=True), where="post", marker="o", label=_short(edge))
    if data.task.spec.epsilon_budget:
        ax.axhline(data.task.spec.epsilon_budget, color="red", linestyle="--", label="budget")
    title = "privacy budget spent per site"
    ax.set(title=title, xlabel="block", ylabel="epsilon spent")
    ax.legend(fontsize=7)
    return title, _png(fig)


def plot_gas_bytes(data: ReportData) -> tuple[str, bytes]:
    """Gas and payload bytes per round (the version's updates plus its commit)."""
    by_id = {u.update_id: u for u in data.updates}
    versions = [v for v in data.versions if v.version]
    gas, size = [], []
    for record in versions:
        items = [record, *(by_id[i] for i in record.update_ids if i in by_id)]
        gas.append(sum(data.gas.get("0x" + i.tx_hash.hex(), 0) for i in items))
        size.append(sum(len(i.payload) for i in items))
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    xs = [v.version for v in versions]
    ax.bar([x - 0.2 for x in xs], gas, 0.4, label="gas", color="tab:blue")
    ax.set(xlabel="global model version", ylabel="gas")
    other = ax.twinx()
    other.bar([x + 0.2 for x in xs], size, 0.4, label="payload bytes", color="tab:orange")
    other.set_ylabel("payload bytes")
    title = "gas and payload bytes per round"
    ax.set_title(title)
    ax.ticklabel_format(axis="y", style="plain")
    fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.88), fontsize=7)
    return title, _png(fig)


def plot_provenance(data: ReportData) -> tuple[str, bytes]:
    """Edges (left) feeding versions (a chain, right): one line per aggregated update."""
    edges = sorted({u.edge for u in data.updates})
    by_id = {u.update_id: u for u in data.updates}
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.5 * max(len(edges), 2)))
    ys = {edge: i for i, edge in enumerate(edges)}
    mid = (len(edges) - 1) / 2
    for record in data.versions:
        for update_id in record.update_ids:
            if update_id in by_id:
                ax.plot([0, record.version + 1], [ys[by_id[update_id].edge], mid],
                        color="tab:gray", alpha=0.5, linewidth=1)
    xs = [v.version + 1 for v in data.versions]
    ax.plot(xs, [mid] * len(xs), color="black", marker="s", markersize=10)
    for v in data.versions:
        ax.annotate(f"v{v.version}", (v.version + 1, mid), textcoords="offset points",
                    xytext=(0, 10), ha="center", fontsize=8)
    for edge, y in ys.items():
        ax.plot(0, y, marker="o", color="tab:green", markersize=10)
        ax.annotate(_short(edge), (0, y), textcoords="offset points", xytext=(-8, 0),
                    ha="right", va="center", fontsize=8)
    ax.set_xlim(-2.2, max(xs, default=1) + 0.8)
    ax.axis("off")
    title = "provenance graph: edges → updates → global model versions"
    ax.set_title(title)
    return title, _png(fig)
