"""Chain: the committed ABI artifacts are up to date, and the solc wrapper answers like solc."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fednode.chain.compile import (
    ABI_DIR,
    CONTRACT_NAMES,
    REPO_ROOT,
    SOLC_VERSION,
    build_standard_input,
    load_artifact,
    source_digest,
    stale_artifacts,
)
from fednode.errors import ChainError

SOLC = REPO_ROOT / "scripts" / "solc"
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (REPO_ROOT / "node_modules" / "solc").is_dir(),
    reason="node and node_modules/solc are needed",
)


def test_chain_compile_committed_artifacts_are_up_to_date():
    assert stale_artifacts() == [], "run `python -m fednode.chain.compile`"


def test_chain_compile_artifacts_hold_abi_and_paris_bytecode():
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        assert artifact["contractName"] == name
        assert artifact["bytecode"].startswith("0x60") and len(artifact["bytecode"]) > 100
        assert artifact["compiler"]["settings"]["evmVersion"] == "paris"
        assert any(entry["type"] == "error" for entry in artifact["abi"])


def test_chain_compile_source_digest_tracks_every_source(tmp_path: Path):
    # Arrange
    shutil.copytree(REPO_ROOT / "contracts", tmp_path / "contracts")
    before = source_digest(tmp_path)
    # Act
    interface = tmp_path / "contracts" / "interfaces" / "IUpdateLedger.sol"
    interface.write_text(interface.read_text() + "\n// changed\n")
    # Assert
    assert before == source_digest(REPO_ROOT)
    assert source_digest(tmp_path) != before
    assert stale_artifacts(tmp_path) == list(CONTRACT_NAMES)


def test_chain_compile_standard_input_targets_paris_with_optimizer():
    settings = build_standard_input()["settings"]
    assert settings["evmVersion"] == "paris"
    assert settings["optimizer"]["enabled"] is True


def test_chain_compile_missing_artifact_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ChainError, match="fednode.chain.compile"):
        load_artifact("Consortium", tmp_path)


def test_chain_compile_missing_contracts_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ChainError, match="contracts/"):
        source_digest(tmp_path)


def test_chain_compile_artifacts_are_canonical_json():
    for name in CONTRACT_NAMES:
        text = (ABI_DIR / f"{name}.json").read_text()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


@needs_node
def test_chain_compile_solc_wrapper_prints_native_version():
    out = subprocess.run([str(SOLC), "--version"], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert lines[1].startswith(f"Version: {SOLC_VERSION}+commit.")


@needs_node
def test_chain_compile_solc_wrapper_resolves_imports_and_ignores_extra_flags():
    # Arrange
    source = (
        'pragma solidity ^0.8.28; import "contracts/interfaces/ITaskRegistry.sol";'
        'import "@openzeppelin/contracts/access/IAccessControl.sol";'
        "contract Probe { function f() external pure returns (uint256) { return 1; } }"
    )
    request = {
        "language": "Solidity",
        "sources": {"probe.sol": {"content": source}},
        "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
    }
    # Act
    out = subprocess.run(
        [str(SOLC), "--standard-json", "--allow-paths", "/nowhere"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    # Assert: stdout is pure JSON
    result = json.loads(out.stdout)
    assert not [e for e in result.get("errors", []) if e["severity"] == "error"]
    assert "contracts/interfaces/ITaskRegistry.sol" in result["sources"]


@needs_node
def test_chain_compile_solc_wrapper_refuses_imports_outside_the_roots():
    request = {
        "language": "Solidity",
        "sources": {"x.sol": {"content": 'pragma solidity ^0.8.28; import "../../etc/x.sol";'}},
        "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
    }
    out = subprocess.run(
        [str(SOLC), "--standard-json"], input=json.dumps(request), capture_output=True, text=True
    )
    errors = json.loads(out.stdout)["errors"]
    assert any(e["severity"] == "error" for e in errors)
