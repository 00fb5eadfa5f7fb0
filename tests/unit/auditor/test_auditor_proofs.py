"""Auditor: offline proof helpers on a real Clique block captured from geth 1.13."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fednode.auditor
from fednode.auditor.proofs import (
    clique_signer,
    encode_receipt,
    header_hash,
    prove_receipt,
    receipt_logs,
    verify_receipt_proof,
)
from fednode.errors import AuditError

BLOCK = json.loads((Path(__file__).parent / "clique_block.json").read_text())


def test_header_rlp_hashes_to_the_block_hash():
    assert "0x" + header_hash(BLOCK["header"]).hex() == BLOCK["header"]["hash"]


def test_clique_seal_recovers_the_sealer():
    assert clique_signer(BLOCK["header"]) == BLOCK["sealer"]


def test_altered_header_no_longer_hashes_or_seals_the_same():
    # Arrange
    header = {**BLOCK["header"], "gasUsed": hex(int(BLOCK["header"]["gasUsed"], 16) + 1)}
    # Act / Assert
    assert "0x" + header_hash(header).hex() != BLOCK["header"]["hash"]
    assert clique_signer(header) != BLOCK["sealer"]


def test_receipt_proof_roundtrips_against_the_receipts_root():
    # Arrange
    receipts = BLOCK["receipts"]
    root = bytes.fromhex(BLOCK["header"]["receiptsRoot"][2:])
    # Act
    built_root, proof = prove_receipt(receipts, 0)
    proven = verify_receipt_proof(root, 0, proof)
    # Assert
    assert built_root == root
    assert proven == encode_receipt(receipts[0])
    assert receipt_logs(proven)[0][0].lower() == receipts[0]["logs"][0]["address"].lower()


def test_receipt_proof_against_another_root_fails():
    # Arrange
    _, proof = prove_receipt(BLOCK["receipts"], 0)
    # Act / Assert
    with pytest.raises(AuditError):
        verify_receipt_proof(b"\x11" * 32, 0, proof)


def test_auditor_all_is_sorted():
    assert fednode.auditor.__all__ == sorted(fednode.auditor.__all__)
