"""Edge: cohort aggregation at the edge: plain and secure cohorts, dropouts, stored state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_server.cohort import secure_mean_payload, vector_from_params
from edge_server.cohort_client import SecureCohortDevice
from edge_server.cohort_store import CohortStore
from edge_server.secagg import dequantize, quantize
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from fednode.codec import decode_params, encode_params
from fednode.errors import EdgeError, TaskSpecError
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec
from tests.unit.edge_server.cohort_harness import (
    PLAIN_EXAMPLES,
    SECURE_EXAMPLES,
    TEMPLATE,
    TIMEOUT_S,
    Cohorts,
    all_blobs,
    deltas,
    running_cohorts,
    weighted_mean,
)


@pytest.fixture
def cohorts(tmp_path: Path) -> Iterator[Cohorts]:
    with running_cohorts(tmp_path) as running:
        yield running


def _on_chain(cohorts: Cohorts, task_id: int) -> Any:
    (update,) = cohorts.ledger.read_updates(task_id)
    return update


# ---- plain cohorts -----------------------------------------------------------------------------


def test_plain_cohort_submits_one_weighted_mean_update(cohorts: Cohorts) -> None:
    # Arrange
    values = deltas(count=3)

    # Act
    refs = []
    for client, delta, n in zip(cohorts.clients, values, PLAIN_EXAMPLES, strict=False):
        refs.append(client.post_update(cohorts.plain_task, 0, delta, num_examples=n))
        if len(refs) < 3:
            assert cohorts.store.list_updates() == []  # nothing for the chain before the N-th
            assert client.update_status(refs[-1])["status"] == "collecting"
    cohorts.submitter.submit_pending()
    statuses = [client.wait_committed(ref, timeout=1.0)  # each device reads its own record
                for client, ref in zip(cohorts.clients[: len(refs)], refs, strict=True)]

    # Assert
    update = _on_chain(cohorts, cohorts.plain_task)
    assert cohorts.ledger.update_count() == 1 and update.num_examples == sum(PLAIN_EXAMPLES)
    got = vector_from_params(decode_params(update.payload), TEMPLATE)
    np.testing.assert_allclose(got, weighted_mean(values, PLAIN_EXAMPLES), rtol=1e-6, atol=1e-7)
    assert {s["chain_update_id"] for s in statuses} == {update.update_id}


def test_plain_cohort_refuses_a_fourth_device_and_a_second_input(cohorts: Cohorts) -> None:
    # Arrange
    first = cohorts.clients[0]
    first.post_update(cohorts.plain_task, 0, deltas()[0], num_examples=5)

    # Act
    with pytest.raises(EdgeError) as twice:
        first.post_update(cohorts.plain_task, 0, deltas()[1], num_examples=5)
    for client in cohorts.clients[1:3]:
        client.post_update(cohorts.plain_task, 0, deltas()[2], num_examples=5)
    late = DeviceIdentity.generate(device_id="clinic-late")
    enroll_device(cohorts.store, late.device_id, late.public_key_hex)
    late_client = EdgeClient("http://testserver", late, http=cohorts.http,
                             clock=lambda: cohorts.now[0])  # fmt: skip
    with pytest.raises(EdgeError) as fourth:
        late_client.post_update(cohorts.plain_task, 0, deltas()[0], num_examples=5)

    # Assert
    assert (twice.value.status, twice.value.reason) == (409, "cohort_member")
    assert (fourth.value.status, fourth.value.reason) == (409, "duplicate_base")
    assert len(cohorts.store.list_updates()) == 1


def test_plain_cohort_inputs_are_durable_before_the_ack(cohorts: Cohorts) -> None:
    # Arrange
    ref = cohorts.clients[0].post_update(cohorts.plain_task, 0, deltas()[0], num_examples=5)

    # Act: another connection to the same file (a restarted edge) sees the member
    with EdgeStore(cohorts.db_path) as reopened:
        found = CohortStore(reopened).member_by_ref(ref)

    # Assert
    assert found is not None and found[1].has_delta and found[0].state == "collecting"


# ---- secure cohorts ----------------------------------------------------------------------------


def _secure_rounds(
    cohorts: Cohorts, values: list[dict[str, Any]], senders: range
) -> tuple[list[SecureCohortDevice], list[str]]:
    devices = [cohorts.device(i) for i in range(4)]
    refs = [d.advertise(n)["member_ref"] for d, n in zip(devices, SECURE_EXAMPLES, strict=True)]
    for device in devices:
        device.share()
    for index in senders:
        devices[index].send_masked(values[index])
    return devices, refs


def _expected_payload(cohorts: Cohorts, values: list[dict[str, Any]], senders: range) -> bytes:
    """The payload the sum of the senders' quantized inputs decodes to, computed in the clear."""
    total, scale = sum(SECURE_EXAMPLES), cohorts.device(0).cohort()["scale"]
    fixed = [
        quantize(SECURE_EXAMPLES[i] / total * vector_from_params(values[i], TEMPLATE), scale=scale)
        for i in senders
    ]
    exact = (sum(f.astype(np.uint64) for f in fixed) % 2**32).astype(np.uint32)
    return secure_mean_payload(
        exact, scale=scale, cohort_examples=total, template=TEMPLATE,
        survivor_examples=sum(SECURE_EXAMPLES[i] for i in senders),
    )  # fmt: skip


