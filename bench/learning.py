"""Bench: the heart task (FLamby Fed-Heart-Disease) under every learning policy a spec can select.

Strategies (FedAvg, FedProx, FedAdam/FedYogi/FedAdagrad), bias correction (tempered example
weights), robust rules against poisoned sites (1 of 4 hospitals, 20% of a 50-device
population), example-level DP-SGD at epsilon 1, int8 / top-k compression. Every experiment runs
the real device transforms and ``build_global_model`` (see ``learning_common.py``); 5 seeds,
median [min, max].

    .venv/bin/python bench/learning.py --json docs/benchmarks/learning.json
    .venv/bin/python bench/learning.py --only robust --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from fednode.device import SiteData, evaluate, load_heart_disease, train_local
from fednode.codec import decode_params
from fednode.privacy import dp_steps_per_round, epsilon_spent, site_privacy_spec
from fednode.tasks import heart_task_spec, initial_payload, with_private_training
from dp_select import dp_site_specs, median_example_grad_norm, select_config
from learning_common import federate, scores, sign_flip, summarize, with_options
from sim_heart import normalize_sites, run_seed

log = logging.getLogger("learning")
BASE = heart_task_spec(normalization_task=1, rounds=10, min_updates=4)


def experiment_strategies(sites, seeds) -> dict:
    specs = {
        "fedavg": BASE,
        "fedprox mu=0.1": dataclasses.replace(BASE, proximal_mu=0.1),
        "fedadam lr=0.1": dataclasses.replace(BASE, server_optimizer="adam", server_learning_rate=0.1),
        "fedadam lr=0.3": dataclasses.replace(BASE, server_optimizer="adam", server_learning_rate=0.3),
        "fedyogi lr=0.1": dataclasses.replace(BASE, server_optimizer="yogi", server_learning_rate=0.1),
        "fedadagrad lr=0.3": dataclasses.replace(BASE, server_optimizer="adagrad", server_learning_rate=0.3),
        "fedavgm lr=1 m=0.5": with_options(dataclasses.replace(BASE, server_optimizer="sgd"),
                                          server_optimizer_params={"momentum": 0.5}),
        "bias-corrected fedavg (n^0.5)": with_options(BASE, aggregation_params={"example_power": 0.5}),
        "bias-corrected fedavg (n^0)": with_options(BASE, aggregation_params={"example_power": 0.0}),
    }
    out = {name: _run(sites, spec, seeds) for name, spec in specs.items()}
    out["fedavg + 1 local fine-tune epoch per site"] = _run(sites, BASE, seeds, fine_tune=True)
    return out


def experiment_single_site(sites, seeds) -> dict:
    runs = [run_seed(sites, BASE, seed=s, baselines=True) for s in seeds]
    return {name: {"own_accuracy_median": float(np.median([r.single_site[name]["own_accuracy"] for r in runs]))}
            for name in runs[0].single_site}


def experiment_robust(sites, seeds) -> dict:
    rules = {"fedavg": ("fedavg", {}), "median": ("median", {}),
             "trimmed_mean": ("trimmed_mean", {}), "krum": ("krum", {"num_byzantine": 1}),
             "norm_clip": ("norm_clip", {})}
    out = {}
    for attack_name, factor in (("sign_flip x-1", -1.0), ("scaled x-10", -10.0)):
        for rule_name, (agg, params) in rules.items():
            spec = with_options(dataclasses.replace(BASE, aggregation=agg), aggregation_params=params)
            out[f"4 hospitals, VA {attack_name}, {rule_name}"] = _run(
                sites, spec, seeds, attack=sign_flip({3}, factor))
            if attack_name.startswith("scaled"):
                continue
        out[f"4 hospitals clean, {rule_name}"] = None
    out = {k: v for k, v in out.items() if v is not None}
    for rule_name in ("fedavg", "median", "trimmed_mean"):
        out[f"4 hospitals clean, {rule_name}"] = _run(
            sites, dataclasses.replace(BASE, aggregation=rules[rule_name][0]), seeds)
    devices = _devices(sites, per_site=12)
    bad = set(range(0, len(devices), 5))  # every 5th device: 20%
    for rule_name, (agg, params) in rules.items():
        params = {"num_byzantine": len(bad)} if agg == "krum" else params
        spec = with_options(dataclasses.replace(BASE, aggregation=agg, min_updates=len(devices)),
                          aggregation_params=params)
        out[f"{len(devices)} devices clean, {rule_name}"] = _run(devices, spec, seeds, eval_sites=sites)
        out[f"{len(devices)} devices, 20% x-10, {rule_name}"] = _run(
            devices, spec, seeds, attack=sign_flip(bad, -10.0), eval_sites=sites)
    return out


def experiment_dp(sites, seeds, epsilon: float = 1.0) -> dict:
    dp = with_options(dataclasses.replace(BASE, clip_norm=1.0, epsilon_budget=epsilon),
                    dp_unit="example")
    site_specs, spent = dp_site_specs(sites, dp, epsilon)
    no_dp = _run(sites, BASE, seeds)
    final, _ = federate(sites, BASE, seed=seeds[0])
    selection = select_config(sites, BASE, epsilon)
    chosen = with_options(dataclasses.replace(BASE, **selection["chosen"], epsilon_budget=epsilon),
                        dp_unit="example")
    chosen_specs, chosen_spent = dp_site_specs(sites, chosen, epsilon)
    name = ", ".join(f"{k}={v}" for k, v in selection["chosen"].items())
    return {"no dp": no_dp,
            "dp-sgd clip 1, no noise": _run(sites, dataclasses.replace(dp, noise_multiplier=0.0),
                                            seeds),
            f"dp-sgd epsilon={epsilon} delta=1e-5 (per site), old: batch 32, 5 epochs, clip 1, "
            "lr 0.1": _run(sites, dp, seeds, site_specs=site_specs),
            f"dp-sgd epsilon={epsilon} delta=1e-5 (per site), selected on validation rows: "
            f"{name}": _run(sites, chosen, seeds, site_specs=chosen_specs),
            "accounting": spent, "accounting_selected": chosen_spent, "selection": selection,
            "median_example_grad_norm": {
                "initial model": median_example_grad_norm(
                    decode_params(initial_payload(BASE, key=jax.random.key(0))), sites),
                "final fedavg model (seed 0)": median_example_grad_norm(final, sites)}}


def experiment_dp_accountants(sites, seeds, epsilon: float = 1.0) -> dict:
    """DP-SGD at the selected configuration, noise calibrated per site exactly as the devices do
    on chain (``with_private_training`` + ``site_privacy_spec``), under the RDP and the PLD
    accountant: PLD proves the same epsilon with less noise."""
    out = {"no dp": _run(sites, BASE, seeds)}
    for accountant in ("rdp", "pld"):
        spec = with_private_training(BASE, epsilon=epsilon, accountant=accountant)
        out[f"dp-sgd epsilon={epsilon} per site, noise calibrated with {accountant}"] = _run(
            sites, spec, seeds)
        out[f"accounting_{accountant}"] = _site_accounting(sites, spec)
    return out


def _site_accounting(sites, spec) -> dict:
    accounting = {}
    for site in sites:
        site_spec = site_privacy_spec(spec, len(site.y_train))
        q, steps = dp_steps_per_round(spec, len(site.y_train))
        eps = {name: round(epsilon_spent(site_spec.noise_multiplier, q, steps * spec.rounds,
                                         delta=spec.delta, accountant=name), 4)
               for name in ("rdp", "pld")}
        accounting[site.name] = {"noise_multiplier": round(site_spec.noise_multiplier, 3),
                                 "q": round(q, 3), "steps": steps * spec.rounds,
                                 **{f"epsilon_{k}": v for k, v in eps.items()}}
    return accounting


def experiment_compression(sites, seeds) -> dict:
    out = {}
    for model, hidden in (("logreg", ()), ("mlp", (32,)), ("mlp", (64, 32))):
        base = dataclasses.replace(BASE, model=model, hidden_sizes=hidden)
        for name, steps in (("none", ()), ("int8", ("int8",)), ("topk 25%", ("topk:0.25",)),
                            ("topk 25% + int8", ("topk:0.25", "int8")),
                            ("topk 10% + int8", ("topk:0.1", "int8"))):
            out[f"{model}{list(hidden) or ''} {name}"] = _run(
                sites, dataclasses.replace(base, compression=steps), seeds, facts=True)
    return out


def _run(sites, spec, seeds, *, attack=None, site_specs=None, eval_sites=None, facts=False,
         fine_tune=False):
    runs, byte_facts = [], []
    for seed in seeds:
        params, f = federate(sites, dataclasses.replace(spec, seed=seed), seed=seed, attack=attack,
                             site_specs=site_specs)
        runs.append(scores(params, eval_sites or sites))
        if fine_tune:
            runs[-1].update(_fine_tuned(params, sites, spec, seed))
        byte_facts.append(f)
    summary = summarize(runs)
    if facts:
        for fact in byte_facts[0]:
            merged = [value for f in byte_facts for value in f[fact]]
            summary[f"{fact}_per_update"] = float(np.median(merged))
    med = summary["pooled_accuracy"]["median"]
    log.info("  %-55s acc %.3f auc %.3f worst %.3f", spec.aggregation + "/" + spec.server_optimizer,
             med, summary["pooled_auc"]["median"], summary["worst_site_accuracy"]["median"])
    return summary


def _fine_tuned(params, sites, spec, seed) -> dict[str, float]:
    """Each hospital fine-tunes the final global model for one local epoch (personalization)."""
    out = {}
    one_epoch = dataclasses.replace(spec, local_epochs=1)
    for index, site in enumerate(sites):
        delta = train_local(params, site.train, key=jax.random.key(10_000 + seed * 10 + index),
                            spec=one_epoch).delta
        tuned = jax.tree_util.tree_map(np.add, params, delta)
        out[f"ft_acc:{site.name}"] = evaluate(tuned, *site.test).accuracy
    return out


def _devices(sites: Sequence[SiteData], *, per_site: int) -> list[SiteData]:
    """Splits each hospital's train rows into ``per_site`` devices (round-robin)."""
    devices = []
    for site in sites:
        for d in range(per_site):
            rows = np.arange(d, len(site.y_train), per_site)
            devices.append(dataclasses.replace(site, name=f"{site.name}/{d}",
                                               x_train=site.x_train[rows], y_train=site.y_train[rows]))
    return devices


