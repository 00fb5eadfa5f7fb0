"""Auditor: verifies and traces global models from the ledger alone."""

from fednode.auditor.replay import AuditReport, VersionVerdict, replay_versions, verify_task
from fednode.auditor.trace import ProvenanceTrace, render_trace, trace_digest

__all__ = [
    "AuditReport",
    "ProvenanceTrace",
    "VersionVerdict",
    "render_trace",
    "replay_versions",
    "trace_digest",
    "verify_task",
]