def test_secure_cohort_sum_is_the_weighted_mean_bit_for_bit(cohorts: Cohorts) -> None:
    # Arrange
    values = deltas(seed=1)
    devices, refs = _secure_rounds(cohorts, values, range(4))

    # Act: consistency check, then three reveals (the threshold) unmask the sum
    checking = devices[0].cohort()
    for device in devices:
        device.check()
    for device in devices[:3]:
        device.reveal()
    late = devices[3].reveal()  # after the seal: answered, not needed, not stored
    cohorts.submitter.submit_pending()

    # Assert
    assert checking["state"] == "checking" and checking["survivors"] == [
        f"clinic-{i}" for i in range(4)
    ]
    assert late["state"] == "sealed"
    update = _on_chain(cohorts, cohorts.secure_task)
    assert update.num_examples == sum(SECURE_EXAMPLES)
    assert update.payload == _expected_payload(cohorts, values, range(4))
    got = vector_from_params(decode_params(update.payload), TEMPLATE)
    scale = checking["scale"]
    np.testing.assert_allclose(got, weighted_mean(values, SECURE_EXAMPLES), atol=4 / scale + 1e-7)
    assert cohorts.clients[1].wait_committed(refs[1], timeout=1.0)["chain_update_id"] == (
        update.update_id
    )
    with cohorts.raw_db() as db:
        (revealers,) = db.execute("SELECT COUNT(DISTINCT revealer) FROM cohort_reveals").fetchone()
    assert revealers == 3
    assert all(d.refusals == [] for d in devices)


def test_secure_cohort_store_never_holds_an_individual_delta(cohorts: Cohorts) -> None:
    # Arrange
    values = deltas(seed=2)

    # Act
    devices, _ = _secure_rounds(cohorts, values, range(4))
    for device in devices:
        device.check()
    for device in devices[:3]:
        device.reveal()

    # Assert: no stored value is a delta, its weighted fixed-point form, or close to either
    blobs = all_blobs(cohorts.db_path)
    scale, total = devices[0].cohort()["scale"], sum(SECURE_EXAMPLES)
    (aggregate,) = cohorts.store.list_updates()
    assert aggregate.device_id == "cohort"
    for delta, n in zip(values, SECURE_EXAMPLES, strict=True):
        weighted = n / total * vector_from_params(delta, TEMPLATE)
        fixed = quantize(weighted, scale=scale).astype("<u4").tobytes()
        assert encode_params(delta) not in blobs and fixed not in blobs
        for blob in blobs:
            if len(blob) == len(fixed):  # a masked vector: it decodes to noise, not the input
                seen = dequantize(np.frombuffer(blob, "<u4"), scale=scale)
                assert np.max(np.abs(seen - weighted)) > 1.0


def test_secure_cohort_recovers_a_device_that_dropped_before_sending(cohorts: Cohorts) -> None:
    # Arrange: all four share their keys; device 3 drops before its masked input
    values = deltas(seed=3)
    devices, refs = _secure_rounds(cohorts, values, range(3))
    assert devices[0].cohort()["state"] == "masking"

    # Act
    cohorts.now[0] += TIMEOUT_S + 1
    checking = devices[0].cohort()
    with pytest.raises(EdgeError) as late:
        devices[3].send_masked(values[3])
    for device in devices[:3]:
        device.check()
    for device in devices[:3]:
        device.reveal()
    cohorts.submitter.submit_pending()

    # Assert
    assert checking["state"] == "checking"
    assert [m["dropped"] for m in checking["members"]] == [False, False, False, True]
    assert (late.value.status, late.value.reason) == (409, "dropped")
    assert devices[0].revealed == {"clinic-0": "seed", "clinic-1": "seed", "clinic-2": "seed",
                                   "clinic-3": "key"}  # fmt: skip
    update = _on_chain(cohorts, cohorts.secure_task)
    assert update.num_examples == sum(SECURE_EXAMPLES[:3])
    assert update.payload == _expected_payload(cohorts, values, range(3))
    assert cohorts.clients[0].wait_committed(refs[0], timeout=1.0)["status"] == "committed"


