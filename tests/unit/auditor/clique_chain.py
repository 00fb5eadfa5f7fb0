"""Auditor: fake Clique header chains sealed with eth-keys keys, for the anchor unit tests.

Each header is a raw JSON-RPC header (hex strings) whose seal is a real secp256k1 signature
over the Clique seal hash, so ``fednode.auditor.proofs.clique_signer`` recovers the key's
address. The test states the signer set in force; :func:`extend` sets the in-turn difficulty.
"""

from __future__ import annotations

import rlp
from eth_keys import keys
from eth_utils import keccak

from fednode.auditor.genesis_anchor import genesis_header
from fednode.auditor.proofs import _header_fields, header_hash
from fednode.network.genesis import build_clique_genesis

KEYS = tuple(keys.PrivateKey(keccak(text=f"clique-signer-{i}")) for i in range(3))
FOREIGN = keys.PrivateKey(keccak(text="someone-else"))
NEWCOMER = keys.PrivateKey(keccak(text="clique-signer-new"))
AUTH, DROP = "0x" + "ff" * 8, "0x" + "00" * 8


def address(key: keys.PrivateKey) -> str:
    return key.public_key.to_checksum_address()


def by_bytes(addresses) -> list[str]:
    return sorted(addresses, key=lambda a: bytes.fromhex(a[2:]))


def genesis(signer_keys=KEYS, *, epoch: int = 30_000) -> dict:
    return build_clique_genesis([address(k) for k in signer_keys], chain_id=4321, epoch=epoch,
                                alloc={address(signer_keys[0]): 10**18})


def seal(header: dict, key: keys.PrivateKey) -> dict:
    """``header`` with its seal replaced by ``key``'s and its hash recomputed."""
    fields = _header_fields(header)
    fields[12] = fields[12][:-65]
    signature = key.sign_msg_hash(keccak(rlp.encode(fields)))
    sealed = {**header, "extraData": header["extraData"][: -130] + signature.to_bytes().hex()}
    return {**sealed, "hash": "0x" + header_hash(sealed).hex()}


def extend(headers: dict, key: keys.PrivateKey, signers, *, vote: tuple[str, bool] | None = None,
           checkpoint_signers=None, difficulty: int | None = None) -> dict:
    """Appends one block sealed by ``key``; ``signers`` is the set in force at its parent."""
    number = max(int(n) for n in headers) + 1
    parent = headers[str(number - 1)]
    listed = "".join(a[2:].lower() for a in by_bytes(checkpoint_signers or []))
    ordered = by_bytes(signers)
    in_turn = address(key) in ordered and ordered.index(address(key)) == number % len(ordered)
    header = {
        **{k: parent[k] for k in ("sha3Uncles", "stateRoot", "transactionsRoot", "receiptsRoot",
                                  "logsBloom", "gasLimit", "mixHash", "baseFeePerGas")},
        "parentHash": parent["hash"], "number": hex(number), "gasUsed": "0x0",
        "timestamp": hex(int(parent["timestamp"], 16) + 1),
        "miner": vote[0] if vote else "0x" + "00" * 20,
        "nonce": (AUTH if vote[1] else DROP) if vote else DROP,
        "difficulty": hex(difficulty if difficulty is not None else 2 if in_turn else 1),
        "extraData": "0x" + "00" * 32 + listed + "00" * 65,
    }
    headers[str(number)] = seal(header, key)
    return headers


def honest_chain(length: int, *, epoch: int = 30_000) -> tuple[dict, dict]:
    """(genesis file, headers 0..length) sealed round-robin by the in-turn signer of KEYS."""
    spec = genesis(epoch=epoch)
    headers = {"0": genesis_header(spec)}
    signers = [address(k) for k in KEYS]
    ordered = by_bytes(signers)
    key_of = {address(k): k for k in KEYS}
    for number in range(1, length + 1):
        checkpoint = signers if number % epoch == 0 else None
        extend(headers, key_of[ordered[number % len(ordered)]], signers,
               checkpoint_signers=checkpoint)
    return spec, headers
