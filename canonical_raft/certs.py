"""``python -m canonical_raft certs``: a cluster CA and node certificates.

    certs init DIR                          ca.crt, ca.key (the cluster's CA)
    certs node DIR --id N --host HOST ...   node-N.crt, node-N.key, signed by it

Keys are EC P-256, written 0600 and never overwritten. A node certificate is
good for both ends of a connection (serverAuth and clientAuth), names its
hosts as DNS names or IP addresses and its raft id as tls.id_uri(N). Needs
the ``cryptography`` package (``pip install canonical_raft[certs]``).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .tls import id_uri

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_DAYS = 3650
NODE_DAYS = 825


def _crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise SystemExit("certs needs the cryptography package: "
                         "pip install 'canonical_raft[certs]'") from None


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; an existing file is an error, never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _builder(subject: str, issuer: x509.Name | None, public_key: ec.EllipticCurvePublicKey,
             days: int, not_before: datetime.datetime | None) -> x509.CertificateBuilder:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer or name)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))


def init(directory: str, days: int = CA_DAYS) -> tuple[str, str]:
    """Make the cluster CA in ``directory``: (ca.crt, ca.key)."""
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key")
    for path in (cert_path, key_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists: a cluster has one CA (remove it to start over)")
    key = _new_key()
    cert = (_builder("canonical_raft cluster CA", None, key.public_key(), days, None)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def node(directory: str, id: int, hosts: Sequence[str], days: int = NODE_DAYS,
         not_before: Optional[datetime.datetime] = None) -> tuple[str, str]:
    """Issue node ``id``'s certificate and key from ``directory``'s CA:
    (node-<id>.crt, node-<id>.key)."""
    _crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID
    uri = id_uri(id)
    if not hosts:
        raise ValueError("a node certificate needs at least one --host")
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    with open(os.path.join(directory, "ca.crt"), "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    cert_path = os.path.join(directory, f"node-{id}.crt")
    key_path = os.path.join(directory, f"node-{id}.key")
    for path in (cert_path, key_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists (remove it to issue a new one)")
    key = _new_key()
    cert = (_builder(f"canonical_raft node {id}", ca_cert.subject, key.public_key(), days,
                     not_before)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]  # the CA's key is EC
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest="certs_command", required=True, metavar="init|node")
    init_cmd = what.add_parser("init", help="make the cluster CA in DIR")
    init_cmd.add_argument("dir")
    init_cmd.add_argument("--days", type=int, default=CA_DAYS)
    node_cmd = what.add_parser("node", help="issue a node certificate from DIR's CA")
    node_cmd.add_argument("dir")
    node_cmd.add_argument("--id", type=int, required=True)
    node_cmd.add_argument("--host", action="append", required=True,
                          help="a DNS name or IP address the node is reached at (repeatable)")
    node_cmd.add_argument("--days", type=int, default=NODE_DAYS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.certs_command == "init":
            paths = init(args.dir, args.days)
        else:
            paths = node(args.dir, args.id, args.host, args.days)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"certs: {exc}") from None
    for path in paths:
        print(path)
    return 0
