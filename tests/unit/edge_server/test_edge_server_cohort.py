"""Edge: cohort aggregation at the edge: plain and secure cohorts, dropouts, stored state."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edge_server_harness import EDGE, NOW, make_consortium, make_params
from fastapi.testclient import TestClient

from edge_server.app import create_app
from edge_server.cohort import vector_from_params
from edge_server.cohort_client import SecureCohortDevice
from edge_server.cohort_store import CohortStore
from edge_server.config import EdgeConfig
from edge_server.device_client import DeviceIdentity, EdgeClient
from edge_server.intake import template_of
from edge_server.secagg import dequantize, quantize
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.codec import decode_params, encode_params
from fednode.errors import EdgeError
from fednode.types import TaskSpec

TEMPLATE = template_of(encode_params(make_params()))
EXAMPLES = (10, 30, 60)
TIMEOUT_S = 30.0


@dataclass
class Cohorts:
    """One edge with three enrolled devices, a plain-cohort task and a secure-cohort task."""

    ledger: InMemoryLedger
    store: EdgeStore
    submitter: Submitter
    http: TestClient
    clients: list[EdgeClient]
    now: list[float]
    plain_task: int
    secure_task: int
    db_path: Path

    def device(self, index: int) -> SecureCohortDevice:
        return SecureCohortDevice(
            self.clients[index], self.secure_task, 0, clock=lambda: self.now[0]
        )


def _publish(admin: InMemoryLedger, name: str, cohort: dict[str, Any]) -> int:
    spec = TaskSpec(
        name=name, data_schema="uci-heart-v1", num_features=4, rounds=3, min_updates=1,
        max_update_norm=5.0, extra={"edge_cohort": cohort},
    )  # fmt: skip
    return admin.publish_task(spec, encode_params(make_params()))


@pytest.fixture
def cohorts(tmp_path: Path) -> Iterator[Cohorts]:
    admin = make_consortium(tasks=0)
    plain = _publish(admin, "plain", {"size": 3})
    secure = _publish(admin, "secure", {"size": 3, "secure": True, "timeout_s": TIMEOUT_S})
    ledger = admin.as_sender(EDGE)
    config = EdgeConfig(name="edge-c", db_path=str(tmp_path / "edge.sqlite"), device_rate_per_s=0)
    store = EdgeStore(config.db_path)
    now = [float(NOW)]
    submitter = Submitter(store, ledger)
    app = create_app(config, ledger, store, submitter=submitter, clock=lambda: now[0])
    with TestClient(app) as http:
        clients = []
        for index in range(3):
            identity = DeviceIdentity.generate(device_id=f"clinic-{index}")
            enroll_device(store, identity.device_id, identity.public_key_hex)
            client = EdgeClient("http://testserver", identity, http=http, clock=lambda: now[0])
            clients.append(client)
        yield Cohorts(ledger, store, submitter, http, clients, now, plain, secure,
                      Path(config.db_path))  # fmt: skip
    submitter.stop()
    store.close()


def _deltas(seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"dense": {"bias": rng.uniform(-0.5, 0.5, (1,)).astype(np.float32),
                   "kernel": rng.uniform(-0.5, 0.5, (4, 1)).astype(np.float32)}}
        for _ in range(3)
    ]  # fmt: skip


def _weighted_mean(deltas: list[dict[str, Any]], examples: tuple[int, ...]) -> np.ndarray:
    vectors = [n * vector_from_params(d, TEMPLATE) for d, n in zip(deltas, examples, strict=True)]
    return sum(vectors) / sum(examples)


def _on_chain(cohorts: Cohorts, task_id: int) -> Any:
    (update,) = cohorts.ledger.read_updates(task_id)
    return update


def _all_blobs(db_path: Path) -> list[bytes]:
    """Every BLOB value in every table of the edge's SQLite file."""
    blobs = []
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                blobs += [bytes(v) for v in row if isinstance(v, bytes)]
    return blobs


# ---- plain cohorts -----------------------------------------------------------------------------


