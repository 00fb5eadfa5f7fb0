"""Edge: the durable outbox on a real chain (anvil): confirmations, reorgs, duplicates, crashes.

One anvil node and one deployment per module. The crash suite runs the ``edge_server`` main in
forked processes (from a zygote that pre-imported it once, so 100 runs fit in a few minutes on
two cores) with ``FEDNODE_EDGE_CRASH_AT`` set; each process first recovers the row its
predecessor left behind, then accepts a new update and dies at the crash point. At the end one
clean process drains the store, and every acknowledged update must be on chain exactly once,
signed exactly once (the edge account's nonce equals the number of updates).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from edge_server.crash import CRASH_ENV, CRASH_EXIT_CODE, CRASH_POINTS
from edge_server.evaluation_store import EvaluationStatus, EvaluationStore
from edge_server.evaluations_outbox import EvaluationOutbox
from edge_server.service import enroll_device
from edge_server.store import EdgeStore, UpdateStatus
from edge_server.submitter import Submitter
from fednode.chain.deploy import Deployment, EdgeRegistration, write_deployment
from fednode.chain.web3_ledger import Web3Ledger
from fednode.codec import encode_params
from fednode.errors import ChainError
from fednode.network.keys import write_key_file
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.types import TaskSpec
from fednode.update.evaluation import make_evaluation
from fednode.update.signing import new_nonce
from tests.chainkit import (
    REPO_ROOT,
    AnvilNode,
    deploy_consortium,
    free_port,
    labelled_account,
    running_anvil,
)

CRASH_RUNS = 100
DEPTH = 2


def _params(fill: float) -> dict[str, Any]:
    return {
        "dense": {
            "bias": np.full((1,), fill, np.float32),
            "kernel": np.full((4, 1), fill, np.float32),
        }
    }


@dataclass(frozen=True)
class Chain:
    url: str
    w3: Web3
    deployment: Deployment
    deployment_path: Path
    publisher: Web3Ledger
    edge: LocalAccount
    edge_key_path: Path
    work: Path

    def edge_ledger(self) -> Web3Ledger:
        return Web3Ledger.connect(self.url, self.deployment, self.edge, timeout=30.0)

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def new_task(self) -> int:
        spec = TaskSpec(
            name=f"edge-crash-{time.monotonic_ns()}", data_schema="uci-heart-v1",
            num_features=4, rounds=3, min_updates=1, max_update_norm=5.0,
        )  # fmt: skip
        return self.publisher.publish_task(spec, encode_params(_params(0.0)))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    work = tmp_path_factory.mktemp("edge-outbox")
    with running_anvil() as anvil:
        yield _deploy(anvil, work)


def _deploy(anvil: AnvilNode, work: Path) -> Chain:
    admin, publisher, edge = (
        labelled_account(n, namespace="fednode-edge-test") for n in ("admin", "publisher", "edge")
    )
    anvil.fund([admin, publisher, edge])
    deployment = deploy_consortium(
        anvil.w3, admin, publishers=[publisher.address], aggregators=[publisher.address],
        edges=[EdgeRegistration(edge.address, admin.address, "e")],
    )  # fmt: skip
    write_deployment(deployment, work / "deployment.json")
    write_key_file(work / "edge.key", bytes(edge.key))
    return Chain(
        anvil.url, anvil.w3, deployment, work / "deployment.json",
        Web3Ledger.connect(anvil.url, deployment, publisher), edge, work / "edge.key", work,
    )  # fmt: skip


def _wait(predicate: Callable[[], bool], *, timeout: float, tick: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        tick()
        time.sleep(0.05)


def _envelope_row(store: EdgeStore, task_id: int, fill: float = 0.1, base: int = 0) -> Any:
    from fednode.update.envelope import UpdateEnvelope

    payload = encode_params(_params(fill))
    envelope = UpdateEnvelope("dev-1", task_id, base, 10, 0, payload, new_nonce(),
                              int(time.time()))
    return store.insert_update(envelope)


# ---- in-process outbox on a real chain ----------------------------------------------------


def test_an_unsent_evaluation_keeps_its_nonce_from_the_next_update(chain: Chain, tmp_path: Path):
    # Arrange: one edge account, two outboxes (updates, evaluations) behind one submitter; the
    # edge contributed to version 1, so it may evaluate it (version 0 is never evaluated).
    task_id = chain.new_task()
    store, evaluations = EdgeStore(tmp_path / "e.sqlite"), EvaluationStore(tmp_path / "v.sqlite")
    ledger = chain.edge_ledger()
    contributed = ledger.submit_update(task_id, 0, encode_params(_params(0.1)), num_examples=10)
    chain.publisher.commit_global_model(task_id, 1, encode_params(_params(0.1)), [contributed])
    submitter = Submitter(store, ledger, confirmations=0)
    outbox = EvaluationOutbox(evaluations, ledger, confirmations=0,
                              nonce_floor=submitter.nonce_floor)
    submitter.add_pass(outbox.run_pass, nonce_source=evaluations.next_tx_nonce)
    evaluation = evaluations.insert(make_evaluation(
        "dev-1", task_id, 1, metric=0.8, num_examples=10, secondary=None, nonce=new_nonce(),
        timestamp=int(time.time())))
    first = ledger.transactions.pending_nonce()
    # Act: the evaluation is signed, but its send fails (the node hiccuped)...
    with patch.object(ledger, "send_raw", side_effect=ChainError("connection reset by peer")):
        with pytest.raises(ChainError):
            outbox.run_pass()
    unsent = evaluations.get(evaluation.ref)
    row = _envelope_row(store, task_id, base=1)
    submitter.submit_pending()  # ...then an update is signed and both are sent
    signed = store.get_update(row.ref)
    _wait(lambda: store.get_update(row.ref).status == UpdateStatus.COMMITTED
          and evaluations.get(evaluation.ref).status == EvaluationStatus.COMMITTED,
          timeout=30, tick=submitter.submit_pending)
    # Assert: the update skipped the evaluation's nonce; nothing was re-signed.
    assert (unsent.status, unsent.tx_nonce) == (EvaluationStatus.SIGNED, first)
    assert signed.tx_nonce == first + 1
    assert store.get_update(row.ref).tx_hash == signed.tx_hash
    assert evaluations.get(evaluation.ref).tx_hash == unsent.tx_hash
    assert ledger.transactions.pending_nonce() == first + 2




def test_update_commits_only_at_confirmation_depth(chain: Chain, tmp_path: Path) -> None:
    # Arrange
    task_id = chain.new_task()
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = _envelope_row(store, task_id)
    submitter = Submitter(store, chain.edge_ledger(), confirmations=DEPTH)

    # Act
    submitter.submit_pending()  # signs, stores the raw bytes, sends; anvil mines at once
    shallow = store.get_update(row.ref)
    chain.mine(DEPTH)
    submitter.submit_pending()

    # Assert
    assert shallow.status == UpdateStatus.SENT and shallow.raw_tx is not None
    done = store.get_update(row.ref)
    assert done.status == UpdateStatus.COMMITTED
    assert done.chain_update_id == chain.publisher.submission_of(task_id, 0, chain.edge.address)
    assert keccak(shallow.raw_tx) == done.tx_hash


def test_vanished_receipt_gets_the_same_bytes_resent(chain: Chain, tmp_path: Path) -> None:
    # Arrange: the transaction is mined, then the block is taken back (a reorg)
    task_id = chain.new_task()
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = _envelope_row(store, task_id)
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]
    submitter = Submitter(store, chain.edge_ledger(), confirmations=DEPTH, resend_after_s=0.0)
    submitter.submit_pending()
    sent = store.get_update(row.ref)
    assert chain.w3.eth.get_transaction_receipt(sent.tx_hash) is not None

    # Act
    chain.w3.provider.make_request("evm_revert", [snapshot])
    submitter.submit_pending()  # receipt gone: re-broadcast byte for byte
    chain.mine(DEPTH)
    submitter.submit_pending()

    # Assert
    done = store.get_update(row.ref)
    assert done.status == UpdateStatus.COMMITTED and done.tx_hash == sent.tx_hash
    assert chain.publisher.submission_of(task_id, 0, chain.edge.address) == done.chain_update_id


def test_duplicate_refusal_is_reconciled_from_the_chain(chain: Chain, tmp_path: Path) -> None:
    # Arrange: the update landed through another path; the store never heard of its tx
    task_id = chain.new_task()
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = _envelope_row(store, task_id)
    ledger = chain.edge_ledger()
    update_id = ledger.submit_update(task_id, 0, row.payload, num_examples=10)
    chain.mine(DEPTH)

    # Act
    Submitter(store, ledger, confirmations=DEPTH).submit_pending()

    # Assert
    done = store.get_update(row.ref)
    assert done.status == UpdateStatus.COMMITTED and done.chain_update_id == update_id


def test_another_update_on_the_same_base_fails_the_row(chain: Chain, tmp_path: Path) -> None:
    # Arrange
    task_id = chain.new_task()
    store = EdgeStore(tmp_path / "edge.sqlite")
    row = _envelope_row(store, task_id, fill=0.1)
    ledger = chain.edge_ledger()
    ledger.submit_update(task_id, 0, encode_params(_params(0.2)), num_examples=10)

    # Act
    Submitter(store, ledger, confirmations=DEPTH).submit_pending()

    # Assert
    done = store.get_update(row.ref)
    assert done.status == UpdateStatus.FAILED and "DuplicateSubmission" in done.error


# ---- crash recovery across processes ------------------------------------------------------

_ZYGOTE = r"""
import json, os, signal, sys, time
import edge_server.service, fednode.chain.web3_ledger, fednode.chain.deploy  # pre-import once
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "spawn":
        pid = os.fork()
        if pid == 0:
            os.environ.update(cmd["env"])
            fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1); os.dup2(fd, 2)
            sys.stdin.close()
            try:
                code = edge_server.service.main(cmd["argv"])
            finally:
                os._exit(locals().get("code", 1) or 0)
        print(json.dumps({"pid": pid}), flush=True)
    elif cmd["op"] == "wait":  # reap the child; SIGKILL it after the timeout
        deadline = time.monotonic() + cmd["timeout"]
        while True:
            pid, status = os.waitpid(cmd["pid"], os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(cmd["pid"], signal.SIGKILL)
            time.sleep(0.02)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class EdgeProcesses:
    """Starts ``edge_server`` main processes by forking a pre-imported zygote."""

    def __init__(self, chain: Chain, db: Path) -> None:
        self.chain, self.db = chain, db
        self._zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=REPO_ROOT,
        )  # fmt: skip

    def _ask(self, **command: Any) -> dict[str, Any]:
        assert self._zygote.stdin is not None and self._zygote.stdout is not None
        self._zygote.stdin.write(json.dumps(command) + "\n")
        self._zygote.stdin.flush()
        return json.loads(self._zygote.stdout.readline())

    def spawn(self, port: int, crash_at: str | None) -> int:
        argv = [
            "--name", "edge-crash", "--port", str(port), "--db", str(self.db),
            "--deployment", str(self.chain.deployment_path), "--key", str(self.chain.edge_key_path),
            "--rpc", self.chain.url, "--confirmations", str(DEPTH), "--poll", "0.05",
        ]  # fmt: skip
        env = {CRASH_ENV: crash_at or ""}
        return int(self._ask(op="spawn", argv=argv, env=env, log=str(self.db) + ".log")["pid"])

    def wait(self, pid: int, timeout: float = 30.0) -> int:
        return int(self._ask(op="wait", pid=pid, timeout=timeout)["code"])

    def close(self) -> None:
        assert self._zygote.stdin is not None
        self._zygote.stdin.close()
        self._zygote.wait(timeout=10)


