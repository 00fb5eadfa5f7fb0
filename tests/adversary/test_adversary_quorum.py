"""Adversary: the k-of-n aggregator quorum and the acceptance gate against one party acting alone.

Each test acts as the attacker would, on anvil: the attacker holds its own key and signs raw
transactions with eth-account (never through the project's ledger code), and the test asserts
that the contract refuses with a named custom error or that the honest parties still finish,
and that nothing honest was lost. The honest aggregators run the real round loop
(``fednode.aggregator.round.run_round``) over ``Web3Ledger``.

- two honest aggregators (quorum 2) split by an update that lands between their reads;
- an aggregator committing a wrong digest to a version (quorum 2 of 3);
- an edge trying to fill an async version alone with updates on several base versions;
- an edge that never contributed evaluating, and anyone evaluating version 0;
- an edge reporting metric 0 to veto a version the other sites accept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from fednode.aggregator.acceptance import AcceptanceState, contributors, version_acceptance
from fednode.aggregator.build import build_global_model
from fednode.aggregator.round import RoundResult, run_round
from fednode.auditor.replay import verify_task
from fednode.auditor.trace import trace_digest
from fednode.chain import Web3Ledger
from fednode.chain.deploy import Deployment, EdgeRegistration, bind_contract
from fednode.chain.revert import revert_error_from
from fednode.codec import encode_params
from fednode.errors import ChainTimeoutError, ContractRevertError
from fednode.types import METRIC_SCALE, NO_METRIC_MICRO, TaskSpec
from tests.chainkit import AnvilNode, deploy_consortium, labelled_account, running_anvil

EDGE_COUNT = 4
SPEC = TaskSpec(name="quorum-attack", data_schema="heart-v1", num_features=4, rounds=3,
                min_updates=2, metric_floor=0.7, max_update_norm=10.0)


# ---- the consortium: one anvil, one deployment, a snapshot per test ------------------------

@dataclass(frozen=True)
class Consortium:
    node: AnvilNode
    deployment: Deployment
    publisher: LocalAccount
    aggregators: tuple[LocalAccount, ...]  # the last one is the attacker in the garbage test
    edges: tuple[LocalAccount, ...]

    def ledger(self, account: LocalAccount) -> Web3Ledger:
        """An honest party's ledger, on its own HTTP connection (parties run in threads)."""
        return Web3Ledger(Web3(Web3.HTTPProvider(self.node.url)), self.deployment, account,
                          timeout=30.0)

    def contract(self, name: str) -> Contract:
        return bind_contract(self.node.w3, self.deployment, name)


@pytest.fixture(scope="module")
def consortium() -> Iterator[Consortium]:
    with running_anvil() as node:
        admin = labelled_account("quorum-admin")
        publisher = labelled_account("quorum-publisher")
        aggregators = tuple(labelled_account(f"quorum-aggregator-{i}") for i in range(3))
        edges = tuple(labelled_account(f"quorum-edge-{i}") for i in range(EDGE_COUNT))
        node.fund([admin, publisher, *aggregators, *edges])
        registrations = [
            EdgeRegistration(e.address, labelled_account(f"quorum-validator-{i}").address, f"h{i}")
            for i, e in enumerate(edges)
        ]
        deployment = deploy_consortium(
            node.w3, admin, publishers=[publisher.address],
            aggregators=[a.address for a in aggregators], edges=registrations,
        )  # fmt: skip
        yield Consortium(node, deployment, publisher, aggregators, edges)


@pytest.fixture(autouse=True)
def fresh_chain(consortium: Consortium) -> Iterator[None]:
    w3 = consortium.node.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    w3.provider.make_request("evm_revert", [snapshot])


# ---- what the attackers and the honest parties do ------------------------------------------

def _model(fill: float) -> bytes:
    return encode_params({"w": np.full(4, fill, np.float32), "b": np.zeros(1, np.float32)})


def _raw(consortium: Consortium, account: LocalAccount, contract: str, fn: str, *args: Any) -> Any:
    """Signs ``contract.fn(*args)`` with the attacker's own key and sends the raw bytes.

    The gas is fixed, so a refused call is mined as a failed transaction; its custom error is
    then read by replaying the call on the state it ran against. Returns the receipt.

    Raises:
      ContractRevertError: the decoded custom error, if the contract refused.
    """
    w3 = consortium.node.w3
    target = consortium.contract(contract)
    data = target.encode_abi(fn, list(args))
    tx = {"to": target.address, "data": data, "gas": 3_000_000, "gasPrice": w3.eth.gas_price,
          "nonce": w3.eth.get_transaction_count(account.address), "chainId": w3.eth.chain_id}
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] == 1:
        return receipt
    call = {"from": account.address, "to": target.address, "data": data}
    try:
        w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
    except Exception as exc:  # the replayed revert, decoded below
        decoded = revert_error_from(exc)
        if decoded is not None:
            raise decoded from exc
        raise
    raise AssertionError("the transaction failed but its replay did not revert")