def test_plain_cohort_submits_one_weighted_mean_update(cohorts: Cohorts) -> None:
    # Arrange
    deltas = _deltas()

    # Act
    refs = []
    for client, delta, n in zip(cohorts.clients, deltas, EXAMPLES, strict=True):
        refs.append(client.post_update(cohorts.plain_task, 0, delta, num_examples=n))
        if len(refs) < 3:
            assert cohorts.store.list_updates() == []  # nothing for the chain before the N-th
            assert client.update_status(refs[-1])["status"] == "collecting"
    cohorts.submitter.submit_pending()
    statuses = [client.wait_committed(ref, timeout=1.0)  # each device reads its own record
                for client, ref in zip(cohorts.clients, refs, strict=True)]

    # Assert
    update = _on_chain(cohorts, cohorts.plain_task)
    assert cohorts.ledger.update_count() == 1 and update.num_examples == sum(EXAMPLES)
    got = vector_from_params(decode_params(update.payload), TEMPLATE)
    np.testing.assert_allclose(got, _weighted_mean(deltas, EXAMPLES), rtol=1e-6, atol=1e-7)
    assert {s["chain_update_id"] for s in statuses} == {update.update_id}


def test_plain_cohort_refuses_a_fourth_device_and_a_second_input(cohorts: Cohorts) -> None:
    # Arrange
    first = cohorts.clients[0]
    first.post_update(cohorts.plain_task, 0, _deltas()[0], num_examples=5)

    # Act
    with pytest.raises(EdgeError) as twice:
        first.post_update(cohorts.plain_task, 0, _deltas()[1], num_examples=5)
    for client in cohorts.clients[1:]:
        client.post_update(cohorts.plain_task, 0, _deltas()[2], num_examples=5)
    late = DeviceIdentity.generate(device_id="clinic-late")
    enroll_device(cohorts.store, late.device_id, late.public_key_hex)
    late_client = EdgeClient("http://testserver", late, http=cohorts.http,
                             clock=lambda: cohorts.now[0])  # fmt: skip
    with pytest.raises(EdgeError) as fourth:
        late_client.post_update(cohorts.plain_task, 0, _deltas()[0], num_examples=5)

    # Assert
    assert (twice.value.status, twice.value.reason) == (409, "cohort_member")
    assert (fourth.value.status, fourth.value.reason) == (409, "duplicate_base")
    assert len(cohorts.store.list_updates()) == 1


def test_plain_cohort_inputs_are_durable_before_the_ack(cohorts: Cohorts) -> None:
    # Arrange
    ref = cohorts.clients[0].post_update(cohorts.plain_task, 0, _deltas()[0], num_examples=5)

    # Act: another connection to the same file (a restarted edge) sees the member
    with EdgeStore(cohorts.db_path) as reopened:
        found = CohortStore(reopened).member_by_ref(ref)

    # Assert
    assert found is not None and found[1].has_delta and found[0].state == "collecting"


# ---- secure cohorts ----------------------------------------------------------------------------


def _secure_rounds(cohorts: Cohorts, deltas: list[dict[str, Any]], senders: range) -> list[Any]:
    devices = [cohorts.device(i) for i in range(3)]
    refs = [d.advertise(n)["member_ref"] for d, n in zip(devices, EXAMPLES, strict=True)]
    for device in devices:
        device.share()
    for index in senders:
        devices[index].send_masked(deltas[index])
    return [devices, refs]


def test_secure_cohort_sum_equals_the_weighted_mean(cohorts: Cohorts) -> None:
    # Arrange
    deltas = _deltas(seed=1)

    # Act
    devices, refs = _secure_rounds(cohorts, deltas, range(3))
    cohorts.submitter.submit_pending()

    # Assert
    assert devices[0].cohort()["state"] == "sealed"
    update = _on_chain(cohorts, cohorts.secure_task)
    assert update.num_examples == sum(EXAMPLES)
    got = vector_from_params(decode_params(update.payload), TEMPLATE)
    scale = devices[0].cohort()["scale"]
    expected = _weighted_mean(deltas, EXAMPLES)
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 / scale + 1e-7)
    status = cohorts.clients[1].wait_committed(refs[1], timeout=1.0)
    assert status["chain_update_id"] == update.update_id


