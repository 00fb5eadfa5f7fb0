"""Adversary: forged provenance cards on a real geth Clique chain are REJECTED.

One module-scoped single-validator geth network carries everything:

- the consortium's deployment (``deployment.json`` next to ``genesis.json``): two aggregators
  and a task with an aggregator quorum of 2; v1 is committed by both (final), v2 only by the
  first (not final);
- a forger, an outsider whose account the test funds with a plain transfer, deploys its own
  copy of the contracts (the same compiled code, a look-alike) on the same chain, makes
  itself publisher and aggregator, registers the edge-1 operator's account (a malicious
  member who helps it) as its edge, and runs a task of its own to a final v1.

The checker trusts only the genesis and the consortium's deployment, never the card.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fednode.aggregator.build import build_global_model
from fednode.auditor.card import build_card, sign_card
from fednode.auditor.card_check import CardVerdict, check_card
from fednode.auditor.card_roles import role_blocks
from fednode.auditor.clique_anchor import Anchor
from fednode.auditor.genesis_anchor import genesis_anchor
from fednode.auditor.node import NodeReader
from fednode.auditor.proofs import encode_receipt, prove_receipt
from fednode.chain.connection import connect_web3
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.deploy import Deployment, EdgeRegistration, write_deployment
from fednode.chain.roles import REGISTERED_EDGE
from fednode.chain.web3_ledger import Web3Ledger
from fednode.cli.main import main as fednode_main
from fednode.codec import decode_params, encode_params
from fednode.network import NetworkInfo
from fednode.tasks import initial_payload
from fednode.types import TaskSpec
from tests.chainkit import (
    deploy_consortium,
    geth_accounts,
    labelled_account,
    require_geth,
    running_geth_network,
)

pytestmark = pytest.mark.integration

SPEC = TaskSpec(name="card-forgery", data_schema="heart-v1", num_features=3, rounds=4,
                min_updates=1, seed=11, aggregator_quorum=2)
FORGED_SPEC = TaskSpec(name="card-forgery", data_schema="heart-v1", num_features=3, rounds=4,
                       min_updates=1, seed=11)


@dataclass(frozen=True)
class Scene:
    """What the module's chain holds, and the trusted inputs of the checker."""

    info: NetworkInfo
    genesis: Path
    trusted: Deployment
    forged: Deployment
    auditor: LocalAccount
    forger: LocalAccount
    honest: Web3Ledger
    task_id: int
    final_digest: str
    pending: tuple[int, bytes, str]
    forged_ledger: Web3Ledger
    forged_digest: str


def _fund(w3: Web3, payer: LocalAccount, account: str, wei: int = 10**20) -> None:
    tx = {"to": account, "value": wei, "gas": 21_000, "gasPrice": w3.eth.gas_price,
          "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
          "chainId": w3.eth.chain_id}
    tx_hash = w3.eth.send_raw_transaction(payer.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] == 1


