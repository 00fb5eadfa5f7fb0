"""Auditor: re-makes the one update check on every update a version aggregated (pure).

The edge checks a delta before it signs it, but an edge operator can sign ``submitUpdate`` with
its own key and skip its edge server, and an aggregator can aggregate what it should have left
out. So the auditor runs ``fednode.aggregator.build.check_update_payload`` (the same
``fednode.update.check_update`` the edge and the aggregator run: layout, compression layout,
finiteness, norm bound after decompression, example cap) on every aggregated update, and checks
that every global model is finite. Each refusal is a :class:`~fednode.auditor.checks.Finding`
that names the update (id, edge, transaction hash) or the commit at fault.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from fednode.aggregator.build import check_update_payload
from fednode.auditor.checks import Finding
from fednode.errors import CodecError, UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec
from fednode.update import RejectReason, is_finite_model

__all__ = ["UPDATE_FINDING_KINDS", "check_aggregated_updates", "check_finite_models"]

UPDATE_FINDING_KINDS = ("rejected_update", "too_many_examples", "global_model_not_finite")
"""The finding kinds this module reports."""


def check_aggregated_updates(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> list[Finding]:
    """Every update a version aggregated passes the one update check against its task.

    An update is checked against the version before the one that aggregated it (the global
    model whose layout it must have). An example count over ``spec.max_examples`` is a
    ``too_many_examples`` finding, any other refusal a ``rejected_update`` finding whose detail
    starts with the ``RejectReason``.

    Example:
      >>> import numpy as np
      >>> from fednode.codec import digest_bytes, encode_params
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> g = encode_params({"w": np.zeros(2, np.float32)})
      >>> bad = encode_params({"w": np.array([np.nan, 0.0], np.float32)})
      >>> u = LedgerUpdate(4, 1, 0, "0xE", digest_bytes(bad), 1, 0, bad, 9, b"\\x0a")
      >>> v0 = GlobalModelRecord(1, 0, digest_bytes(g), (), "0xP", g, 1, b"")
      >>> v1 = GlobalModelRecord(1, 1, b"", (4,), "0xA", g, 10, b"")
      >>> [(f.kind, f.at_fault) for f in check_aggregated_updates(spec, [v0, v1], [u])]
      [('rejected_update', 'update 4 from 0xE (tx 0x0a)')]
    """
    by_id = {u.update_id: u for u in updates}
    ordered = sorted(records, key=lambda r: r.version)
    return [
        finding
        for previous, record in zip(ordered, ordered[1:], strict=False)
        for finding in _version_findings(spec, previous, record, by_id)
    ]


def check_finite_models(records: Sequence[GlobalModelRecord]) -> list[Finding]:
    """Every committed global model (and the initial one) holds only finite values.

    A payload that does not decode is left to the replay (``tampered_payload``).

    Example:
      >>> import numpy as np
      >>> from fednode.codec import encode_params
      >>> nan = encode_params({"w": np.array([np.nan], np.float32)})
      >>> r = GlobalModelRecord(1, 2, b"", (3,), "0xA", nan, 10, b"\\x0b")
      >>> [(f.kind, f.version, f.at_fault) for f in check_finite_models([r])]
      [('global_model_not_finite', 2, 'commit by 0xA (tx 0x0b)')]
    """
    findings = []
    for record in sorted(records, key=lambda r: r.version):
        try:
            finite = is_finite_model(record.payload)
        except (CodecError, ValueError):
            continue
        if not finite:
            who = "task publication" if record.version == 0 else f"commit by {record.aggregator}"
            findings.append(Finding(
                "global_model_not_finite", record.version, f"{who} (tx 0x{record.tx_hash.hex()})",
                f"global model v{record.version} holds NaN or infinity",
            ))
    return findings


def _version_findings(
    spec: TaskSpec, previous: GlobalModelRecord, record: GlobalModelRecord,
    by_id: Mapping[int, LedgerUpdate],
) -> Iterator[Finding]:
    for update_id in record.update_ids:
        update = by_id.get(update_id)
        if update is None:
            continue  # check_update_lists reports an id that is not an update of the task
        try:
            check_update_payload(update, previous.payload, spec)
        except UpdateRejectedError as exc:
            kind = ("too_many_examples" if exc.reason == RejectReason.TOO_MANY_EXAMPLES
                    else "rejected_update")
            yield Finding(
                kind, record.version,
                f"update {update.update_id} from {update.edge} (tx 0x{update.tx_hash.hex()})",
                f"{exc.reason}: v{record.version} (committed by {record.aggregator}) aggregated "
                f"an update the one update check refuses: {exc.detail}",
            )
        except CodecError:
            return  # the previous version's payload is not canonical: the replay reports it
