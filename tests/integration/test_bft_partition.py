"""Consensus: a 2+2 partition of 4 CometBFT validators, each in a network namespace of its own.

The test makes a hub namespace holding a bridge (10.79.0.254/24) and one namespace per
validator, wired to the hub by a veth pair (10.79.0.<i>/24); each validator's geth 1.17 and
fednode-bft run inside its namespace (Engine API, JSON-RPC and CometBFT RPC on that
namespace's loopback; p2p on 10.79.0.<i>). Blackhole routes then cut validators 1+2 from 3+4:
neither half holds more than 2/3 of the voting power, so no block is finalized on either side
(no fork to reconcile); the routes removed, the chain resumes and all four hold the same
blocks. Nothing leaves the namespaces this test created; the root namespace's interfaces are
never touched. Skipped without root, as the other namespace test is.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fednode.errors import NetworkError
from fednode.network.bft import bft_network_create
from fednode.network.bft.manager import BftInfo
from fednode.network.bft.node import (
    BftSpec,
    bft_command,
    checked_bft_geth_version,
    find_bft_app,
    find_bft_geth,
    geth_bft_command,
    spawn,
)
from fednode.network.info import NetworkInfo, password_file_of
from fednode.network.node import NodeSpec, log_tail, write_node_config
from fednode.network.process import stop_nodes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALIDATORS = 4
SUBNET = "10.79.0"
TAG = f"bp{os.getpid() % 100000}"
GETH_P2P, GETH_HTTP, AUTHRPC, COMET_P2P, COMET_RPC = 30303, 8545, 8551, 26656, 26657


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _ns(index: int) -> str:
    return f"{TAG}-{index}"


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    """hub + one namespace per validator (index 1..4), deleted at the end."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    try:
        checked_bft_geth_version(find_bft_geth())
        find_bft_app()
    except NetworkError as exc:
        if os.environ.get("FEDNODE_REQUIRE_GETH"):
            pytest.fail(f"FEDNODE_REQUIRE_GETH is set but the CometBFT engine is missing: {exc}")
        pytest.skip(f"no CometBFT engine binaries: {exc}")
    hub = f"{TAG}-hub"
    try:
        _ip("netns", "add", hub)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"`ip netns add` is not permitted here: {exc}")
    made = [hub]
    try:
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{SUBNET}.254/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        for index in range(1, VALIDATORS + 1):
            ns = _ns(index)
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{index}",
                "netns", hub)  # fmt: skip
            _ip("-n", hub, "link", "set", f"v{index}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{index}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield made
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _enode(info: NetworkInfo, index: int) -> str:
    pubkey = info.validators[index].enode.removeprefix("enode://").split("@", 1)[0]
    return f"enode://{pubkey}@{SUBNET}.{index + 1}:{GETH_P2P}"


def _start(info: NetworkInfo, bft: BftInfo) -> list[tuple[str, int, Path]]:
    """Starts each validator's geth and fednode-bft inside its namespace; returns the
    (name, pid, marker) of every process, for stop_nodes."""
    started = []
    for i, (e, c) in enumerate(zip(info.validators, bft.validators, strict=True)):
        ns, datadir = _ns(i + 1), Path(e.datadir)
        spec = NodeSpec(
            name=e.name, datadir=datadir, signer=e.signer, network_id=info.chain_id,
            host="0.0.0.0", p2p_port=GETH_P2P, http_port=GETH_HTTP, authrpc_port=AUTHRPC,
            gas_limit=info.gas_limit,
            static_nodes=tuple(_enode(info, j) for j in range(VALIDATORS) if j != i),
            password_file=password_file_of(info.dir, e.name),
        )  # fmt: skip
        write_node_config(spec)
        cmd = ["ip", "netns", "exec", ns, *geth_bft_command(Path(info.geth), spec,
                                                          datadir / "jwt.hex")]
        pid = spawn(cmd, spec.log_path, datadir / "geth.pid", name=e.name, tie_to_caller=True)
        started.append((f"{e.name} geth", pid, datadir))
        peers = tuple(f"{o.node_id}@{SUBNET}.{j + 1}:{COMET_P2P}"
                      for j, o in enumerate(bft.validators) if j != i)
        comet = BftSpec(name=c.name, home=Path(c.home), engine_url=f"http://127.0.0.1:{AUTHRPC}",
                        jwt_secret=datadir / "jwt.hex", p2p_port=COMET_P2P,
                        rpc_port=COMET_RPC, peers=peers, host="0.0.0.0")
        cmd = ["ip", "netns", "exec", ns, *bft_command(Path(bft.app), comet)]
        pid = spawn(cmd, comet.log_path, comet.home / "bft.pid", name=c.name, tie_to_caller=True)
        started.append((f"{c.name} cometbft", pid, Path(c.home)))
    return started


def _rpc(index: int, method: str, params: list[Any]) -> Any:
    """JSON-RPC to validator ``index``'s geth, from inside its namespace."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    out = subprocess.run(
        ["ip", "netns", "exec", _ns(index + 1), "curl", "-s", "-m", "5", "-H",
         "Content-Type: application/json", "--data", body, f"http://127.0.0.1:{GETH_HTTP}"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    if out.returncode != 0 or not out.stdout:
        return None
    return json.loads(out.stdout).get("result")


def _finalized(index: int) -> int | None:
    block = _rpc(index, "eth_getBlockByNumber", ["finalized", False])
    return int(block["number"], 16) if block else None


def _heights() -> list[int | None]:
    return [_finalized(i) for i in range(VALIDATORS)]


def _hash(index: int, number: int) -> str | None:
    block = _rpc(index, "eth_getBlockByNumber", [hex(number), False])
    return block["hash"] if block else None


def _wait_heights(number: int, *, timeout: float, logs: str = "") -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        heights = _heights()
        if all(h is not None and h >= number for h in heights):
            return [h for h in heights if h is not None]
        assert time.monotonic() < deadline, f"finalized {heights}, wanted {number}\n{logs}"
        time.sleep(1.0)


def _cut(sides: tuple[list[int], list[int]], action: str) -> None:
    """Adds (``add``) or removes (``del``) blackhole routes between the two sides."""
    for mine, theirs in (sides, sides[::-1]):
        for index in mine:
            for other in theirs:
                _ip("-n", _ns(index), "route", action, "blackhole", f"{SUBNET}.{other}/32")


def _tails(info: NetworkInfo, bft: BftInfo) -> str:
    return "\n".join(f"--- {c.name}:\n{log_tail(c.log_path, 10)}" for c in bft.validators)


def test_partition_two_plus_two_halts_both_sides_and_heals_without_a_fork(
    namespaces: list[str], tmp_path: Path
):
    # Arrange: 4 validators in 4 namespaces, finalizing
    del namespaces
    info, bft = bft_network_create(tmp_path / "net", validators=VALIDATORS,
                                   progress=lambda line: None)
    bft = replace(bft, validators=tuple(replace(v, rpc_port=COMET_RPC, p2p_port=COMET_P2P)
                                        for v in bft.validators))
    processes = _start(info, bft)
    try:
        _wait_heights(3, timeout=240, logs=_tails(info, bft))
        # Act 1: cut validators 1+2 from 3+4
        _cut(([1, 2], [3, 4]), "add")
        time.sleep(3.0)  # a height whose votes were already exchanged may still commit
        halted = _heights()
        time.sleep(8.0)
        stalled = _heights()
        # Act 2: heal
        _cut(([1, 2], [3, 4]), "del")
        resumed = _wait_heights(max(h or 0 for h in stalled) + 3, timeout=180,
                                logs=_tails(info, bft))
        # Assert: nothing finalized on either side while cut; afterwards one chain on all 4
        assert None not in halted and stalled == halted, (halted, stalled)
        assert max(resumed) > max(h or 0 for h in stalled)
        top = min(resumed)
        for number in range(1, top + 1):
            assert len({_hash(i, number) for i in range(VALIDATORS)}) == 1, number
    finally:
        stop_nodes(processes, timeout=30.0)
