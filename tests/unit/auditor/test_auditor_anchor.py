"""Auditor: a card's header chain is anchored to a trusted block hash or the genesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clique_chain import (
    FOREIGN,
    KEYS,
    NEWCOMER,
    address,
    by_bytes,
    extend,
    genesis,
    honest_chain,
    seal,
)

from fednode.auditor.card import CARD_FORMAT
from fednode.auditor.card_check import CardCheck, CardVerdict, check_card
from fednode.auditor.clique_anchor import Anchor, check_anchored_chain
from fednode.auditor.genesis_anchor import genesis_anchor, genesis_header
from fednode.errors import AuditError

FIXTURE = json.loads((Path(__file__).parent / "clique_genesis.json").read_text())
SIGNERS = [address(k) for k in KEYS]


def _hash(headers: dict, number: int) -> bytes:
    return bytes.fromhex(headers[str(number)]["hash"][2:])


def _with_genesis(spec: dict) -> Anchor:
    return Anchor(genesis=genesis_anchor(spec))


def test_genesis_header_hashes_like_geth_does():
    # Arrange: a genesis with balances, code and storage; block 0 as geth 1.13.15 served it
    spec, served = FIXTURE["genesis"], FIXTURE["block0"]
    # Act
    header = genesis_header(spec)
    # Assert
    assert header["hash"] == served["hash"]
    assert {k: served[k] for k in header} == header


def test_genesis_anchor_reads_signers_and_epoch():
    # Act
    anchor = genesis_anchor(genesis(epoch=8))
    # Assert
    assert list(anchor.signers) == by_bytes(SIGNERS) and anchor.epoch == 8


def test_honest_chain_is_anchored_to_its_genesis():
    # Arrange
    spec, headers = honest_chain(7)
    # Act
    summary = check_anchored_chain(headers, _with_genesis(spec))
    # Assert
    assert "blocks 0..7" in summary and "7 seals after block 0" in summary


def test_honest_chain_is_anchored_to_a_later_trusted_hash_by_ancestry():
    # Arrange
    _, headers = honest_chain(7)
    # Act
    summary = check_anchored_chain(headers, Anchor(block_hashes=(_hash(headers, 7),)))
    # Assert
    assert summary == "blocks 0..7 are ancestors of trusted block 7"


def test_blocks_after_a_plain_trusted_block_need_a_signer_set():
    # Arrange
    spec, headers = honest_chain(7)
    anchor = Anchor(block_hashes=(_hash(headers, 3),))
    # Act / Assert
    with pytest.raises(AuditError, match=r"blocks 4\.\.7 come after the trusted block 3"):
        check_anchored_chain(headers, anchor)
    both = Anchor(block_hashes=(_hash(headers, 3),), genesis=genesis_anchor(spec))
    assert "trusted block(s) [0, 3]" in check_anchored_chain(headers, both)


def test_trusted_checkpoint_carries_the_signer_set():
    # Arrange: epoch 4, so block 4 lists the signers in its extraData
    _, headers = honest_chain(9, epoch=4)
    del headers["0"], headers["1"]
    # Act
    summary = check_anchored_chain(headers, Anchor(block_hashes=(_hash(headers, 4),)))
    # Assert
    assert "5 seals after block 4" in summary


def test_chain_sealed_by_a_foreign_key_is_rejected_with_the_real_genesis():
    # Arrange: real block 0, then a forger seals blocks 1.. with a key of their own
    spec, honest = honest_chain(0)
    forged = dict(honest)
    for _ in range(3):
        extend(forged, FOREIGN, [address(FOREIGN)])
    # Act / Assert
    with pytest.raises(AuditError, match=f"block 1: sealed by {address(FOREIGN)}, not an "):
        check_anchored_chain(forged, _with_genesis(spec))


def test_chain_with_a_genesis_of_the_forgers_own_is_rejected():
    # Arrange
    spec, _ = honest_chain(0)
    forged_spec = genesis([FOREIGN])
    forged = {"0": genesis_header(forged_spec)}
    extend(forged, FOREIGN, [address(FOREIGN)])
    # Act / Assert
    with pytest.raises(AuditError, match="does not start at the genesis"):
        check_anchored_chain(forged, _with_genesis(spec))
    with pytest.raises(AuditError, match="is not in the card's header chain"):
        check_anchored_chain(forged, Anchor(block_hashes=(bytes.fromhex(
            genesis_header(spec)["hash"][2:]),)))


def test_removed_header_is_rejected():
    # Arrange
    spec, headers = honest_chain(6)
    del headers["3"]
    # Act / Assert
    with pytest.raises(AuditError, match="jumps from block 2 to 4"):
        check_anchored_chain(headers, _with_genesis(spec))


def test_reordered_headers_are_rejected():
    # Arrange
    spec, headers = honest_chain(6)
    headers["3"], headers["4"] = headers["4"], headers["3"]
    # Act / Assert
    with pytest.raises(AuditError, match="header filed as block 3 is block 4"):
        check_anchored_chain(headers, _with_genesis(spec))


def test_resealed_header_breaks_the_parent_link():
    # Arrange: the signer of block 3 reseals it with other contents
    spec, headers = honest_chain(6)
    ordered = by_bytes(SIGNERS)
    key = {address(k): k for k in KEYS}[ordered[3 % 3]]
    headers["3"] = seal({**headers["3"], "gasUsed": "0x1"}, key)
    # Act / Assert
    with pytest.raises(AuditError, match="block 4: parentHash does not link to block 3"):
        check_anchored_chain(headers, _with_genesis(spec))


def test_signer_added_by_a_majority_vote_may_seal():
    # Arrange: two of three signers vote the newcomer in (blocks 1, 2), then it seals block 3
    spec, headers = honest_chain(0)
    ordered = by_bytes(SIGNERS)
    key_of = {address(k): k for k in KEYS}
    newcomer = address(NEWCOMER)
    for number in (1, 2):
        extend(headers, key_of[ordered[number]], SIGNERS, vote=(newcomer, True))
    # Act
    extend(headers, NEWCOMER, [*SIGNERS, newcomer])
    summary = check_anchored_chain(headers, _with_genesis(spec))
    # Assert
    assert "(1 signer changes by vote)" in summary


def test_signer_with_only_one_vote_may_not_seal():
    # Arrange
    spec, headers = honest_chain(0)
    ordered = by_bytes(SIGNERS)
    extend(headers, {address(k): k for k in KEYS}[ordered[1]], SIGNERS,
           vote=(address(NEWCOMER), True))
    extend(headers, NEWCOMER, [*SIGNERS, address(NEWCOMER)])
    # Act / Assert
    with pytest.raises(AuditError, match="block 2: sealed by .* not an authorised signer"):
        check_anchored_chain(headers, _with_genesis(spec))


def test_checkpoint_listing_a_foreign_signer_is_rejected():
    # Arrange: epoch 2; block 2 is a checkpoint that claims the foreign key is a signer
    spec, headers = honest_chain(1, epoch=2)
    key = {address(k): k for k in KEYS}[by_bytes(SIGNERS)[2]]
    extend(headers, key, SIGNERS, checkpoint_signers=[*SIGNERS[:2], address(FOREIGN)])
    # Act / Assert
    with pytest.raises(AuditError, match="block 2: checkpoint lists 3 signers that are not"):
        check_anchored_chain(headers, _with_genesis(spec))


def test_wrong_difficulty_and_recent_signer_are_rejected():
    # Arrange
    spec, headers = honest_chain(1)
    key_of = {address(k): k for k in KEYS}
    ordered = by_bytes(SIGNERS)
    bad_difficulty = extend(dict(headers), key_of[ordered[2]], SIGNERS, difficulty=1)
    twice = extend(dict(headers), key_of[ordered[1]], SIGNERS)
    # Act / Assert
    with pytest.raises(AuditError, match="block 2: difficulty 1, Clique wants 2"):
        check_anchored_chain(bad_difficulty, _with_genesis(spec))
    with pytest.raises(AuditError, match="sealed one of the last 1 blocks"):
        check_anchored_chain(twice, _with_genesis(spec))


def test_no_anchor_is_refused():
    with pytest.raises(AuditError, match="no trust anchor"):
        check_anchored_chain(honest_chain(1)[1], Anchor())


def test_card_status_is_unanchored_without_an_anchor():
    # Arrange
    passed = (CardCheck("headers", True, ""),)
    # Act / Assert
    assert CardVerdict("0xA", "0xD", passed).status == "UNANCHORED"
    assert not CardVerdict("0xA", "0xD", passed).ok
    assert CardVerdict("0xA", "0xD", passed, anchored=True).status == "VERIFIED"
    failed = (*passed, CardCheck("anchor", False, "x"))
    assert CardVerdict("0xA", "0xD", failed, anchored=True).to_dict()["status"] == "REJECTED"


def test_check_card_runs_the_anchor_check_only_when_anchored():
    # Arrange: a card with nothing but headers (its other checks fail)
    spec, headers = honest_chain(3)
    card = {"card": {"format": CARD_FORMAT, "headers": headers, "model": {"digest": "0x00"}},
            "signature": {"signer": "0x" + "00" * 20}}
    # Act
    anchored = check_card(card, anchor=_with_genesis(spec))
    plain = check_card(card)
    # Assert
    [anchor_check] = [c for c in anchored.checks if c.name == "anchor"]
    assert anchor_check.ok and anchored.status == "REJECTED"
    assert "anchor" not in {c.name for c in plain.checks}
