"""raft.TLS: the files a node needs for mutual TLS on its peer port.

The identity rule, in one place: a node certificate names the raft id it
may use as exactly one subjectAltName URI ``urn:canonical-raft:id:<id>``
(decimal, >= 1), beside the DNS names and IP addresses it is reached at.
``python -m canonical_raft certs`` makes such certificates.
"""

from __future__ import annotations

import os
from typing import Union

ID_URI_PREFIX = "urn:canonical-raft:id:"

_Path = Union[str, "os.PathLike[str]"]


def id_uri(id: int) -> str:
    """The subjectAltName URI that lets a certificate speak for raft id ``id``."""
    if isinstance(id, bool) or not isinstance(id, int) or not 1 <= id < 2**64:
        raise ValueError(f"a raft id is an int >= 1, got {id!r}")
    return f"{ID_URI_PREFIX}{id}"


def id_from_uri(uri: str) -> int | None:
    """The raft id an ``id_uri()`` names, or None for any other URI."""
    if not uri.startswith(ID_URI_PREFIX):
        return None
    digits = uri[len(ID_URI_PREFIX):]
    if not digits.isdigit() or digits.startswith("0") or len(digits) > 20:
        return None
    value = int(digits)
    return value if value < 2**64 else None


def _readable(role: str, path: _Path) -> str:
    path = os.path.abspath(os.fspath(path))
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise OSError(exc.errno, f"TLS {role} {path!r} is not readable: {exc.strerror}") from None
    return path


class TLS:
    """A node's certificate, its private key and the cluster's CA (PEM
    files). Each must be readable when the TLS is made (OSError naming the
    file otherwise); their contents are checked by the node that loads them."""

    __slots__ = ("certfile", "keyfile", "cafile")
    certfile: str
    keyfile: str
    cafile: str

    def __init__(self, certfile: _Path, keyfile: _Path, cafile: _Path) -> None:
        self.certfile = _readable("certfile", certfile)
        self.keyfile = _readable("keyfile", keyfile)
        self.cafile = _readable("cafile", cafile)

    def _files(self) -> tuple[str, str, str]:
        return self.certfile, self.keyfile, self.cafile

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TLS) and self._files() == other._files()

    def __hash__(self) -> int:
        return hash(self._files())

    def __repr__(self) -> str:
        return "TLS(certfile={!r}, keyfile={!r}, cafile={!r})".format(*self._files())

    @classmethod
    def from_dir(cls, directory: _Path, id: int) -> TLS:
        """The files ``certs init`` and ``certs node`` write into
        ``directory`` for node ``id``: node-<id>.crt, node-<id>.key, ca.crt."""
        d = os.fspath(directory)
        return cls(os.path.join(d, f"node-{id}.crt"), os.path.join(d, f"node-{id}.key"),
                   os.path.join(d, "ca.crt"))
