"""Edge: test helpers for the edge server unit tests, an in-memory consortium with one edge."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from edge_server.app import ledger_scope
from edge_server.config import EdgeConfig
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import encode_params
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec
from fednode.update.envelope import SIGNATURE_HEADER, UpdateEnvelope, envelope_to_json
from fednode.update.signing import new_nonce, sign_envelope, sign_read

NOW = 1_700_000_000
EDGE = "0x00000000000000000000000000000000000000Ed"
EDGE_VALIDATOR = "0x000000000000000000000000000000000000Ba5e"
OTHER_EDGE = "0x00000000000000000000000000000000000000E2"
OTHER_VALIDATOR = "0x000000000000000000000000000000000000Ba52"
AGGREGATOR = "0x00000000000000000000000000000000000000A9"


def make_params(fill: float = 0.0, dtype: Any = np.float32) -> dict[str, Any]:
    """A logistic-regression-shaped parameter set (kernel 4x1, bias 1)."""
    return {
        "dense": {
            "bias": np.full((1,), fill, dtype=dtype),
            "kernel": np.full((4, 1), fill, dtype=dtype),
        }
    }


def make_consortium(*, tasks: int = 3, max_staleness: int = 0) -> InMemoryLedger:
    """Admin view of a ledger with a publisher, two edges, an aggregator and ``tasks`` tasks."""
    admin = InMemoryLedger()
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, AGGREGATOR)
    admin.register_edge(EDGE, EDGE_VALIDATOR, "edge-a")
    admin.register_edge(OTHER_EDGE, OTHER_VALIDATOR, "edge-b")
    spec = TaskSpec(
        name="heart", data_schema="uci-heart-v1", num_features=4, rounds=3, min_updates=1,
        max_staleness=max_staleness, max_update_norm=5.0,
    )  # fmt: skip
    for index in range(tasks):
        admin.publish_task(replace(spec, name=f"heart-{index}"), encode_params(make_params()))
    return admin


@dataclass
class Harness:
    """One edge (app + store + submitter) on an in-memory consortium, driven in-process."""

    admin: InMemoryLedger
    ledger: InMemoryLedger
    store: EdgeStore
    submitter: Submitter
    http: TestClient
    device: DeviceIdentity
    client: EdgeClient
    config: EdgeConfig

    def envelope(
        self,
        task_id: int,
        base_version: int = 0,
        *,
        params: Any = None,
        payload: bytes | None = None,
        device: DeviceIdentity | None = None,
        **fields: Any,
    ) -> UpdateEnvelope:
        """A well-formed envelope from ``device`` (default: the enrolled one)."""
        if payload is None:
            payload = encode_params(params or make_params(0.1))
        values: dict[str, Any] = {
            "device_id": (device or self.device).device_id,
            "task_id": task_id,
            "base_version": base_version,
            "num_examples": 10,
            "epsilon_micro": 0,
            "payload": payload,
            "nonce": new_nonce(),
            "timestamp": NOW,
            **ledger_scope(self.ledger).to_json(),
        }
        values.update(fields)
        return UpdateEnvelope(**values)

    def signed(
        self, envelope: UpdateEnvelope, *, key_of: DeviceIdentity | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """Request body and headers for an envelope, signed by ``key_of`` (default: device)."""
        signer = key_of or self.device
        signature = sign_envelope(signer.private_key, envelope)
        headers = {SIGNATURE_HEADER: base64.b64encode(signature).decode()}
        return envelope_to_json(envelope), headers

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> Any:
        """POSTs raw bytes to /v1/updates."""
        return self.http.post("/v1/updates", content=body, headers=headers or {})

    def get(self, path: str, *, device: DeviceIdentity | None = None) -> Any:
        """GETs ``path`` as a signed read of ``device`` (default: the enrolled one)."""
        reader = device or self.device
        headers = sign_read(reader.private_key, ledger_scope(self.ledger), "GET", path,
                            reader.device_id, NOW)
        return self.http.get(path, headers=headers)

    def post_envelope(self, envelope: UpdateEnvelope) -> Any:
        """Signs with the enrolled device key and POSTs."""
        return self.post(*self.signed(envelope))

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a bad request must leave untouched: store rows and chain writes."""
        rows = tuple(
            (r.ref, r.status, r.attempts, r.chain_update_id, r.digest)
            for r in self.store.list_updates()
        )
        return rows, self.ledger.update_count(), self.admin.update_count()


def tamper(body: bytes, **changes: Any) -> bytes:
    """Changes fields of a JSON body after it was signed."""
    fields = json.loads(body)
    fields.update(changes)
    return json.dumps(fields).encode()
