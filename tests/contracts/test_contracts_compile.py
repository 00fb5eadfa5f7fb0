"""Chain: recompiling contracts/ with the pinned solc reproduces the committed artifacts."""

from __future__ import annotations

import shutil

import pytest

from fednode.chain.compile import CONTRACT_NAMES, REPO_ROOT, compile_contracts, load_artifact


@pytest.mark.skipif(
    shutil.which("node") is None or not (REPO_ROOT / "node_modules" / "solc").is_dir(),
    reason="node and node_modules/solc are needed",
)
def test_contracts_compile_reproduces_committed_artifacts():
    fresh = compile_contracts()
    for name in CONTRACT_NAMES:
        committed = load_artifact(name)
        assert fresh[name]["abi"] == committed["abi"], name
        assert fresh[name]["bytecode"] == committed["bytecode"], name
        assert fresh[name]["sourceDigest"] == committed["sourceDigest"], name
