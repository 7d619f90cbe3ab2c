"""certs init/node: a CA and node certificates that name their raft id; TLS()."""

import datetime
import os
import ssl
import subprocess
import sys

import pytest

pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402

from canonical_raft import certs, tls  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "canonical_raft", "certs", *args],
                          capture_output=True, text=True, timeout=50)


def test_cli_makes_ca_and_node_certificates(tmp_path):
    d = str(tmp_path / "certs")
    assert _cli("init", d).returncode == 0
    r = _cli("node", d, "--id", "3", "--host", "127.0.0.1", "--host", "node3.example")
    assert r.returncode == 0, r.stderr
    crt, key = os.path.join(d, "node-3.crt"), os.path.join(d, "node-3.key")
    assert r.stdout.split() == [crt, key]
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(d, "ca.key")).st_mode & 0o777 == 0o600
    with open(crt, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert [tls.id_from_uri(u) for u in uris] == [3]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["node3.example"]
    # OpenSSL (Python's ssl) accepts the pair, and the chain verifies.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    verify = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), crt],
                            capture_output=True, text=True, timeout=20)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_never_overwrites(tmp_path):
    d = str(tmp_path)
    certs.init(d)
    with pytest.raises(FileExistsError):
        certs.init(d)
    certs.node(d, 1, ["127.0.0.1"])
    with pytest.raises(FileExistsError):
        certs.node(d, 1, ["127.0.0.1"])
    r = _cli("node", d, "--id", "1", "--host", "127.0.0.1")
    assert r.returncode != 0 and "exists" in r.stderr


@pytest.mark.parametrize("bad", [0, -1, 2**64, True])
def test_bad_ids_refused(tmp_path, bad):
    certs.init(str(tmp_path))
    with pytest.raises(ValueError):
        certs.node(str(tmp_path), bad, ["127.0.0.1"])


def test_validity_window(tmp_path):
    d = str(tmp_path)
    certs.init(d)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    crt, _ = certs.node(d, 2, ["127.0.0.1"], days=1, not_before=later)
    with open(crt, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.not_valid_before_utc > datetime.datetime.now(datetime.timezone.utc)
    verify = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), crt],
                            capture_output=True, text=True, timeout=20)
    assert verify.returncode != 0 and "not yet valid" in verify.stdout + verify.stderr


@pytest.mark.parametrize("uri,expected", [
    ("urn:canonical-raft:id:7", 7), ("urn:canonical-raft:id:18446744073709551615", 2**64 - 1),
    ("urn:canonical-raft:id:18446744073709551616", None), ("urn:canonical-raft:id:07", None),
    ("urn:canonical-raft:id:", None), ("urn:canonical-raft:id:1x", None),
    ("urn:other:id:7", None), ("urn:canonical-raft:id:0", None)])
def test_id_uri_rule(uri, expected):
    assert tls.id_from_uri(uri) == expected
    if expected is not None:
        assert tls.id_uri(expected) == uri


def test_tls_names_the_missing_file(tmp_path):
    d = str(tmp_path)
    certs.init(d)
    certs.node(d, 1, ["127.0.0.1"])
    files = tls.TLS.from_dir(d, 1)
    assert files.certfile.endswith("node-1.crt") and files == tls.TLS(*[
        os.path.join(d, n) for n in ("node-1.crt", "node-1.key", "ca.crt")])
    with pytest.raises(OSError, match="keyfile .*node-9.key"):
        tls.TLS(os.path.join(d, "node-1.crt"), os.path.join(d, "node-9.key"),
                 os.path.join(d, "ca.crt"))
