"""Chain: shared fixtures for tests that run on real geth 1.13 Clique validators.

``geth_network`` starts one 4-validator consortium per test session (about 5 s on two cores)
and always stops it again, even when the session fails. Its ``NetworkInfo`` gives the JSON-RPC
URLs (``info.http_urls``), the chain id and the prefunded consortium accounts with their key
files (``info.key_file("edge-1")``; names: admin, publisher, aggregator, auditor, edge-1..4).
The nodes are tied to the test process, so a killed test run does not leave geth behind.
Tests are skipped when no geth 1.13 binary is built (``scripts/build_geth.sh``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fednode.errors import NetworkError
from fednode.network import NetworkInfo, find_geth, network_down, network_up
from fednode.network.layout import checked_geth_version

_log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def geth_binary() -> Path:
    """The geth 1.13 binary, or a skip that says how to build it."""
    try:
        geth = find_geth()
        checked_geth_version(geth)
    except NetworkError as exc:
        if os.environ.get("FEDNODE_REQUIRE_GETH"):
            pytest.fail(f"FEDNODE_REQUIRE_GETH is set but there is no usable geth: {exc}")
        pytest.skip(f"no usable geth: {exc}")
    return geth


@pytest.fixture(scope="session")
def geth_network(
    geth_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetworkInfo]:
    """A running 4-validator Clique consortium with the default consortium accounts."""
    del geth_binary  # only here to skip without geth
    directory = tmp_path_factory.mktemp("geth-network")
    info = network_up(directory, validators=4, timeout=120.0, tie_to_caller=True)
    try:
        yield info
    finally:
        for result in network_down(directory):
            if result.outcome == "killed":
                _log.warning("%s needed SIGKILL at teardown", result.name)
