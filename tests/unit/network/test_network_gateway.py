"""Chain: the validator's public JSON-RPC gateway, against a fake geth IPC socket (no geth)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fednode.errors import NetworkError
from fednode.network import gateway
from fednode.network.node import rpc_call


@pytest.fixture
def fake_geth(tmp_path: Path) -> Iterator[tuple[str, list[Any]]]:
    """A Unix socket answering every JSON-RPC call with its method name; records what came."""
    path, seen = str(tmp_path / "geth.ipc"), []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def serve(conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while chunk := conn.recv(65536):
                buffer += chunk
                try:
                    request = json.loads(buffer)
                except ValueError:
                    continue
                buffer = b""
                seen.append(request)
                calls = request if isinstance(request, list) else [request]
                answers = [{"jsonrpc": "2.0", "id": c["id"], "result": c["method"]} for c in calls]
                body = answers if isinstance(request, list) else answers[0]
                conn.sendall(json.dumps(body).encode() + b"\n")

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield path, seen
    server.close()


@pytest.fixture
def door(fake_geth: tuple[str, list[Any]]) -> Iterator[str]:
    """A gateway on a loopback port relaying to the fake geth."""
    relay = gateway._Relay(fake_geth[0], timeout=5.0)  # noqa: SLF001
    server = gateway._bind("127.0.0.1", 0, relay, patience_s=0.0)  # noqa: SLF001
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("method", ["admin_addPeer", "debug_setHead", "miner_stop",
                                    "clique_propose", "personal_unlockAccount", "eth_sign",
                                    "eth_sendTransaction", "txpool_content", 7, None])
def test_the_gateway_never_relays_control_or_signing_calls(door, fake_geth, method) -> None:
    # Act
    answer = httpx.post(door, json={"jsonrpc": "2.0", "id": 3, "method": method}).json()

    # Assert
    assert answer["error"]["code"] in (-32601, -32600) and fake_geth[1] == []


def test_the_gateway_relays_eth_net_web3_and_loopback_clique_reads(door, fake_geth) -> None:
    # Act
    answers = [rpc_call(door, m) for m in ("eth_blockNumber", "net_version", "web3_clientVersion",
                                           "clique_getSigners")]

    # Assert
    assert answers == ["eth_blockNumber", "net_version", "web3_clientVersion",
                       "clique_getSigners"]


def test_on_a_routable_address_even_clique_reads_are_refused() -> None:
    # Act / Assert
    assert not gateway.allowed("clique_getSigners", loopback=False)
    assert gateway.allowed("eth_getLogs", loopback=False)
    assert not gateway.is_loopback("10.77.0.1") and gateway.is_loopback("::1")


def test_a_batch_is_screened_call_by_call_in_order(door, fake_geth) -> None:
    # Act
    batch = [{"jsonrpc": "2.0", "id": i, "method": m}
             for i, m in enumerate(["eth_chainId", "debug_setHead", "net_peerCount"])]
    answers = httpx.post(door, json=batch).json()

    # Assert
    assert [a.get("result") for a in answers] == ["eth_chainId", None, "net_peerCount"]
    assert answers[1]["error"]["code"] == -32601
    assert [c["method"] for c in fake_geth[1][0]] == ["eth_chainId", "net_peerCount"]


def test_the_gateway_refuses_other_host_names_and_non_json_bodies(door, fake_geth) -> None:
    # Act
    rebound = httpx.post(door, json={"id": 1, "method": "eth_chainId"},
                         headers={"Host": "attacker.example"})
    form = httpx.post(door, content=b'{"id":1,"method":"eth_chainId"}',
                      headers={"Content-Type": "text/plain"})

    # Assert
    assert (rebound.status_code, form.status_code) == (403, 415) and fake_geth[1] == []


def test_rpc_call_speaks_ipc_to_a_socket_path(fake_geth) -> None:
    # Act / Assert
    assert rpc_call(fake_geth[0], "admin_peers") == "admin_peers"
    with pytest.raises(NetworkError, match="cannot connect"):
        rpc_call(fake_geth[0] + ".missing", "admin_peers")
