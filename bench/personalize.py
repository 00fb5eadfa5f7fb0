"""Bench: per-site personalization of the final FedAvg model on the heart task (local rows only).

Each hospital takes the final FedAvg model (10 versions, as in bench/learning.py) and adapts it
with its own train rows only, then is scored on its own test rows:

- local fine-tuning for E more epochs (the same SGD, lr 0.1, batch 32);
- intercept recalibration (``fednode.device.personalize``: output bias shifted so the mean
  predicted risk on the site's train rows equals its positive rate), always applied;
- the same, adopted only where 5-fold cross-validation on the site's *train* rows favours it
  (``calibrate_site``); the test rows are never used to choose.

Reported next to the raw federated model and the site-alone model (the site trains alone for 10
x 5 epochs with its own normalization, as in sim_heart.py): accuracy, and log loss, which, unlike
AUC and balanced accuracy, is defined on Switzerland's all-positive test set. Also how many test
predictions one fine-tune epoch flips, and by how much it moves the logits.

    .venv/bin/python bench/personalize.py --json docs/benchmarks/personalize.json   # ~1 min
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import jax
import numpy as np
from learning_common import federate
from sim_heart import normalize_sites, run_fedavg

from fednode.device import apply_model, evaluate, load_heart_disease, train_local
from fednode.device.personalize import calibrate_site, personalize, shift_intercept
from fednode.tasks import heart_task_spec

BASE = heart_task_spec(normalization_task=1, rounds=10, min_updates=4)
SEEDS = (0, 1, 2, 3, 4)
EPOCHS = (1, 5, 20)


def fine_tuned(params, site, *, epochs: int, key: jax.Array):
    spec = dataclasses.replace(BASE, local_epochs=epochs)
    delta = train_local(params, site.train, key=key, spec=spec).delta
    return jax.tree_util.tree_map(np.add, params, delta)


def site_rows(params, site, raw_site, seed: int, index: int) -> dict[str, dict[str, float]]:
    """Every variant's (accuracy, log loss) on one site's test rows, for one seed."""
    key = jax.random.key(10_000 + seed * 10 + index)
    cal = calibrate_site(params, *site.train, key=jax.random.fold_in(key, 1), folds=5)
    models = {"fedavg": params}
    models.update({f"fedavg + {e} fine-tune epochs": fine_tuned(params, site, epochs=e, key=key)
                   for e in EPOCHS})
    models["fedavg + intercept recalibration (all sites)"] = shift_intercept(params, cal.shift)
    models["fedavg + intercept recalibration (CV gate on train rows)"] = personalize(params, cal)
    out = {name: _scores(model, site.test) for name, model in models.items()}
    own = normalize_sites([raw_site])[0]
    alone = run_fedavg([own], dataclasses.replace(BASE, min_updates=1), key=jax.random.key(seed))
    out["site alone"] = _scores(alone, own.test)
    one = models["fedavg + 1 fine-tune epochs"]
    before = np.asarray(apply_model(params, site.test[0]))
    after = np.asarray(apply_model(one, site.test[0]))
    out["diagnostics"] = {"adopted": float(cal.adopted), "shift": cal.shift,
                          "cv_raw": cal.cv_accuracy_raw, "cv_shifted": cal.cv_accuracy_shifted,
                          "ft1_flipped": float(np.sum((before > 0) != (after > 0))),
                          "ft1_max_logit_change": float(np.max(np.abs(after - before)))}
    return out


def _scores(model, test) -> dict[str, float]:
    result = evaluate(model, *test)
    return {"accuracy": result.accuracy, "log_loss": result.loss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raw_sites = load_heart_disease()
    sites = normalize_sites(raw_sites)
    per_seed = []
    for seed in SEEDS:
        params, _ = federate(sites, dataclasses.replace(BASE, seed=seed), seed=seed)
        per_seed.append({s.name: site_rows(params, s, raw, seed, i)
                         for i, (s, raw) in enumerate(zip(sites, raw_sites, strict=True))})
    names = [s.name for s in sites]
    summary = {n: {v: {m: _stat([r[n][v][m] for r in per_seed]) for m in per_seed[0][n][v]}
                   for v in per_seed[0][n]} for n in names}
    print(_table(summary, names, "accuracy"), _table(summary, names, "log_loss"), sep="\n\n")
    print("\n" + _table(summary, names, None))
    if args.json:
        args.json.write_text(json.dumps({"seeds": list(SEEDS), "per_site": summary}, indent=1))
    return 0


def _stat(values) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _table(summary, names, metric) -> str:
    first = summary[names[0]]
    variants = [v for v in first if v != "diagnostics"] if metric else list(
        first["diagnostics"])
    head = f"| {metric or 'diagnostic'} | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for v in variants:
        cells = []
        for n in names:
            s = summary[n][v][metric] if metric else summary[n]["diagnostics"][v]
            cells.append(f"{s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}]")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
