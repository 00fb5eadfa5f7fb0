"""Edge: device -> edge -> chain; the edge operator's HTTP service and the device client.

Devices post signed deltas (``device_client.EdgeClient``); the edge checks the signature and
the delta (``auth``, ``intake``), stores it durably (``store``), and a worker submits it with
the operator's account through a Ledger (``submitter``). ``service.EdgeServer`` wires it all.
"""

from edge_server.app import create_app
from edge_server.config import EdgeConfig
from edge_server.device_client import DeviceIdentity, EdgeClient
from edge_server.intake import UpdateIntake
from edge_server.protocol import SIGNATURE_HEADER, UpdateEnvelope
from edge_server.service import EdgeServer, enroll_device, run_edge
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from edge_server.submitter import Submitter

__all__ = [
    "DeviceIdentity",
    "EdgeClient",
    "EdgeConfig",
    "EdgeServer",
    "EdgeStore",
    "SIGNATURE_HEADER",
    "Submitter",
    "UpdateEnvelope",
    "UpdateIntake",
    "UpdateRow",
    "UpdateStatus",
    "create_app",
    "enroll_device",
    "run_edge",
]
