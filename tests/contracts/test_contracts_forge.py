"""Chain: runs the forge fuzz and invariant tests in contracts/test/ (skipped without forge)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FORGE = REPO_ROOT / "node_modules" / ".bin" / "forge"


def test_contracts_forge_properties_hold():
    if not FORGE.exists():
        pytest.skip("forge is not installed (npm install in the repository root)")
    env = {**os.environ, "FOUNDRY_CONFIG": "contracts/foundry.toml"}
    result = subprocess.run(
        [str(FORGE), "test"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 failed" in result.stdout
