"""Edge: operations: metrics, rate limits, TLS, JSON logs, the crash hook and `fednode device`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from edge_server_harness import EDGE, NOW, make_consortium, make_params
from fastapi.testclient import TestClient

from edge_server.app import create_app
from edge_server.config import EdgeConfig
from edge_server.crash import CrashHook
from edge_server.logs import JsonLineFormatter
from edge_server.metrics import EdgeMetrics
from edge_server.ratelimit import RateLimiter
from edge_server.service import EdgeServer, enroll_device
from edge_server.store import EdgeStore
from edge_server.tls import generate_self_signed_cert
from fednode.cli.device_cmd import add_device_parser
from fednode.errors import EdgeError, FednodeError, FednodeValueError, UpdateRejectedError
from fednode.site.device_client import DeviceIdentity, EdgeClient


def fednode_main(argv: list[str]) -> int:
    """``fednode device ...`` as the root CLI runs it (main.py registration is the lead's)."""
    root = argparse.ArgumentParser(prog="fednode")
    add_device_parser(root.add_subparsers(dest="command"))
    args = root.parse_args(argv)
    try:
        return int(args.handler(args))
    except FednodeError:
        return 2


def _client_for(config: EdgeConfig, tmp_path: Path) -> tuple[EdgeClient, EdgeStore]:
    admin = make_consortium()
    store = EdgeStore(tmp_path / "edge.sqlite")
    device = DeviceIdentity.generate(device_id="clinic-9")
    enroll_device(store, device.device_id, device.public_key_hex)
    app = create_app(config, admin.as_sender(EDGE), store, clock=lambda: float(NOW))
    http = TestClient(app)
    return EdgeClient("http://testserver", device, http=http, clock=lambda: float(NOW)), store


def test_device_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    # Arrange
    config = EdgeConfig(name="e", db_path="x", device_rate_per_s=0.01, device_burst=2)
    client, store = _client_for(config, tmp_path)

    # Act
    client.post_update(1, 0, make_params(0.1), num_examples=5)
    client.post_update(2, 0, make_params(0.1), num_examples=5)
    with pytest.raises(EdgeError) as refused:
        client.post_update(3, 0, make_params(0.1), num_examples=5)

    # Assert
    assert (refused.value.status, refused.value.reason) == (429, "rate_limited")
    assert len(store.list_updates()) == 2


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=1, clock=lambda: now[0])
    limiter.take("d")
    with pytest.raises(UpdateRejectedError):
        limiter.take("d")
    now[0] = 0.6
    limiter.take("d")  # a token arrived after 0.5 s


def test_metrics_endpoint_counts_accepted_and_rejected(tmp_path: Path) -> None:
    # Arrange
    client, _ = _client_for(EdgeConfig(name="e", db_path="x"), tmp_path)
    client.post_update(1, 0, make_params(0.1), num_examples=5)
    with pytest.raises(EdgeError):
        client.post_update(1, 0, make_params(0.1), num_examples=5)  # duplicate base

    # Act
    text = client._http.get("/metrics").text  # noqa: SLF001

    # Assert
    assert "fednode_edge_updates_accepted_total 1" in text
    assert 'fednode_edge_requests_rejected_total{reason="duplicate_base"} 1' in text
    assert 'fednode_edge_request_duration_seconds_count{route="/v1/updates",status="2xx"} 1' in text


def test_histogram_buckets_are_cumulative() -> None:
    metrics = EdgeMetrics()
    for seconds in (0.001, 0.2, 30.0):
        metrics.observe_request("/x", 200, seconds)
    text = metrics.render()
    assert 'route="/x",status="2xx",le="0.005"} 1' in text
    assert 'route="/x",status="2xx",le="0.25"} 2' in text
    assert 'route="/x",status="2xx",le="+Inf"} 3' in text


def test_edge_serves_tls_and_devices_pin_the_operator_cert(tmp_path: Path) -> None:
    # Arrange
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    generate_self_signed_cert(cert, key)
    config = EdgeConfig(
        name="e", db_path=str(tmp_path / "e.sqlite"), port=0, tls_certfile=str(cert),
        tls_keyfile=str(key), submit_poll_interval_s=0.05,
    )  # fmt: skip
    device = DeviceIdentity.generate()

    # Act
    with EdgeServer(config, make_consortium().as_sender(EDGE)) as server:
        enroll_device(server.store, device.device_id, device.public_key_hex)
        with EdgeClient(server.url, device, tls_ca=cert) as client:
            version, params = client.fetch_global(1)
            delta = {"dense": {k: np.full_like(v, 0.01) for k, v in params["dense"].items()}}
            status = client.wait_submitted(client.post_update(1, version, delta, 5), timeout=5)
        with EdgeClient(server.url, device) as unpinned, pytest.raises(EdgeError) as refused:
            unpinned.fetch_task(1)  # the system trust store does not know the operator cert

    # Assert
    assert server.url.startswith("https://") and status["status"] == "committed"
    assert refused.value.reason == "unreachable"


def test_config_refuses_half_a_tls_setup() -> None:
    with pytest.raises(FednodeValueError):
        EdgeConfig(name="e", db_path="x", tls_certfile="c.pem")


def test_json_log_lines_carry_extras() -> None:
    record = logging.LogRecord("edge", logging.WARNING, "", 0, "refused %s", ("x",), None)
    record.device_id = "dev-1"
    line = json.loads(JsonLineFormatter().format(record))
    assert line["level"] == "warning" and line["message"] == "refused x"
    assert line["device_id"] == "dev-1"


def test_crash_hook_refuses_unknown_points_and_ignores_unarmed_rows() -> None:
    with pytest.raises(ValueError):
        CrashHook("somewhere")
    hook = CrashHook("after_sign", watermark=5)
    hook.reached("after_sign", 5)  # still alive: rows of earlier runs never crash


def test_fednode_device_enroll_from_key_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Arrange
    identity_path, db = tmp_path / "device.json", tmp_path / "edge.sqlite"
    keygen = ["device", "keygen", "--out", str(identity_path), "--device-id", "d-1"]
    assert fednode_main(keygen) == 0
    public = json.loads(capsys.readouterr().out)["public_key"]

    # Act
    code = fednode_main(["device", "enroll", "--db", str(db), "--key-file", str(identity_path)])
    again = fednode_main(
        ["device", "enroll", "--db", str(db), "--device-id", "d-1", "--public-key", "cd" * 32]
    )

    # Assert
    assert code == 0 and again == 2  # another key for an enrolled id needs --replace
    with EdgeStore(db) as store:
        assert store.device_public_key("d-1") == public


def test_fednode_device_tls_cert_writes_a_private_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "op.crt", tmp_path / "op.key"
    assert fednode_main(["device", "tls-cert", "--cert", str(cert), "--key", str(key)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600 and b"CERTIFICATE" in cert.read_bytes()
