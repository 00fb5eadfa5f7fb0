"""All stages: the demo's closing summary: metrics next to baselines, privacy spend, gate, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["TARGETS", "finish_report"]

TARGETS = {"heart": ("FLamby FedAvg", 0.685), "wearable": ("wearable floor", 0.8)}
"""Pooled test accuracy the demo must beat: FLamby's published FedAvg accuracy for the heart
task; for BasicMotions (where FedAvg measures 1.0 in bench/wearable.py) a floor of 0.8."""


def finish_report(report: dict, console: Console, *, report_json: Path | None = None) -> None:
    """Judges the run against its target, prints the summary and writes the JSON report."""
    pooled = report["federated"]["pooled"]["accuracy"]
    target_name, target = TARGETS[report["task"]]
    report["target"] = {"name": target_name, "pooled_accuracy": target, "met": pooled > target}
    table = Table(title="test metrics: federated model vs single-site models")
    for column in ("site", "federated acc", "federated AUC", "personalized acc",
                   "single-site acc (own test)", "single-site acc (pooled)"):
        table.add_column(column)
    for name, fed in report["federated"].items():
        single = report["single_site"].get(name)
        mine = report["personalized"].get(name)
        own = f"{single['own']['accuracy']:.3f}" if single else "-"
        pool = f"{single['pooled']['accuracy']:.3f}" if single else "-"
        tuned = f"{mine['accuracy']:.3f}" + (" (shifted)" if mine["adopted"] else "") if mine else "-"
        table.add_row(name, f"{fed['accuracy']:.3f}", f"{fed['auc']:.3f}", tuned, own, pool)
    console.print(table)
    chain = report["chain"]
    console.print(f"chain: {chain['validators']} validators, {chain['blocks']} blocks, "
                  f"{chain['transactions']} transactions, {chain['gas_used']} gas, "
                  f"{chain['payload_bytes']} payload bytes")
    privacy = report.get("privacy")
    for name, site in (privacy or {}).get("sites", {}).items():
        console.print(f"privacy: {name} spent epsilon {site['epsilon_spent']:.4f} of "
                      f"{privacy['epsilon_budget']:g} on chain (delta {privacy['delta']:g}, "
                      f"{privacy['accountant']}, noise multiplier {site['noise_multiplier']:.3f})")
    final = report["evaluations"]["final"]
    if final is not None:
        failing = ", ".join(final["failing_sites"]) or "none"
        rule = report["evaluations"].get("rule", f"floor {report['evaluations']['metric_floor']}")
        console.print(f"acceptance gate ({rule}) on version {final['version']}: "
                      f"[bold]{final['state']}[/] (below floor: {failing})")
    verdict = "[green]beats[/]" if report["target"]["met"] else "[red]does NOT beat[/]"
    console.print(f"pooled accuracy {pooled:.3f} {verdict} {target_name} {target}")
    if report_json:
        report_json.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(_without_nan(report), indent=2, allow_nan=False)
        report_json.write_text(body + "\n")
        console.print(f"report written to {report_json}")


def _without_nan(value):
    """JSON has no NaN: an undefined metric (AUC on a one-class test set) becomes null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
