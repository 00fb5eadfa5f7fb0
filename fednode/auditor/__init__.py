"""Auditor: verifies, traces and certifies global models from the ledger alone."""

from fednode.auditor.affected import AffectedVersion, affected_versions, find_affected
from fednode.auditor.card import build_card, sign_card
from fednode.auditor.card_check import CardVerdict, check_card
from fednode.auditor.checks import Authority, CommitRecord, Finding
from fednode.auditor.clique_anchor import Anchor, check_anchored_chain
from fednode.auditor.genesis_anchor import GenesisAnchor, genesis_anchor
from fednode.auditor.replay import (
    AuditReport,
    VersionVerdict,
    audit_records,
    replay_versions,
    verify_task,
)
from fednode.auditor.roles import RoleHistory, role_history
from fednode.auditor.trace import ProvenanceTrace, render_trace, trace_digest

__all__ = [
    "AffectedVersion",
    "Anchor",
    "AuditReport",
    "Authority",
    "CardVerdict",
    "CommitRecord",
    "Finding",
    "GenesisAnchor",
    "ProvenanceTrace",
    "RoleHistory",
    "VersionVerdict",
    "affected_versions",
    "audit_records",
    "build_card",
    "check_anchored_chain",
    "check_card",
    "find_affected",
    "genesis_anchor",
    "render_trace",
    "replay_versions",
    "role_history",
    "sign_card",
    "trace_digest",
    "verify_task",
]
