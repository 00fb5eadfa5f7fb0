"""Edge: an edge with four enrolled devices, a plain-cohort task and a secure-cohort task.

Shared by the cohort unit tests and the curious-edge adversary tests (tests/adversary); the
edge runs in-process (FastAPI TestClient) on an in-memory ledger with a hand-driven clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from edge_server.app import create_app
from edge_server.cohort import CohortConfig, cohort_config, vector_from_params
from edge_server.cohort_client import SecureCohortDevice
from edge_server.config import EdgeConfig
from edge_server.intake import template_of
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import encode_params
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec
from tests.unit.edge_server.edge_server_harness import EDGE, NOW, make_consortium, make_params

TEMPLATE = template_of(encode_params(make_params()))
PLAIN_EXAMPLES = (10, 30, 60)
SECURE_EXAMPLES = (10, 30, 60, 100)
TIMEOUT_S = 30.0
SECURE_COHORT = {"size": 4, "secure": True, "timeout_s": TIMEOUT_S}  # threshold 3, min_size 3


@dataclass
class Cohorts:
    """One edge with four enrolled devices, a plain-cohort task and a secure-cohort task."""

    ledger: InMemoryLedger
    store: EdgeStore
    submitter: Submitter
    http: TestClient
    identities: list[DeviceIdentity]
    clients: list[EdgeClient]
    now: list[float]
    plain_task: int
    secure_task: int
    secure_config: CohortConfig
    db_path: Path

    @property
    def roster(self) -> dict[str, str]:
        """The enrolled keys every device is provisioned with (by its operator, not the edge)."""
        return {i.device_id: i.public_key_hex for i in self.identities}

    def device(self, index: int) -> SecureCohortDevice:
        """Device ``index``'s part in the secure cohort of base version 0."""
        return SecureCohortDevice(
            self.clients[index], self.secure_task, 0, config=self.secure_config,
            roster=self.roster, clock=lambda: self.now[0],
        )  # fmt: skip

    def raw_db(self) -> sqlite3.Connection:
        """A second connection to the edge's own database file (what its operator can edit)."""
        return sqlite3.connect(self.db_path, isolation_level=None)


def publish(admin: InMemoryLedger, name: str, cohort: Any) -> int:
    """Publishes a task with ``edge_cohort = cohort``."""
    spec = TaskSpec(
        name=name, data_schema="uci-heart-v1", num_features=4, rounds=3, min_updates=1,
        max_update_norm=5.0, edge_cohort=cohort,
    )  # fmt: skip
    return admin.publish_task(spec, encode_params(make_params()))


@contextmanager
def running_cohorts(tmp_path: Path, *, secure: dict[str, Any] | None = None) -> Iterator[Cohorts]:
    """Starts the edge, enrolls ``clinic-0..3`` and publishes both tasks."""
    admin = make_consortium(tasks=0)
    plain = publish(admin, "plain", {"size": 3})
    secure_task = publish(admin, "secure", secure or SECURE_COHORT)
    ledger = admin.as_sender(EDGE)
    config = EdgeConfig(name="edge-c", db_path=str(tmp_path / "edge.sqlite"), device_rate_per_s=0)
    store = EdgeStore(config.db_path)
    now = [float(NOW)]
    submitter = Submitter(store, ledger)
    app = create_app(config, ledger, store, submitter=submitter, clock=lambda: now[0])
    secure_config = cohort_config(ledger.get_task(secure_task).spec)
    assert secure_config is not None
    with TestClient(app) as http:
        identities = [DeviceIdentity.generate(device_id=f"clinic-{i}") for i in range(4)]
        clients = []
        for identity in identities:
            enroll_device(store, identity.device_id, identity.public_key_hex)
            clients.append(EdgeClient("http://testserver", identity, http=http,
                                      clock=lambda: now[0]))  # fmt: skip
        yield Cohorts(ledger, store, submitter, http, identities, clients, now, plain,
                      secure_task, secure_config, Path(config.db_path))  # fmt: skip
    submitter.stop()
    store.close()


def deltas(seed: int = 0, count: int = 4) -> list[dict[str, Any]]:
    """``count`` random deltas of the task's model, each well within the norm bound."""
    rng = np.random.default_rng(seed)
    return [
        {"dense": {"bias": rng.uniform(-0.5, 0.5, (1,)).astype(np.float32),
                   "kernel": rng.uniform(-0.5, 0.5, (4, 1)).astype(np.float32)}}
        for _ in range(count)
    ]  # fmt: skip


def weighted_mean(values: list[dict[str, Any]], examples: tuple[int, ...]) -> np.ndarray:
    """The float64 weighted mean of deltas, as a flat vector."""
    vectors = [n * vector_from_params(d, TEMPLATE) for d, n in zip(values, examples, strict=True)]
    return sum(vectors) / sum(examples)


def all_blobs(db_path: Path) -> list[bytes]:
    """Every BLOB value in every table of the edge's SQLite file."""
    blobs = []
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                blobs += [bytes(v) for v in row if isinstance(v, bytes)]
    return blobs
