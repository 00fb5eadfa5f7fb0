"""Aggregator: the pure step from one global model and its ledger updates to the next global model.

Both the aggregator (which publishes) and the auditor (which recomputes) call
:func:`build_global_model`, so there is exactly one definition of what a version contains. It
takes values and returns values: payload bytes in, payload bytes out, no I/O. Compressed
updates (int8, top-k; layout in ``fednode/update/packing.py``) go through the one update check
(``fednode.update.check_update``) and are decompressed exactly before the rule sees them; a
global model that is not finite is refused. The rule state (``pipeline.RuleState``) knows
which version is being built, so asynchronous tasks weigh each update by its staleness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fednode.aggregator.rules import apply_global_delta, rule_for_spec
from fednode.codec import decode_params, digest_bytes, encode_params
from fednode.errors import GlobalModelNotFiniteError, UpdateRejectedError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec
from fednode.update import check_num_examples, check_update, is_finite_model, template_of

__all__ = ["BuiltGlobalModel", "build_global_model", "check_update_payload", "replay_rule_state"]


@dataclass(frozen=True)
class BuiltGlobalModel:
    """The result of one aggregation: canonical payload, its digest, the update ids used, and
    the rule's state after this version (server optimizer moments, ...), for the next version."""

    payload: bytes
    digest: bytes
    update_ids: tuple[int, ...]
    rule_state: Any = None


def check_update_payload(update: LedgerUpdate, global_payload: bytes, spec: TaskSpec) -> dict:
    """Runs the one update check (``fednode.update``) on an update as the ledger holds it.

    The payload must hash to its recorded digest, decode, have the compression layout of
    ``spec.compression`` and the global model's layout, be finite, and stay within
    ``spec.max_update_norm`` after decompression; its example count must be within
    ``spec.max_examples``. This is the very check the edge runs: an edge operator who signs
    ``submitUpdate`` with its own key does not get past it.

    Args:
      update: the update as read from the ledger.
      global_payload: canonical bytes of the global model the update is based on.
      spec: the task's spec.

    Returns:
      The decoded delta as dense float32 (nested dict of numpy arrays), decompressed if the
      update was int8 / top-k encoded.

    Raises:
      UpdateRejectedError: with a ``fednode.update.RejectReason``; the detail names the update.

    Example:
      >>> import numpy as np
      >>> from fednode.types import LedgerUpdate
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2)
      >>> g = encode_params({"w": np.zeros(2, np.float32)})
      >>> u = LedgerUpdate(1, 1, 0, "0x0", digest_bytes(g), 1, 0, g, 1, b"")
      >>> check_update_payload(u, g, spec)["w"].shape
      (2,)
    """
    try:
        check_num_examples(update.num_examples, spec)
        checked = check_update(update.payload, template_of(global_payload), spec,
                               digest=update.digest)
    except UpdateRejectedError as exc:
        detail = f"update {update.update_id} from {update.edge}: {exc.detail}"
        raise UpdateRejectedError(exc.reason, detail) from exc
    return checked.delta


def build_global_model(
    spec: TaskSpec, global_payload: bytes, updates: Sequence[LedgerUpdate], *,
    rule_state: Any = None,
) -> BuiltGlobalModel:
    """Aggregates ``updates`` (in ledger order) onto the global model with the task's rule.

    Args:
      spec: the task spec; ``spec.aggregation`` picks the rule.
      global_payload: canonical bytes of the current global model.
      updates: the updates to aggregate, in ledger (update id) order.
      rule_state: the rule's state after the previous version (``None``: the rule's init,
        right for version 1). Use :func:`replay_rule_state` to rebuild it from the ledger.

    Returns:
      The new global model as canonical bytes with its digest and the update ids used.

    Raises:
      UpdateRejectedError: if an update fails :func:`check_update_payload` or the list is empty.
      GlobalModelNotFiniteError: if the new global model holds NaN or infinity.

    Example:
      >>> import numpy as np
      >>> from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> g = encode_params({"w": np.zeros(2, np.float32)})
      >>> d = encode_params({"w": np.ones(2, np.float32)})
      >>> u = LedgerUpdate(7, 1, 0, "0x0", digest_bytes(d), 3, 0, d, 1, b"")
      >>> build_global_model(spec, g, [u]).update_ids
      (7,)
    """
    ordered = sorted(updates, key=lambda u: u.update_id)
    if not ordered:
        raise UpdateRejectedError("no_updates", "a global model needs at least one update")
    deltas = [check_update_payload(u, global_payload, spec) for u in ordered]
    weights = [u.num_examples for u in ordered]
    rule = rule_for_spec(spec)
    state = rule.init() if rule_state is None else rule_state
    base_versions = [u.base_version for u in ordered]
    aggregate, state = rule.apply(deltas, weights, state, base_versions=base_versions)
    new_params = apply_global_delta(decode_params(global_payload), aggregate)
    payload = encode_params(new_params)
    if not is_finite_model(payload):
        raise GlobalModelNotFiniteError(
            f"the global model built from updates {[u.update_id for u in ordered]} holds NaN or "
            "infinity; it is not committed"
        )
    ids = tuple(u.update_id for u in ordered)
    return BuiltGlobalModel(payload, digest_bytes(payload), ids, state)


def replay_rule_state(
    spec: TaskSpec, records: Sequence[GlobalModelRecord], updates: Sequence[LedgerUpdate]
) -> Any:
    """The rule's state after the last committed version, rebuilt from the ledger alone.

    A restarted aggregator calls this, so it continues exactly where the ledger says it was.

    Example:
      >>> spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1)
      >>> replay_rule_state(spec, [], [])
      RuleState(version=0, rule=FedAvgState(num_rounds=0), server=None)
    """
    by_id = {u.update_id: u for u in updates}
    ordered = sorted(records, key=lambda r: r.version)
    state = rule_for_spec(spec).init()
    for previous, record in zip(ordered, ordered[1:], strict=False):
        listed = [by_id[i] for i in record.update_ids]
        state = build_global_model(spec, previous.payload, listed, rule_state=state).rule_state
    return state
