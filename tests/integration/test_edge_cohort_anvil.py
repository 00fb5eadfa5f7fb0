"""Edge: a secure cohort of three devices behind one edge lands as one update on a real chain.

One anvil node, the real contracts, one ``EdgeServer`` (uvicorn + durable outbox) acting as a
registered edge operator. Three device threads run the secure rounds over HTTP at once; the
edge submits one update: their weighted mean delta with the cohort's total example count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_server.cohort import cohort_config, vector_from_params
from edge_server.cohort_client import SecureCohortDevice
from edge_server.config import EdgeConfig
from edge_server.intake import template_of
from edge_server.service import EdgeServer, enroll_device
from fednode.chain.deploy import EdgeRegistration
from fednode.chain.web3_ledger import Web3Ledger
from fednode.codec import decode_params, encode_params
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec
from tests.chainkit import AnvilNode, deploy_consortium, labelled_account, running_anvil

DEPTH = 2
EXAMPLES = (40, 100, 160)


def _params(values: np.ndarray) -> dict[str, Any]:
    return {"dense": {"bias": values[:1].astype(np.float32),
                      "kernel": values[1:].reshape(4, 1).astype(np.float32)}}  # fmt: skip


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    with running_anvil() as node:
        yield node


def test_three_devices_behind_one_edge_make_one_on_chain_update(
    anvil: AnvilNode, tmp_path: Path
) -> None:
    # Arrange: contracts, an edge operator, a task with secure cohorts of 3
    w3, anvil_url = anvil.w3, anvil.url
    admin, publisher, edge = (
        labelled_account(n, namespace="fednode-cohort-test") for n in ("a", "p", "e")
    )
    anvil.fund([admin, publisher, edge])
    deployment = deploy_consortium(
        w3, admin, publishers=[publisher.address],
        edges=[EdgeRegistration(edge.address, admin.address, "e")],
    )  # fmt: skip
    spec = TaskSpec(
        name="cohort", data_schema="uci-heart-v1", num_features=4, rounds=2, min_updates=1,
        max_update_norm=5.0, edge_cohort={"size": 3, "secure": True, "timeout_s": 60},
    )  # fmt: skip
    initial = _params(np.zeros(5))
    task_id = Web3Ledger.connect(anvil_url, deployment, publisher).publish_task(
        spec, encode_params(initial)
    )
    ledger = Web3Ledger.connect(anvil_url, deployment, edge, timeout=30.0)
    config = EdgeConfig(
        name="edge-cohort", db_path=str(tmp_path / "edge.sqlite"), port=0,
        confirmations=DEPTH, submit_poll_interval_s=0.05,
    )  # fmt: skip
    rng = np.random.default_rng(7)
    deltas = [_params(rng.uniform(-0.4, 0.4, 5)) for _ in EXAMPLES]
    devices = [DeviceIdentity.generate(device_id=f"clinic-{i}") for i in range(3)]
    roster = {d.device_id: d.public_key_hex for d in devices}  # provisioned, not from the edge
    settings = cohort_config(spec)
    assert settings is not None
    refs: dict[int, str] = {}
    errors: list[BaseException] = []

    with EdgeServer(config, ledger) as server:
        for device in devices:
            enroll_device(server.store, device.device_id, device.public_key_hex)

        def run(index: int) -> None:
            try:
                with EdgeClient(server.url, devices[index]) as client:
                    cohort = SecureCohortDevice(client, task_id, 0, config=settings,
                                                roster=roster)  # fmt: skip
                    refs[index] = cohort.run(deltas[index], EXAMPLES[index], timeout=60.0)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        # Act: three devices at once, then mine until the aggregate is deep enough
        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert not errors, errors
        with EdgeClient(server.url, devices[0]) as client:
            deadline = time.monotonic() + 60
            while client.update_status(refs[0])["status"] != "committed":
                assert time.monotonic() < deadline, client.update_status(refs[0])
                anvil.mine()
                time.sleep(0.05)
        statuses = []
        for index in range(3):  # each device reads its own record (others' are refused: 403)
            with EdgeClient(server.url, devices[index]) as client:
                statuses.append(client.update_status(refs[index]))

    # Assert: one update from this edge, the weighted mean, the total example count
    (update,) = ledger.read_updates(task_id)
    assert update.edge == edge.address and update.num_examples == sum(EXAMPLES)
    assert {s["chain_update_id"] for s in statuses} == {update.update_id}
    template = template_of(encode_params(initial))
    got = vector_from_params(decode_params(update.payload), template)
    vectors = [n * vector_from_params(d, template) for d, n in zip(deltas, EXAMPLES, strict=True)]
    np.testing.assert_allclose(got, sum(vectors) / sum(EXAMPLES), rtol=0, atol=1e-6)
    assert w3.eth.get_transaction_count(edge.address) == 1  # signed and sent exactly once