def _delta(payload: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    params = decode_params(payload)
    return encode_params(jax.tree_util.tree_map(
        lambda a: (rng.standard_normal(a.shape) * 0.1).astype(a.dtype), params))


def _round(edge: Web3Ledger, aggregators: list[Web3Ledger], task_id: int, version: int,
           spec: TaskSpec, seed: int) -> tuple[int, bytes, str]:
    """edge submits an update on ``version - 1``; each aggregator commits ``version``."""
    current = aggregators[0].read_global_models(task_id)[version - 1]
    edge.submit_update(task_id, version - 1, _delta(current.payload, seed), num_examples=12)
    updates = aggregators[0].read_updates(task_id, base_version=version - 1)
    built = build_global_model(spec, current.payload, updates)
    records = [a.commit_global_model(task_id, version, built.payload, built.update_ids)
               for a in aggregators]
    return version, records[-1].tx_hash, "0x" + built.digest.hex()


def _consortium_task(info: NetworkInfo, w3: Web3, accounts: dict) -> tuple:
    second = labelled_account("card-aggregator-2")
    _fund(w3, accounts["admin"], second.address)
    deployment = deploy_consortium(
        w3, accounts["admin"], publishers=[accounts["publisher"].address],
        aggregators=[accounts["aggregator"].address, second.address],
        auditors=[accounts["auditor"].address],
        edges=[EdgeRegistration(accounts["edge-1"].address, info.validators[0].signer, "edge-1")])
    write_deployment(deployment, Path(info.genesis).parent / "deployment.json")
    url = info.http_urls[0]
    publisher, edge, first, other = (Web3Ledger.connect(url, deployment, a) for a in (
        accounts["publisher"], accounts["edge-1"], accounts["aggregator"], second))
    task_id = publisher.publish_task(SPEC, initial_payload(SPEC, key=jax.random.key(SPEC.seed)))
    _, _, final_digest = _round(edge, [first, other], task_id, 1, SPEC, 1)
    pending = _round(edge, [first], task_id, 2, SPEC, 2)
    return deployment, first, task_id, final_digest, pending


def _forger_task(info: NetworkInfo, w3: Web3, accounts: dict, forger: LocalAccount) -> tuple:
    edge_1 = accounts["edge-1"]
    forged = deploy_consortium(
        w3, forger, publishers=[forger.address], aggregators=[forger.address],
        edges=[EdgeRegistration(edge_1.address, forger.address, "edge-1")])
    url = info.http_urls[0]
    own, helper = Web3Ledger.connect(url, forged, forger), Web3Ledger.connect(url, forged, edge_1)
    task_id = own.publish_task(FORGED_SPEC,
                               initial_payload(FORGED_SPEC, key=jax.random.key(FORGED_SPEC.seed)))
    _, _, digest = _round(helper, [own], task_id, 1, FORGED_SPEC, 3)
    return forged, own, digest


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    require_geth()
    with running_geth_network(tmp_path_factory.mktemp("cards") / "net", validators=1) as info:
        w3 = connect_web3(info.http_urls[0])
        accounts = geth_accounts(info)
        trusted, honest, task_id, final_digest, pending = _consortium_task(info, w3, accounts)
        forger = labelled_account("card-forger")
        _fund(w3, accounts["admin"], forger.address)
        forged, forged_ledger, forged_digest = _forger_task(info, w3, accounts, forger)
        yield Scene(info, Path(info.genesis), trusted, forged, accounts["auditor"], forger,
                    honest, task_id, final_digest, pending, forged_ledger, forged_digest)


def _anchor(scene: Scene) -> Anchor:
    return Anchor(genesis=genesis_anchor(json.loads(scene.genesis.read_text())))


def _failed(verdict: CardVerdict) -> set[str]:
    return {c.name for c in verdict.checks if not c.ok}


def _detail(verdict: CardVerdict, name: str) -> str:
    [check] = [c for c in verdict.checks if c.name == name]
    return check.detail


@pytest.fixture(scope="module")
def honest_card(scene: Scene) -> dict:
    return sign_card(build_card(scene.honest, scene.final_digest), scene.auditor)


def test_honest_card_is_verified_against_the_genesis_and_the_deployment_beside_it(
        scene, honest_card, tmp_path, capsys):
    # Arrange
    path = tmp_path / "card.json"
    path.write_text(json.dumps(honest_card))
    # Act
    verdict = check_card(honest_card, anchor=_anchor(scene), deployment=scene.trusted)
    code = fednode_main(["audit", "check-card", str(path), "--genesis", str(scene.genesis)])
    out = capsys.readouterr().out
    # Assert
    assert verdict.status == "VERIFIED", verdict.to_dict()
    assert "committed by at least 2 aggregator(s)" in _detail(verdict, "finality")
    assert code == 0 and "trusted deployment:" in out and out.endswith("VERIFIED\n"), out


def test_honest_card_without_a_trusted_deployment_is_only_unanchored(scene, honest_card):
    # Act
    verdict = check_card(honest_card, anchor=_anchor(scene))
    # Assert
    assert verdict.status == "UNANCHORED" and verdict.intact
    assert _detail(verdict, "signers").startswith("not checked")


def test_look_alike_contracts_card_is_rejected(scene, tmp_path, capsys):
    # Arrange: the forger's card is honest about its own contracts, on the consortium's chain
    card = sign_card(build_card(scene.forged_ledger, scene.forged_digest), scene.forger)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(card))
    # Act
    verdict = check_card(card, anchor=_anchor(scene), deployment=scene.trusted)
    code = fednode_main(["audit", "check-card", str(path), "--genesis", str(scene.genesis)])
    out = capsys.readouterr().out
    # Assert
    assert verdict.status == "REJECTED" and verdict.reasons == ("look_alike_contract",)
    assert _failed(verdict) == {"publication", "updates", "finality", "signers"}
    assert scene.forged.address("TaskRegistry") in _detail(verdict, "publication")
    assert code == 1 and "REJECTED (look_alike_contract)" in out
    # the old checker's view: integrity alone, and the forger's own deployment, pass
    assert check_card(card, anchor=_anchor(scene)).status == "UNANCHORED"
    assert check_card(card, anchor=_anchor(scene), deployment=scene.forged).ok


def test_forgeries_leave_the_consortiums_own_card_verified(scene, honest_card):
    # Act
    fresh = sign_card(build_card(scene.honest, scene.final_digest), scene.auditor)
    # Assert
    for card in (honest_card, fresh):
        assert check_card(card, anchor=_anchor(scene), deployment=scene.trusted).ok
    assert scene.honest.latest_version(scene.task_id) == 1  # v2 is still not final


