"""Consensus: the CometBFT engine's folder record and command lines (no process started)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fednode.errors import FednodeValueError, NetworkError
from fednode.network.bft import node
from fednode.network.bft.manager import (
    BFT_FILE,
    BftInfo,
    BftValidator,
    bft_network_create,
    is_bft_network,
    load_bft,
)
from fednode.network.bft.node import BftSpec, bft_command, geth_bft_command
from fednode.network.node import NodeSpec


def _info() -> BftInfo:
    node = BftValidator("validator-1", "/n/v1/cometbft", "ab" * 20, "key=", "CD" * 20, 1, 2, 99)
    return BftInfo("cometbft", "/bin/fednode-bft", {"cometbft": "0.38.26"}, (node,))


def test_bft_record_round_trips_through_json(tmp_path: Path):
    # Arrange
    (tmp_path / BFT_FILE).write_text(json.dumps(_info().to_json()))
    # Act
    loaded = load_bft(tmp_path)
    # Assert
    assert loaded == _info()
    assert is_bft_network(tmp_path)
    assert loaded.validators[0].rpc_url == "http://127.0.0.1:2"


def test_a_folder_without_bft_json_is_no_cometbft_network(tmp_path: Path):
    assert not is_bft_network(tmp_path)
    with pytest.raises(NetworkError, match="no CometBFT network"):
        load_bft(tmp_path)
    (tmp_path / BFT_FILE).write_text("{not json")
    with pytest.raises(NetworkError, match="cannot read"):
        load_bft(tmp_path)


def test_geth_is_driven_by_the_engine_api_only():
    # Arrange
    spec = NodeSpec(name="validator-1", datadir=Path("/d"), signer="0x" + "11" * 20,
                    network_id=1337, host="127.0.0.1", p2p_port=1, http_port=2,
                    authrpc_port=3, gas_limit=60_000_000, static_nodes=(),
                    password_file=Path("/s/validator-1.password"))
    # Act
    cmd = geth_bft_command(Path("/geth"), spec, Path("/d/jwt.hex"))
    # Assert: JWT on a loopback Engine API, no sealing, no unlocked key
    assert cmd[cmd.index("--authrpc.addr") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--authrpc.jwtsecret") + 1] == "/d/jwt.hex"
    assert not {"--mine", "--unlock", "--allow-insecure-unlock"} & set(cmd)


def test_fednode_bft_gets_its_peers_and_engine_as_flags():
    # Arrange
    spec = BftSpec(name="validator-1", home=Path("/h"), engine_url="http://127.0.0.1:3",
                   jwt_secret=Path("/d/jwt.hex"), p2p_port=4, rpc_port=5,
                   peers=("aa@127.0.0.1:6", "bb@127.0.0.1:7"))
    # Act
    cmd = bft_command(Path("/bin/fednode-bft"), spec)
    # Assert
    assert cmd[1] == "run" and cmd[cmd.index("--home") + 1] == "/h"
    assert cmd[cmd.index("--peers") + 1] == "aa@127.0.0.1:6,bb@127.0.0.1:7"
    assert cmd[cmd.index("--p2p") + 1] == "tcp://127.0.0.1:4"
    assert cmd[cmd.index("--engine") + 1] == "http://127.0.0.1:3"


def test_extra_flags_such_as_a_test_fault_end_the_command_line():
    # Arrange
    spec = BftSpec(name="validator-1", home=Path("/h"), engine_url="http://127.0.0.1:3",
                   jwt_secret=Path("/d/jwt.hex"), p2p_port=4, rpc_port=5, peers=(),
                   extra_flags=("--fault-propose-invalid",))
    # Act
    cmd = bft_command(Path("/bin/fednode-bft"), spec)
    # Assert
    assert cmd[-1] == "--fault-propose-invalid"
    assert "--fault-propose-invalid" not in bft_command(Path("/b"), BftSpec(
        name="v", home=Path("/h"), engine_url="u", jwt_secret=Path("/j"), p2p_port=4,
        rpc_port=5, peers=()))


def _fake_build(cache: Path, tag: str) -> Path:
    app = cache / f"fednode-bft-0.38.26-{tag}" / "bin" / "fednode-bft"
    app.parent.mkdir(parents=True)
    app.write_text("#!/bin/sh\n")
    app.chmod(0o755)
    return app


def test_the_build_of_this_checkouts_sources_wins_over_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Arrange: the sources' own build, then a newer build of other sources
    src = tmp_path / "bft"
    src.mkdir()
    for name, text in {"go.mod": "m", "go.sum": "s", "main.go": "a", "app_test.go": "t"}.items():
        (src / name).write_text(text)
    tag = node.bft_source_hash(src)
    assert tag == hashlib.sha256(b"msa").hexdigest()[:12]  # tests excluded, as build_bft.sh
    own = _fake_build(tmp_path / "cache", str(tag))
    _fake_build(tmp_path / "cache", "0123456789ab")
    monkeypatch.setenv("FEDNODE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FEDNODE_BFT_APP", raising=False)
    monkeypatch.setattr(node, "bft_source_hash", lambda: tag)
    # Act / Assert
    assert node.find_bft_app() == own
    monkeypatch.setattr(node, "bft_source_hash", lambda: "not-built-yet")
    assert node.find_bft_app() != own  # falls back to the newest build


def test_create_refuses_bad_sizes_and_folders_holding_something(tmp_path: Path):
    with pytest.raises(FednodeValueError, match="between 1 and 32"):
        bft_network_create(tmp_path / "a", validators=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(NetworkError, match="not empty"):
        bft_network_create(tmp_path / "b")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
