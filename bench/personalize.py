"""Bench: federated + local fine-tuning (personalization) on the heart task, per-site accuracy.

Each hospital takes the final FedAvg model (10 versions, as in bench/learning.py) and trains it
for a few more epochs on its own train rows only; it is scored on its own test rows. Aimed at
Switzerland, whose 16 test rows are all positive (a site-alone model scores 1.0 there).

    .venv/bin/python bench/personalize.py
"""

from __future__ import annotations

import dataclasses
import statistics

import jax
import numpy as np

from fednode.device import evaluate, load_heart_disease, train_local
from fednode.tasks import heart_task_spec
from learning_common import federate
from sim_heart import normalize_sites

BASE = heart_task_spec(normalization_task=1, rounds=10, min_updates=4)
SEEDS = (0, 1, 2, 3, 4)
EPOCHS = (0, 1, 5, 20)


def fine_tuned(params, site, *, epochs: int, key: jax.Array):
    spec = dataclasses.replace(BASE, local_epochs=epochs)
    delta = train_local(params, site.train, key=key, spec=spec).delta
    return jax.tree_util.tree_map(np.add, params, delta)


def main() -> int:
    sites = normalize_sites(load_heart_disease())
    accs: dict[int, list[list[float]]] = {e: [] for e in EPOCHS}
    for seed in SEEDS:
        params, _ = federate(sites, dataclasses.replace(BASE, seed=seed), seed=seed)
        for epochs in EPOCHS:
            row = []
            for index, site in enumerate(sites):
                key = jax.random.key(10_000 + seed * 10 + index)
                model = params if epochs == 0 else fine_tuned(params, site, epochs=epochs, key=key)
                row.append(evaluate(model, *site.test).accuracy)
            accs[epochs].append(row)
    print("| run | " + " | ".join(s.name for s in sites) + " |")
    print("|---|" + "---|" * len(sites))
    for epochs, rows in accs.items():
        cells = [f"{statistics.median(col):.3f} [{min(col):.3f}, {max(col):.3f}]"
                 for col in zip(*rows, strict=True)]
        name = "fedavg" if epochs == 0 else f"fedavg + {epochs} local fine-tune epochs"
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
