"""Chain: ``join_network`` failure paths with a stand-in geth (no real geth, no chain).

The stand-in answers ``geth version`` and ``geth init`` like geth 1.13 and then, as the node,
does what ``FAKE_GETH_MODE`` says: dies by SIGKILL without a word, prints a fatal error, or
hangs without serving JSON-RPC. Every failure must name how geth ended, quote its log file and
leave no geth behind.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fednode.errors import NetworkError
from fednode.network import build_clique_genesis
from fednode.network import keys as keyring
from fednode.network.join import join_network
from fednode.network.node import is_running
from tests.chainkit import free_port

PEER = "enode://" + "ab" * 64 + "@127.0.0.1:30399"
FAKE_GETH = """#!/bin/sh
[ "$1" = version ] && { echo "Version: 1.13.15-stable"; exit 0; }
prev=""; datadir=""
for arg in "$@"; do
    [ "$prev" = "--datadir" ] && datadir="$arg"
    [ "$arg" = init ] && { mkdir -p "$datadir/geth/chaindata"; exit 0; }
    prev="$arg"
done
case "$FAKE_GETH_MODE" in
    silent-kill) kill -9 $$ ;;
    fatal) echo "Fatal: Error starting protocol stack: boom" >&2; exit 1 ;;
    hang) exec "$FAKE_GETH_PYTHON" -c "import time; time.sleep(300)" --datadir "$datadir" ;;
esac
"""


@pytest.fixture
def fake_geth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    geth = tmp_path / "bin" / "geth"
    geth.parent.mkdir()
    geth.write_text(FAKE_GETH)
    geth.chmod(0o755)
    monkeypatch.setenv("FEDNODE_GETH", str(geth))
    monkeypatch.setenv("FAKE_GETH_PYTHON", sys.executable)
    return geth


@pytest.fixture
def genesis(tmp_path: Path) -> Path:
    signer = keyring.address_of(keyring.generate_private_key())
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(build_clique_genesis([signer], chain_id=7707, period=1)))
    return path


def _join(directory: Path, genesis: Path, *, timeout: float = 10.0) -> None:
    ports = {"p2p_port": free_port(), "http_port": free_port(), "authrpc_port": free_port()}
    join_network(directory, genesis, [PEER], timeout=timeout, **ports)


@pytest.mark.parametrize(
    ("mode", "ended", "said"),
    [
        ("silent-kill", "was killed by SIGKILL", None),
        ("fatal", "exited with code 1", "Fatal: Error starting protocol stack: boom"),
    ],
)
def test_geth_that_exits_while_joining_is_reported_with_status_and_log(
    fake_geth: Path, genesis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    mode: str, ended: str, said: str | None,
) -> None:  # fmt: skip
    # Arrange
    monkeypatch.setenv("FAKE_GETH_MODE", mode)
    log = tmp_path / "op" / "node" / "node.log"

    # Act
    with pytest.raises(NetworkError) as failure:
        _join(tmp_path / "op", genesis)

    # Assert
    message = str(failure.value)
    assert message.startswith("geth exited while joining") and f"; geth {ended}." in message
    assert str(log) in message and "--- fednode: starting validator" in message
    assert said is None or said in message
    assert f"{ended} (geth exited while joining)" in log.read_text()


def test_geth_that_reaches_no_peer_is_stopped_so_a_second_join_can_start(
    fake_geth: Path, genesis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    monkeypatch.setenv("FAKE_GETH_MODE", "hang")

    # Act
    with pytest.raises(NetworkError) as failure:
        _join(tmp_path / "op", genesis, timeout=1.0)

    # Assert
    pid = int((tmp_path / "op" / "node" / "geth.pid").read_text())
    assert "no peer reached" in str(failure.value)
    assert "geth was killed by SIGTERM" in str(failure.value)
    assert not is_running(pid, tmp_path / "op" / "node")


def test_join_refuses_a_datadir_that_a_geth_still_runs_on(
    fake_geth: Path, genesis: Path, tmp_path: Path
) -> None:
    # Arrange: a process whose command line names the datadir, as a running geth's does
    datadir = tmp_path / "op" / "node"
    datadir.mkdir(parents=True)
    code = "import time; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, "--datadir", str(datadir)])
    (datadir / "geth.pid").write_text(f"{holder.pid}\n")

    # Act / Assert
    try:
        with pytest.raises(NetworkError, match=f"geth \\(pid {holder.pid}\\) still runs on"):
            _join(tmp_path / "op", genesis)
    finally:
        holder.kill()
        holder.wait()


def test_join_refuses_a_port_that_is_taken(fake_geth: Path, genesis: Path, tmp_path: Path) -> None:
    # Arrange
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # Act / Assert
        with pytest.raises(NetworkError, match=f"cannot listen on 127.0.0.1:{port}"):
            join_network(tmp_path / "op", genesis, [PEER], http_port=port,
                         p2p_port=free_port(), authrpc_port=free_port())  # fmt: skip
    assert not (tmp_path / "op" / "node" / "geth.pid").exists()  # geth was never started
