"""Consensus: the status report of a CometBFT network (what ``network status --json`` prints).

:func:`build_status` is pure: it reads the folder records (``network.json``, ``bft.json``) and
asks a :class:`StatusProbe` for everything live (process liveness, CometBFT's ``/status``,
``/net_info`` and ``/validators``, geth's head and finalized block). :class:`LiveProbe` asks the
real processes; the unit tests give it an in-memory probe.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import httpx

from fednode.errors import NetworkError
from fednode.network.bft.manager import BftInfo, BftValidator
from fednode.network.info import NetworkInfo, ValidatorInfo
from fednode.network.node import rpc_call
from fednode.network.process import is_running

__all__ = ["LiveProbe", "StatusProbe", "build_status"]

_TIMEOUT_S = 3.0


class StatusProbe(Protocol):
    """Where the live half of a status report comes from."""

    def alive(self, pid: int | None, marker: str) -> bool:
        """Whether the process ``pid`` runs and is the one started for ``marker`` (a folder)."""
        ...

    def comet(self, rpc_url: str, path: str) -> dict[str, Any] | None:
        """The ``result`` of a CometBFT RPC GET (``status``, ``net_info``...), None if silent."""
        ...

    def block_number(self, http_url: str, tag: str) -> int | None:
        """The number of geth's ``latest`` or ``finalized`` block, None if silent."""
        ...


class LiveProbe:
    """Asks the running processes (loopback HTTP, a 3 s timeout each)."""

    def alive(self, pid: int | None, marker: str) -> bool:
        """See :meth:`StatusProbe.alive`."""
        return is_running(pid, marker)

    def comet(self, rpc_url: str, path: str) -> dict[str, Any] | None:
        """See :meth:`StatusProbe.comet`."""
        try:
            reply = httpx.get(f"{rpc_url}/{path}", timeout=_TIMEOUT_S).json()
        except (httpx.HTTPError, ValueError):
            return None
        result = reply.get("result") if isinstance(reply, dict) else None
        return result if isinstance(result, dict) else None

    def block_number(self, http_url: str, tag: str) -> int | None:
        """See :meth:`StatusProbe.block_number`."""
        with contextlib.suppress(NetworkError, KeyError, TypeError, ValueError):
            block = rpc_call(http_url, "eth_getBlockByNumber", [tag, False], timeout=_TIMEOUT_S)
            return int(block["number"], 16) if block else None
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _processes(e: ValidatorInfo, c: BftValidator, probe: StatusProbe) -> list[dict[str, Any]]:
    return [
        {"validator": e.name, "role": "geth", "pid": e.pid, "alive": probe.alive(e.pid, e.datadir)},
        {"validator": c.name, "role": "cometbft", "pid": c.pid,
         "alive": probe.alive(c.pid, c.home)},
    ]  # fmt: skip


def _row(e: ValidatorInfo, c: BftValidator, probe: StatusProbe) -> dict[str, Any]:
    geth_alive, comet_alive = probe.alive(e.pid, e.datadir), probe.alive(c.pid, c.home)
    status = probe.comet(c.rpc_url, "status") if comet_alive else None
    net = probe.comet(c.rpc_url, "net_info") if status else None
    sync = (status or {}).get("sync_info", {})
    peers = [p.get("node_info", {}).get("id") for p in (net or {}).get("peers", [])]
    return {
        "name": e.name, "http_url": e.http_url, "cometbft_rpc": c.rpc_url,
        "geth_pid": e.pid, "geth_alive": geth_alive,
        "cometbft_pid": c.pid, "cometbft_alive": comet_alive,
        "head": probe.block_number(e.http_url, "latest") if geth_alive else None,
        "finalized": probe.block_number(e.http_url, "finalized") if geth_alive else None,
        "cometbft_height": _int(sync.get("latest_block_height")),
        "catching_up": sync.get("catching_up") if status else None,
        "voting_power": _int((status or {}).get("validator_info", {}).get("voting_power")),
        "peers": _int(net.get("n_peers")) if net else None,
        "peer_ids": peers if net else None,
        "validator_address": c.address, "node_id": c.node_id,
    }  # fmt: skip


def _validator_set(bft: BftInfo, rows: list[dict[str, Any]],
                   probe: StatusProbe) -> dict[str, Any] | None:
    """CometBFT's current validator set, as the first answering node reports it."""
    names = {c.address.upper(): c.name for c in bft.validators}
    for c, row in zip(bft.validators, rows, strict=True):
        if row["cometbft_height"] is None:
            continue
        reply = probe.comet(c.rpc_url, "validators?per_page=100")
        if reply is None:
            continue
        members = [
            {"name": names.get(str(v.get("address", "")).upper()), "address": v.get("address"),
             "pub_key": v.get("pub_key", {}).get("value"),
             "voting_power": _int(v.get("voting_power")),
             "proposer_priority": _int(v.get("proposer_priority"))}
            for v in reply.get("validators", [])
        ]  # fmt: skip
        return {"height": _int(reply.get("block_height")), "reported_by": c.name,
                "total_voting_power": sum(m["voting_power"] or 0 for m in members),
                "validators": members}
    return None


def _highest(rows: list[dict[str, Any]], key: str) -> int | None:
    values = [r[key] for r in rows if r[key] is not None]
    return max(values) if values else None


def build_status(info: NetworkInfo, bft: BftInfo, probe: StatusProbe) -> dict[str, Any]:
    """The JSON-ready status of a CometBFT network.

    Returns:
        ``engine``, ``chain_id``, ``versions`` (geth, cometbft, go_ethereum, fednode_bft),
        ``binaries`` (paths), ``height`` (highest CometBFT height answered), ``finalized``
        (highest finalized execution block), ``validator_set`` (CometBFT's, with voting power;
        None when no node answers), ``processes`` (every process started: validator, role,
        PID, alive) and ``validators`` (one row per validator: PIDs, heights, peers).
    """
    pairs = list(zip(info.validators, bft.validators, strict=True))
    rows = [_row(e, c, probe) for e, c in pairs]
    return {
        "engine": bft.engine, "chain_id": info.chain_id,
        "versions": {"geth": info.geth_version, **bft.versions},
        "binaries": {"geth": info.geth, "fednode_bft": bft.app},
        "height": _highest(rows, "cometbft_height"), "finalized": _highest(rows, "finalized"),
        "validator_set": _validator_set(bft, rows, probe),
        "processes": [p for e, c in pairs for p in _processes(e, c, probe)],
        "validators": rows,
    }  # fmt: skip
