"""Auditor: the report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Pure: every function takes :class:`ReportData` (values) and returns bytes; nothing is shown
or written. Plots fall back to the update norms per site when no evaluations are on the ledger.
"""

from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fednode.auditor.report_data import ReportData, privacy_series, update_norms  # noqa: E402

__all__ = [
    "plot_gas_bytes", "plot_learning", "plot_privacy", "plot_provenance", "plot_site_metrics",
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


def _evaluation_curves(data: ReportData) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in data.evaluations:
        metric = next((row[k] for k in ("accuracy", "auc", "metric", "value") if k in row), None)
        if metric is not None and "version" in row:
            site = str(row.get("site", row.get("edge", "?")))
            curves[site].append((int(row["version"]), float(metric)))
    return dict(curves)


def plot_learning(data: ReportData) -> tuple[str, bytes]:
    """Learning curves per site from on-chain evaluations, else update norm per site per version."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    curves = _evaluation_curves(data)
    if curves:
        title, ylabel = "learning curves per site (on-chain evaluations)", "metric"
        for site, points in sorted(curves.items()):
            ax.plot(*zip(*sorted(points), strict=True), marker="o", label=site)
    else:
        title, ylabel = "update norm per site and version (no evaluations on chain)", "‖delta‖₂"
        for edge, points in sorted(update_norms(data.versions, data.updates).items()):
            xs = sorted(points)
            ax.plot(xs, [points[x][0] for x in xs], marker="o", label=_short(edge))
    ax.set(title=title, xlabel="global model version", ylabel=ylabel)
    ax.legend(fontsize=7)
    return title, _png(fig)


def plot_site_metrics(data: ReportData) -> tuple[str, bytes]:
    """Per-site distance of each update from its version's mean update (grouped bars)."""
    norms = update_norms(data.versions, data.updates)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    edges = sorted(norms)
    width = 0.8 / max(len(edges), 1)
    for index, edge in enumerate(edges):
        xs = sorted(norms[edge])
        ax.bar([x + index * width for x in xs], [norms[edge][x][1] for x in xs], width,
               label=_short(edge))
    title = "per-site distance of the update from the version's mean update"
    ax.set(title=title, xlabel="global model version", ylabel="‖delta − mean‖₂")
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
