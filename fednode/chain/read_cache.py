"""Chain: remembers what a Web3Ledger read from final blocks, guarded by one block hash.

A global version that became final at block ``b`` never changes again (the contract only
accepts commits for ``latest + 1``), and neither do its commits, unless a reorg replaces block
``b``. Reorgs touch only the last few blocks, so records whose block is at least ``depth``
blocks below the head are kept per ledger, keyed by (kind, task id, version), and read again
only when the chain under them changed.

One anchor vouches for every entry: the highest block ``g`` that entries were stored under and
its hash. Block hashes chain (each header commits to its parent's hash), so while block ``g``
still has that hash, every block below it (every entry's block) is unchanged. Each read checks
the anchor with one header request and drops every entry when it moved: a reorg deeper than
``depth`` costs a full re-read, never a stale record.

A read uses the cache through a :class:`CachedRead`: ``open`` validates the anchor and reads
the hash of the guard block ``head - depth``; ``keep`` sets aside records final at or below
the guard; ``close`` stores them only if the guard block still has the hash read at ``open``,
so a reorg in the middle of a read cannot leave mixed records behind.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

from fednode.errors import FednodeValueError

__all__ = ["Anchor", "CachedRead", "FinalityCache"]

BlockHashes = Callable[[Sequence[int]], list[bytes | None]]
"""The canonical hashes of block numbers, ``None`` for a block the node does not have."""


class Anchor(NamedTuple):
    """The block (number, hash) that vouches for every cached entry."""

    number: int
    block_hash: bytes


class FinalityCache:
    """Records final at least ``depth`` blocks below the head, valid while the anchor holds.

    Args:
      depth: blocks between the head and the newest block whose records may be kept (>= 0);
        ``Web3Ledger`` uses its confirmation depth, at least 2.

    Example:
      >>> chain = {8: b"a" * 32, 9: b"b" * 32}
      >>> hashes = lambda numbers: [chain.get(n) for n in numbers]
      >>> cache = FinalityCache(depth=2)
      >>> read = cache.open(10, hashes)  # guard block 8
      >>> read.keep(("model", 1, 1), "v1", block=5)
      >>> read.close()
      >>> cache.open(11, hashes).get(("model", 1, 1))
      'v1'
      >>> chain[8] = b"x" * 32  # a reorg below the guard
      >>> cache.open(11, hashes).get(("model", 1, 1)) is None
      True
    """

    def __init__(self, depth: int) -> None:
        if depth < 0:
            raise FednodeValueError(f"depth must be >= 0, got {depth}")
        self.depth = depth
        self._entries: dict[Hashable, Any] = {}
        self._anchor: Anchor | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def anchor(self) -> Anchor | None:
        """The block vouching for the entries (``None`` while the cache is empty)."""
        return self._anchor

    def open(self, head: int, block_hashes: BlockHashes) -> CachedRead:
        """Starts a read at block ``head``: drops everything if the anchor's hash changed.

        One ``block_hashes`` request covers both the anchor and the guard block.
        """
        guard = head - self.depth
        anchor = self._anchor
        if anchor is not None and anchor.number > head:  # the chain got shorter: a reorg
            self.clear()
            anchor = None
        numbers = sorted({n for n in (guard, anchor.number if anchor else -1) if n >= 0})
        hashes = dict(zip(numbers, block_hashes(numbers), strict=True)) if numbers else {}
        if anchor is not None and hashes.get(anchor.number) != anchor.block_hash:
            self.clear()
        return CachedRead(self, guard, hashes.get(guard), block_hashes)

    def clear(self) -> None:
        """Forgets every entry and the anchor."""
        self._entries.clear()
        self._anchor = None

    def _get(self, key: Hashable) -> Any | None:
        return self._entries.get(key)

    def _store(self, entries: dict[Hashable, Any], anchor: Anchor) -> None:
        self._entries.update(entries)
        if self._anchor is None or anchor.number > self._anchor.number:
            self._anchor = anchor


class CachedRead:
    """One read's view of a :class:`FinalityCache` (see the module docstring)."""

    def __init__(
        self, cache: FinalityCache, guard: int, guard_hash: bytes | None, hashes: BlockHashes
    ) -> None:
        self.guard = guard
        self._cache = cache
        self._guard_hash = guard_hash
        self._block_hashes = hashes
        self._kept: dict[Hashable, Any] = {}

    def get(self, key: Hashable) -> Any | None:
        """The cached record under ``key``, or ``None``."""
        return self._cache._get(key)

    def keep(self, key: Hashable, record: Any, *, block: int) -> None:
        """Sets ``record`` (final at ``block``) aside for the cache if ``block`` <= the guard."""
        if self._guard_hash is not None and block <= self.guard:
            self._kept[key] = record

    def close(self) -> None:
        """Stores the kept records if the guard block still has the hash seen at ``open``."""
        if not self._kept or self._guard_hash is None:
            return
        if self._block_hashes([self.guard]) == [self._guard_hash]:
            self._cache._store(self._kept, Anchor(self.guard, self._guard_hash))
        self._kept = {}
