"""Chain: geth process liveness by PID and datadir, graceful stops, and the tests' SIGKILL guard.

Stand-in nodes are Python sleepers whose command line names a datadir, as geth's does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fednode.network.node as node_module
from fednode.errors import NetworkError
from fednode.network import process
from fednode.network.process import is_running, stop_nodes
from tests.chainkit import _sigkill_geth


def _sleeper(datadir: Path, *, ignore_sigterm: bool) -> subprocess.Popen[bytes]:
    """A stand-in node: a process whose command line names ``datadir``, as geth's does."""
    code = "import signal, time\n"
    code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else ""
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(datadir)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_stop_nodes_stops_gracefully_and_kills_only_what_ignores_sigterm(tmp_path):
    # Arrange
    polite = _sleeper(tmp_path / "a", ignore_sigterm=False)
    stubborn = _sleeper(tmp_path / "b", ignore_sigterm=True)
    nodes = [
        ("a", polite.pid, tmp_path / "a"),
        ("b", stubborn.pid, tmp_path / "b"),
        ("c", None, tmp_path / "c"),
    ]

    # Act
    results = stop_nodes(nodes, timeout=0.5)

    # Assert
    assert [r.outcome for r in results] == ["stopped", "killed", "not running"]
    assert not is_running(polite.pid, tmp_path / "a")
    assert not is_running(stubborn.pid, tmp_path / "b")


def test_is_running_ignores_a_pid_that_runs_something_else(tmp_path):
    # Arrange
    proc = _sleeper(tmp_path / "x", ignore_sigterm=False)

    # Act / Assert
    try:
        assert is_running(proc.pid, tmp_path / "x")
        assert not is_running(proc.pid, tmp_path / "other")
        assert not is_running(None, tmp_path / "x")
    finally:
        proc.kill()
        proc.wait()


def test_sigkill_guard_kills_the_validator_whose_datadir_it_names(tmp_path):
    # Arrange
    proc = _sleeper(tmp_path / "v", ignore_sigterm=True)

    # Act
    _sigkill_geth(proc.pid, tmp_path / "v")

    # Assert
    assert proc.wait(10) == -9
    assert not is_running(proc.pid, tmp_path / "v")


def test_sigkill_guard_refuses_a_pid_that_runs_something_else(tmp_path):
    # Arrange: the recorded PID now belongs to a process on another datadir
    proc = _sleeper(tmp_path / "other", ignore_sigterm=False)

    # Act / Assert
    try:
        with pytest.raises(NetworkError, match="not the geth running on"):
            _sigkill_geth(proc.pid, tmp_path / "v")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_sigkill_guard_refuses_a_pid_that_is_gone(tmp_path):
    # Arrange
    proc = _sleeper(tmp_path / "v", ignore_sigterm=False)
    proc.kill()
    proc.wait()

    # Act / Assert
    with pytest.raises(NetworkError, match="not running"):
        _sigkill_geth(proc.pid, tmp_path / "v")
    with pytest.raises(NetworkError, match="no PID"):
        _sigkill_geth(None, tmp_path / "v")


def test_node_module_re_exports_the_process_functions():
    assert node_module.is_running is process.is_running
    assert node_module.stop_nodes is process.stop_nodes
    assert node_module.StopResult is process.StopResult
    assert process.__all__ == sorted(process.__all__)
    assert node_module.__all__ == sorted(node_module.__all__)
    assert all(hasattr(node_module, name) for name in node_module.__all__)
