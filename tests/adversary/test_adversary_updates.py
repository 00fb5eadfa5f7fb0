"""Adversary: a malicious edge operator signs raw ``submitUpdate`` transactions with its own key.

An edge operator holds EDGE_ROLE and its own key, so it can skip its edge server and put any
payload and any example count on chain. These tests act as that operator (eth-account signs
the raw transaction, nothing of fednode's edge runs), and as a malicious aggregator that
aggregates what it should have refused, on anvil, and show where each attack stops:

- the contract refuses 2**63-1 examples (``UpdateLedgerTooManyExamples``) and a zero privacy
  spend in a DP task (``UpdateLedgerZeroPrivacySpend``): the transaction is mined and reverted;
- the contract accepts a NaN payload, a payload far over the norm bound and a packed payload
  whose layout disagrees with the spec; the aggregator leaves each out with its named reason
  (listed as rejected on chain) and aggregates the honest updates;
- an aggregator that aggregates one anyway is caught by ``fednode audit verify`` (the CLI's
  handler), which names the finding, the update id and its transaction, and exits 1;
- a device that forges its example count is refused by the edge (422 ``too_many_examples``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from edge_server.app import create_app, ledger_scope
from edge_server.config import EdgeConfig
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.aggregator.round import run_round
from fednode.chain import Web3Ledger
from fednode.chain.constants import AGGREGATOR_ROLE, PUBLISHER_ROLE
from fednode.chain.deploy import Deployment, EdgeRegistration, bind_contract
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.chain.revert import revert_error_from
from fednode.cli import audit_cmd
from fednode.codec import decode_params, encode_params
from fednode.site.device_client import DeviceIdentity
from fednode.types import TaskSpec
from fednode.update.entropy import compress_codes
from fednode.update.envelope import SIGNATURE_HEADER, SigningScope, UpdateEnvelope, envelope_to_json
from fednode.update.packing import encode_int8, encode_top_k, pack_delta
from fednode.update.signing import new_nonce, sign_envelope
from tests.chainkit import AnvilNode, deploy_consortium, labelled_account, running_anvil

SHAPES = {"b": (1,), "w": (4,)}
MODEL = {"b": np.zeros(1, np.float32), "w": np.zeros(4, np.float32)}
SPEC = TaskSpec(
    name="adversary-updates", data_schema="s", num_features=4, rounds=2, min_updates=2,
    max_update_norm=1.0, max_examples=1_000, compression=("int8",),
)  # fmt: skip


@dataclass(frozen=True)
class Chain:
    """anvil with a deployed consortium: three edges (the last one malicious)."""

    node: AnvilNode
    deployment: Deployment
    publisher: LocalAccount
    aggregator: LocalAccount
    auditor: LocalAccount
    edges: tuple[LocalAccount, ...]

    def ledger(self, account: LocalAccount) -> Web3Ledger:
        return Web3Ledger(self.node.w3, self.deployment, account, timeout=30.0)

    @property
    def update_ledger(self) -> Contract:
        return bind_contract(self.node.w3, self.deployment, "UpdateLedger")


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    named = {n: labelled_account(f"adv-updates-{n}")
             for n in ("admin", "publisher", "aggregator", "auditor")}
    edges = tuple(labelled_account(f"adv-updates-edge-{i}") for i in range(3))
    validators = [labelled_account(f"adv-updates-validator-{i}") for i in range(3)]
    with running_anvil() as node:
        node.fund([*named.values(), *edges])
        deployment = deploy_consortium(
            node.w3, named["admin"], publishers=[named["publisher"].address],
            aggregators=[named["aggregator"].address], auditors=[named["auditor"].address],
            edges=[EdgeRegistration(e.address, v.address, f"hospital-{i}")
                   for i, (e, v) in enumerate(zip(edges, validators, strict=True))],
        )  # fmt: skip
        yield Chain(node, deployment, named["publisher"], named["aggregator"], named["auditor"],
                    edges)


@pytest.fixture(autouse=True)
def snapshot(chain: Chain) -> Iterator[None]:
    snapshot_id = chain.node.w3.provider.make_request("evm_snapshot", [])["result"]
    yield
    chain.node.w3.provider.make_request("evm_revert", [snapshot_id])


# ---- the attacker's tools: its own key, eth-account, raw transactions ------------------------


def _raw_submit(
    w3: Web3, ledger: Contract, edge: LocalAccount, task_id: int, payload: bytes, *,
    num_examples: int = 100, epsilon_micro: int = 0,
) -> dict[str, Any]:
    """Signs and sends ``submitUpdate`` with the edge's own key; returns the receipt.

    The gas is fixed, so a transaction the contract refuses is still mined (status 0).
    """
    data = ledger.encode_abi("submitUpdate", [task_id, 0, num_examples, epsilon_micro, payload])
    tx = {
        "to": ledger.address, "data": HexBytes(data), "value": 0, "gas": 3_000_000,
        "gasPrice": w3.eth.gas_price, "nonce": w3.eth.get_transaction_count(edge.address),
        "chainId": w3.eth.chain_id,
    }  # fmt: skip
    signed = edge.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30))


def _refusal(w3: Web3, ledger: Contract, edge: LocalAccount, task_id: int, payload: bytes,
             **fields: int) -> tuple[str, dict[str, Any]]:
    """The custom error the contract answers the same call with (eth_call, decoded)."""
    args = [task_id, 0, fields.get("num_examples", 100), fields.get("epsilon_micro", 0), payload]
    with pytest.raises((ContractLogicError, Web3RPCError)) as info:
        ledger.functions.submitUpdate(*args).call({"from": edge.address})
    decoded = revert_error_from(info.value)
    assert decoded is not None, info.value
    return decoded.name, decoded.args_by_name


def _int8(dense: dict[str, np.ndarray]) -> bytes:
    return encode_params(pack_delta({n: encode_int8(a) for n, a in dense.items()}, SHAPES))


def _honest(value: float) -> bytes:
    return _int8({"b": np.zeros(1, np.float32), "w": np.full(4, value, np.float32)})


BAD_PAYLOADS = {
    "nan": (encode_params({"b": np.zeros(1, np.float32),
                           "w": np.array([np.nan, 0, 0, 0], np.float32)}), "not_finite"),
    "huge-norm": (_int8({"b": np.zeros(1, np.float32), "w": np.full(4, 1e6, np.float32)}),
                  "norm_too_large"),
    "layout-disagrees-with-spec": (
        encode_params(pack_delta({"b": encode_top_k(np.zeros(1, np.float32), 1),
                                  "w": encode_top_k(np.full(4, 0.1, np.float32), 2)}, SHAPES)),
        "wrong_compression"),
}  # fmt: skip


def _publish(chain: Chain, spec: TaskSpec = SPEC) -> int:
    return chain.ledger(chain.publisher).publish_task(spec, encode_params(MODEL))


def _honest_and_malicious(chain: Chain, bad: bytes) -> tuple[int, list[int], int]:
    """Two honest updates through the ledger API, one bad one as a raw transaction."""
    task_id = _publish(chain)
    honest = [chain.ledger(edge).submit_update(task_id, 0, _honest(0.1 * (i + 1)),
                                               num_examples=100)
              for i, edge in enumerate(chain.edges[:2])]
    receipt = _raw_submit(chain.node.w3, chain.update_ledger, chain.edges[2], task_id, bad)
    assert receipt["status"] == 1  # the contract cannot see inside a payload
    return task_id, honest, honest[-1] + 1


# ---- refused by the contract ----------------------------------------------------------------


def test_contract_refuses_an_edge_claiming_2_63_examples(chain: Chain) -> None:
    # Arrange
    task_id = _publish(chain)
    w3, ledger, attacker = chain.node.w3, chain.update_ledger, chain.edges[2]
    count = ledger.functions.updateCount().call()
    # Act
    error = _refusal(w3, ledger, attacker, task_id, _honest(0.1), num_examples=2**63 - 1)
    receipt = _raw_submit(w3, ledger, attacker, task_id, _honest(0.1), num_examples=2**63 - 1)
    # Assert: named error, reverted on chain, nothing recorded; an honest count still goes in
    assert error == ("UpdateLedgerTooManyExamples",
                     {"numExamples": 2**63 - 1, "maxExamples": SPEC.max_examples})
    assert receipt["status"] == 0 and ledger.functions.updateCount().call() == count
    honest = _raw_submit(w3, ledger, attacker, task_id, _honest(0.1), num_examples=1_000)
    assert honest["status"] == 1


def test_contract_refuses_a_zero_privacy_spend_in_a_dp_task(chain: Chain) -> None:
    # Arrange: a DP task, budget 2.0 epsilon per edge
    spec = TaskSpec(name="adversary-dp", data_schema="s", num_features=4, rounds=2,
                    min_updates=2, clip_norm=1.0, noise_multiplier=1.0, epsilon_budget=2.0)
    task_id = _publish(chain, spec)
    w3, ledger, attacker = chain.node.w3, chain.update_ledger, chain.edges[2]
    dense = encode_params(MODEL)
    # Act
    error = _refusal(w3, ledger, attacker, task_id, dense, epsilon_micro=0)
    receipt = _raw_submit(w3, ledger, attacker, task_id, dense, epsilon_micro=0)
    # Assert
    assert error == ("UpdateLedgerZeroPrivacySpend", {"taskId": task_id, "budget": 2_000_000})
    assert receipt["status"] == 0
    assert ledger.functions.epsilonSpent(task_id, attacker.address).call() == 0
    assert _raw_submit(w3, ledger, attacker, task_id, dense, epsilon_micro=1)["status"] == 1


# ---- accepted by the contract, refused by the aggregator and the auditor --------------------


@pytest.mark.parametrize("attack", sorted(BAD_PAYLOADS))
def test_aggregator_leaves_out_a_raw_bad_update_and_aggregates_the_honest_ones(
    chain: Chain, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    bad, reason = BAD_PAYLOADS[attack]
    task_id, honest, bad_id = _honest_and_malicious(chain, bad)
    aggregator = chain.ledger(chain.aggregator)
    # Act
    result = run_round(aggregator, task_id, timeout=5, poll=0.1)
    # Assert: left out with its named reason, listed as rejected on chain; honest ones counted
    assert result.rejected == ((bad_id, reason),)
    assert result.record.update_ids == tuple(honest)
    (commit,) = aggregator.read_commits(task_id)
    assert commit.final and commit.rejected_ids == (bad_id,)
    model = decode_params(aggregator.read_global_models(task_id)[1].payload)
    assert np.all(np.isfinite(model["w"])) and float(np.max(np.abs(model["w"]))) < 1.0
    code, report = _verify_cli(chain, task_id, monkeypatch)
    assert code == 0 and report["ok"], report


@pytest.mark.parametrize("attack", sorted(BAD_PAYLOADS))
def test_audit_verify_flags_an_aggregator_that_aggregated_a_bad_update(
    chain: Chain, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the aggregator colludes and aggregates all three (a plain mean as the model)
    bad, reason = BAD_PAYLOADS[attack]
    task_id, honest, bad_id = _honest_and_malicious(chain, bad)
    aggregator = chain.ledger(chain.aggregator)
    forged = {"b": np.zeros(1, np.float32), "w": np.full(4, np.nan if attack == "nan" else 0.5,
                                                         np.float32)}
    aggregator.commit_global_model(task_id, 1, encode_params(forged), [*honest, bad_id])
    tx_hash = aggregator.read_updates(task_id)[-1].tx_hash.hex()
    # Act
    code, report = _verify_cli(chain, task_id, monkeypatch)
    # Assert: the finding names the check's reason, the update and its transaction; exit 1
    assert code == 1
    findings = report["versions"][1]["findings"]
    flagged = [f for f in findings if f["kind"] == "rejected_update"]
    assert len(flagged) == 1 and flagged[0]["detail"].startswith(f"{reason}:")
    assert flagged[0]["at_fault"] == (f"update {bad_id} from {chain.edges[2].address} "
                                      f"(tx 0x{tx_hash.removeprefix('0x')})")
    assert (attack == "nan") == any(f["kind"] == "global_model_not_finite" for f in findings)


def _verify_cli(
    chain: Chain, task_id: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, Any]]:
    """Runs the handler of ``fednode audit verify --json`` on the auditor's ledger (the CLI
    opens a network folder's ledger; here it is the anvil chain's)."""
    ledger = chain.ledger(chain.auditor)
    monkeypatch.setattr(audit_cmd, "_open", lambda args, account="auditor": ledger)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = audit_cmd._verify(argparse.Namespace(task=task_id, no_roles=False, json=True))
    return code, json.loads(out.getvalue())


# ---- a device forging its count at the edge -------------------------------------------------


@dataclass
class Edge:
    """One edge server (in-process) on an in-memory consortium, with one enrolled device."""

    http: TestClient
    device: DeviceIdentity
    store: EdgeStore
    task_id: int
    scope: SigningScope

    def post(self, payload: bytes, num_examples: int = 100) -> Any:
        """The device signs an envelope with its own (valid) key and posts it."""
        envelope = UpdateEnvelope(self.device.device_id, self.task_id, 0, num_examples, 0,
                                  payload, new_nonce(), 1_700_000_000, self.scope.edge,
                                  self.scope.chain_id, self.scope.deployment)
        signature = sign_envelope(self.device.private_key, envelope)
        headers = {SIGNATURE_HEADER: base64.b64encode(signature).decode()}
        return self.http.post("/v1/updates", content=envelope_to_json(envelope), headers=headers)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    admin = InMemoryLedger()
    edge_address = "0x00000000000000000000000000000000000000Ed"
    admin.grant_role(PUBLISHER_ROLE, admin.sender)
    admin.grant_role(AGGREGATOR_ROLE, "0x00000000000000000000000000000000000000A9")
    admin.register_edge(edge_address, "0x000000000000000000000000000000000000Ba5e", "edge-a")
    spec = TaskSpec(name="edge-bounds", data_schema="s", num_features=4, min_updates=1,
                    max_update_norm=5.0, max_examples=500, compression=("int8",))
    task_id = admin.publish_task(spec, encode_params(MODEL))
    ledger = admin.as_sender(edge_address)
    store = EdgeStore(str(tmp_path / "edge.sqlite"))
    device = DeviceIdentity.generate(device_id="clinic-1")
    enroll_device(store, device.device_id, device.public_key_hex)
    config = EdgeConfig(name="edge-a", db_path=str(tmp_path / "edge.sqlite"))
    app = create_app(config, ledger, store, submitter=Submitter(store, ledger),
                     clock=lambda: 1_700_000_000.0)
    with TestClient(app) as http:
        yield Edge(http, device, store, task_id, ledger_scope(ledger))


def test_edge_refuses_a_device_that_forges_its_example_count(edge: Edge) -> None:
    # Act: the device signs a forged count (its own signature is valid)
    forged = [edge.post(encode_params(MODEL), 2**63 - 1), edge.post(encode_params(MODEL), 501)]
    honest = edge.post(encode_params(MODEL), 500)
    # Assert
    assert [(r.status_code, r.json()["error"]) for r in forged] == [
        (422, "too_many_examples"), (422, "too_many_examples")]
    assert honest.status_code == 202, honest.text
    assert [row.num_examples for row in edge.store.list_updates()] == [500]


def test_edge_refuses_the_same_bad_delta_alike_dense_or_compressed(edge: Edge) -> None:
    # Arrange: one oversized delta in three layouts, a NaN one, and a layout against the spec
    huge = {"b": np.zeros(1, np.float32), "w": np.full(4, 1e3, np.float32)}
    packed = pack_delta({n: encode_int8(a) for n, a in huge.items()}, SHAPES)
    coded = {"qz": compress_codes(packed["q"]), "scale": packed["scale"]}
    oversized = [encode_params(huge), _int8(huge), encode_params(coded)]
    # Act
    answers = [edge.post(payload) for payload in oversized]
    nan = edge.post(BAD_PAYLOADS["nan"][0])
    layout = edge.post(BAD_PAYLOADS["layout-disagrees-with-spec"][0])
    # Assert: the same status and reason for every layout, nothing stored
    assert {(r.status_code, r.json()["error"]) for r in answers} == {(422, "norm_too_large")}
    assert (nan.status_code, nan.json()["error"]) == (422, "not_finite")
    assert (layout.status_code, layout.json()["error"]) == (422, "wrong_compression")
    assert edge.store.list_updates() == []
