"""Auditor: anchors a provenance card's Clique header chain to what the auditor trusts (pure).

A card's headers prove nothing on their own: anyone can seal a whole chain with keys of their
own. :func:`check_anchored_chain` ties them to an :class:`Anchor`, a block hash the auditor got
from their own node or a published checkpoint, and/or the consortium's genesis file:

- every header must hash to itself and link to the one before by ``parentHash``, and each
  trusted hash must be one of them; every header up to the last trusted one is then fixed by
  the hash chain alone;
- every header after the signer-set anchor (the genesis, or a trusted checkpoint block whose
  ``extraData`` lists the signers) is replayed through geth 1.13's Clique rules
  (``consensus/clique``: snapshot votes, checkpoint signer lists, recent-signer limit, in-turn
  difficulty), so it must be sealed by a signer the anchored set authorised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from fednode.auditor.genesis_anchor import EMPTY_UNCLES, GenesisAnchor
from fednode.auditor.proofs import clique_signer, header_hash
from fednode.errors import AuditError

__all__ = ["Anchor", "check_anchored_chain"]

_VANITY, _SEAL = 32, 65
_AUTH, _DROP = "0x" + "ff" * 8, "0x" + "00" * 8
_ZERO = to_checksum_address("0x" + "00" * 20)


@dataclass(frozen=True)
class Anchor:
    """What the auditor trusts: block hashes (32 bytes each) and/or the genesis."""

    block_hashes: tuple[bytes, ...] = ()
    genesis: GenesisAnchor | None = None

    @property
    def given(self) -> bool:
        """Whether there is anything to anchor to."""
        return bool(self.block_hashes) or self.genesis is not None


def _extra_signers(header: Mapping[str, Any], number: int) -> list[str]:
    extra = bytes.fromhex(header["extraData"].removeprefix("0x"))
    body = extra[_VANITY:len(extra) - _SEAL]
    if len(extra) < _VANITY + _SEAL or len(body) % 20:
        raise AuditError(f"block {number}: malformed Clique extraData ({len(extra)} bytes)")
    return [to_checksum_address(body[i:i + 20]) for i in range(0, len(body), 20)]


def _byte_order(signers: set[str]) -> list[str]:
    return sorted(signers, key=lambda a: bytes.fromhex(a[2:]))


@dataclass
class _Snapshot:
    """geth's ``clique.Snapshot`` without the caches: signers, votes, tally, recent sealers."""

    signers: set[str]
    votes: list[tuple[str, str, bool]] = field(default_factory=list)
    tally: dict[str, list] = field(default_factory=dict)
    recents: dict[int, str] = field(default_factory=dict)
    changes: int = 0

    def seal(self, number: int, header: Mapping[str, Any], checkpoint: bool) -> str:
        """Checks one header's seal against the snapshot of its parent, then applies it."""
        signer = clique_signer(header)
        _check_layout(number, header, checkpoint, self.signers)
        in_turn = _byte_order(self.signers).index(signer) if signer in self.signers else -1
        wanted = 2 if number % len(self.signers) == in_turn else 1
        self._apply(number, signer, to_checksum_address(header["miner"]), header["nonce"],
                    checkpoint)
        if int(header["difficulty"], 16) != wanted:
            raise AuditError(f"block {number}: difficulty {int(header['difficulty'], 16)}, "
                             f"Clique wants {wanted} for {signer}")
        return signer

    def _apply(self, number: int, signer: str, target: str, nonce: str, checkpoint: bool) -> None:
        if checkpoint:
            self.votes, self.tally = [], {}
        self._forget_oldest(number)
        if signer not in self.signers:
            raise AuditError(f"block {number}: sealed by {signer}, not an authorised signer "
                             f"of the anchored set ({len(self.signers)} signers)")
        if signer in self.recents.values():
            raise AuditError(f"block {number}: {signer} sealed one of the last "
                             f"{len(self.signers) // 2} blocks (Clique forbids it)")
        self.recents[number] = signer
        for index, (voter, address, authorize) in enumerate(self.votes):
            if voter == signer and address == target:
                self._uncast(address, authorize)
                del self.votes[index]
                break
        authorize = nonce.lower() == _AUTH
        if self._cast(target, authorize):
            self.votes.append((signer, target, authorize))
        tally = self.tally.get(target)
        if tally and tally[1] > len(self.signers) // 2:
            self._execute(number, target, tally[0])

    def _execute(self, number: int, target: str, authorize: bool) -> None:
        if authorize:
            self.signers.add(target)
        else:
            self.signers.discard(target)
            self._forget_oldest(number)
            for _, address, vote in [v for v in self.votes if v[0] == target]:
                self._uncast(address, vote)
            self.votes = [v for v in self.votes if v[0] != target]
        self.votes = [v for v in self.votes if v[1] != target]
        self.tally.pop(target, None)
        self.changes += 1

    def _forget_oldest(self, number: int) -> None:
        limit = len(self.signers) // 2 + 1
        if number >= limit:
            self.recents.pop(number - limit, None)

    def _cast(self, address: str, authorize: bool) -> bool:
        if (address in self.signers) == authorize:
            return False
        tally = self.tally.setdefault(address, [authorize, 0])
        tally[1] += 1
        return True

    def _uncast(self, address: str, authorize: bool) -> None:
        tally = self.tally.get(address)
        if tally is None or tally[0] != authorize:
            return
        tally[1] -= 1
        if tally[1] == 0:
            del self.tally[address]


