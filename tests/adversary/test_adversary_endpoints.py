"""Adversary: an outsider at a validator's or an edge's ports, and a curious edge replaying.

Acted as the attacker would: (a) a host in another network namespace calls a validator's
JSON-RPC on its routable address, asking it to add a peer, rewind, stop sealing, vote, unlock
or sign; (b) an edge forwards a device's signed update (or evaluation) to another edge, chain or
deployment; (c) a client floods an edge with badly signed updates; (d) anyone reads the device
routes of an edge without credentials; (e) the key files of ``network up`` and ``network join``
are inspected for a password beside its keystore, loose modes and a weak scrypt setting.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge_server import app as app_module
from edge_server.app import create_app, ledger_scope
from edge_server.app_http import DEVICE_ROUTES
from edge_server.config import EdgeConfig
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from fednode.codec import encode_params
from fednode.network import build_clique_genesis
from fednode.network import keys as keyring
from fednode.network.keys import KEYSTORE_SCRYPT_N
from fednode.network.manager import network_down, network_up
from fednode.network.node import rpc_call, stop_nodes
from fednode.site.device_client import DeviceIdentity, EdgeClient
from fednode.update.envelope import SIGNATURE_HEADER, SigningScope, UpdateEnvelope, envelope_to_json
from fednode.update.evaluation import evaluation_to_json, make_evaluation, sign_evaluation
from fednode.update.signing import new_nonce, sign_envelope, sign_read
from tests.chainkit import require_geth
from tests.integration.test_netns_federation import _in_ns, _ip
from tests.unit.edge_server.edge_server_harness import (
    EDGE,
    NOW,
    OTHER_EDGE,
    make_consortium,
    make_params,
)

REPO = Path(__file__).resolve().parents[2]
SUBNET = "10.78.0"
VALIDATOR_IP, ATTACKER_IP = f"{SUBNET}.1", f"{SUBNET}.2"
RPC, P2P = 8545, 30303
TAG = f"fe{os.getpid() % 100000}"
DANGEROUS = [
    ("admin_addPeer", ["enode://" + "ab" * 64 + f"@{ATTACKER_IP}:30303"]),
    ("admin_startHTTP", [VALIDATOR_IP, 9999, "*", "admin,debug,miner,personal"]),
    ("debug_setHead", ["0x0"]),
    ("miner_stop", []),
    ("clique_propose", ["0x" + "66" * 20, True]),
    ("clique_discard", ["0x" + "66" * 20]),
    ("personal_unlockAccount", ["{signer}", "guess", 0]),
    ("personal_sign", ["0x00", "{signer}", "guess"]),
    ("eth_sign", ["{signer}", "0xdeadbeef"]),
    ("eth_signTransaction", [{"from": "{signer}", "to": "0x" + "66" * 20, "value": "0x1"}]),
    ("eth_sendTransaction", [{"from": "{signer}", "to": "0x" + "66" * 20, "value": "0x1"}]),
    ("eth_accounts", []),
    ("txpool_content", []),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# ---- (a) + (e) a validator on a routable address, called from another host ---------------------


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair: the validator's host and the attacker's."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    require_geth()
    validator, attacker = f"{TAG}-v", f"{TAG}-a"
    made: list[str] = []
    try:
        for ns in (validator, attacker):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("-n", validator, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", attacker)  # fmt: skip
        for ns, address in ((validator, VALIDATOR_IP), (attacker, ATTACKER_IP)):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield validator, attacker
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture(scope="module")
def joined(two_hosts: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, Any]]:
    """``fednode network join`` of one sealing validator on the routable address, run by its
    operator inside the validator's namespace (a one-signer genesis, so it seals alone)."""
    validator_ns, _ = two_hosts
    work = tmp_path_factory.mktemp("endpoints")
    sealer = keyring.generate_private_key()
    keyring.write_key_file(work / "sealer.key", sealer)
    genesis = build_clique_genesis([keyring.address_of(sealer)], chain_id=7808, period=1)
    (work / "genesis.json").write_text(json.dumps(genesis))
    command = _in_ns(
        validator_ns, sys.executable, "-m", "fednode.cli.main", "network", "join",
        "--dir", str(work / "op"), "--genesis", str(work / "genesis.json"),
        "--host", VALIDATOR_IP, "--http-port", str(RPC), "--p2p-port", str(P2P),
        "--signer-key", str(work / "sealer.key"), "--name", "op-1", "--timeout", "120",
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    node = json.loads(out.stdout) if out.returncode == 0 else None
    try:
        assert node is not None, f"join failed: {out.stderr[-3000:]}"
        yield {"node": node, "dir": work / "op", "signer": keyring.address_of(sealer)}
    finally:
        pid_file = work / "op" / "node" / "geth.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        stop_nodes([("op-1", pid, work / "op" / "node")], timeout=30.0)


_ATTACK = r"""
import json, socket, sys, urllib.request
url, signer, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def post(body, host=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
fill = lambda v: json.loads(json.dumps(v).replace("{signer}", signer))
out = {"calls": {}}
for method, params in calls:
    out["calls"][method] = post({"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": fill(params)})[1]
out["block"] = post({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})[1]
out["batch"] = post([{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                     {"jsonrpc": "2.0", "id": 2, "method": "debug_setHead", "params": ["0x0"]}])[1]
out["rebinding"] = post({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                        host="attacker.example")[0]
ports = {}
for port in (8551, 8546, 8547):
    with socket.socket() as sock:
        sock.settimeout(3)
        ports[port] = sock.connect_ex((url.split("//")[1].split(":")[0], port))
out["ports"] = ports
print(json.dumps(out))
"""


def _attack(attacker_ns: str, url: str, signer: str) -> dict[str, Any]:
    command = _in_ns(attacker_ns, sys.executable, "-c", _ATTACK, url, signer,
                     json.dumps(DANGEROUS))  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.integration
def test_another_host_can_neither_sign_nor_rewind_nor_steer_a_joined_validator(
    two_hosts: tuple[str, str], joined: dict[str, Any]
) -> None:
    # Arrange
    _, attacker_ns = two_hosts
    url, ipc = joined["node"]["http_url"], joined["node"]["ipc_path"]
    assert url == f"http://{VALIDATOR_IP}:{RPC}"
    before = int(rpc_call(ipc, "eth_blockNumber"), 16)

    # Act: the attacker's host calls every dangerous method on the routable address
    seen = _attack(attacker_ns, url, joined["signer"])
    time.sleep(3)

    # Assert: each refused as geth refuses a namespace it does not serve
    for method, _ in DANGEROUS:
        error = seen["calls"][method].get("error")
        assert error is not None and error["code"] == -32601, (method, seen["calls"][method])
        assert "does not exist/is not available" in error["message"]
    assert int(seen["block"]["result"], 16) >= before  # the public door still answers eth
    answers = {a["id"]: a for a in seen["batch"]}
    assert answers[1]["result"] == hex(7808) and answers[2]["error"]["code"] == -32601
    assert seen["rebinding"] == 403  # a browser's DNS-rebound name is refused
    assert all(code != 0 for code in seen["ports"].values())  # engine API etc.: loopback only
    # nothing honest was lost: still sealing, head not rewound, no vote and no peer added
    assert int(rpc_call(ipc, "eth_blockNumber"), 16) > before
    assert rpc_call(ipc, "clique_proposals") == {}
    assert rpc_call(ipc, "admin_peers") == []
    assert rpc_call(ipc, "eth_getBalance", ["0x" + "66" * 20, "latest"]) == "0x0"


@pytest.mark.integration
def test_joined_validator_keeps_keys_apart_and_geth_unlocks_securely(
    joined: dict[str, Any]
) -> None:
    # Arrange
    root, datadir = joined["dir"], joined["dir"] / "node"
    pid = int((datadir / "geth.pid").read_text())

    # Act
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")

    # Assert
    _assert_key_layout(datadir, password=root / "secrets" / "sealer.password", cmdline=cmdline)
    assert _mode(Path(joined["node"]["ipc_path"])) == 0o600


def _assert_key_layout(datadir: Path, *, password: Path, cmdline: list[str]) -> None:
    """No password beside the keystore it opens; 0600 files; geth's scrypt; secure geth flags."""
    (keystore,) = (datadir / "keystore").iterdir()
    assert not [p for p in datadir.rglob("*") if "pass" in p.name.lower()]
    assert password.parent != keystore.parent and not password.is_relative_to(datadir)
    assert _mode(password) == 0o600 and _mode(password.parent) == 0o700
    assert _mode(keystore) == 0o600 and _mode(datadir) == 0o700
    assert json.loads(keystore.read_text())["crypto"]["kdfparams"]["n"] >= 2**18
    assert KEYSTORE_SCRYPT_N >= 2**18
    assert cmdline[cmdline.index("--password") + 1] == str(password)
    assert "--allow-insecure-unlock" not in cmdline
    assert not [a for a in cmdline if a.startswith(("--http", "--ws"))]


@pytest.mark.integration
def test_network_up_keeps_keys_apart_and_its_loopback_door_refuses_control_calls(
    tmp_path: Path,
) -> None:
    # Arrange
    require_geth()
    info = network_up(tmp_path / "net", validators=1, timeout=120, tie_to_caller=True)
    try:
        (v,) = info.validators
        cmdline = Path(f"/proc/{v.pid}/cmdline").read_bytes().decode().split("\0")

        # Act
        refused = {}
        for method, params in DANGEROUS:
            filled = json.loads(json.dumps(params).replace("{signer}", v.signer))
            try:
                rpc_call(v.http_url, method, filled)
            except Exception as exc:  # noqa: BLE001 (the refusal is what is asserted)
                refused[method] = str(exc)

        # Assert
        _assert_key_layout(Path(v.datadir), cmdline=cmdline,
                           password=tmp_path / "net" / "secrets" / "validator-1.password")
        assert set(refused) == {m for m, _ in DANGEROUS}
        assert all("-32601" in text for text in refused.values())
        assert rpc_call(v.http_url, "clique_getSigners", ["latest"]) == [v.signer.lower()]
    finally:
        network_down(tmp_path / "net")


# ---- (b) a curious edge replays a device's signed update elsewhere ----------------------------


def _edge(tmp_path: Path, name: str, operator: str, devices: list[DeviceIdentity], *,
          scope: SigningScope | None = None, **config: Any) -> TestClient:
    admin = make_consortium()
    store = EdgeStore(str(tmp_path / f"{name}.sqlite"))
    for device in devices:
        enroll_device(store, device.device_id, device.public_key_hex)
    settings = EdgeConfig(name=name, db_path=str(tmp_path / f"{name}.sqlite"), **config)
    return TestClient(create_app(settings, admin.as_sender(operator), store,
                                 clock=lambda: float(NOW), scope=scope))


def _signed_update(device: DeviceIdentity, scope: SigningScope) -> tuple[bytes, dict[str, str]]:
    envelope = UpdateEnvelope(
        device.device_id, 1, 0, 10, 0, encode_params(make_params(0.1)), new_nonce(), NOW,
        scope.edge, scope.chain_id, scope.deployment,
    )  # fmt: skip
    signature = base64.b64encode(sign_envelope(device.private_key, envelope)).decode()
    return envelope_to_json(envelope), {SIGNATURE_HEADER: signature}


@pytest.mark.parametrize(
    ("elsewhere", "reason"),
    [
        ({"operator": OTHER_EDGE}, "wrong_edge"),
        ({"scope": SigningScope(EDGE, 1, "0x" + "00" * 20)}, "wrong_chain"),
        ({"scope": SigningScope(EDGE, 0, "0x" + "de" * 20)}, "wrong_deployment"),
    ],
)
def test_an_update_signed_for_one_edge_is_refused_by_another_edge_chain_or_deployment(
    tmp_path: Path, elsewhere: dict[str, Any], reason: str
) -> None:
    # Arrange: the device is enrolled at both edges and sends its update to edge A
    device = DeviceIdentity.generate(device_id="clinic-1")
    with _edge(tmp_path, "a", EDGE, [device]) as edge_a, \
            _edge(tmp_path, "b", elsewhere.get("operator", EDGE), [device],
                  scope=elsewhere.get("scope")) as edge_b:
        body, headers = _signed_update(device, ledger_scope(make_consortium().as_sender(EDGE)))
        honest = edge_a.post("/v1/updates", content=body, headers=headers)

        # Act: edge A's operator forwards the very bytes and signature to edge B
        replayed = edge_b.post("/v1/updates", content=body, headers=headers)

        # Assert
        assert honest.status_code == 202
        assert (replayed.status_code, replayed.json()["error"]) == (401, reason)
        assert edge_b.app.state.edge.store.list_updates() == []
        assert len(edge_a.app.state.edge.store.list_updates()) == 1  # nothing honest lost


def test_an_evaluation_signed_for_one_edge_is_refused_by_another(tmp_path: Path) -> None:
    # Arrange
    device = DeviceIdentity.generate(device_id="clinic-1")
    scope_a = ledger_scope(make_consortium().as_sender(EDGE))
    evaluation = make_evaluation(device.device_id, 1, 0, metric=0.9, num_examples=5,
                                 secondary=None, nonce=new_nonce(), timestamp=NOW, scope=scope_a)
    headers = {SIGNATURE_HEADER: sign_evaluation(device.private_key, evaluation)}
    with _edge(tmp_path, "b", OTHER_EDGE, [device]) as edge_b:
        # Act
        replayed = edge_b.post("/v1/evaluations", content=evaluation_to_json(evaluation),
                               headers=headers)

    # Assert
    assert (replayed.status_code, replayed.json()["error"]) == (401, "wrong_edge")


def test_a_device_pinned_to_its_deployment_refuses_an_edge_that_reports_another(
    tmp_path: Path,
) -> None:
    # Arrange: the device's config pins chain 1337; the edge it is pointed at is on chain 0
    pinned = SigningScope(EDGE, 1337, "0x" + "11" * 20)
    device = DeviceIdentity(device_id="clinic-1",
                            private_key=DeviceIdentity.generate().private_key, scope=pinned)
    with _edge(tmp_path, "a", EDGE, [device]) as edge_a:
        client = EdgeClient("http://testserver", device, http=edge_a, clock=lambda: float(NOW))

        # Act / Assert
        with pytest.raises(Exception) as refused:
            client.post_update(1, 0, make_params(0.1), num_examples=3)
        assert "scope_mismatch" in str(refused.value)
        assert edge_a.app.state.edge.store.list_updates() == []


# ---- (c) a flood of badly signed requests ---------------------------------------------------


def test_a_flood_of_badly_signed_updates_is_rate_limited_before_any_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: count every signature the edge verifies
    device = DeviceIdentity.generate(device_id="clinic-1")
    forger = DeviceIdentity.generate(device_id="clinic-1")
    verified: list[str] = []
    real = app_module.verify_envelope

    def counting(key: Any, envelope: UpdateEnvelope, signature: bytes) -> None:
        verified.append(envelope.device_id)
        real(key, envelope, signature)

    monkeypatch.setattr(app_module, "verify_envelope", counting)
    with _edge(tmp_path, "a", EDGE, [device], peer_rate_per_s=0.001, peer_burst=5) as edge:
        scope = ledger_scope(make_consortium().as_sender(EDGE))

        # Act: 60 updates in the device's name, signed with the forger's key, from one peer
        answers = [
            edge.post("/v1/updates", content=body, headers=headers).json()["error"]
            for body, headers in (_signed_update(forger, scope) for _ in range(60))
        ]
        honest_peer = TestClient(edge.app, client=("10.9.9.9", 40000))
        body, headers = _signed_update(device, scope)
        honest = honest_peer.post("/v1/updates", content=body, headers=headers)

    # Assert: the burst got its signatures checked, the rest not even parsed
    assert answers[:5] == ["bad_signature"] * 5 and answers[5:] == ["rate_limited"] * 55
    assert len(verified) == 6  # 5 of the flood + the honest device from another address
    assert honest.status_code == 202


# ---- (d) the device routes without credentials ----------------------------------------------


PUBLIC_GETS = {"/healthz", "/metrics", "/v1/info", "/v1/tasks/{task_id}",
               "/v1/tasks/{task_id}/global", "/openapi.json", "/docs", "/docs/oauth2-redirect",
               "/redoc"}


def test_every_route_that_reveals_a_device_refuses_an_unauthenticated_reader(
    tmp_path: Path,
) -> None:
    # Arrange: a device with an update, an evaluation and a plain-cohort-free edge
    owner = DeviceIdentity.generate(device_id="clinic-1")
    other = DeviceIdentity.generate(device_id="clinic-2")
    token = "operator-" + "x" * 24
    with _edge(tmp_path, "a", EDGE, [owner, other], operator_token=token) as edge:
        client = EdgeClient("http://testserver", owner, http=edge, clock=lambda: float(NOW))
        ref = client.post_update(1, 0, make_params(0.1), num_examples=3)
        eval_ref = client.post_evaluation(1, 0, metric=0.5, num_examples=4)
        scope = client.signing_scope()
        concrete = {
            "/v1/updates/{ref}": f"/v1/updates/{ref}",
            "/v1/evaluations/{ref}": f"/v1/evaluations/{eval_ref}",
            "/v1/cohorts/{task_id}/{base_version}": "/v1/cohorts/1/0",
            "/v1/cohorts/{task_id}/{base_version}/boxes/{device_id}":
                "/v1/cohorts/1/0/boxes/clinic-1",
        }
        device_gets = sorted(
            r.path for r in edge.app.routes
            if "GET" in getattr(r, "methods", ()) and r.path not in PUBLIC_GETS
        )

        # Act
        anonymous = {p: edge.get(concrete[p]).status_code for p in device_gets}
        bad_token = {p: edge.get(concrete[p], headers={"Authorization": "Bearer nope"})
                     .status_code for p in device_gets}
        other_reads = {
            p: edge.get(concrete[p], headers=sign_read(other.private_key, scope, "GET",
                                                       concrete[p], other.device_id, NOW))
            .status_code for p in device_gets
        }  # fmt: skip
        operator = edge.get(f"/v1/updates/{ref}", headers={"Authorization": f"Bearer {token}"})

        # Assert: every non-public GET is a device route, and none answers without credentials
        assert set(device_gets) == set(concrete) and all(p.startswith(DEVICE_ROUTES)
                                                         for p in device_gets)
        assert set(anonymous.values()) == {401} and set(bad_token.values()) == {401}
        assert other_reads["/v1/updates/{ref}"] == 403
        assert other_reads["/v1/evaluations/{ref}"] == 403
        assert other_reads["/v1/cohorts/{task_id}/{base_version}/boxes/{device_id}"] == 403
        assert client.update_status(ref)["device_id"] == "clinic-1"  # the owner still reads
        assert client.evaluation_status(eval_ref)["device_id"] == "clinic-1"
        assert operator.status_code == 200
