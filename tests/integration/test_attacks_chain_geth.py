"""Chain: hostile transactions on real geth Clique validators, each refused with a decoded error.

Non-members, a replayed raw transaction, the same update signed again, a transaction signed
for another chain id, a payload over the contract's 124 KiB limit and a transaction over geth's
128 KiB limit. Runs on the session ``geth_network`` with its own deployment (nothing is written
into the shared network folder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.exceptions import Web3RPCError

from fednode.chain import Web3Ledger, connect_web3
from fednode.chain.constants import MAX_TX_SIZE
from fednode.codec import encode_params
from fednode.errors import ContractRevertError
from fednode.types import TaskSpec
from tests.chainkit import deploy_on_geth, wait_for_height

pytestmark = pytest.mark.integration

MAX_PAYLOAD = 124 * 1024
EDGES = ("edge-1", "edge-2")


@dataclass(frozen=True)
class Consortium:
    publisher: Web3Ledger
    aggregator: Web3Ledger
    edges: tuple[Web3Ledger, ...]
    outsider: Web3Ledger
    outsider_account: LocalAccount
    edge_account: LocalAccount


@pytest.fixture(scope="module")
def consortium(geth_network) -> Consortium:
    info = geth_network
    deployed = deploy_on_geth(info, EDGES)
    account = deployed.accounts

    def ledger(name: str, node: int) -> Web3Ledger:
        url = info.http_urls[node]
        return Web3Ledger(connect_web3(url), deployed.deployment, account[name], timeout=180.0)

    return Consortium(
        publisher=ledger("publisher", 0), aggregator=ledger("aggregator", 3),
        edges=(ledger("edge-1", 0), ledger("edge-2", 1)), outsider=ledger("auditor", 2),
        outsider_account=account["auditor"], edge_account=account["edge-1"],
    )


def _payload(fill: float = 0.1) -> bytes:
    return encode_params({"w": np.full(2, fill, np.float32)})


def _task(consortium: Consortium) -> int:
    """Publishes a task and waits until every validator the test talks to has its block."""
    spec = TaskSpec(name="attacks", data_schema="s", num_features=2, rounds=3, min_updates=2)
    task_id = consortium.publisher.publish_task(spec, _payload(0.0))
    height = consortium.publisher.w3.eth.block_number
    for ledger in (*consortium.edges, consortium.outsider, consortium.aggregator):
        wait_for_height(ledger.w3.provider.endpoint_uri, height)
    return task_id


def _raw_tx(ledger: Web3Ledger, account: LocalAccount, data: bytes, *, chain_id: int | None = None,
            gas: int = 3_000_000) -> bytes:
    """Signs a call to the UpdateLedger by hand: fixed gas (no estimate, so no early refusal)."""
    tx = {"chainId": ledger.transactions.chain_id if chain_id is None else chain_id,
          "nonce": ledger.transactions.pending_nonce(), "gas": gas, "value": 0,
          "to": ledger.ledger.address, "data": HexBytes(data), **ledger.transactions.fee_fields()}
    return bytes(account.sign_transaction(tx).raw_transaction)


def test_non_member_submission_is_refused_before_and_after_sending(consortium):
    # Arrange
    task_id = _task(consortium)
    outsider = consortium.outsider
    data = outsider.encode_submit_update(task_id, 0, _payload(), num_examples=5)
    # Act
    with pytest.raises(ContractRevertError) as estimated:
        outsider.submit_update(task_id, 0, _payload(), num_examples=5)
    tx_hash = outsider.send_raw(_raw_tx(outsider, consortium.outsider_account, data))
    with pytest.raises(ContractRevertError) as mined:
        outsider.wait_for_receipt(tx_hash, timeout=120)
    # Assert
    for refusal in (estimated.value, mined.value):
        assert refusal.name == "AccessControlUnauthorizedAccount"
        assert refusal.args_by_name["account"] == outsider.sender
    assert outsider.read_updates(task_id) == []


def test_non_aggregator_cannot_commit_a_global_model(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[0]
    ids = [edge.submit_update(task_id, 0, _payload(), num_examples=3),
           consortium.edges[1].submit_update(task_id, 0, _payload(0.2), num_examples=3)]
    # Act
    with pytest.raises(ContractRevertError) as refused:
        edge.commit_global_model(task_id, 1, _payload(0.3), ids)
    # Assert
    assert refused.value.name == "AccessControlUnauthorizedAccount"
    assert edge.latest_version(task_id) == 0


def test_replayed_raw_transaction_lands_once(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[0]
    signed = edge.sign_submit_update(task_id, 0, _payload(), num_examples=4,
                                     nonce=edge.transactions.pending_nonce())
    first = edge.update_id_from_receipt(edge.wait_for_receipt(edge.send_raw(signed.raw)))
    count = edge.update_count()
    # Act
    with pytest.raises(Web3RPCError) as node_says:
        edge.w3.eth.send_raw_transaction(signed.raw)
    again = edge.send_raw(signed.raw)  # the outbox's idempotent re-broadcast
    # Assert
    assert "nonce too low" in str(node_says.value).lower() or "known" in str(node_says.value)
    assert again == signed.tx_hash
    assert edge.update_count() == count
    assert [u.update_id for u in edge.read_updates(task_id)] == [first]


def test_same_update_signed_again_is_a_decoded_duplicate(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[0]
    first = edge.submit_update(task_id, 0, _payload(), num_examples=4)
    data = edge.encode_submit_update(task_id, 0, _payload(), num_examples=4)
    # Act
    with pytest.raises(ContractRevertError) as estimated:
        edge.sign_submit_update(task_id, 0, _payload(), num_examples=4,
                                nonce=edge.transactions.pending_nonce())
    tx_hash = edge.send_raw(_raw_tx(edge, consortium.edge_account, data))
    with pytest.raises(ContractRevertError) as mined:
        edge.wait_for_receipt(tx_hash, timeout=120)
    # Assert
    for refusal in (estimated.value, mined.value):
        assert refusal.name == "UpdateLedgerDuplicateSubmission"
        assert refusal.args_by_name["baseVersion"] == 0
        assert refusal.args_by_name["edge"] == edge.sender
    assert [u.update_id for u in edge.read_updates(task_id)] == [first]


def test_transaction_signed_for_another_chain_id_is_refused_by_the_node(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[1]
    data = edge.encode_submit_update(task_id, 0, _payload(), num_examples=4)
    raw = _raw_tx(edge, Account.from_key(edge.transactions.account.key), data,
                  chain_id=edge.transactions.chain_id + 1)
    # Act
    with pytest.raises(Web3RPCError) as refused:
        edge.w3.eth.send_raw_transaction(raw)
    # Assert
    assert "chain id" in str(refused.value).lower() or "invalid sender" in str(refused.value)
    assert edge.read_updates(task_id) == []


def test_payload_over_the_contract_limit_is_a_decoded_size_error(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[0]
    payload = b"\x01" * (MAX_PAYLOAD + 1)
    # Act
    with pytest.raises(ContractRevertError) as refused:
        edge.submit_update(task_id, 0, payload, num_examples=4)
    # Assert
    assert refused.value.name == "UpdateLedgerInvalidPayloadSize"
    assert refused.value.args_by_name == {"size": MAX_PAYLOAD + 1, "maxSize": MAX_PAYLOAD}


def test_transaction_over_geth_128_kib_is_refused_as_oversized(consortium):
    # Arrange
    task_id = _task(consortium)
    edge = consortium.edges[0]
    data = edge.encode_submit_update(task_id, 0, b"\x01" * (130 * 1024), num_examples=4)
    raw = _raw_tx(edge, consortium.edge_account, data, gas=8_000_000)
    # Act
    with pytest.raises(Web3RPCError) as refused:
        edge.w3.eth.send_raw_transaction(raw)
    # Assert
    assert len(raw) > MAX_TX_SIZE
    assert "oversized data" in str(refused.value)
    assert edge.read_updates(task_id) == []
