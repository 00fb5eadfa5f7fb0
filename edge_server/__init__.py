"""Edge: device -> edge -> chain; the edge operator's HTTP service.

Devices post signed deltas (``fednode.site.device_client.EdgeClient``, in the wire format of
``fednode.update.envelope``); the edge checks the signature and
the delta (``auth``, ``intake``), stores it durably (``store``), and a worker submits it with
the operator's account through a Ledger (``submitter``). ``service.EdgeServer`` wires it all.
A task may ask for edge cohorts (``cohort``): the edge folds N devices' deltas into one update,
optionally under secure aggregation (``secagg``; devices run ``cohort_client`` and check what
the edge shows them with ``cohort_trust``).
"""

from edge_server.app import create_app
from edge_server.cohort import CohortConfig, cohort_config
from edge_server.cohort_client import SecureCohortDevice
from edge_server.cohort_trust import CohortRefusedError
from edge_server.config import EdgeConfig
from edge_server.intake import UpdateIntake
from edge_server.service import EdgeServer, enroll_device, run_edge
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from edge_server.submitter import Submitter

__all__ = [
    "CohortConfig",
    "CohortRefusedError",
    "EdgeConfig",
    "EdgeServer",
    "EdgeStore",
    "SecureCohortDevice",
    "Submitter",
    "UpdateIntake",
    "UpdateRow",
    "UpdateStatus",
    "cohort_config",
    "create_app",
    "enroll_device",
    "run_edge",
]