def markdown_table(results: dict) -> str:
    """The section's markdown table (the rows docs/benchmarks/learning.md shows)."""
    runs = {k: v for k, v in results.items() if isinstance(v, dict) and "pooled_accuracy" in v}
    if not runs:
        return json.dumps(results, indent=1)
    sites = [k.split(":", 1)[1] for k in next(iter(runs.values())) if k.startswith("acc:")]
    with_bytes = any("payload_bytes_per_update" in v for v in runs.values())
    head = ["run", "pooled acc", "pooled AUC", "worst site acc", *(s[:5] for s in sites)]
    if with_bytes:
        head += ["payload bytes (dense -> sent)", "submitUpdate calldata bytes",
                 "calldata gas (EIP-2028)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in runs.items():
        cells = [name, *(_cell(v[m]) for m in ("pooled_accuracy", "pooled_auc",
                                                "worst_site_accuracy"))]
        cells += [f"{v['acc:' + s]['median']:.3f}" for s in sites]
        if with_bytes:
            cells += [_ratio(v, "dense_bytes", "payload_bytes"),
                      _ratio(v, "dense_calldata_bytes", "calldata_bytes"),
                      _ratio(v, "dense_calldata_gas", "calldata_gas")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(stat: dict) -> str:
    return f"{stat['median']:.3f} [{stat['min']:.3f}, {stat['max']:.3f}]"


def _ratio(v: dict, dense: str, sent: str) -> str:
    a, b = v[f"{dense}_per_update"], v[f"{sent}_per_update"]
    return f"{a:.0f} -> {b:.0f} ({a / b:.2f}x)"


EXPERIMENTS = {"strategies": experiment_strategies, "single_site": experiment_single_site,
               "robust": experiment_robust, "dp": experiment_dp,
               "dp_accountants": experiment_dp_accountants, "compression": experiment_compression}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sites = normalize_sites(load_heart_disease())
    raw_sites = load_heart_disease()
    results = {}
    for name in args.only or EXPERIMENTS:
        started = time.perf_counter()
        log.info("== %s", name)
        data = raw_sites if name == "single_site" else sites
        results[name] = EXPERIMENTS[name](data, args.seeds)
        results[name + "_seconds"] = round(time.perf_counter() - started, 1)
        print(f"### {name} ({results[name + '_seconds']} s)\n\n{markdown_table(results[name])}\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(args.json.read_text()) if args.json.exists() else {}
        args.json.write_text(json.dumps({**existing, **results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