def _forged_pending_card(scene: Scene, honest_card: dict) -> dict:
    """A malicious first aggregator's card for v2, which only it committed (quorum 2)."""
    node = NodeReader(scene.honest.w3)
    version, tx_hash, digest = scene.pending
    body = json.loads(json.dumps(honest_card["card"]))
    [update] = [u for u in scene.honest.read_updates(scene.task_id) if u.base_version == 1]
    [commit] = [c for c in scene.honest.read_commits(scene.task_id) if c.version == 2]
    body["updates"].append({
        "update_id": update.update_id, "edge": update.edge, "base_version": 1,
        "num_examples": update.num_examples, "epsilon_micro": update.epsilon_micro,
        "digest": "0x" + update.digest.hex(), "payload": "0x" + update.payload.hex(),
        **_proof(node, update.block_number, update.tx_hash)})
    proof = _proof(node, commit.block_number, tx_hash)
    body["versions"].append({"version": version, "digest": digest, "aggregator": commit.aggregator,
                             "update_ids": [update.update_id], "final": proof, "commits": [proof]})
    body["model"] = {"version": version, "digest": digest}
    last = max(commit.block_number, update.block_number)
    for number in range(max(int(n) for n in body["headers"]) + 1, last + 1):
        raw = node.header(number)
        body["headers"][str(number)] = {k: raw[k] for k in body["headers"]["0"] if k in raw}
    signers = {(AGGREGATOR_ROLE, c.aggregator) for c in scene.honest.read_commits(scene.task_id)}
    signers |= {(role, update.edge) for role in (EDGE_ROLE, REGISTERED_EDGE)}
    blocks = role_blocks(body["headers"], scene.trusted.address("Consortium"), signers,
                         scene.trusted.deploy_block, last)
    body["role_receipts"] = {str(b): ["0x" + encode_receipt(r).hex() for r in node.receipts(b)]
                             for b in blocks}
    return body


def _proof(node: NodeReader, block: int, tx_hash: bytes) -> dict:
    index = int(node.receipt_of(block, tx_hash)["transactionIndex"], 16)
    _, proof = prove_receipt(node.receipts(block), index)
    return {"block": block, "tx_hash": "0x" + bytes(tx_hash).hex(), "tx_index": index,
            "proof": proof}


def test_card_for_a_version_only_one_of_two_aggregators_committed_is_rejected(
        scene, honest_card):
    # Arrange
    aggregator = geth_accounts(scene.info)["aggregator"]
    card = sign_card(_forged_pending_card(scene, honest_card), aggregator)
    # Act
    verdict = check_card(card, anchor=_anchor(scene), deployment=scene.trusted)
    # Assert
    assert verdict.status == "REJECTED" and verdict.reasons == ("not_final",)
    assert "has no GlobalModelFinalized log" in _detail(verdict, "finality")
    assert {"publication", "updates", "recomputation", "headers", "anchor"}.isdisjoint(
        _failed(verdict))


def test_card_dropping_the_second_aggregators_commit_is_rejected(scene, honest_card):
    # Arrange: the finalizing receipt alone, as if one aggregator had made v1 final
    body = json.loads(json.dumps(honest_card["card"]))
    [v1] = body["versions"]
    v1["commits"] = [c for c in v1["commits"] if c["tx_hash"] == v1["final"]["tx_hash"]]
    # Act
    verdict = check_card(sign_card(body, scene.auditor), anchor=_anchor(scene),
                         deployment=scene.trusted)
    # Assert
    assert verdict.reasons == ("not_final",)
    assert "1 distinct aggregator(s) committed" in _detail(verdict, "finality")


def test_commit_by_an_account_without_aggregator_role_is_rejected(scene, tmp_path):
    """The consortium's UpdateLedger itself refuses a commit by a non-aggregator, so this
    trusts a deployment whose ledger answers to another Consortium (mis-wired or subverted):
    the checker holds each sender to the trusted Consortium's roles on its own."""
    # Arrange
    mixed = Deployment(scene.trusted.chain_id, {
        **scene.trusted.contracts, "TaskRegistry": scene.forged.address("TaskRegistry"),
        "UpdateLedger": scene.forged.address("UpdateLedger")}, scene.trusted.deploy_block)
    ledger = Web3Ledger.connect(scene.info.http_urls[0], mixed, scene.forger)
    card = sign_card(build_card(ledger, scene.forged_digest), scene.forger)
    # Act
    verdict = check_card(card, anchor=_anchor(scene), deployment=mixed)
    # Assert
    assert verdict.status == "REJECTED" and verdict.reasons == ("unknown_signer",)
    assert _failed(verdict) == {"signers"}
    detail = _detail(verdict, "signers")
    assert f"sent by {scene.forger.address}" in detail and "AGGREGATOR_ROLE never held" in detail


def test_card_without_the_role_grant_receipts_is_rejected(scene, honest_card):
    # Arrange: a card that hides the blocks where roles changed
    body = json.loads(json.dumps(honest_card["card"]))
    assert body["role_receipts"]
    body["role_receipts"] = {}
    # Act
    verdict = check_card(sign_card(body, scene.auditor), anchor=_anchor(scene),
                         deployment=scene.trusted)
    # Assert
    assert verdict.reasons == ("roles_unproven",)
