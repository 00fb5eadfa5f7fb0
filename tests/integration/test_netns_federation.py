"""Edge + Chain: a federated round across hosts, each host a network namespace of its own.

The test makes a hub namespace holding a bridge (10.77.0.254/24) and one namespace per
operator, wired to the hub by a veth pair (10.77.0.<i>/24). In each operator namespace
``fednode network join`` starts a geth Clique validator and ``edge_server`` runs beside it; a
driver in the hub deploys the contracts, publishes a task, posts one signed delta per device to
its own edge, waits until all are committed, commits the averaged global model and reads it
back through every edge. Nothing leaves the namespaces this test created; the root
namespace's interfaces are never touched. Skipped without root, iproute2 or geth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from fednode.errors import NetworkError
from fednode.network import build_clique_genesis, find_geth
from fednode.network import keys as keyring
from fednode.network.layout import checked_geth_version
from fednode.network.node import log_tail, stop_nodes
from fednode.site.device_client import DeviceIdentity

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
OPERATORS = 3
SUBNET = "10.77.0"
P2P, RPC, EDGE = 30303, 8545, 8700
TAG = f"fn{os.getpid() % 100000}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _ns(index: int) -> str:
    return f"{TAG}-{index}"


def _in_ns(ns: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *command]


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    try:
        checked_geth_version(find_geth())
    except NetworkError as exc:
        pytest.skip(f"no usable geth: {exc}")
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
        _ip("-n", hub, "link", "set", "lo", "up")
        for index in range(1, OPERATORS + 1):
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


def _write_genesis(work: Path) -> tuple[Path, list[bytes], list[bytes], dict[str, Path]]:
    sealers = [keyring.generate_private_key() for _ in range(OPERATORS)]
    node_keys = [keyring.generate_private_key() for _ in range(OPERATORS)]
    names = ["admin", "publisher", "aggregator", *(f"edge-{i}" for i in range(1, OPERATORS + 1))]
    key_files = {}
    for name in names:
        key_files[name] = work / "keys" / f"{name}.key"
        keyring.write_key_file(key_files[name], keyring.generate_private_key())
    alloc = {
        keyring.address_of(keyring.read_key_file(p)): 10**24 for p in key_files.values()
    }
    signers = [keyring.address_of(k) for k in sealers]
    genesis = build_clique_genesis(signers, chain_id=7707, period=1, alloc=alloc)
    path = work / "genesis.json"
    path.write_text(json.dumps(genesis))
    return path, sealers, node_keys, key_files


def _join_all(work: Path, genesis: Path, sealers: list[bytes], nodes: list[bytes]) -> None:
    enodes = [
        keyring.enode_url(key, host=f"{SUBNET}.{i}", port=P2P)
        for i, key in enumerate(nodes, start=1)
    ]
    joins = []
    for index in range(1, OPERATORS + 1):
        keyring.write_key_file(work / f"sealer-{index}.key", sealers[index - 1])
        keyring.write_key_file(work / f"node-{index}.key", nodes[index - 1])
        peers = ",".join(e for i, e in enumerate(enodes, start=1) if i != index)
        command = _in_ns(
            _ns(index), str(BIN / "fednode"), "network", "join", "--dir", str(work / f"op-{index}"),
            "--genesis", str(genesis), "--peers", peers, "--host", f"{SUBNET}.{index}",
            "--signer-key", str(work / f"sealer-{index}.key"),
            "--node-key", str(work / f"node-{index}.key"), "--name", f"op-{index}",
            "--timeout", "90",
        )  # fmt: skip
        joins.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    failures = []
    for index, proc in enumerate(joins, start=1):
        out, err = proc.communicate(timeout=180)
        if proc.returncode != 0:  # the whole message: it names geth's exit status and log
            log = log_tail(_datadir(work, index) / "node.log", lines=60)
            failures.append(f"join {index} failed:\n{err.decode()}\n--- node.log:\n{log}")
        else:
            assert int(json.loads(out)["pid"]) == _geth_pid(work, index)
    assert not failures, "\n\n".join(failures)


def _datadir(work: Path, index: int) -> Path:
    return work / f"op-{index}" / "node"


def _geth_pid(work: Path, index: int) -> int | None:
    try:
        return int((_datadir(work, index) / "geth.pid").read_text())
    except (OSError, ValueError):
        return None


def _stop_geths(work: Path) -> None:
    """Stops every geth a join started, even when another join failed (SIGKILL after 30 s)."""
    nodes = [(f"op-{i}", _geth_pid(work, i), _datadir(work, i)) for i in range(1, OPERATORS + 1)]
    stop_nodes(nodes, timeout=30.0)


_DRIVER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from eth_account import Account
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.chain.connection import connect_web3
from fednode.chain.deploy import (EdgeRegistration, deploy_consortium, write_deployment,
                                  read_deployment)
from fednode.chain.web3_ledger import Web3Ledger
from fednode.codec import decode_params, encode_params, digest_bytes
from fednode.network.keys import read_key_file
from fednode.types import TaskSpec

work, step = Path(sys.argv[1]), sys.argv[2]
cfg = json.loads((work / "driver.json").read_text())
acct = lambda name: Account.from_key(read_key_file(work / "keys" / f"{name}.key"))
rpc = cfg["rpcs"][0]
zeros = {"dense": {"bias": np.zeros((1,), np.float32), "kernel": np.zeros((4, 1), np.float32)}}
if step == "deploy":
    w3 = connect_web3(rpc)
    regs = [EdgeRegistration(acct(f"edge-{i}").address, s, f"op-{i}")
            for i, s in enumerate(cfg["signers"], start=1)]
    deployment = deploy_consortium(  # as `fednode deploy`: the bootstrap ends
        w3, acct("admin"), publishers=[acct("publisher").address],
        aggregators=[acct("aggregator").address], edges=regs, confirmations=1)
    write_deployment(deployment, work / "deployment.json")
    spec = TaskSpec(name="netns", data_schema="uci-heart-v1", num_features=4, rounds=1,
                    min_updates=len(cfg["edges"]), max_update_norm=5.0)
    task = Web3Ledger.connect(rpc, deployment, acct("publisher")).publish_task(
        spec, encode_params(zeros))
    print(json.dumps({"task_id": task}))
else:
    deployment = read_deployment(work / "deployment.json")
    task = int(sys.argv[3])
    refs, deltas = [], []
    for i, url in enumerate(cfg["edges"], start=1):
        device = DeviceIdentity.load(work / f"device-{i}.json")
        client = EdgeClient(url, device)
        delta = {"dense": {"bias": np.full((1,), 0.1 * i, np.float32),
                           "kernel": np.full((4, 1), 0.1 * i, np.float32)}}
        base, _ = client.fetch_global(task)
        refs.append((client, client.post_update(task, base, delta, num_examples=10)))
        deltas.append(delta)
    statuses = [client.wait_submitted(ref, timeout=120) for client, ref in refs]
    ids = sorted(s["chain_update_id"] for s in statuses)
    mean = {"dense": {k: np.mean([d["dense"][k] for d in deltas], axis=0).astype(np.float32)
                      for k in ("bias", "kernel")}}
    aggregator = Web3Ledger.connect(rpc, deployment, acct("aggregator"), confirmations=1)
    record = aggregator.commit_global_model(task, 1, encode_params(mean), ids)
    seen = []
    for client, _ in refs:
        version, params = client.fetch_global(task, version=1)
        seen.append(digest_bytes(encode_params(params)).hex())
    print(json.dumps({"update_ids": ids, "digest": record.digest.hex(), "seen": seen,
                      "edges": [s["tx_hash"] for s in statuses]}))
"""


