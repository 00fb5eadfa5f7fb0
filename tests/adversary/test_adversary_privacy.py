"""Adversary: an edge operator under-declares its cohort's privacy spend with its own key.

Threat: an edge in an edge-cohort task (``extra["edge_cohort"]``) sums its devices' DP-noised
deltas into one update and declares the spend on chain itself. A malicious edge declares far
less than its members' mechanism cost (to stay under the task's epsilon budget and keep
training on the same people), signing the ``submitUpdate`` transaction with its own key rather
than through its edge server. The contract only sums what it is told; the auditor re-derives
the spend from the spec and the chain and reports ``privacy_underdeclared`` against that update
(and the version that aggregated it), while an honest edge of the same round stays clean.

One anvil node, the real contracts; the honest edge's cohort is computed exactly as its edge
server does (each member trains, clips and noises its delta and declares its own spend; the
edge submits the weighted mean, the members' summed rows and the largest declared spend).
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge_server.cohort import plain_mean_payload
from edge_server.intake import template_of
from fednode.aggregator.build import build_global_model
from fednode.auditor.replay import verify_task
from fednode.chain.compile import load_artifact
from fednode.chain.deploy import EdgeRegistration
from fednode.chain.web3_ledger import Web3Ledger
from fednode.codec import decode_params, encode_params
from fednode.device.train import train_local
from fednode.device.transforms import apply_transforms
from fednode.privacy import EPSILON_SCALE, declared_spend, epsilon_spent
from fednode.tasks import initial_payload
from fednode.types import TaskSpec
from tests.chainkit import AnvilNode, deploy_consortium, labelled_account, running_anvil

SPEC = TaskSpec(
    name="cohort-dp", data_schema="synthetic-4", num_features=4, rounds=3, min_updates=2,
    batch_size=8, local_epochs=1, max_update_norm=50.0, clip_norm=1.0, noise_multiplier=3.0,
    epsilon_budget=20.0,
    edge_cohort={"size": 3, "secure": False}, dp_unit="update",
)  # fmt: skip
MEMBER_ROWS = (12, 30, 21)


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    with running_anvil() as node:
        yield node


def _member_update(global_payload: bytes, rows: int, seed: int) -> tuple[bytes, int]:
    """One cohort member: trains, clips and noises its delta, declares its own first spend."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    key = jax.random.key(seed)
    update = train_local(decode_params(global_payload), (x, y), key=key, spec=SPEC)
    delta, _ = apply_transforms(update.delta, SPEC, key=jax.random.fold_in(key, 1))
    spend = declared_spend(SPEC, rows, steps_before=0, steps_now=update.dp_steps)
    return encode_params(delta), spend


def _cohort(global_payload: bytes, seed: int) -> tuple[bytes, int, int]:
    """``(payload, num_examples, honest epsilon_micro)`` of a cohort as an edge server seals it."""
    members = [_member_update(global_payload, rows, seed + i) for i, rows in enumerate(MEMBER_ROWS)]
    payload = plain_mean_payload([p for p, _ in members], list(MEMBER_ROWS),
                                 template_of(global_payload))
    return payload, sum(MEMBER_ROWS), max(spend for _, spend in members)


def _raw_submit(w3: Web3, ledger_address: str, edge: LocalAccount, task_id: int,
                payload: bytes, num_examples: int, epsilon_micro: int) -> int:
    """The malicious edge's own transaction: web3 + eth-account, no fednode client code."""
    contract = w3.eth.contract(address=ledger_address, abi=load_artifact("UpdateLedger")["abi"])
    tx = contract.functions.submitUpdate(task_id, 0, num_examples, epsilon_micro, payload)
    built = tx.build_transaction({
        "from": edge.address, "nonce": w3.eth.get_transaction_count(edge.address),
        "chainId": w3.eth.chain_id, "gas": 3_000_000, "gasPrice": w3.eth.gas_price,
    })  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(edge.sign_transaction(built).raw_transaction))
    assert receipt["status"] == 1  # the contract takes it: it only sums declarations
    event = contract.events.UpdateSubmitted().process_receipt(receipt)[0]
    return int(event["args"]["updateId"])


def test_an_edge_under_declaring_its_cohorts_spend_is_reported(anvil: AnvilNode) -> None:
    # Arrange: a consortium with an honest and a malicious edge, a DP cohort task
    names = ("admin", "publisher", "aggregator", "honest", "cheat", "auditor", "val-1", "val-2")
    admin, publisher, aggregator, honest, cheat, auditor, val_1, val_2 = (
        labelled_account(n, namespace="fednode-adversary-privacy") for n in names)
    anvil.fund([admin, publisher, aggregator, honest, cheat, auditor])
    deployment = deploy_consortium(
        anvil.w3, admin, publishers=[publisher.address], aggregators=[aggregator.address],
        edges=[EdgeRegistration(honest.address, val_1.address, "honest"),
               EdgeRegistration(cheat.address, val_2.address, "cheat")],
    )  # fmt: skip
    v0 = initial_payload(SPEC, key=jax.random.key(0))
    task_id = Web3Ledger.connect(anvil.url, deployment, publisher).publish_task(SPEC, v0)
    honest_payload, rows, honest_micro = _cohort(v0, seed=10)
    cheat_payload, _, cheat_owes = _cohort(v0, seed=20)
    # Act: the honest edge declares its members' largest spend; the cheat declares 1 micro
    honest_id = Web3Ledger.connect(anvil.url, deployment, honest).submit_update(
        task_id, 0, honest_payload, num_examples=rows, epsilon_micro=honest_micro)
    cheat_id = _raw_submit(anvil.w3, deployment.address("UpdateLedger"), cheat, task_id,
                           cheat_payload, rows, epsilon_micro=1)
    reader = Web3Ledger.connect(anvil.url, deployment, aggregator)
    built = build_global_model(SPEC, v0, reader.read_updates(task_id, base_version=0))
    reader.commit_global_model(task_id, 1, built.payload, built.update_ids)
    report = verify_task(Web3Ledger.connect(anvil.url, deployment, auditor), task_id)
    # Assert: the cheat's update is reported, on the version that aggregated it
    findings = [f for v in report.verdicts for f in v.findings] + list(report.findings)
    under = [f for f in findings if f.kind == "privacy_underdeclared"]
    assert not report.ok
    assert [(f.version, f.at_fault) for f in under] == [
        (1, f"update {cheat_id} from {cheat.address}")]
    owed = epsilon_spent(SPEC.noise_multiplier / 2, 1.0, 1, delta=SPEC.delta)
    assert cheat_owes == honest_micro == pytest.approx(owed * EPSILON_SCALE, abs=1)
    # nothing honest was lost: the honest update is aggregated, unflagged, its spend intact
    assert honest_id in built.update_ids and cheat_id in built.update_ids
    assert not any(honest.address in f.at_fault for f in findings)
    assert reader.epsilon_spent(task_id, honest.address) == honest_micro
