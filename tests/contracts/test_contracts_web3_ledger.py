"""Chain: Web3Ledger on anvil passes the shared Ledger behaviour suite, plus its own extras."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fednode.chain import EDGE_ROLE, MAX_TX_SIZE, Ledger, Web3Ledger
from fednode.chain.connection import POA_MIDDLEWARE_NAME
from fednode.chain.deploy import Deployment
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError, FednodeValueError
from fednode.types import TaskState
from tests.behaviours.ledger_behaviour import LEDGER_BEHAVIOURS, LedgerActors, make_spec


def _ledger(w3: Web3, deployment: Deployment, account: LocalAccount) -> Web3Ledger:
    return Web3Ledger(w3, deployment, account, timeout=30.0)


@pytest.fixture
def actors(w3, deployment, accounts) -> LedgerActors:
    return LedgerActors(
        publisher=_ledger(w3, deployment, accounts.publisher),
        edges=tuple(_ledger(w3, deployment, edge) for edge in accounts.edges),
        aggregator=_ledger(w3, deployment, accounts.aggregator),
        outsider=_ledger(w3, deployment, accounts.outsider),
    )


@pytest.mark.parametrize("behaviour", LEDGER_BEHAVIOURS, ids=lambda b: b.__name__)
def test_web3_ledger_behaves_like_a_ledger(behaviour, actors):
    behaviour(actors)


def test_web3_ledger_satisfies_the_ledger_protocol(actors):
    assert isinstance(actors.outsider, Ledger)


def _task(actors: LedgerActors, **overrides: object) -> int:
    return actors.publisher.publish_task(make_spec(**overrides), b"initial")


def test_web3_ledger_injects_the_clique_poa_middleware(actors):
    assert POA_MIDDLEWARE_NAME in actors.outsider.w3.middleware_onion


def test_web3_ledger_refuses_a_deployment_of_another_chain(w3, deployment, accounts):
    other = Deployment(deployment.chain_id + 1, deployment.contracts, deployment.deploy_block)
    with pytest.raises(ChainError, match="chain"):
        Web3Ledger(w3, other, accounts.outsider)


def test_web3_ledger_outbox_path_signs_sends_twice_and_confirms(w3, actors):
    # Arrange
    edge = actors.edges[0]
    task_id = _task(actors)
    nonce = edge.transactions.pending_nonce()
    signed = edge.sign_submit_update(task_id, 0, b"delta", num_examples=3, nonce=nonce)
    # Act: a resend of the same bytes after a crash is harmless
    tx_hash = edge.send_raw(signed.raw)
    assert edge.send_raw(signed.raw) == tx_hash == signed.tx_hash
    w3.provider.make_request("evm_mine", [])
    receipt = edge.wait_for_receipt(tx_hash, confirmations=1, timeout=10)
    # Assert
    update_id = edge.update_id_from_receipt(receipt)
    assert edge.submission_of(task_id, 0, edge.sender) == update_id
    [update] = edge.read_updates(task_id)
    assert (update.payload, update.tx_hash, update.num_examples) == (b"delta", tx_hash, 3)


def test_web3_ledger_sign_checks_contract_rules_before_sending(actors):
    edge = actors.edges[0]
    task_id = _task(actors)
    edge.submit_update(task_id, 0, b"first", num_examples=1)
    with pytest.raises(ContractRevertError) as info:
        edge.sign_submit_update(task_id, 0, b"again", num_examples=1, nonce=0)
    assert info.value.name == "UpdateLedgerDuplicateSubmission"


def test_web3_ledger_decodes_the_revert_of_a_mined_transaction(actors):
    # Arrange: a duplicate signed with a fixed gas limit skips the estimate and gets mined
    edge = actors.edges[1]
    task_id = _task(actors)
    edge.submit_update(task_id, 0, b"first", num_examples=1)
    nonce = edge.transactions.pending_nonce()
    signed = edge.sign_submit_update(task_id, 0, b"again", num_examples=1, nonce=nonce, gas=300_000)
    # Act
    tx_hash = edge.send_raw(signed.raw)
    # Assert
    with pytest.raises(ContractRevertError) as info:
        edge.wait_for_receipt(tx_hash, timeout=10)
    assert info.value.name == "UpdateLedgerDuplicateSubmission"
    assert info.value.args_by_name["edge"] == edge.sender


def test_web3_ledger_confirmations_time_out_without_new_blocks(actors):
    edge = actors.edges[0]
    task_id = _task(actors)
    nonce = edge.transactions.pending_nonce()
    signed = edge.sign_submit_update(task_id, 0, b"d", num_examples=1, nonce=nonce)
    tx_hash = edge.send_raw(signed.raw)
    with pytest.raises(ChainTimeoutError):
        edge.wait_for_receipt(tx_hash, confirmations=3, timeout=0.5)


def test_web3_ledger_paces_sends_to_max_pending(w3, deployment, accounts, actors):
    # Arrange: no automine, so sent transactions stay pending
    task_id = _task(actors, max_staleness=0)
    edge = Web3Ledger(w3, deployment, accounts.edges[2], max_pending=2, timeout=0.5)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        nonce = edge.transactions.pending_nonce()
        for offset in range(2):
            signed = edge.sign_submit_update(
                task_id, 0, b"d", num_examples=1, nonce=nonce + offset, gas=300_000
            )
            edge.send_raw(signed.raw)
        # Act / Assert
        assert edge.transactions.in_flight() == 2
        with pytest.raises(ChainTimeoutError):
            edge.transactions.wait_for_pending_slot()
        w3.provider.make_request("evm_mine", [])
        edge.transactions.wait_for_pending_slot()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])


def test_web3_ledger_refuses_transactions_over_the_geth_size_limit(actors):
    edge = actors.edges[0]
    task_id = _task(actors)
    with pytest.raises(FednodeValueError, match="131072"):
        edge.sign_submit_update(
            task_id, 0, b"\x01" * MAX_TX_SIZE, num_examples=1, nonce=0, gas=10_000_000
        )


def test_web3_ledger_reads_roles_edges_and_counts(actors, accounts):
    reader = actors.outsider
    assert reader.has_role(EDGE_ROLE, accounts.edges[0].address)
    assert reader.edges() == [edge.address for edge in accounts.edges]
    assert reader.validator_of(accounts.edges[1].address) == accounts.validators[1].address
    task_id = _task(actors)
    update_id = actors.edges[0].submit_update(task_id, 0, b"d", num_examples=1)
    assert reader.update_count() == update_id
    assert reader.latest_version(task_id) == 0
    assert reader.task_state(task_id) == TaskState.OPEN


def test_web3_ledger_send_raw_reports_a_nonce_taken_by_another_transaction(actors):
    edge = actors.edges[0]
    task_id = _task(actors)
    nonce = edge.transactions.pending_nonce()
    first = edge.sign_submit_update(task_id, 0, b"a", num_examples=1, nonce=nonce)
    rival = edge.sign_submit_update(task_id, 0, b"b", num_examples=1, nonce=nonce)
    edge.wait_for_receipt(edge.send_raw(first.raw))
    with pytest.raises(ChainError, match="nonce"):
        edge.send_raw(rival.raw)
