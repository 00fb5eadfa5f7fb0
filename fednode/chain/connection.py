"""Chain: opens a Web3 connection that works on Clique (geth) and dev chains (anvil) alike."""

from __future__ import annotations

from web3 import HTTPProvider, Web3
from web3.middleware import ExtraDataToPOAMiddleware

__all__ = ["POA_MIDDLEWARE_NAME", "connect_web3", "ensure_poa_middleware"]

POA_MIDDLEWARE_NAME = "extradata_to_poa"


def ensure_poa_middleware(w3: Web3) -> Web3:
    """Injects ``ExtraDataToPOAMiddleware`` at layer 0 unless it is already there.

    Clique headers carry 97+ bytes of ``extraData`` (vanity + signer seal), which web3 refuses
    without this middleware. It is harmless on chains without Clique.

    Example:
      >>> w3 = ensure_poa_middleware(Web3())
      >>> POA_MIDDLEWARE_NAME in w3.middleware_onion
      True
    """
    onion = w3.middleware_onion
    if POA_MIDDLEWARE_NAME not in onion and ExtraDataToPOAMiddleware not in onion:
        onion.inject(ExtraDataToPOAMiddleware, name=POA_MIDDLEWARE_NAME, layer=0)
    return w3


def connect_web3(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A Web3 over HTTP JSON-RPC at ``rpc_url`` with the POA middleware in place.

    Example:
      >>> connect_web3("http://127.0.0.1:8545").provider.endpoint_uri
      'http://127.0.0.1:8545'
    """
    provider = HTTPProvider(rpc_url, request_kwargs={"timeout": timeout})
    return ensure_poa_middleware(Web3(provider))
