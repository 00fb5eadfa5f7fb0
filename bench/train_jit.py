"""Bench: local training throughput (samples per second) with JAX jit against eager execution.

The device trains with ``train_local``: every local epoch and batch is one ``lax.scan`` inside
one ``jax.jit``. The same call under ``jax.disable_jit()`` runs op by op in Python (the eager
baseline). Data: Cleveland's 199 training rows (10 features), batch 32, SGD.

    .venv/bin/python bench/train_jit.py --json /tmp/train_jit.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax

from fednode.device.data import load_heart_disease, normalize, normalizer_from_stats
from fednode.device.model import init_params
from fednode.device.normalization import compute_feature_stats
from fednode.device.train import train_local
from fednode.tasks import heart_task_spec


def _samples_per_s(params, data, spec, *, eager: bool, repeats: int) -> tuple[float, float]:
    """(first call seconds, best samples/s over ``repeats`` later calls)."""
    def run(seed: int) -> None:
        delta = train_local(params, data, key=jax.random.key(seed), spec=spec).delta
        jax.block_until_ready(jax.tree_util.tree_leaves(delta))

    context = jax.disable_jit if eager else _no_context
    with context():
        started = time.perf_counter()
        run(0)
        first = time.perf_counter() - started
        best = min(_timed(run, seed) for seed in range(1, repeats + 1))
    return first, spec.local_epochs * len(data[1]) / best


class _no_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _timed(fn, seed: int) -> float:
    started = time.perf_counter()
    fn(seed)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    site = load_heart_disease()[0]
    x = normalize(site.x_train, normalizer_from_stats(compute_feature_stats(site.x_train)))
    data = (x, site.y_train)
    rows = []
    for model, hidden, epochs in (("logreg", (), 5), ("mlp", (64,), 5)):
        spec = dataclasses.replace(heart_task_spec(normalization_task=0, model=model,
                                                   hidden_sizes=hidden), local_epochs=epochs)
        params = init_params(jax.random.key(0), model=model, num_features=10, hidden_sizes=hidden)
        jit_first, jit_rate = _samples_per_s(params, data, spec, eager=False, repeats=args.repeats)
        eager_first, eager_rate = _samples_per_s(params, data, spec, eager=True, repeats=1)
        row = {"model": f"{model}{list(hidden) if hidden else ''}", "rows": len(data[1]),
               "epochs": epochs, "jit_samples_per_s": round(jit_rate),
               "jit_first_call_s": round(jit_first, 2), "eager_samples_per_s": round(eager_rate),
               "speedup": round(jit_rate / eager_rate, 1)}
        print(json.dumps(row))
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
