"""Chain: FinalityCache keeps records below the guard block and drops them when a hash moves."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fednode.chain.read_cache import Anchor, FinalityCache
from fednode.errors import FednodeValueError


class FakeChain:
    """Block number -> hash, with a log of every hash request."""

    def __init__(self, height: int) -> None:
        self.hashes = {n: bytes([n % 256]) * 32 for n in range(height + 1)}
        self.requests: list[list[int]] = []

    def block_hashes(self, numbers: Sequence[int]) -> list[bytes | None]:
        self.requests.append(list(numbers))
        return [self.hashes.get(n) for n in numbers]

    def reorg(self, from_block: int, height: int) -> None:
        """Replaces every block from ``from_block`` on; the chain now ends at ``height``."""
        self.hashes = {n: h for n, h in self.hashes.items() if n < from_block}
        replaced = range(from_block, height + 1)
        self.hashes.update({n: b"\xff" * 31 + bytes([n % 256]) for n in replaced})


def _fill(cache: FinalityCache, chain: FakeChain, head: int, records: dict[int, int]) -> None:
    read = cache.open(head, chain.block_hashes)
    for version, block in records.items():
        read.keep(("model", 1, version), f"v{version}", block=block)
    read.close()


def test_keeps_only_records_at_or_below_the_guard_block():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=3)
    # Act: head 20, guard 17
    _fill(cache, chain, 20, {1: 10, 2: 17, 3: 18})
    # Assert
    read = cache.open(20, chain.block_hashes)
    assert [read.get(("model", 1, v)) for v in (1, 2, 3)] == ["v1", "v2", None]
    assert cache.anchor == Anchor(17, chain.hashes[17])


def test_validating_the_anchor_and_the_guard_takes_one_request():
    # Arrange
    chain, cache = FakeChain(30), FinalityCache(depth=2)
    _fill(cache, chain, 20, {1: 10})
    chain.requests.clear()
    # Act
    read = cache.open(30, chain.block_hashes)
    read.close()  # nothing kept: no second request
    # Assert
    assert chain.requests == [[18, 28]]
    assert read.get(("model", 1, 1)) == "v1"


def test_a_reorg_below_the_anchor_drops_every_record():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=2)
    _fill(cache, chain, 20, {1: 5, 2: 12})
    # Act: blocks from 12 on are replaced, deeper than the guard of 2
    chain.reorg(12, 25)
    read = cache.open(25, chain.block_hashes)
    # Assert
    assert read.get(("model", 1, 1)) is None and read.get(("model", 1, 2)) is None
    assert len(cache) == 0 and cache.anchor is None


def test_a_reorg_above_the_anchor_keeps_the_records():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=2)
    _fill(cache, chain, 20, {1: 5})  # anchor 18
    # Act
    chain.reorg(19, 22)
    # Assert
    assert cache.open(22, chain.block_hashes).get(("model", 1, 1)) == "v1"


def test_a_chain_shorter_than_the_anchor_drops_every_record():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=1)
    _fill(cache, chain, 20, {1: 5})  # anchor 19
    # Act: the node went back to block 10 (evm_revert, or a node that lost its head)
    chain.reorg(11, 10)
    read = cache.open(10, chain.block_hashes)
    # Assert
    assert read.get(("model", 1, 1)) is None and len(cache) == 0


def test_records_read_while_the_guard_block_changed_are_not_stored():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=2)
    read = cache.open(20, chain.block_hashes)
    read.keep(("model", 1, 1), "read from the old chain", block=10)
    # Act: a deep reorg lands between open and close
    chain.reorg(9, 21)
    read.close()
    # Assert
    assert len(cache) == 0 and cache.anchor is None


def test_a_read_below_depth_blocks_keeps_nothing():
    # Arrange
    chain, cache = FakeChain(1), FinalityCache(depth=2)
    # Act: head 1, guard -1
    _fill(cache, chain, 1, {1: 0})
    # Assert
    assert len(cache) == 0


def test_a_missing_block_reads_as_a_moved_anchor():
    # Arrange
    chain, cache = FakeChain(20), FinalityCache(depth=2)
    _fill(cache, chain, 20, {1: 5})
    # Act: the node answers None for the anchor (hash lookup failed mid-reorg)
    del chain.hashes[18]
    read = cache.open(20, chain.block_hashes)
    # Assert
    assert read.get(("model", 1, 1)) is None


def test_refuses_a_negative_depth():
    with pytest.raises(FednodeValueError, match="depth"):
        FinalityCache(depth=-1)
