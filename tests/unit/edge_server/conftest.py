"""Edge: fixtures for the edge server unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_server_harness import EDGE, NOW, Harness, make_consortium
from fastapi.testclient import TestClient

from edge_server.app import create_app
from edge_server.config import EdgeConfig
from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.site.device_client import DeviceIdentity, EdgeClient


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    admin = make_consortium()
    ledger = admin.as_sender(EDGE)
    config = EdgeConfig(name="edge-a", db_path=str(tmp_path / "edge.sqlite"))
    store = EdgeStore(config.db_path)
    device = DeviceIdentity.generate(device_id="clinic-1")
    enroll_device(store, device.device_id, device.public_key_hex)
    submitter = Submitter(store, ledger)
    app = create_app(config, ledger, store, submitter=submitter, clock=lambda: float(NOW))
    with TestClient(app) as http:
        client = EdgeClient("http://testserver", device, http=http, clock=lambda: float(NOW))
        yield Harness(admin, ledger, store, submitter, http, device, client, config)
    submitter.stop()
    store.close()
