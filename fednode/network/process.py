"""Chain: tells whether a geth validator process is alive and stops validators by PID.

A PID alone is never trusted: ``is_running`` also checks ``/proc/<pid>/cmdline`` for the node's
datadir, so a PID the kernel reused for another program never counts and is never signalled.
``stop_nodes`` sends SIGTERM to every live node at once (geth flushes its state) and SIGKILL
only to those still running after the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StopResult", "is_running", "stop_nodes"]


@dataclass(frozen=True)
class StopResult:
    """How one node stopped: ``outcome`` is 'stopped', 'killed' or 'not running'."""

    name: str
    pid: int | None
    outcome: str
    seconds: float


def _reap(pid: int) -> None:
    """Collects the exit status of ``pid`` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_running(pid: int | None, datadir: Path | str) -> bool:
    """Tells whether ``pid`` is a live geth process running on ``datadir``.

    The command line is checked too, so a PID reused by another program never counts.
    """
    if not pid:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and os.fsencode(str(datadir)) in cmdline


def _signal(pid: int, sig: signal.Signals) -> None:
    """Sends a signal, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap_exiting(pid: int, *, patience_s: float = 5.0) -> None:
    """Collects a child that is exiting: its command line is gone before it is a zombie, so
    ``is_running`` may say False while one ``_reap`` would still find nothing to collect."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            return  # not our child, or already collected
        if done:
            return
        time.sleep(0.02)


def _wait_for_exits(live: dict[str, tuple[int, Path]], *, deadline: float) -> dict[str, float]:
    """Polls until every live node exited or ``deadline``; returns name -> seconds taken."""
    started, exited = time.monotonic(), {}
    while True:
        for name, (pid, datadir) in live.items():
            if name not in exited and not is_running(pid, datadir):
                _reap_exiting(pid)
                exited[name] = round(time.monotonic() - started, 2)
        if len(exited) == len(live) or time.monotonic() > deadline:
            return exited
        time.sleep(0.1)


def stop_nodes(
    nodes: Sequence[tuple[str, int | None, Path]], *, timeout: float = 30.0
) -> list[StopResult]:
    """Stops geth processes gracefully (SIGTERM, all at once), SIGKILL only after ``timeout``.

    Args:
        nodes: (name, pid, datadir) of each node.
        timeout: Seconds to wait for a graceful exit before SIGKILL.

    Returns:
        One StopResult per node, in order; 'killed' ones needed SIGKILL.
    """
    live = {name: (pid, d) for name, pid, d in nodes if pid and is_running(pid, d)}
    for live_pid, _ in live.values():
        _signal(live_pid, signal.SIGTERM)
    exited = _wait_for_exits(live, deadline=time.monotonic() + timeout)
    stuck = {name: live[name] for name in live if name not in exited}
    for stuck_pid, _ in stuck.values():
        _signal(stuck_pid, signal.SIGKILL)
    _wait_for_exits(stuck, deadline=time.monotonic() + 10.0)
    results = []
    for name, pid, _ in nodes:
        if name in exited:
            results.append(StopResult(name, pid, "stopped", exited[name]))
        elif name in stuck:
            results.append(StopResult(name, pid, "killed", round(timeout, 2)))
        else:
            results.append(StopResult(name, pid, "not running", 0.0))
    return results
