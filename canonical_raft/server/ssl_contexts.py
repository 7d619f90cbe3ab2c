"""HTTPS with the cluster's certificates (``--tls-dir``, the layout of
``certs init|node``): the server presents node-<id>.crt; clients (other
servers forwarding, the CLI) verify it against ca.crt. A forwarding server
presents its own certificate too, so a server may require client certificates."""

from __future__ import annotations

import ssl
from typing import Optional

from ..tls import TLS

__all__ = ["server_context", "client_context"]


def server_context(tls: TLS, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.certfile, tls.keyfile)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(cafile: str, tls: Optional[TLS] = None) -> ssl.SSLContext:
    """Verifies the server against ``cafile``; presents ``tls``'s certificate if given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None:
        ctx.load_cert_chain(tls.certfile, tls.keyfile)
    return ctx