def test_secure_cohort_fails_with_fewer_inputs_than_the_minimum(cohorts: Cohorts) -> None:
    # Arrange: two of four send (threshold 3, min_size 3)
    devices, _ = _secure_rounds(cohorts, deltas(), range(2))

    # Act
    cohorts.now[0] += TIMEOUT_S + 1
    state = devices[0].cohort()

    # Assert
    assert state["state"] == "failed" and "masking" in state["error"]
    assert cohorts.store.list_updates() == [] and cohorts.ledger.update_count() == 0


def test_secure_cohort_goes_on_without_a_silent_signer(cohorts: Cohorts) -> None:
    # Arrange: all four send; device 3 never signs the survivor list
    values = deltas(seed=4)
    devices, _ = _secure_rounds(cohorts, values, range(4))
    for device in devices[:3]:
        device.check()

    # Act: at the deadline three signatures (the threshold) are enough to unmask
    cohorts.now[0] += TIMEOUT_S + 1
    unmasking = devices[0].cohort()
    for device in devices[:3]:
        device.reveal()

    # Assert: device 3's input is in the sum (its seed share is revealed, not its key)
    assert unmasking["state"] == "unmasking"
    assert devices[0].revealed["clinic-3"] == "seed"
    (aggregate,) = cohorts.store.list_updates()
    assert aggregate.payload == _expected_payload(cohorts, values, range(4))


def test_secure_round_refusals_store_nothing(cohorts: Cohorts) -> None:
    # Arrange
    device = cohorts.device(0)
    device.advertise(5)
    impostor = SecureCohortDevice(
        EdgeClient("http://testserver", DeviceIdentity.generate(device_id="clinic-1"),
                   http=cohorts.http, clock=lambda: cohorts.now[0]),
        cohorts.secure_task, 0, config=cohorts.secure_config, roster=cohorts.roster,
        clock=lambda: cohorts.now[0],
    )  # fmt: skip

    # Act / Assert
    with pytest.raises(EdgeError) as forged:
        impostor.advertise(5)
    with pytest.raises(EdgeError) as early:  # raw: the device itself refuses before sharing
        device._post("masked", {"masked": "AAAA", "epsilon_micro": 0})
    with pytest.raises(EdgeError) as plain:
        cohorts.clients[2].post_update(cohorts.secure_task, 0, deltas()[0], num_examples=3)
    assert (forged.value.status, forged.value.reason) == (401, "bad_signature")
    assert (early.value.status, early.value.reason) == (409, "cohort_state")
    assert (plain.value.status, plain.value.reason) == (409, "cohort_state")
    assert [m["device_id"] for m in device.cohort()["members"]] == ["clinic-0"]


def test_edge_refuses_a_check_over_another_survivor_list(cohorts: Cohorts) -> None:
    # Arrange
    devices, _ = _secure_rounds(cohorts, deltas(seed=5), range(4))
    survivors = [f"clinic-{i}" for i in range(3)]
    signature = cohorts.identities[0].private_key.sign(b"anything").hex()

    # Act
    with pytest.raises(EdgeError) as refused:
        devices[0]._post("check", {"survivors": survivors, "signature": signature})

    # Assert
    assert (refused.value.status, refused.value.reason) == (401, "bad_signature")
    assert devices[0].cohort()["members"][0]["check_signature"] is None


@pytest.mark.parametrize(
    "cohort",
    [
        {"size": 0},
        {"size": 2, "secure": True},
        {"size": 3, "bogus": 1},
        "three",
        {"size": 4, "secure": True, "threshold": 2},  # not more than half of the cohort
        {"size": 4, "secure": True, "min_size": 2},  # a sum of two reveals each to the other
        {"size": 4, "secure": True, "min_size": 5},
        {"size": 3, "threshold": 2},  # threshold and min_size are for secure cohorts
    ],
)
def test_bad_cohort_config_is_refused(cohorts: Cohorts, cohort: Any) -> None:
    # Arrange: the spec of a publishing task, as built in Python and as JSON read from the chain
    spec = cohorts.ledger.get_task(1).spec
    raw = json.loads(spec.to_json())
    raw["edge_cohort"] = cohort

    # Act / Assert: neither becomes a TaskSpec, so no edge ever forms such a cohort
    with pytest.raises(TaskSpecError, match="edge_cohort"):
        replace(spec, name="bad", edge_cohort=cohort)
    with pytest.raises(TaskSpecError, match="edge_cohort"):
        TaskSpec.from_json(json.dumps(raw))
