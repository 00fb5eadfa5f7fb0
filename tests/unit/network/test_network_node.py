"""Chain: geth command lines, node config, ports and network.json (no geth)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from fednode.errors import NetworkError
from fednode.network.info import (
    AccountInfo,
    NetworkInfo,
    ValidatorInfo,
    load_network,
    save_network,
)
from fednode.network.node import NodeSpec, gateway_command, geth_command, write_node_config
from fednode.network.ports import assign_ports, choose_free_ports

PUBKEY = "ab" * 64


def _spec(tmp_path: Path) -> NodeSpec:
    return NodeSpec(
        name="validator-1",
        datadir=tmp_path,
        signer="0x" + "11" * 20,
        network_id=1337,
        host="127.0.0.1",
        p2p_port=30311,
        http_port=8601,
        authrpc_port=8602,
        gas_limit=60_000_000,
        static_nodes=(f"enode://{PUBKEY}@127.0.0.1:30312", f"enode://{PUBKEY}@127.0.0.1:30313"),
        password_file=tmp_path.parent / "secrets" / "validator-1.password",
    )


def _info(tmp_path: Path, ports: tuple[int, int, int] = (0, 0, 0)) -> NetworkInfo:
    node = ValidatorInfo(
        name="validator-1",
        signer="0x" + "11" * 20,
        enode=f"enode://{PUBKEY}@127.0.0.1:{ports[0]}",
        http_url=f"http://127.0.0.1:{ports[1]}",
        p2p_port=ports[0],
        http_port=ports[1],
        authrpc_port=ports[2],
        datadir=str(tmp_path / "nodes" / "validator-1"),
    )
    return NetworkInfo(
        dir=str(tmp_path),
        chain_id=1337,
        period=1,
        epoch=30000,
        gas_limit=60_000_000,
        genesis=str(tmp_path / "genesis.json"),
        geth="/usr/bin/geth",
        geth_version="1.13.15-stable",
        validators=(node,),
        accounts={"admin": AccountInfo("0x" + "22" * 20, str(tmp_path / "keys" / "admin.key"))},
    )


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_geth_command_runs_an_unlocked_archive_sealer_without_discovery(tmp_path):
    # Act
    cmd = geth_command(Path("/opt/geth"), _spec(tmp_path))

    # Assert
    assert {"--nodiscover", "--mine"} <= set(cmd)
    assert _flag(cmd, "--gcmode") == "archive" and _flag(cmd, "--syncmode") == "full"
    assert _flag(cmd, "--unlock") == _flag(cmd, "--miner.etherbase") == "0x" + "11" * 20
    assert _flag(cmd, "--miner.gaslimit") == "60000000"
    assert _flag(cmd, "--authrpc.port") == "8602"
    assert _flag(cmd, "--config") == str(tmp_path / "config.toml")


def test_geth_serves_json_rpc_on_ipc_only_and_unlocks_securely(tmp_path):
    # Act
    spec = _spec(tmp_path)
    cmd = geth_command(Path("/opt/geth"), spec)

    # Assert: no HTTP/WS server of geth's own, no insecure unlock, the password outside
    assert not [a for a in cmd if a.startswith(("--http", "--ws", "--rpc"))]
    assert "--allow-insecure-unlock" not in cmd and "--ipcdisable" not in cmd
    assert _flag(cmd, "--ipcpath") == str(tmp_path / "geth.ipc")
    assert not Path(_flag(cmd, "--password")).is_relative_to(tmp_path)


def test_the_gateway_serves_the_validators_http_address_for_its_geth(tmp_path):
    # Act
    cmd = gateway_command(_spec(tmp_path), geth_pid=4242)

    # Assert
    assert cmd[2].endswith("fednode/network/gateway.py")
    assert (_flag(cmd, "--host"), _flag(cmd, "--port")) == ("127.0.0.1", "8601")
    assert _flag(cmd, "--ipc") == str(tmp_path / "geth.ipc")
    assert (_flag(cmd, "--geth-pid"), _flag(cmd, "--datadir")) == ("4242", str(tmp_path))


def test_node_config_lists_the_other_validators_as_static_peers(tmp_path):
    # Arrange
    spec = _spec(tmp_path)

    # Act
    config = tomllib.loads(write_node_config(spec).read_text())

    # Assert
    p2p = config["Node"]["P2P"]
    assert p2p["StaticNodes"] == list(spec.static_nodes)
    assert p2p["ListenAddr"] == "127.0.0.1:30311"
    assert p2p["NoDiscovery"] is True


def test_choose_free_ports_hands_out_distinct_ports():
    # Act
    ports = choose_free_ports(12)

    # Assert
    assert len(set(ports)) == 12


def test_assign_ports_places_unplaced_validators_and_keeps_their_node_key(tmp_path):
    # Act
    node = assign_ports(_info(tmp_path)).validators[0]

    # Assert
    assert len({node.p2p_port, node.http_port, node.authrpc_port}) == 3
    assert node.enode == f"enode://{PUBKEY}@127.0.0.1:{node.p2p_port}"
    assert node.http_url == f"http://127.0.0.1:{node.http_port}"


def test_assign_ports_keeps_free_ports_of_a_restarted_network(tmp_path):
    # Arrange
    info = _info(tmp_path, tuple(choose_free_ports(3)))

    # Act / Assert
    assert assign_ports(info) == info


def test_network_json_round_trips(tmp_path):
    # Arrange
    info = _info(tmp_path, (30311, 8601, 8602)).with_pids({"validator-1": 4242})

    # Act
    save_network(info)
    loaded = load_network(tmp_path)

    # Assert
    assert loaded == info
    assert loaded.validators[0].pid == 4242
    assert loaded.key_file("admin") == tmp_path / "keys" / "admin.key"


def test_load_network_reports_a_folder_without_a_network(tmp_path):
    # Act / Assert
    with pytest.raises(NetworkError, match="missing network.json"):
        load_network(tmp_path)


def test_key_file_of_an_unknown_account_is_a_network_error(tmp_path):
    # Act / Assert
    with pytest.raises(NetworkError, match="no account 'edge-9'"):
        _info(tmp_path).key_file("edge-9")


def test_with_pids_only_changes_the_named_validators(tmp_path):
    # Arrange
    info = _info(tmp_path)

    # Act
    moved = info.with_pids({"validator-9": 1})

    # Assert
    assert moved == replace(info)
