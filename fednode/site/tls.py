"""Site: the device's TLS context for an ``https`` edge (it trusts only the operator's certificate).

The edge operator makes its certificate (``fednode device tls-cert``) and hands it to its devices,
which pin it here; a device never trusts the system's certificate authorities for its edge.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_ssl_context"]


def client_ssl_context(
    ca_path: str | Path, *, cert_path: str | Path | None = None, key_path: str | Path | None = None
) -> ssl.SSLContext:
    """A device-side context that trusts only the operator certificate ``ca_path``.

    ``cert_path``/``key_path`` add a client certificate for mutual TLS.
    """
    context = ssl.create_default_context(cafile=str(ca_path))
    if cert_path is not None:
        context.load_cert_chain(str(cert_path), None if key_path is None else str(key_path))
    return context
