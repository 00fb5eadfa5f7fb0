"""Bench: choosing a DP-SGD configuration at epsilon 1 without looking at the test split.

Each hospital holds out 20% of its *train* rows (fixed split, seed 7) as validation. Every
configuration of a small grid (batch size, local epochs, clip norm, learning rate) is run on the
remaining 80% with its noise multiplier calibrated per site to epsilon 1 (delta 1e-5, RDP) for
that site's sampling rate and step count, on 2 selection seeds (100, 101) disjoint from the
evaluation seeds; the configuration with the best median pooled *validation* accuracy wins
(ties: fewer DP steps). Only then is it retrained on the full train rows (noise recalibrated)
and scored on the test split with the evaluation seeds. Used by ``learning.py --only dp``.

Caveat (Papernot & Steinke, 2022): the selection runs themselves read private train rows; their
privacy cost is not added to the reported epsilon (it is the usual practice, stated here).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import statistics
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from learning_common import federate, scores, with_options

from fednode.device import SiteData
from fednode.device.train import local_loss
from fednode.privacy import dp_steps_per_round, epsilon_spent, noise_for_epsilon
from fednode.types import TaskSpec

log = logging.getLogger("learning")
SELECTION_SEEDS = (100, 101)
HOLDOUT_FRACTION = 0.2
GRID = {"batch_size": (32, 64, 128), "local_epochs": (1, 2, 5), "clip_norm": (0.3, 1.0),
        "learning_rate": (0.1, 0.3)}


def holdout(sites: Sequence[SiteData], *, fraction: float = HOLDOUT_FRACTION) -> list[SiteData]:
    """Each site's train rows split into fit (train) and validation (as ``test``); no test rows."""
    out = []
    for index, site in enumerate(sites):
        order = np.random.default_rng(7 + index).permutation(len(site.y_train))
        cut = int(round(fraction * order.size))
        val, fit = order[:cut], order[cut:]
        out.append(dataclasses.replace(site, x_train=site.x_train[fit], y_train=site.y_train[fit],
                                       x_test=site.x_train[val], y_test=site.y_train[val]))
    return out


def dp_site_specs(sites: Sequence[SiteData], spec: TaskSpec, epsilon: float) -> tuple[list, dict]:
    """Per-site specs whose noise reaches ``epsilon`` after ``spec.rounds`` (RDP), + accounting."""
    specs, spent = [], {}
    for site in sites:
        q, steps = dp_steps_per_round(spec, len(site.y_train))
        total = steps * spec.rounds
        z = noise_for_epsilon(epsilon, q, total, delta=spec.delta)
        specs.append(dataclasses.replace(spec, noise_multiplier=z))
        spent[site.name] = {"noise_multiplier": round(z, 3), "q": round(q, 3), "steps": total,
                            "epsilon_rdp": round(epsilon_spent(z, q, total, delta=spec.delta), 3),
                            "epsilon_pld": round(epsilon_spent(z, q, total, delta=spec.delta,
                                                               accountant="pld"), 3)}
    return specs, spent


def median_example_grad_norm(params, sites: Sequence[SiteData]) -> float:
    """Median L2 norm of the per-example loss gradients over every site's train rows."""
    def one(x, y):
        batch = (x[None], y[None], jnp.ones(1))
        grads = jax.grad(local_loss)(params, params, batch, proximal_mu=0.0)
        return jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(grads)))

    x = np.concatenate([s.x_train for s in sites])
    y = np.concatenate([s.y_train for s in sites]).astype(np.float32)
    return float(np.median(np.asarray(jax.vmap(one)(jnp.asarray(x), jnp.asarray(y)))))


def select_config(sites: Sequence[SiteData], base: TaskSpec, epsilon: float) -> dict:
    """Runs the grid on the fit/validation split; returns every config's score and the winner."""
    fit = holdout(sites)
    rows = []
    for values in itertools.product(*GRID.values()):
        config = dict(zip(GRID, values, strict=True))
        spec = with_options(dataclasses.replace(base, **config, epsilon_budget=epsilon),
                          dp_unit="example")
        site_specs, _ = dp_site_specs(fit, spec, epsilon)
        accs = [scores(federate(fit, dataclasses.replace(spec, seed=s), seed=s,
                                site_specs=site_specs)[0], fit)["pooled_accuracy"]
                for s in SELECTION_SEEDS]
        steps = sum(dp_steps_per_round(spec, len(s.y_train))[1] for s in fit)
        rows.append({**config, "val_accuracy": statistics.median(accs), "steps_per_round": steps})
        log.info("  dp grid %s: val acc %.3f", config, rows[-1]["val_accuracy"])
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["steps_per_round"]))
    return {"grid": rows, "chosen": {k: best[k] for k in GRID}, "chosen_val_accuracy":
            best["val_accuracy"]}