def test_secure_cohort_store_never_holds_an_individual_delta(cohorts: Cohorts) -> None:
    # Arrange
    deltas = _deltas(seed=2)

    # Act
    devices, _ = _secure_rounds(cohorts, deltas, range(3))

    # Assert: no stored value is a delta, its weighted fixed-point form, or close to either
    blobs = _all_blobs(cohorts.db_path)
    scale, total = devices[0].cohort()["scale"], sum(EXAMPLES)
    (aggregate,) = cohorts.store.list_updates()
    assert aggregate.device_id == "cohort"
    for delta, n in zip(deltas, EXAMPLES, strict=True):
        weighted = n / total * vector_from_params(delta, TEMPLATE)
        fixed = quantize(weighted, scale=scale).astype("<u4").tobytes()
        assert encode_params(delta) not in blobs and fixed not in blobs
        for blob in blobs:
            if len(blob) == len(fixed):  # a masked vector: it decodes to noise, not the input
                seen = dequantize(np.frombuffer(blob, "<u4"), scale=scale)
                assert np.max(np.abs(seen - weighted)) > 1.0


def test_secure_cohort_recovers_a_device_that_dropped_before_sending(cohorts: Cohorts) -> None:
    # Arrange: all three share their keys; device 2 drops before its masked input
    deltas = _deltas(seed=3)
    devices, refs = _secure_rounds(cohorts, deltas, range(2))
    assert devices[0].cohort()["state"] == "masking"

    # Act
    cohorts.now[0] += TIMEOUT_S + 1
    unmasking = devices[0].cohort()
    with pytest.raises(EdgeError) as late:
        devices[2].send_masked(deltas[2])
    devices[0].reveal()
    devices[1].reveal()
    cohorts.submitter.submit_pending()

    # Assert
    assert unmasking["state"] == "unmasking"
    assert [m["dropped"] for m in unmasking["members"]] == [False, False, True]
    assert (late.value.status, late.value.reason) == (409, "dropped")
    update = _on_chain(cohorts, cohorts.secure_task)
    assert update.num_examples == EXAMPLES[0] + EXAMPLES[1]
    got = vector_from_params(decode_params(update.payload), TEMPLATE)
    expected = _weighted_mean(deltas[:2], EXAMPLES[:2])
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 / unmasking["scale"] * 2 + 1e-7)
    assert cohorts.clients[0].wait_committed(refs[0], timeout=1.0)["status"] == "committed"


def test_secure_cohort_fails_with_fewer_inputs_than_the_threshold(cohorts: Cohorts) -> None:
    # Arrange
    devices, _ = _secure_rounds(cohorts, _deltas(), range(1))

    # Act
    cohorts.now[0] += TIMEOUT_S + 1
    state = devices[0].cohort()

    # Assert
    assert state["state"] == "failed" and "masking" in state["error"]
    assert cohorts.store.list_updates() == [] and cohorts.ledger.update_count() == 0


def test_secure_round_refusals_store_nothing(cohorts: Cohorts) -> None:
    # Arrange
    device = cohorts.device(0)
    device.advertise(5)
    impostor = SecureCohortDevice(
        EdgeClient("http://testserver", DeviceIdentity.generate(device_id="clinic-1"),
                   http=cohorts.http, clock=lambda: cohorts.now[0]),
        cohorts.secure_task, 0, clock=lambda: cohorts.now[0],
    )  # fmt: skip

    # Act / Assert
    with pytest.raises(EdgeError) as forged:
        impostor.advertise(5)
    with pytest.raises(EdgeError) as early:
        device.send_masked(_deltas()[0])
    with pytest.raises(EdgeError) as plain:
        cohorts.clients[2].post_update(cohorts.secure_task, 0, _deltas()[0], num_examples=3)
    assert (forged.value.status, forged.value.reason) == (401, "bad_signature")
    assert (early.value.status, early.value.reason) == (409, "cohort_state")
    assert (plain.value.status, plain.value.reason) == (409, "cohort_state")
    assert [m["device_id"] for m in device.cohort()["members"]] == ["clinic-0"]


@pytest.mark.parametrize(
    "cohort", [{"size": 0}, {"size": 2, "secure": True}, {"size": 3, "bogus": 1}, "three"]
)
def test_bad_cohort_config_is_refused(cohorts: Cohorts, cohort: Any) -> None:
    # Arrange
    admin = cohorts.ledger.as_sender(cohorts.ledger.get_task(1).publisher)
    spec = replace(admin.get_task(1).spec, name="bad", extra={"edge_cohort": cohort})
    task_id = admin.publish_task(spec, encode_params(make_params()))

    # Act
    with pytest.raises(EdgeError) as refused:
        cohorts.clients[0].post_update(task_id, 0, _deltas()[0], num_examples=3)

    # Assert
    assert (refused.value.status, refused.value.reason) == (422, "bad_cohort")
    assert cohorts.store.list_updates() == []
