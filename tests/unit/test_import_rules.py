"""Import rules: who may import whom, read from the source (ast) of every module in fednode/.

* ``fednode`` does not import ``edge_server``: the device side (``fednode.site``) and every
  stage share the wire format through ``fednode.update``. Only the CLI modules that wire the
  demo's and an operator's processes (start edge servers, enroll devices in an edge store) may.
* ``fednode.device`` (pure JAX training) imports neither ``fednode.chain`` nor ``edge_server``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fednode"

EDGE_SERVER_ALLOWED = frozenset({
    "fednode.cli.demo_flow",  # starts one edge server per demo hospital
    "fednode.cli.device_cmd",  # enrolls a device in an edge's store, makes its TLS certificate
})  # fmt: skip
"""The only fednode modules that may import edge_server (process wiring in the CLI)."""

DEVICE_FORBIDDEN = ("fednode.chain", "edge_server")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module an import statement names (at any depth: lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            else:
                yield node.lineno, node.module or ""


def _is_within(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _violations(
    forbidden: tuple[str, ...], modules: list[Path], allowed: frozenset[str], root: Path = ROOT
) -> list[str]:
    found = []
    for path in modules:
        if _module_name(path, root) in allowed:
            continue
        for line, name in _imports(path, root):
            if any(_is_within(name, banned) for banned in forbidden):
                found.append(f"{path.relative_to(root)}:{line} imports {name}")
    return found


def test_the_walk_sees_the_package() -> None:
    names = {_module_name(p) for p in _modules()}
    assert {"fednode.site.device_client", "fednode.update.envelope", "fednode.device.train",
            "fednode.cli.demo_flow"} <= names


def test_fednode_does_not_import_edge_server_outside_the_cli_wiring() -> None:
    assert _violations(("edge_server",), _modules(), EDGE_SERVER_ALLOWED) == []


def test_the_allow_list_is_short_and_every_entry_still_needs_it() -> None:
    assert len(EDGE_SERVER_ALLOWED) <= 3
    for module in EDGE_SERVER_ALLOWED:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert any(_is_within(n, "edge_server") for _, n in _imports(path)), module


def test_the_device_imports_neither_the_chain_nor_the_edge() -> None:
    device = [p for p in _modules() if _is_within(_module_name(p), "fednode.device")]
    assert device
    assert _violations(DEVICE_FORBIDDEN, device, frozenset()) == []


@pytest.mark.parametrize("source, expected, banned", [
    ("import edge_server.app\n", "edge_server.app", True),
    ("def f():\n    from edge_server import auth\n", "edge_server", True),
    ("from ..chain import records\n", "fednode.chain", True),
    ("from . import data\n", "fednode.device", False),
    ("import fednode.chainlink\n", "fednode.chainlink", False),
])  # fmt: skip
def test_the_walk_finds_top_level_lazy_and_relative_imports(
    tmp_path: Path, source: str, expected: str, banned: bool
) -> None:
    path = tmp_path / "fednode" / "device" / "probe.py"  # as if it were fednode/device/probe.py
    path.parent.mkdir(parents=True)
    path.write_text(source)
    [(line, name)] = list(_imports(path, tmp_path))
    assert name == expected
    found = _violations(DEVICE_FORBIDDEN, [path], frozenset(), tmp_path)
    assert found == ([f"fednode/device/probe.py:{line} imports {expected}"] if banned else [])
