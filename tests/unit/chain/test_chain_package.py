"""Chain: the package re-exports its public names with a sorted ``__all__``."""

from __future__ import annotations

import fednode.chain as chain


def test_chain_package_all_is_sorted_and_importable():
    assert chain.__all__ == sorted(chain.__all__)
    assert all(hasattr(chain, name) for name in chain.__all__)