def _wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def _crash_runs(chain: Chain, tmp_path: Path, points: list[str]) -> None:
    # Arrange
    db = tmp_path / "edge.sqlite"
    device = DeviceIdentity.generate(device_id="dev-crash")
    with EdgeStore(db) as store:
        enroll_device(store, device.device_id, device.public_key_hex)
    tasks = [chain.new_task() for _ in points]
    nonce_before = chain.w3.eth.get_transaction_count(chain.edge.address)
    processes = EdgeProcesses(chain, db)
    acked: dict[str, tuple[int, bytes]] = {}
    pid = None
    try:
        # Act: one process per run; it recovers the previous row and dies on its own
        for index, (point, task_id) in enumerate(zip(points, tasks, strict=True)):
            port = free_port()
            pid = processes.spawn(port, point)
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url)
            with EdgeClient(url, device) as client:
                params = _params(0.01 * (index % 50 + 1))
                ref = client.post_update(task_id, 0, params, num_examples=10)
            acked[ref] = (task_id, keccak(encode_params(params)))
            assert processes.wait(pid) == CRASH_EXIT_CODE, f"run {index} ({point}) did not crash"
        port = free_port()
        pid = processes.spawn(port, None)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        with EdgeClient(url, device) as client:
            committed = lambda: all(  # noqa: E731
                client.update_status(ref)["status"] == "committed" for ref in acked
            )
            _wait(committed, timeout=120, tick=chain.mine)
            statuses = {ref: client.update_status(ref) for ref in acked}
    finally:
        if pid is not None:
            processes.wait(pid, timeout=0.0)  # SIGKILL the last one, whatever state it is in
        processes.close()

    # Assert: every acknowledged update is on chain exactly once and was signed exactly once
    for ref, (task_id, digest) in acked.items():
        mine = [u for u in chain.publisher.read_updates(task_id) if u.edge == chain.edge.address]
        assert len(mine) == 1 and mine[0].digest == digest, ref
        assert statuses[ref]["chain_update_id"] == mine[0].update_id
    nonce_after = chain.w3.eth.get_transaction_count(chain.edge.address)
    assert nonce_after - nonce_before == len(points)


def test_each_crash_point_once_loses_nothing(chain: Chain, tmp_path: Path) -> None:
    _crash_runs(chain, tmp_path, list(CRASH_POINTS))


@pytest.mark.slow
def test_hundred_crashes_lose_nothing_and_duplicate_nothing(chain: Chain, tmp_path: Path) -> None:
    points = [CRASH_POINTS[i % len(CRASH_POINTS)] for i in range(CRASH_RUNS)]
    _crash_runs(chain, tmp_path, points)

