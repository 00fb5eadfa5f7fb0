"""Auditor: the pure card checks that need trust: log blooms, role history proven from complete
receipts, events only from the trusted contracts, finalization by the task's quorum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, keccak

from fednode.auditor.card import CARD_FORMAT
from fednode.auditor.card_check import check_card
from fednode.auditor.card_roles import (
    CardRejection,
    check_roles,
    commit_use,
    role_blocks,
    role_changes_in,
    update_uses,
)
from fednode.auditor.proofs import (
    bloom_may_contain,
    encode_receipt,
    prove_receipt,
    receipts_root,
)
from fednode.chain.compile import load_artifact
from fednode.chain.constants import AGGREGATOR_ROLE, EDGE_ROLE
from fednode.chain.deploy import Deployment
from fednode.chain.roles import REGISTERED_EDGE

BLOCK = json.loads((Path(__file__).parent / "clique_block.json").read_text())
CONSORTIUM = "0x" + "c0" * 20
LOOK_ALIKE = "0x" + "f0" * 20
ADMIN = "0x" + "ad" * 20
AGGREGATOR = "0x" + "a1" * 20
EDGE = "0x" + "e1" * 20
DEPLOYMENT = Deployment(1337, {"Consortium": CONSORTIUM, "EvaluationLedger": "0x" + "e0" * 20,
                               "TaskRegistry": "0x" + "7a" * 20,
                               "UpdateLedger": "0x" + "1e" * 20}, 1)
TRUSTED = DEPLOYMENT.contracts


def _event(contract: str, name: str) -> dict:
    [abi] = [e for e in load_artifact(contract)["abi"]
             if e.get("type") == "event" and e["name"] == name]
    return abi


def _log(address: str, contract: str, event: str, **args) -> dict:
    """A raw JSON log of ``event`` with ``args``, encoded with the compiled ABI."""
    abi = _event(contract, event)
    topics = [event_abi_to_log_topic(abi)]
    topics += [abi_encode([i["type"]], [args[i["name"]]]) for i in abi["inputs"] if i["indexed"]]
    plain = [i for i in abi["inputs"] if not i["indexed"]]
    data = abi_encode([i["type"] for i in plain], [args[i["name"]] for i in plain])
    return {"address": address, "topics": ["0x" + t.hex() for t in topics],
            "data": "0x" + data.hex()}


def _bloom(logs: list[dict]) -> bytes:
    bloom = bytearray(256)
    for log in logs:
        for item in [log["address"], *log["topics"]]:
            digest = keccak(bytes.fromhex(item[2:]))
            for i in (0, 2, 4):
                bit = ((digest[i] << 8) | digest[i + 1]) & 2047
                bloom[255 - bit // 8] |= 1 << (bit % 8)
    return bytes(bloom)


def _receipt(logs: list[dict]) -> dict:
    return {"status": "0x1", "cumulativeGasUsed": "0x5208", "type": "0x2", "logs": logs,
            "logsBloom": "0x" + _bloom(logs).hex()}


def _chain(blocks: dict[int, list[list[dict]]], last: int) -> tuple[dict, dict]:
    """Headers 0..last (bloom and receiptsRoot of each block's receipts) and all receipts."""
    headers, receipts = {}, {}
    for number in range(last + 1):
        txs = [_receipt(logs) for logs in blocks.get(number, [])]
        encoded = [encode_receipt(r) for r in txs]
        bloom = _bloom([log for logs in blocks.get(number, []) for log in logs])
        headers[str(number)] = {"number": hex(number), "logsBloom": "0x" + bloom.hex(),
                                "receiptsRoot": "0x" + receipts_root(encoded).hex()}
        receipts[str(number)] = ["0x" + e.hex() for e in encoded]
    return headers, receipts


def _grant(role: bytes, account: str, *, address: str = CONSORTIUM) -> dict:
    return _log(address, "Consortium", "RoleGranted", role=role, account=account, sender=ADMIN)


def _revoke(role: bytes, account: str) -> dict:
    return _log(CONSORTIUM, "Consortium", "RoleRevoked", role=role, account=account, sender=ADMIN)


def _register(edge: str) -> dict:
    return _log(CONSORTIUM, "Consortium", "EdgeRegistered", edge=edge, validator="0x" + "5a" * 20,
                name="edge")


def _roles(headers: dict, receipts: dict, uses: list, first: int = 1) -> str:
    hits = role_blocks(headers, CONSORTIUM, {(u.role, u.account) for u in uses}, first,
                       max(u.block for u in uses))
    carried = {str(b): receipts[str(b)] for b in hits}
    return check_roles(headers, carried, CONSORTIUM, first, uses)


def _reason(call) -> tuple[str, str]:
    with pytest.raises(CardRejection) as caught:
        call()
    return caught.value.reason, str(caught.value)


# --- blooms and complete receipts ----------------------------------------------------------


def test_geths_bloom_holds_every_log_address_and_topic_of_its_block():
    # Arrange
    bloom = bytes.fromhex(BLOCK["header"]["logsBloom"][2:])
    items = [bytes.fromhex(x[2:]) for r in BLOCK["receipts"] for log in r["logs"]
             for x in [log["address"], *log["topics"]]]
    # Act / Assert
    assert items and all(bloom_may_contain(bloom, item) for item in items)
    assert not any(bloom_may_contain(bytes(256), item) for item in items)


def test_complete_receipts_rebuild_geths_receipts_root():
    encoded = [encode_receipt(r) for r in BLOCK["receipts"]]
    assert "0x" + receipts_root(encoded).hex() == BLOCK["header"]["receiptsRoot"]


def test_role_changes_are_read_from_the_consortium_only():
    # Arrange
    encoded = [encode_receipt(_receipt([_grant(AGGREGATOR_ROLE, AGGREGATOR),
                                        _grant(AGGREGATOR_ROLE, EDGE, address=LOOK_ALIKE)])),
               encode_receipt(_receipt([_register(EDGE)]))]
    # Act
    changes = role_changes_in(7, encoded, CONSORTIUM)
    # Assert
    assert [(c.tx_index, c.log_index, c.role, c.account.lower(), c.granted) for c in changes] == [
        (0, 0, AGGREGATOR_ROLE, AGGREGATOR, True), (1, 2, REGISTERED_EDGE, EDGE, True)]


# --- signers' roles -------------------------------------------------------------------------


def test_signers_granted_before_their_use_pass():
    # Arrange
    headers, receipts = _chain({1: [[_grant(AGGREGATOR_ROLE, AGGREGATOR)]],
                                2: [[_register(EDGE), _grant(EDGE_ROLE, EDGE)]]}, 5)
    uses = [commit_use(AGGREGATOR, 5, 0, "commit"), *update_uses(EDGE, 4, 0, "update")]
    # Act / Assert
    assert "held their roles" in _roles(headers, receipts, uses)


def test_aggregator_revoked_before_its_commit_is_an_unknown_signer():
    # Arrange
    headers, receipts = _chain({1: [[_grant(AGGREGATOR_ROLE, AGGREGATOR)]],
                                3: [[_revoke(AGGREGATOR_ROLE, AGGREGATOR)]]}, 5)
    # Act
    reason, text = _reason(lambda: _roles(headers, receipts,
                                          [commit_use(AGGREGATOR, 5, 0, "the commit")]))
    # Assert
    assert reason == "unknown_signer"
    assert "granted at block 1, revoked at block 3" in text


def test_role_granted_later_in_the_same_block_does_not_cover_an_earlier_transaction():
    headers, receipts = _chain({4: [[], [_grant(AGGREGATOR_ROLE, AGGREGATOR)]]}, 4)
    reason, _ = _reason(lambda: _roles(headers, receipts,
                                       [commit_use(AGGREGATOR, 4, 0, "the commit")]))
    assert reason == "unknown_signer"


def test_grant_by_a_look_alike_consortium_is_not_a_role():
    headers, receipts = _chain({1: [[_grant(AGGREGATOR_ROLE, AGGREGATOR, address=LOOK_ALIKE)]]},
                               3)
    reason, text = _reason(lambda: _roles(headers, receipts,
                                          [commit_use(AGGREGATOR, 3, 0, "the commit")]))
    assert reason == "unknown_signer" and "never held" in text


def test_edge_holding_the_role_without_registration_is_an_unknown_signer():
    headers, receipts = _chain({1: [[_grant(EDGE_ROLE, EDGE)]]}, 3)
    reason, text = _reason(lambda: _roles(headers, receipts, update_uses(EDGE, 3, 0, "update")))
    assert reason == "unknown_signer" and "registered edge never held" in text


def test_hidden_revocation_block_is_roles_unproven():
    # Arrange: the card carries the grant block's receipts but not the revocation's
    headers, receipts = _chain({1: [[_grant(AGGREGATOR_ROLE, AGGREGATOR)]],
                                3: [[_revoke(AGGREGATOR_ROLE, AGGREGATOR)]]}, 5)
    uses = [commit_use(AGGREGATOR, 5, 0, "the commit")]
    # Act
    reason, text = _reason(lambda: check_roles(headers, {"1": receipts["1"]}, CONSORTIUM, 1,
                                               uses))
    # Assert
    assert reason == "roles_unproven" and "block 3" in text


def test_revocation_receipt_dropped_from_its_block_is_roles_unproven():
    # Arrange: block 3's receipts without the one that revoked
    headers, receipts = _chain({1: [[_grant(AGGREGATOR_ROLE, AGGREGATOR)]],
                                3: [[], [_revoke(AGGREGATOR_ROLE, AGGREGATOR)]]}, 5)
    carried = {"1": receipts["1"], "3": receipts["3"][:1]}
    # Act
    reason, text = _reason(lambda: check_roles(headers, carried, CONSORTIUM, 1,
                                               [commit_use(AGGREGATOR, 5, 0, "the commit")]))
    # Assert
    assert reason == "roles_unproven" and "do not rebuild its receiptsRoot" in text


def test_missing_header_in_the_role_range_is_roles_unproven():
    headers, _ = _chain({}, 5)
    del headers["2"]
    reason, _ = _reason(lambda: role_blocks(headers, CONSORTIUM, {(EDGE_ROLE, EDGE)}, 1, 5))
    assert reason == "roles_unproven"


# --- events from the trusted contracts, finalization -----------------------------------------


def _entry(block: int, logs: list[dict], headers: dict) -> dict:
    root, proof = prove_receipt([_receipt(logs)], 0)
    headers[str(block)] = {"receiptsRoot": "0x" + root.hex()}
    return {"block": block, "tx_index": 0, "tx_hash": "0x" + "00" * 32, "proof": proof}


def _card(registry: str, ledger: str, *, final: bool = True, quorum: int = 1) -> dict:
    """A card of task 1 v1 whose logs come from ``registry`` / ``ledger`` (no updates)."""
    spec, initial, digest = '{"name": "t"}', b"\x01\x02", b"\x07" * 32
    headers: dict = {}
    published = _log(registry, "TaskRegistry", "TaskPublished", taskId=1, publisher=ADMIN,
                     specDigest=keccak(spec.encode()), initialModelDigest=keccak(initial),
                     rounds=1, minUpdates=1, maxStaleness=0, deadline=0, epsilonBudgetMicro=0,
                     aggregatorQuorum=quorum)
    version = {"taskId": 1, "version": 1, "digest": digest, "aggregator": AGGREGATOR}
    logs = [_log(ledger, "UpdateLedger", "GlobalModelCommitted", **version, updateCount=0)]
    if final:
        logs.append(_log(ledger, "UpdateLedger", "GlobalModelFinalized", **version, commits=1))
    commit = _entry(6, logs, headers)
    body = {"format": CARD_FORMAT, "task": {"task_id": 1, "spec_json": spec},
            "model": {"version": 1, "digest": "0x" + digest.hex()},
            "initial": {"payload": "0x" + initial.hex(), **_entry(5, [published], headers)},
            "updates": [], "headers": headers, "role_receipts": {},
            "versions": [{"version": 1, "digest": "0x" + digest.hex(), "update_ids": [],
                          "final": commit, "commits": [commit]}]}
    return {"card": body, "signature": {"signer": ADMIN}}


def _check(verdict, name: str):
    [check] = [c for c in verdict.checks if c.name == name]
    return check


def test_events_of_the_trusted_contracts_pass_publication_and_finality():
    verdict = check_card(_card(TRUSTED["TaskRegistry"], TRUSTED["UpdateLedger"]),
                         deployment=DEPLOYMENT)
    assert _check(verdict, "publication").ok and _check(verdict, "finality").ok


def test_events_of_look_alike_contracts_are_rejected_by_name():
    # Act
    verdict = check_card(_card(LOOK_ALIKE, LOOK_ALIKE), deployment=DEPLOYMENT)
    # Assert
    for name in ("publication", "finality"):
        check = _check(verdict, name)
        assert check.reason == "look_alike_contract" and LOOK_ALIKE[2:] in check.detail.lower()
    assert verdict.status == "REJECTED" and "look_alike_contract" in verdict.reasons


def test_without_a_trusted_deployment_any_contract_counts_but_nothing_is_verified():
    verdict = check_card(_card(LOOK_ALIKE, LOOK_ALIKE))
    assert _check(verdict, "publication").ok and not verdict.anchored


def test_commit_without_finalization_is_not_final():
    verdict = check_card(_card(TRUSTED["TaskRegistry"], TRUSTED["UpdateLedger"], final=False),
                         deployment=DEPLOYMENT)
    check = _check(verdict, "finality")
    assert check.reason == "not_final" and "no GlobalModelFinalized log" in check.detail


def test_finalization_with_fewer_committers_than_the_tasks_quorum_is_not_final():
    verdict = check_card(_card(TRUSTED["TaskRegistry"], TRUSTED["UpdateLedger"], quorum=2),
                         deployment=DEPLOYMENT)
    check = _check(verdict, "finality")
    assert check.reason == "not_final" and "the task's quorum is 2" in check.detail


def test_card_skipping_a_version_fails_finality():
    # Arrange: the card claims v2 but proves only v1
    card = _card(TRUSTED["TaskRegistry"], TRUSTED["UpdateLedger"])
    card["card"]["model"]["version"] = 2
    # Act
    check = _check(check_card(card, deployment=DEPLOYMENT), "finality")
    # Assert
    assert not check.ok and "are not v1..v2" in check.detail