def _driver(work: Path, hub: str, *args: str) -> dict:
    command = _in_ns(hub, sys.executable, str(work / "driver.py"), str(work), *args)
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start_edges(work: Path, key_files: dict[str, Path]) -> list[subprocess.Popen[bytes]]:
    edges = []
    for index in range(1, OPERATORS + 1):
        db = work / f"edge-{index}.sqlite"
        device = DeviceIdentity.generate(device_id=f"dev-{index}")
        device.save(work / f"device-{index}.json")
        with EdgeStore(db) as store:
            enroll_device(store, device.device_id, device.public_key_hex)
        command = _in_ns(
            _ns(index), str(BIN / "edge_server"), "--name", f"edge-{index}",
            "--host", f"{SUBNET}.{index}", "--port", str(EDGE), "--db", str(db),
            "--deployment", str(work / "deployment.json"), "--key", str(key_files[f"edge-{index}"]),
            "--rpc", f"http://{SUBNET}.{index}:{RPC}", "--confirmations", "1", "--poll", "0.2",
        )  # fmt: skip
        log = open(work / f"edge-{index}.log", "wb")  # noqa: SIM115 (closed with the process)
        edges.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    return edges


_HEALTH_POLL = r"""
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[1])
for url in sys.argv[2:]:
    while True:
        try:
            if urllib.request.urlopen(url + "/healthz", timeout=2).status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer /healthz")
        time.sleep(0.2)
"""


def _wait_for_edges(hub: str, edges: list[subprocess.Popen[bytes]], work: Path) -> None:
    """Waits until every edge server answers /healthz (from the hub, as the devices reach it)."""
    urls = [f"http://{SUBNET}.{i}:{EDGE}" for i in range(1, OPERATORS + 1)]
    command = _in_ns(hub, sys.executable, "-c", _HEALTH_POLL, "120", *urls)
    out = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        logs = [(work / f"edge-{i}.log").read_text(errors="replace")[-1500:]
                for i in range(1, OPERATORS + 1)]  # fmt: skip
        codes = [proc.poll() for proc in edges]
        raise AssertionError(f"{out.stderr.strip()}; exit codes {codes}; logs:\n" + "\n".join(logs))


@pytest.mark.integration
def test_federated_round_across_namespaces(namespaces: list[str], tmp_path: Path) -> None:
    # Arrange: genesis, one validator per namespace joined by its operator, contracts
    hub = namespaces[0]
    genesis, sealers, node_keys, key_files = _write_genesis(tmp_path)
    (tmp_path / "driver.py").write_text(_DRIVER)
    config = {
        "rpcs": [f"http://{SUBNET}.{i}:{RPC}" for i in range(1, OPERATORS + 1)],
        "edges": [f"http://{SUBNET}.{i}:{EDGE}" for i in range(1, OPERATORS + 1)],
        "signers": [keyring.address_of(k) for k in sealers],
    }
    (tmp_path / "driver.json").write_text(json.dumps(config))
    edges: list[subprocess.Popen[bytes]] = []
    try:
        _join_all(tmp_path, genesis, sealers, node_keys)
        task_id = _driver(tmp_path, hub, "deploy")["task_id"]
        edges = _start_edges(tmp_path, key_files)
        _wait_for_edges(hub, edges, tmp_path)

        # Act: devices -> their own edge -> their own validator -> chain -> aggregator
        result = _driver(tmp_path, hub, "round", str(task_id))
    finally:
        for proc in edges:
            proc.send_signal(signal.SIGTERM)
        for proc in edges:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        _stop_geths(tmp_path)

    # Assert
    assert len(result["update_ids"]) == OPERATORS and all(result["edges"])
    assert result["seen"] == [result["digest"]] * OPERATORS
    addresses = {Account.from_key(keyring.read_key_file(p)).address for p in key_files.values()}
    assert len(addresses) == len(key_files)
