"""Chain: shared fixtures for tests that run on real geth 1.13 Clique validators.

``geth_network`` starts one 4-validator consortium per test session (about 5 s on two cores)
and always stops it again, even when the session fails. Its ``NetworkInfo`` gives the JSON-RPC
URLs (``info.http_urls``), the chain id and the prefunded consortium accounts with their key
files (``info.key_file("edge-1")``; names: admin, publisher, aggregator, auditor, edge-1..4).
The nodes are tied to the test process, so a killed test run does not leave geth behind.
Tests are skipped when no geth 1.13 binary is built (``scripts/build_geth.sh``). The start-up
and teardown live in ``tests.chainkit``, shared with the contract tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fednode.network import NetworkInfo
from tests.chainkit import require_geth, running_geth_network


@pytest.fixture(scope="session")
def geth_binary() -> Path:
    """The geth 1.13 binary, or a skip that says how to build it."""
    return require_geth()


@pytest.fixture(scope="session")
def geth_network(
    geth_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetworkInfo]:
    """A running 4-validator Clique consortium with the default consortium accounts."""
    del geth_binary  # only here to skip without geth
    with running_geth_network(tmp_path_factory.mktemp("geth-network")) as info:
        yield info
