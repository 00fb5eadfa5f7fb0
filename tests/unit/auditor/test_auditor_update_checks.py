"""Auditor: the one update check re-made on every aggregated update, and finite global models."""

from __future__ import annotations

import numpy as np

from fednode.auditor.replay import audit_records
from fednode.auditor.update_checks import check_aggregated_updates, check_finite_models
from fednode.codec import digest_bytes, encode_params
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec
from fednode.update.packing import encode_top_k, pack_delta

SPEC = TaskSpec(name="t", data_schema="s", num_features=4, min_updates=1, max_update_norm=1.0,
                max_examples=100, compression=("int8",))
INITIAL = encode_params({"w": np.zeros(4, np.float32)})
V0 = GlobalModelRecord(1, 0, digest_bytes(INITIAL), (), "0xP", INITIAL, 1, b"\x00")


def _update(update_id: int, payload: bytes, *, num_examples: int = 10) -> LedgerUpdate:
    return LedgerUpdate(update_id, 1, 0, f"0xE{update_id}", digest_bytes(payload), num_examples,
                        0, payload, 5, bytes([update_id]))


def _version(ids: tuple[int, ...], payload: bytes = INITIAL) -> GlobalModelRecord:
    return GlobalModelRecord(1, 1, digest_bytes(payload), ids, "0xA", payload, 9, b"\xcc")


def test_every_refused_aggregated_update_is_a_finding_naming_update_and_tx() -> None:
    # Arrange: one honest update and four the one check refuses, all aggregated in v1
    honest = _update(1, encode_params({"w": np.full(4, 0.1, np.float32)}))
    nan = _update(2, encode_params({"w": np.array([np.nan, 0, 0, 0], np.float32)}))
    huge = _update(3, encode_params({"w": np.full(4, 1e3, np.float32)}))
    top_k = _update(4, encode_params(pack_delta({"w": encode_top_k(np.ones(4, np.float32), 1)},
                                                {"w": (4,)})))
    greedy = _update(5, encode_params({"w": np.full(4, 0.1, np.float32)}), num_examples=2**63 - 1)
    updates = [honest, nan, huge, top_k, greedy]
    # Act
    findings = check_aggregated_updates(SPEC, [V0, _version((1, 2, 3, 4, 5))], updates)
    # Assert
    assert [(f.kind, f.version, f.at_fault, f.detail.split(":")[0]) for f in findings] == [
        ("rejected_update", 1, "update 2 from 0xE2 (tx 0x02)", "not_finite"),
        ("rejected_update", 1, "update 3 from 0xE3 (tx 0x03)", "norm_too_large"),
        ("rejected_update", 1, "update 4 from 0xE4 (tx 0x04)", "wrong_compression"),
        ("too_many_examples", 1, "update 5 from 0xE5 (tx 0x05)", "too_many_examples"),
    ]


def test_updates_a_version_did_not_aggregate_are_not_findings() -> None:
    nan = _update(2, encode_params({"w": np.array([np.nan, 0, 0, 0], np.float32)}))
    assert check_aggregated_updates(SPEC, [V0, _version(())], [nan]) == []


def test_a_non_finite_global_model_is_a_finding_and_fails_the_audit() -> None:
    # Arrange: an honest update, but the commit publishes a NaN model
    honest = _update(1, encode_params({"w": np.full(4, 0.1, np.float32)}))
    nan_model = encode_params({"w": np.full(4, np.nan, np.float32)})
    records = [V0, _version((1,), nan_model)]
    # Act
    findings = check_finite_models(records)
    report = audit_records(1, SPEC, records, [honest])
    # Assert
    assert [(f.kind, f.version, f.at_fault) for f in findings] == [
        ("global_model_not_finite", 1, "commit by 0xA (tx 0xcc)")]
    assert not report.ok
    assert "global_model_not_finite" in {f.kind for f in report.verdicts[1].findings}


def test_a_clean_task_has_no_update_findings() -> None:
    honest = _update(1, encode_params({"w": np.full(4, 0.1, np.float32)}))
    records = [V0, _version((1,))]
    assert check_aggregated_updates(SPEC, records, [honest]) == []
    assert check_finite_models(records) == []