def _check_layout(number: int, header: Mapping[str, Any], checkpoint: bool,
                  signers: set[str]) -> None:
    """geth's ``verifyHeader`` / ``verifyCascadingFields`` rules that need no parent state."""
    listed = _extra_signers(header, number)
    if checkpoint and to_checksum_address(header["miner"]) != _ZERO:
        raise AuditError(f"block {number}: checkpoint block votes for {header['miner']}")
    if header["nonce"].lower() not in ((_DROP,) if checkpoint else (_AUTH, _DROP)):
        raise AuditError(f"block {number}: invalid Clique vote nonce {header['nonce']}")
    if not checkpoint and listed:
        raise AuditError(f"block {number}: signer list outside a checkpoint block")
    if checkpoint and listed != _byte_order(signers):
        raise AuditError(f"block {number}: checkpoint lists {len(listed)} signers that are not "
                         f"the {len(signers)} the votes so far authorised")
    if int(header["mixHash"], 16) != 0 or header["sha3Uncles"] != "0x" + EMPTY_UNCLES.hex():
        raise AuditError(f"block {number}: non-zero mix digest or uncles in a Clique block")


def _linked(headers: Mapping[str, Mapping[str, Any]]) -> list[tuple[int, Mapping, bytes]]:
    """The headers in order, each hashing to itself and linking to the previous one."""
    chain: list[tuple[int, Mapping, bytes]] = []
    for number in sorted(int(n) for n in headers):
        header = headers[str(number)]
        if int(header["number"], 16) != number:
            raise AuditError(f"header filed as block {number} is block {int(header['number'], 16)}")
        if chain and number != chain[-1][0] + 1:
            raise AuditError(f"the header chain jumps from block {chain[-1][0]} to {number}")
        if chain and header["parentHash"] != "0x" + chain[-1][2].hex():
            raise AuditError(f"block {number}: parentHash does not link to block {number - 1}")
        chain.append((number, header, header_hash(header)))
    if not chain:
        raise AuditError("the card carries no block headers")
    return chain


def _signer_anchor(chain: Sequence[tuple[int, Mapping, bytes]], trusted: list[int],
                   anchor: Anchor) -> tuple[int, set[str], int | None] | None:
    """Index, signer set and epoch to replay from: the genesis, else a trusted checkpoint."""
    if anchor.genesis is not None:
        return 0, set(anchor.genesis.signers), anchor.genesis.epoch
    for index in sorted(trusted):
        listed = _extra_signers(chain[index][1], chain[index][0])
        if listed:
            return index, set(listed), None
    return None


def check_anchored_chain(headers: Mapping[str, Mapping[str, Any]], anchor: Anchor) -> str:
    """Checks that a card's headers link to ``anchor`` and are sealed by its signer set.

    Returns:
      A one-line summary of what was anchored.

    Raises:
      AuditError: no anchor, a header chain that is not linked, a trusted hash that is not in
        it, a header after the anchor that the anchored signers did not seal by Clique's rules,
        or headers after the last trusted block with no signer set to check them against.

    Example:
      >>> check_anchored_chain({}, Anchor(block_hashes=(b"\\x00" * 32,)))
      Traceback (most recent call last):
      fednode.errors.AuditError: the card carries no block headers
    """
    if not anchor.given:
        raise AuditError("no trust anchor given (a trusted block hash or the genesis)")
    chain = _linked(headers)
    index_of = {block_hash: i for i, (_, _, block_hash) in enumerate(chain)}
    first, last = chain[0][0], chain[-1][0]
    trusted = []
    wanted = list(anchor.block_hashes)
    if anchor.genesis is not None:
        if chain[0][0] != 0 or chain[0][2] != anchor.genesis.block_hash:
            raise AuditError(f"the card's header chain (blocks {first}..{last}) does not start "
                             f"at the genesis 0x{anchor.genesis.block_hash.hex()}")
        wanted.append(anchor.genesis.block_hash)
    for block_hash in wanted:
        if block_hash not in index_of:
            raise AuditError(f"trusted block 0x{block_hash.hex()} is not in the card's header "
                             f"chain (blocks {first}..{last})")
        trusted.append(index_of[block_hash])
    top = max(trusted)
    start = _signer_anchor(chain, trusted, anchor)
    if start is None:
        if top < len(chain) - 1:
            raise AuditError(
                f"blocks {chain[top][0] + 1}..{last} come after the trusted block "
                f"{chain[top][0]}, and no signer set is anchored to check their seals: pass "
                f"--genesis, a trusted checkpoint block, or a trusted block >= {last}")
        return f"blocks {first}..{last} are ancestors of trusted block {chain[top][0]}"
    index, signers, epoch = start
    snapshot = _Snapshot(signers)
    for number, header, _ in chain[index + 1:]:
        checkpoint = (number % epoch == 0) if epoch else bool(_extra_signers(header, number))
        snapshot.seal(number, header, checkpoint)
    return (f"blocks {first}..{last} link to trusted block(s) "
            f"{sorted(chain[i][0] for i in trusted)}; {len(chain) - index - 1} seals after "
            f"block {chain[index][0]} follow Clique's rules for its {len(signers)} signers "
            f"({snapshot.changes} signer changes by vote)")
