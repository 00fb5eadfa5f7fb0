"""Site: the device side of the edge protocol (keys, HTTP); fednode.device stays pure.

A device holds an Ed25519 identity (``fednode.site.device_identity``, re-exported here), pulls
its task and the global model from its edge server, and posts each signed delta. Every refusal
from the edge becomes ``EdgeError(status, reason)``; ``reason`` is the edge's machine-readable
code and ``detail`` its explanation; a transport failure is ``EdgeError(0, "unreachable")``.

Every signed message names the edge, chain and deployment it is for (``SigningScope``): the
client reads them once from the edge's ``GET /v1/info`` and, when the device's config pins a
scope, refuses an edge that reports another one (``EdgeError(0, "scope_mismatch")``). Reads of
the device's own records (update and evaluation status, cohort views) are signed too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from fednode.codec import Params, decode_params, digest_bytes, encode_params
from fednode.errors import CodecError, EdgeError, UpdateRejectedError
from fednode.site.device_identity import DeviceIdentity
from fednode.site.tls import client_ssl_context
from fednode.types import TaskRecord, TaskSpec, TaskState
from fednode.update.envelope import SIGNATURE_HEADER, SigningScope, UpdateEnvelope, envelope_to_json
from fednode.update.evaluation import evaluation_to_json, make_evaluation, sign_evaluation
from fednode.update.signing import new_nonce, sign_envelope, sign_read

__all__ = ["DeviceIdentity", "EdgeClient"]

_STATUS_FAILED = 409
_STATUS_TIMEOUT = 408


class EdgeClient:
    """HTTP client of one edge server, acting as one device.

    Args:
      base_url: the edge server, e.g. ``http://127.0.0.1:8701``.
      identity: the device's identity (must be enrolled at that edge).
      http: an httpx client to use (tests pass FastAPI's TestClient); one is made otherwise.
      timeout_s: per-request timeout of a client made here.
      clock: unix time source for the signed timestamp.
      tls_ca: the operator certificate (PEM) to trust for an ``https`` edge; devices pin it.
      tls_client_cert: ``(cert, key)`` PEM paths of this device for mutual TLS.
      scope: the scope this device signs for; default the identity's pinned one, else what
        the edge's ``/v1/info`` reports. A pinned scope must match the edge's.

    Example:
      >>> client = EdgeClient("http://127.0.0.1:1", DeviceIdentity.generate())
      >>> client.fetch_task(1)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.EdgeError: HTTP 0: unreachable: ...
    """

    def __init__(
        self,
        base_url: str,
        identity: DeviceIdentity,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        tls_ca: str | Path | None = None,
        tls_client_cert: tuple[str | Path, str | Path] | None = None,
        scope: SigningScope | None = None,
    ) -> None:
        self._pinned = scope or identity.scope
        self._scope: SigningScope | None = None
        self._base_url = base_url.rstrip("/")
        self._identity = identity
        self._owns_http = http is None
        if http is None:
            verify: Any = True
            if tls_ca is not None:
                cert, key = tls_client_cert or (None, None)
                verify = client_ssl_context(tls_ca, cert_path=cert, key_path=key)
            http = httpx.Client(timeout=timeout_s, verify=verify)
        self._http = http
        self._clock = clock

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the HTTP client if this object made it."""
        if self._owns_http:
            self._http.close()

    def signing_scope(self) -> SigningScope:
        """The edge, chain and deployment this device signs for (read once from ``/v1/info``).

        Raises:
          EdgeError: ``(0, "scope_mismatch")`` when the edge reports another scope than the
            device's pinned one, or a malformed one.
        """
        if self._scope is None:
            body = self._request("GET", "/v1/info")
            try:
                reported = SigningScope.from_json(body)
            except UpdateRejectedError as exc:
                raise _edge_error(0, "scope_mismatch", f"bad /v1/info: {exc}") from exc
            if self._pinned is not None:
                try:
                    self._pinned.check(reported)
                except UpdateRejectedError as exc:
                    raise _edge_error(0, "scope_mismatch", str(exc)) from exc
            self._scope = reported
        return self._scope

    def fetch_task(self, task_id: int) -> TaskRecord:
        """The task as the edge reads it from the ledger; the spec digest is checked.

        Raises:
          CodecError: the spec JSON does not hash to the digest the edge reported.
        """
        body = self._request("GET", f"/v1/tasks/{task_id}")
        spec = TaskSpec.from_json(body["spec_json"])
        if spec.digest.hex() != body["spec_digest"]:
            raise CodecError(f"task {task_id}: spec JSON does not match its digest")
        return TaskRecord(
            task_id=int(body["task_id"]),
            spec=spec,
            spec_digest=spec.digest,
            publisher=str(body["publisher"]),
            state=TaskState[str(body["state"]).upper()],
            latest_version=int(body["latest_version"]),
            published_block=int(body["published_block"]),
        )

    def fetch_global(self, task_id: int, version: int | None = None) -> tuple[int, dict[str, Any]]:
        """The global model ``version`` (latest when None) as ``(version, params)``.

        Raises:
          CodecError: the payload does not hash to the reported digest or does not decode.
        """
        params = None if version is None else {"version": version}
        body = self._request("GET", f"/v1/tasks/{task_id}/global", params=params)
        payload = base64.b64decode(body["payload"], validate=True)
        if digest_bytes(payload).hex() != body["digest"]:
            raise CodecError(f"task {task_id} global model: payload does not match its digest")
        return int(body["version"]), decode_params(payload)

    def post_update(
        self,
        task_id: int,
        base_version: int,
        delta_params: Params,
        num_examples: int,
        epsilon_micro: int = 0,
    ) -> str:
        """Signs and posts one delta; returns the edge's update reference once it is stored."""
        scope = self.signing_scope()
        envelope = UpdateEnvelope(
            device_id=self._identity.device_id,
            task_id=task_id,
            base_version=base_version,
            num_examples=num_examples,
            epsilon_micro=epsilon_micro,
            payload=encode_params(delta_params),
            nonce=new_nonce(),
            timestamp=int(self._clock()),
            edge=scope.edge,
            chain_id=scope.chain_id,
            deployment=scope.deployment,
        )
        signature = sign_envelope(self._identity.private_key, envelope)
        headers = {
            SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
            "Content-Type": "application/json",
        }
        content = envelope_to_json(envelope)
        body = self._request("POST", "/v1/updates", content=content, headers=headers)
        return str(body["update_ref"])

    def update_status(self, ref: str) -> dict[str, Any]:
        """The edge's record of an update: status, chain update id, tx hash, error."""
        return self.request("GET", f"/v1/updates/{ref}")

    def wait_submitted(
        self, ref: str, timeout: float = 60.0, *, poll_s: float = 0.2
    ) -> dict[str, Any]:
        """Polls until the update is committed on the chain; returns its status record.

        "Committed" means on chain at the edge's confirmation depth
        (``accepted -> signed -> sent -> committed``).

        Raises:
          EdgeError: ``(409, "chain_refused")`` when the chain refused it (``detail`` names the
            custom error), ``(408, "timeout")`` when ``timeout`` seconds passed first.
        """
        return self._wait(self.update_status, ref, "update", timeout, poll_s)

    wait_committed = wait_submitted

    def post_evaluation(
        self,
        task_id: int,
        version: int,
        *,
        metric: float,
        num_examples: int,
        secondary: float | None = None,
    ) -> str:
        """Signs and posts this device's evaluation of final global ``version``.

        ``metric`` (and ``secondary``, None when undefined on this test split) are fractions in
        [0, 1] measured on the device's own test data. Returns the edge's evaluation reference
        once it is stored; a retry of the same evaluation returns the same reference.
        """
        envelope = make_evaluation(
            self._identity.device_id, task_id, version, metric=metric,
            num_examples=num_examples, secondary=secondary, nonce=new_nonce(),
            timestamp=int(self._clock()), scope=self.signing_scope(),
        )  # fmt: skip
        headers = {
            SIGNATURE_HEADER: sign_evaluation(self._identity.private_key, envelope),
            "Content-Type": "application/json",
        }
        content = evaluation_to_json(envelope)
        body = self._request("POST", "/v1/evaluations", content=content, headers=headers)
        return str(body["evaluation_ref"])

    def evaluation_status(self, ref: str) -> dict[str, Any]:
        """The edge's record of an evaluation: status, chain evaluation id, block, error."""
        return self.request("GET", f"/v1/evaluations/{ref}")

    def wait_evaluation_committed(
        self, ref: str, timeout: float = 60.0, *, poll_s: float = 0.2
    ) -> dict[str, Any]:
        """Polls until the evaluation is on chain at the edge's confirmation depth.

        Raises:
          EdgeError: ``(409, "chain_refused")`` or ``(408, "timeout")`` as ``wait_submitted``.
        """
        return self._wait(self.evaluation_status, ref, "evaluation", timeout, poll_s)

    def _wait(
        self,
        status_of: Callable[[str], dict[str, Any]],
        ref: str,
        kind: str,
        timeout: float,
        poll_s: float,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = status_of(ref)
            if status["status"] == "committed":
                return status
            if status["status"] == "failed":
                raise _edge_error(_STATUS_FAILED, "chain_refused", str(status["error"]))
            if time.monotonic() >= deadline:
                detail = f"{kind} {ref} still {status['status']}"
                raise _edge_error(_STATUS_TIMEOUT, "timeout", detail)
            time.sleep(poll_s)

    @property
    def identity(self) -> DeviceIdentity:
        """The device identity this client signs with."""
        return self._identity

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One JSON request to the edge (``path`` from the root); refusals raise EdgeError.

        A GET is signed as this device's read (routes about a device require it).
        """
        if method.upper() == "GET":
            kwargs["headers"] = {**kwargs.get("headers", {}), **self._read_headers(path)}
        return self._request(method, path, **kwargs)

    def _read_headers(self, path: str) -> dict[str, str]:
        return sign_read(self._identity.private_key, self.signing_scope(), "GET",
                         path.split("?", 1)[0], self._identity.device_id, int(self._clock()))

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, self._base_url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise _edge_error(0, "unreachable", str(exc)) from exc
        body = _json_or_none(response)
        if response.status_code >= 400 or not isinstance(body, dict):
            error = body if isinstance(body, dict) else {}
            detail = error.get("detail", response.text[:200])
            raise _edge_error(response.status_code, str(error.get("error", "http_error")), detail)
        return body


def _edge_error(status: int, reason: str, detail: Any) -> EdgeError:
    # EdgeError carries (status, reason); the detail rides along for messages and callers.
    error = EdgeError(status, reason)
    error.detail = detail  # type: ignore[attr-defined]
    error.args = (f"HTTP {status}: {reason}: {detail}",)
    return error


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
