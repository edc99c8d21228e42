"""Throwaway certificates for loopback TLS tests, made with the openssl CLI.

    ca = TestCA(dirpath, "todoku test CA")
    cert, key = ca.issue("mx.example.test")             # SAN DNS:mx.example.test
    cert, key = ca.issue("relay", ip="127.0.0.5")       # SAN IP:127.0.0.5
    cert, key = ca.issue("mx.example.test", days=0)     # already expired
    cert, key = self_signed(dirpath, "mx.example.test")
    ca.cert                                             # the CA certificate (PEM)

Keys are P-256 (fast to make). Certificates are valid from now on for two
days. Files are world-readable (the key files too: test keys only) so the
unprivileged roles and Postfix can read them.
"""
import os
import subprocess
from pathlib import Path


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _newkey(path):
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(path))
    os.chmod(path, 0o644)


class TestCA:
    __test__ = False   # not a pytest class

    def __init__(self, directory, name="todoku test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        self.key = self.dir / (slug + ".key")
        self.cert = self.dir / (slug + ".crt")
        _newkey(self.key)
        _run("req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert),
             "-days", "2", "-subj", "/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._n = 0

    def issue(self, name, ip=None, days=2):
        """A server certificate for DNS name (and IP address ip): (cert, key).
        days=0: it expires the second it is made (notAfter = notBefore)."""
        self._n += 1
        base = self.dir / ("%s-%d" % (name, self._n))
        key, csr, crt, ext = (Path(str(base) + s) for s in (".key", ".csr", ".crt", ".ext"))
        _newkey(key)
        _run("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/CN=" + name)
        san = "DNS:" + name + (",IP:" + ip if ip else "")
        ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n" % san)
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-CAcreateserial", "-out", str(crt), "-days", str(days), "-extfile", str(ext))
        return crt, key


def self_signed(directory, name):
    """A self-signed certificate for name: (cert, key)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key, crt = d / ("self-%s.key" % name), d / ("self-%s.crt" % name)
    _newkey(key)
    _run("req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "2",
         "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name)
    return crt, key
