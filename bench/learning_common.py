"""Bench: shared pieces of the learning benches (heart task through build_global_model).

Every round goes through the real aggregation path: each site's delta is transformed on the
device (``apply_transforms``: DP, compression), encoded with the canonical codec, wrapped as a
``LedgerUpdate`` and aggregated by ``build_global_model`` (the function the aggregator and the
auditor run), with the rule state carried from version to version.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from hexbytes import HexBytes

from fednode.aggregator.build import build_global_model
from fednode.codec import decode_params, digest_bytes, encode_params
from fednode.device import evaluate, pool_test_sets, train_local
from fednode.device.transforms import apply_transforms
from fednode.privacy import site_privacy_spec
from fednode.tasks import initial_payload
from fednode.types import LedgerUpdate, TaskSpec

ABI_DIR = Path(__file__).resolve().parents[1] / "fednode" / "chain" / "abi"

Attack = Callable[[int, dict], dict]
"""``(site index, delta) -> delta`` applied after local training (a poisoned site)."""


def ledger_update(update_id: int, base: int, payload: bytes, num_examples: int) -> LedgerUpdate:
    return LedgerUpdate(update_id, 1, base, f"0x{update_id:040x}", digest_bytes(payload),
                        num_examples, 0, payload, base + 1, b"")


@functools.cache
def _update_ledger_contract() -> Any:
    from web3 import Web3

    abi = json.loads((ABI_DIR / "UpdateLedger.json").read_text())["abi"]
    return Web3().eth.contract(abi=abi)


def submit_calldata(payload: bytes, *, num_examples: int, base_version: int = 0) -> bytes:
    """The ``UpdateLedger.submitUpdate`` calldata an edge server sends for this payload (the
    same ABI encoding as ``Web3Ledger``: selector + 5 head words + length word + padded bytes)."""
    args = [1, base_version, num_examples, 0, bytes(payload)]
    return bytes(HexBytes(_update_ledger_contract().encode_abi("submitUpdate", args)))


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas (EIP-2028): 16 per non-zero byte, 4 per zero byte."""
    zeros = data.count(0)
    return 16 * (len(data) - zeros) + 4 * zeros


def federate(
    sites: Sequence[Any], spec: TaskSpec, *, seed: int, attack: Attack | None = None,
    site_specs: Sequence[TaskSpec] | None = None,
    on_round: Callable[[int, dict], None] | None = None,
) -> tuple[dict, dict]:
    """``spec.rounds`` synchronous versions; returns (final params, facts: payload bytes)."""
    payload = initial_payload(spec, key=jax.random.key(spec.seed))
    key = jax.random.key(seed + 1)
    state, next_id, transform_states = None, 1, [None] * len(sites)
    facts: dict[str, list[int]] = {k: [] for k in (
        "payload_bytes", "dense_bytes", "calldata_bytes", "dense_calldata_bytes", "calldata_gas",
        "dense_calldata_gas")}
    for version in range(spec.rounds):
        params = decode_params(payload)
        key, *keys = jax.random.split(key, 2 * len(sites) + 1)
        updates = []
        for index, site in enumerate(sites):
            local_spec = (site_specs[index] if site_specs
                          else site_privacy_spec(spec, len(site.y_train)))
            update = train_local(params, site.train, key=keys[2 * index], spec=local_spec)
            delta = attack(index, update.delta) if attack else update.delta
            encoded, transform_states[index] = apply_transforms(
                delta, local_spec, key=keys[2 * index + 1], state=transform_states[index])
            raw, dense = encode_params(encoded), encode_params(delta)
            for kind, data in (("", raw), ("dense_", dense)):
                call = submit_calldata(data, num_examples=update.num_examples, base_version=version)
                facts[f"{kind}calldata_bytes"].append(len(call))
                facts[f"{kind}calldata_gas"].append(calldata_gas(call))
            facts["payload_bytes"].append(len(raw))
            facts["dense_bytes"].append(len(dense))
            updates.append(ledger_update(next_id, version, raw, update.num_examples))
            next_id += 1
        built = build_global_model(spec, payload, updates, rule_state=state)
        payload, state = built.payload, built.rule_state
        if on_round:
            on_round(version + 1, decode_params(payload))
    return decode_params(payload), facts


def scores(params: dict, sites: Sequence[Any]) -> dict[str, float]:
    pooled = evaluate(params, *pool_test_sets(sites))
    out = {"pooled_accuracy": pooled.accuracy, "pooled_auc": pooled.auc}
    for site in sites:
        out[f"acc:{site.name}"] = evaluate(params, *site.test).accuracy
    out["worst_site_accuracy"] = min(out[f"acc:{s.name}"] for s in sites)
    return out


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max over seeds of every metric."""
    keys = runs[0].keys()
    return {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs),
                "max": max(r[k] for r in runs)} for k in keys}


def with_options(spec: TaskSpec, **options: Any) -> TaskSpec:
    return dataclasses.replace(spec, **options)


def sign_flip(bad: set[int], factor: float = -1.0) -> Attack:
    def attack(index: int, delta: dict) -> dict:
        if index not in bad:
            return delta
        return jax.tree_util.tree_map(lambda a: (a * factor).astype(np.float32), delta)
    return attack
