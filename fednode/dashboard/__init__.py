"""Auditor: the read-only consortium dashboard (``fednode dashboard``), served from the chain."""

from fednode.dashboard.app import create_app
from fednode.dashboard.views import DashboardSource

__all__ = ["DashboardSource", "create_app"]