def _submit(consortium: Consortium, edge: LocalAccount, task_id: int, base: int,
            fill: float) -> int:
    """An edge submits an update with its own key; returns the update id."""
    receipt = _raw(consortium, edge, "UpdateLedger", "submitUpdate", task_id, base, 10, 0,
                   _model(fill))
    event = consortium.contract("UpdateLedger").events.UpdateSubmitted().process_receipt(receipt)
    return int(event[0]["args"]["updateId"])


def _evaluate(consortium: Consortium, edge: LocalAccount, task_id: int, version: int,
              metric: float) -> Any:
    return _raw(consortium, edge, "EvaluationLedger", "submitEvaluation", task_id, version,
                round(metric * METRIC_SCALE), NO_METRIC_MICRO, 30)


def _publish(consortium: Consortium, spec: TaskSpec) -> int:
    return consortium.ledger(consortium.publisher).publish_task(spec, _model(0.0))


def _in_thread(work: Callable[[], RoundResult]) -> tuple[threading.Thread, list[Any]]:
    """Runs an honest aggregator's round in a thread; the list gets its result or error."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:  # handed to the test thread, which re-raises it
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _joined(thread: threading.Thread, out: list[Any]) -> RoundResult:
    thread.join(timeout=120)
    assert not thread.is_alive(), "the aggregator round did not finish"
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]


def _wait_for_commit(ledger: Web3Ledger, task_id: int, aggregator: str) -> None:
    deadline = time.monotonic() + 60
    while not any(c.aggregator == aggregator for c in ledger.read_commits(task_id)):
        assert time.monotonic() < deadline, f"{aggregator} never committed"
        time.sleep(0.2)


class _LateUpdateBeforeCommit:
    """Aggregator A's ledger: between A's read and A's commit, an update lands late and
    aggregator B (which reads after it) runs its own round and commits first."""

    def __init__(self, inner: Web3Ledger, before_commit: Callable[[], None]) -> None:
        self._inner = inner
        self._before_commit = before_commit
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit_global_model(self, *args: Any, **kwargs: Any) -> Any:
        before, self._before_commit = self._before_commit, lambda: None
        before()
        try:
            return self._inner.commit_global_model(*args, **kwargs)
        except ContractRevertError as exc:
            self.refused.append(exc.name)
            raise


# ---- the attacks -----------------------------------------------------------------------------

def test_a_late_update_between_two_aggregators_reads_cannot_split_the_quorum(consortium):
    # Arrange: quorum 2 of aggregators A and B; two edges submitted on version 0
    task_id = _publish(consortium, replace(SPEC, aggregator_quorum=2))
    e0, e1, e2 = consortium.edges[:3]
    on_time = [_submit(consortium, e, task_id, 0, 0.1 * (i + 1)) for i, e in enumerate((e0, e1))]
    a, b = consortium.aggregators[:2]
    rounds: list[tuple[threading.Thread, list[Any]]] = []
    late: list[int] = []

    def late_update_then_b_commits() -> None:
        late.append(_submit(consortium, e2, task_id, 0, 0.3))  # A has read, B has not
        rounds.append(_in_thread(lambda: run_round(consortium.ledger(b), task_id, timeout=60,
                                                   poll=0.2)))
        _wait_for_commit(consortium.ledger(a), task_id, b.address)

    a_ledger = _LateUpdateBeforeCommit(consortium.ledger(a), late_update_then_b_commits)
    # Act: A read two updates; B read three and committed first; A's commit comes second
    a_result = run_round(a_ledger, task_id, timeout=60, poll=0.2)
    b_result = _joined(*rounds[0])
    # Assert: A's stale candidate set was refused by name, then A followed B's cut-off
    assert a_ledger.refused == ["UpdateLedgerCutoffMismatch"]
    reader = consortium.ledger(consortium.publisher)
    [_, final] = reader.read_global_models(task_id)
    assert final.update_ids == (*on_time, *late)  # nothing honest lost, the late one included
    assert a_result.record == b_result.record == final
    assert not reader.conflicted(task_id, 1)
    assert [c.final for c in reader.read_commits(task_id)] == [True, True]
    assert verify_task(reader, task_id).ok


def test_a_garbage_commit_does_not_stop_the_honest_quorum_and_is_reported(consortium):
    # Arrange: quorum 2 of 3 aggregators; the third commits a wrong digest first
    task_id = _publish(consortium, replace(SPEC, aggregator_quorum=2))
    ids = [_submit(consortium, e, task_id, 0, 0.2) for e in consortium.edges[:2]]
    honest_a, honest_b, attacker = consortium.aggregators
    _raw(consortium, attacker, "UpdateLedger", "commitGlobalModel", task_id, 1, ids, [],
         _model(42.0))
    # Act: the honest aggregators run their rounds
    thread, out = _in_thread(lambda: run_round(consortium.ledger(honest_a), task_id,
                                               timeout=60, poll=0.2))
    _wait_for_commit(consortium.ledger(honest_b), task_id, honest_a.address)
    b_result = run_round(consortium.ledger(honest_b), task_id, timeout=60, poll=0.2)
    a_result = _joined(thread, out)
    # Assert: final from the honest digest, the version is flagged, the auditor names the attacker
    reader = consortium.ledger(consortium.publisher)
    task = reader.get_task(task_id)
    [initial, final] = reader.read_global_models(task_id)
    expected = build_global_model(task.spec, initial.payload, reader.read_updates(task_id))
    assert final.digest == expected.digest == a_result.record.digest == b_result.record.digest
    assert reader.conflicted(task_id, 1)
    report = verify_task(reader, task_id)
    assert not report.ok
    [finding] = [f for v in report.verdicts for f in v.findings]
    assert (finding.kind, finding.version) == ("conflicting_commit", 1)
    assert attacker.address in finding.at_fault
    assert all(v.match for v in report.verdicts)  # the final model itself recomputes


def test_one_edge_cannot_fill_an_async_version_alone(consortium):
    # Arrange: FedBuff with K = 2 and staleness 2; version 1 from edges 1 and 2
    spec = replace(SPEC, mode="async", max_staleness=2)
    task_id = _publish(consortium, spec)
    lone, other = consortium.edges[0], consortium.edges[1]
    for edge in consortium.edges[1:3]:
        _submit(consortium, edge, task_id, 0, 0.1)
    aggregator = consortium.ledger(consortium.aggregators[0])
    run_round(aggregator, task_id, timeout=30, poll=0.2)
    # Act: one edge submits on two base versions, enough updates for K = 2
    alone = [_submit(consortium, lone, task_id, base, 0.2) for base in (0, 1)]
    # Assert: the contract refuses a version of them, the aggregator does not build one
    with pytest.raises(ContractRevertError) as refused:
        _raw(consortium, consortium.aggregators[2], "UpdateLedger", "commitGlobalModel",
             task_id, 2, alone, [], _model(0.5))
    assert (refused.value.name, refused.value.args_by_name) == (
        "UpdateLedgerTooFewEdges", {"taskId": task_id, "edges": 1, "minUpdates": 2}
    )
    with pytest.raises(ChainTimeoutError, match="1/2 distinct edges"):
        run_round(aggregator, task_id, timeout=2, poll=0.2)
    assert aggregator.get_task(task_id).latest_version == 1
    # a second edge's update completes the buffer; the lone edge's updates are kept
    joined = _submit(consortium, other, task_id, 1, 0.3)
    result = run_round(aggregator, task_id, timeout=30, poll=0.2)
    assert result.record.update_ids == (*alone, joined)


def test_an_edge_that_never_contributed_cannot_evaluate_and_version_0_is_not_evaluated(
    consortium,
):
    # Arrange: version 1 aggregates edges 0 and 1; edge 3 never submitted to the task
    task_id = _publish(consortium, SPEC)
    for edge in consortium.edges[:2]:
        _submit(consortium, edge, task_id, 0, 0.1)
    run_round(consortium.ledger(consortium.aggregators[0]), task_id, timeout=30, poll=0.2)
    stranger, contributor = consortium.edges[3], consortium.edges[0]
    # Act / Assert
    with pytest.raises(ContractRevertError) as outsider:
        _evaluate(consortium, stranger, task_id, 1, 0.0)
    assert (outsider.value.name, outsider.value.args_by_name) == (
        "EvaluationLedgerNotContributor", {"taskId": task_id, "edge": stranger.address}
    )
    with pytest.raises(ContractRevertError) as initial:
        _evaluate(consortium, contributor, task_id, 0, 0.0)
    assert (initial.value.name, initial.value.args_by_name) == (
        "EvaluationLedgerInitialVersion", {"taskId": task_id}
    )
    _evaluate(consortium, contributor, task_id, 1, 0.8)  # the honest evaluation still lands
    assert [e.edge for e in consortium.ledger(stranger).read_evaluations(task_id)] == [
        contributor.address
    ]


def test_one_edge_reporting_metric_zero_cannot_veto_a_version(consortium):
    # Arrange: four hospitals contribute to version 1 (floor 0.7, default quorum rule)
    task_id = _publish(consortium, replace(SPEC, min_updates=4))
    for i, edge in enumerate(consortium.edges):
        _submit(consortium, edge, task_id, 0, 0.1 * (i + 1))
    result = run_round(consortium.ledger(consortium.aggregators[0]), task_id, timeout=30,
                       poll=0.2)
    *honest, vetoer = consortium.edges
    # Act: the vetoer reports first, metric 0; the others report what they measured
    _evaluate(consortium, vetoer, task_id, 1, 0.0)
    for edge, metric in zip(honest, (0.81, 0.77, 0.92), strict=True):
        _evaluate(consortium, edge, task_id, 1, metric)
    # Assert: the quorum of sites accepts the version; the trace shows the same gate
    reader = consortium.ledger(consortium.publisher)
    sites = contributors(reader.read_global_models(task_id), reader.read_updates(task_id))
    gate = version_acceptance(reader.get_task(task_id).spec, 1,
                              reader.read_evaluations(task_id), sites=sites)
    assert (gate.state, gate.decision.failing_sites) == (
        AcceptanceState.ACCEPTED, (vetoer.address,)
    )
    assert trace_digest(reader, result.record.digest).lineage[-1].acceptance == "accepted"
