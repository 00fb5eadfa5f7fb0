"""Chain: compiles contracts/ with the pinned solc into committed ABI + bytecode JSON artifacts.

Artifacts live in ``fednode/chain/abi/<Contract>.json`` so a machine without node can deploy
and talk to the contracts. Each artifact records ``sourceDigest``, a keccak-256 over the
Solidity sources and compiler settings, so ``stale_artifacts()`` can tell without a compiler
whether they are up to date. Run ``python -m fednode.chain.compile`` (``--check`` to verify).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from eth_utils import keccak

from fednode.errors import ChainError

__all__ = [
    "ABI_DIR",
    "CONTRACT_NAMES",
    "REPO_ROOT",
    "SOLC_VERSION",
    "build_standard_input",
    "compile_contracts",
    "load_artifact",
    "source_digest",
    "stale_artifacts",
    "write_artifacts",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = Path(__file__).resolve().parent / "abi"
CONTRACT_NAMES = ("Consortium", "EvaluationLedger", "TaskRegistry", "UpdateLedger")
SOLC_VERSION = "0.8.28"
SETTINGS: dict[str, Any] = {
    "evmVersion": "paris",
    "optimizer": {"enabled": True, "runs": 200},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
"""Compiler settings; ``paris`` because geth 1.13 Clique chains have no PUSH0 (Shanghai)."""


def _read_sources(repo_root: Path) -> dict[str, str]:
    contracts = repo_root / "contracts"
    if not contracts.is_dir():
        raise ChainError(f"no contracts/ folder under {repo_root}: compile from a source checkout")
    # contracts/test/ holds the forge property tests; they are not part of the deployment
    files = sorted(p for p in contracts.rglob("*.sol") if p.relative_to(contracts).parts[0] != "test")
    return {path.relative_to(repo_root).as_posix(): path.read_text() for path in files}


def build_standard_input(repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """The solc standard-JSON input for every ``.sol`` file under ``contracts/``.

    Example:
      >>> sorted(build_standard_input()["sources"])[0]
      'contracts/Consortium.sol'
    """
    sources = _read_sources(repo_root)
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS,
    }


def source_digest(repo_root: Path = REPO_ROOT) -> str:
    """Hex keccak-256 over the sources, the settings and the pinned compiler version.

    Example:
      >>> len(source_digest())
      66
    """
    body = {"solc": SOLC_VERSION, **build_standard_input(repo_root)}
    return "0x" + keccak(json.dumps(body, sort_keys=True).encode()).hex()


def compile_contracts(
    repo_root: Path = REPO_ROOT, *, solc_binary: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Compiles the contracts and returns one artifact per name in ``CONTRACT_NAMES``.

    Raises:
      ChainError: if the compiler is missing, has the wrong version, or reports an error.
    """
    import solcx  # imported here: only a source checkout compiles

    binary = solc_binary or repo_root / "scripts" / "solc"
    try:
        version = str(solcx.wrapper.get_solc_version(binary))
        if version != SOLC_VERSION:
            raise ChainError(f"{binary} is solc {version}, expected {SOLC_VERSION}")
        output = solcx.compile_standard(build_standard_input(repo_root), solc_binary=binary)
    except (OSError, solcx.exceptions.SolcError) as exc:
        raise ChainError(f"compiling contracts with {binary} failed: {exc}") from exc
    digest = source_digest(repo_root)
    return {name: _artifact(output, name, digest) for name in CONTRACT_NAMES}


def _artifact(output: dict[str, Any], name: str, digest: str) -> dict[str, Any]:
    source_name = f"contracts/{name}.sol"
    compiled = output["contracts"][source_name][name]
    return {
        "contractName": name,
        "sourceName": source_name,
        "compiler": {"solc": SOLC_VERSION, "settings": SETTINGS},
        "sourceDigest": digest,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
    }


def write_artifacts(artifacts: dict[str, dict[str, Any]], abi_dir: Path = ABI_DIR) -> list[Path]:
    """Writes ``<name>.json`` per artifact (sorted keys, 2-space indent); returns the paths."""
    abi_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, artifact in sorted(artifacts.items()):
        path = abi_dir / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def load_artifact(name: str, abi_dir: Path = ABI_DIR) -> dict[str, Any]:
    """Reads a committed artifact by contract name.

    Raises:
      ChainError: if it does not exist (run ``python -m fednode.chain.compile``).

    Example:
      >>> load_artifact("UpdateLedger")["contractName"]
      'UpdateLedger'
    """
    path = abi_dir / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
        return artifact
    except FileNotFoundError as exc:
        raise ChainError(f"{path} missing: run `python -m fednode.chain.compile`") from exc


def stale_artifacts(repo_root: Path = REPO_ROOT, abi_dir: Path = ABI_DIR) -> list[str]:
    """Names of artifacts that are missing or were built from other sources or settings.

    Example:
      >>> stale_artifacts()
      []
    """
    digest = source_digest(repo_root)
    stale = []
    for name in CONTRACT_NAMES:
        path = abi_dir / f"{name}.json"
        if not path.exists() or json.loads(path.read_text()).get("sourceDigest") != digest:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    """``python -m fednode.chain.compile [--check]``: rebuild, or check, the artifacts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify they are up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        stale = stale_artifacts()
        for name in stale:
            logger.error("stale artifact: %s (run python -m fednode.chain.compile)", name)
        return 1 if stale else 0
    for path in write_artifacts(compile_contracts()):
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
