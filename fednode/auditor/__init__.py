"""Auditor: verifies, traces and certifies global models from the ledger alone."""

from fednode.auditor.affected import AffectedVersion, affected_versions, find_affected
from fednode.auditor.card import build_card, sign_card
from fednode.auditor.card_check import CardVerdict, check_card
from fednode.auditor.checks import Authority, CommitRecord, Finding
from fednode.auditor.replay import (
    AuditReport,
    VersionVerdict,
    audit_records,
    replay_versions,
    verify_task,
)
from fednode.auditor.trace import ProvenanceTrace, render_trace, trace_digest

__all__ = [
    "AffectedVersion",
    "AuditReport",
    "Authority",
    "CardVerdict",
    "CommitRecord",
    "Finding",
    "ProvenanceTrace",
    "VersionVerdict",
    "affected_versions",
    "audit_records",
    "build_card",
    "check_card",
    "find_affected",
    "render_trace",
    "replay_versions",
    "sign_card",
    "trace_digest",
    "verify_task",
]
