"""Aggregator: turns ledger updates into global model versions (rules and build are pure)."""

from fednode.aggregator.build import BuiltGlobalModel, build_global_model, check_update_payload
from fednode.aggregator.rules import Aggregator, apply_global_delta, fedavg, rule_for_spec

__all__ = [
    "Aggregator",
    "BuiltGlobalModel",
    "apply_global_delta",
    "build_global_model",
    "check_update_payload",
    "fedavg",
    "rule_for_spec",
]
