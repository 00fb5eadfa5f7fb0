"""Edge: the JSON views the HTTP API answers with (stored updates, tasks, global models).

Pure mappings from records to JSON-ready dicts; ``edge_server.app`` serves them.
"""

from __future__ import annotations

import base64
from typing import Any

from edge_server.store import UpdateRow
from fednode.types import GlobalModelRecord, TaskRecord

__all__ = ["chain_progress_json", "global_json", "task_json", "update_json"]


def update_json(row: UpdateRow) -> dict[str, Any]:
    """The ``GET /v1/updates/{ref}`` view of a stored update (digests and hashes in hex)."""
    return {
        "update_ref": row.ref,
        "status": row.status.value,
        "device_id": row.device_id,
        "task_id": row.task_id,
        "base_version": row.base_version,
        "digest": row.digest.hex(),
        "num_examples": row.num_examples,
        "epsilon_micro": row.epsilon_micro,
        "chain_update_id": row.chain_update_id,
        **chain_progress_json(row),
    }


def chain_progress_json(row: Any) -> dict[str, Any]:
    """Where a stored row (update or evaluation) is on its way to the chain, as JSON fields."""
    return {
        "tx_hash": None if row.tx_hash is None else row.tx_hash.hex(),
        "tx_nonce": row.tx_nonce,
        "block_number": row.block_number,
        "error": row.error,
        "accepted_at": row.created_at,
        "updated_at": row.updated_at,
    }


def task_json(task: TaskRecord) -> dict[str, Any]:
    """The ``GET /v1/tasks/{task_id}`` view of a task (its spec as canonical JSON text)."""
    return {
        "task_id": task.task_id,
        "spec_json": task.spec.to_json().decode(),
        "spec_digest": task.spec_digest.hex(),
        "publisher": task.publisher,
        "state": task.state.name.lower(),
        "latest_version": task.latest_version,
        "published_block": task.published_block,
    }


def global_json(record: GlobalModelRecord) -> dict[str, Any]:
    """The ``GET /v1/tasks/{task_id}/global`` view of a global model (payload in base64)."""
    return {
        "task_id": record.task_id,
        "version": record.version,
        "digest": record.digest.hex(),
        "payload": base64.b64encode(record.payload).decode("ascii"),
        "update_ids": list(record.update_ids),
        "aggregator": record.aggregator,
        "block_number": record.block_number,
    }
