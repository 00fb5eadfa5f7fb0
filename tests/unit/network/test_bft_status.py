"""Consensus: the shape of ``fednode network status --json`` on a CometBFT folder (no process)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from fednode.cli import bft_cmd
from fednode.network.bft.manager import BftInfo, BftValidator
from fednode.network.bft.status import build_status
from fednode.network.info import NetworkInfo, ValidatorInfo

_VERSIONS = {"cometbft": "0.38.26", "go_ethereum": "1.17.10-stable", "fednode_bft": "0.1.0"}


def _network(count: int = 4) -> tuple[NetworkInfo, BftInfo]:
    execution = tuple(
        ValidatorInfo(name=f"validator-{i}", signer="0x" + f"{i:02x}" * 20,
                      enode=f"enode://{'ab' * 64}@127.0.0.1:{30300 + i}",
                      http_url=f"http://127.0.0.1:{8540 + i}", p2p_port=30300 + i,
                      http_port=8540 + i, authrpc_port=8550 + i, datadir=f"/n/validator-{i}",
                      pid=100 + i)
        for i in range(1, count + 1)
    )  # fmt: skip
    consensus = tuple(
        BftValidator(name=f"validator-{i}", home=f"/n/validator-{i}/cometbft",
                     node_id=f"{i:02x}" * 20, pub_key=f"key{i}=", address=f"{i:02X}" * 20,
                     p2p_port=26650 + i, rpc_port=26660 + i, pid=200 + i)
        for i in range(1, count + 1)
    )  # fmt: skip
    info = NetworkInfo(dir="/n", chain_id=1337, period=1, epoch=0, gas_limit=60_000_000,
                       genesis="/n/genesis.json", geth="/cache/geth-1.17.10/bin/geth",
                       geth_version="1.17.10-stable", validators=execution)
    return info, BftInfo("cometbft", "/cache/fednode-bft", _VERSIONS, consensus)


class FakeProbe:
    """An in-memory network: ``dead`` holds the PIDs that are not running; heights per port."""

    def __init__(self, info: NetworkInfo, bft: BftInfo, *, dead: set[int] | None = None):
        self.dead = dead or set()
        self.bft = bft
        self.height = {c.rpc_url: 40 + i for i, c in enumerate(bft.validators)}
        self.finalized = {e.http_url: 40 + i for i, e in enumerate(info.validators)}

    def alive(self, pid: int | None, marker: str) -> bool:
        del marker
        return pid is not None and pid not in self.dead

    def comet(self, rpc_url: str, path: str) -> dict[str, Any] | None:
        me = next(c for c in self.bft.validators if c.rpc_url == rpc_url)
        others = [c for c in self.bft.validators if c is not me and c.pid not in self.dead]
        if path == "status":
            return {"node_info": {"id": me.node_id},
                    "sync_info": {"latest_block_height": str(self.height[rpc_url]),
                                  "catching_up": False},
                    "validator_info": {"address": me.address, "voting_power": "10"}}
        if path == "net_info":
            return {"n_peers": str(len(others)),
                    "peers": [{"node_info": {"id": c.node_id}} for c in others]}
        if path.startswith("validators"):
            return {"block_height": str(self.height[rpc_url]),
                    "validators": [{"address": c.address, "pub_key": {"value": c.pub_key},
                                    "voting_power": "10", "proposer_priority": "0"}
                                   for c in self.bft.validators]}
        raise AssertionError(f"unexpected CometBFT path {path}")

    def block_number(self, http_url: str, tag: str) -> int | None:
        return self.finalized[http_url] + (1 if tag == "latest" else 0)


def test_status_names_engine_versions_height_validator_set_and_every_pid():
    # Arrange
    info, bft = _network()
    # Act
    status = build_status(info, bft, FakeProbe(info, bft))
    # Assert
    assert status["engine"] == "cometbft" and status["chain_id"] == 1337
    assert status["versions"] == {"geth": "1.17.10-stable", **_VERSIONS}
    assert status["binaries"] == {"geth": info.geth, "fednode_bft": bft.app}
    assert status["height"] == 43 and status["finalized"] == 43
    members = status["validator_set"]["validators"]
    assert [m["name"] for m in members] == [f"validator-{i}" for i in range(1, 5)]
    assert [m["voting_power"] for m in members] == [10] * 4
    assert status["validator_set"]["total_voting_power"] == 40
    assert sorted(p["pid"] for p in status["processes"]) == [101, 102, 103, 104,
                                                             201, 202, 203, 204]
    assert {(p["role"], p["alive"]) for p in status["processes"]} == {("geth", True),
                                                                      ("cometbft", True)}
    first = status["validators"][0]
    assert first["peers"] == 3 and len(first["peer_ids"]) == 3
    assert (first["head"], first["finalized"], first["cometbft_height"]) == (41, 40, 40)
    assert first["voting_power"] == 10 and first["catching_up"] is False
    json.dumps(status)  # JSON-ready as it is


def test_status_of_a_half_dead_network_reports_what_is_down():
    # Arrange: validator-3 and validator-4 killed (both processes)
    info, bft = _network()
    dead = {103, 104, 203, 204}
    # Act
    status = build_status(info, bft, FakeProbe(info, bft, dead=dead))
    # Assert
    down = [r for r in status["validators"] if r["name"] in {"validator-3", "validator-4"}]
    assert all(r["head"] is None and r["cometbft_height"] is None and r["peers"] is None
               for r in down)
    assert status["validators"][0]["peers"] == 1
    assert sorted(p["pid"] for p in status["processes"] if not p["alive"]) == sorted(dead)
    assert status["height"] == 41 and status["validator_set"]["reported_by"] == "validator-1"


def test_status_of_a_stopped_network_has_no_height_and_no_validator_set():
    # Arrange
    info, bft = _network()
    pids = {101, 102, 103, 104, 201, 202, 203, 204}
    # Act
    status = build_status(info, bft, FakeProbe(info, bft, dead=pids))
    # Assert
    assert status["height"] is None and status["finalized"] is None
    assert status["validator_set"] is None
    assert not any(p["alive"] for p in status["processes"])


def test_cli_prints_the_status_as_json_and_exits_3_when_a_process_is_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # Arrange
    info, bft = _network()
    status = build_status(info, bft, FakeProbe(info, bft, dead={204}))
    monkeypatch.setattr(bft_cmd, "bft_network_status", lambda directory: status)
    # Act
    code = bft_cmd.run_bft_status(argparse.Namespace(dir="/n", json=True))
    # Assert
    assert code == 3
    assert json.loads(capsys.readouterr().out) == status


def test_status_table_caption_shows_height_and_voting_power():
    # Arrange
    info, bft = _network()
    status = build_status(info, bft, FakeProbe(info, bft))
    # Act
    table = bft_cmd.render_bft_table(status)
    # Assert
    assert table.caption == ("CometBFT height 43, finalized execution block 43, 4 validators "
                             "with voting power 40")
    assert table.row_count == 4
