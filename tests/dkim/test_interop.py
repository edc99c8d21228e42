"""DKIM interop: todoku's signer and verifier against dkimpy, Mail::DKIM and
OpenDKIM (all from Debian). Run: /usr/bin/python3 -m pytest tests/dkim
with DKIM_TOOL pointing at the built dkim_tool (default
build/tests/dkim/dkim_tool). DNS for Mail::DKIM comes from a dnslib server on
127.0.0.1; dkimpy gets its keys through dnsfunc; todoku through a file."""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
TOOL = os.environ.get("DKIM_TOOL", str(REPO / "build/tests/dkim/dkim_tool"))
CORPORA = pathlib.Path(os.environ.get("TODOKU_CORPORA",
                                      REPO.parent / "shared" / "corpora"))
DOMAIN = "example.test"

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.org>\r\n"
           b"Cc: carol@example.org\r\n"
           b"Subject: interop  test \t with   spaces\r\n"
           b"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n"
           b"Message-ID: <interop-1@example.test>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"List-Unsubscribe: <mailto:unsub@example.test>\r\n"
           b"X-Not-Signed: whatever\r\n"
           b"\r\n"
           b"Hello Bob,  \r\n"
           b"\r\n"
           b"a line with \t tabs and trailing space \r\n"
           + b"x" * 3000 + b"\r\n"
           b"\r\n\r\n")


def run(args, data=None):
    return subprocess.run(args, input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True).stdout


def txt_value(record_text):
    """Concatenate the quoted strings of a zone-file TXT record."""
    strings = re.findall(r'"([^"]*)"', record_text)
    assert strings and all(len(s) <= 255 for s in strings)
    return "".join(strings)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    if not os.path.exists(TOOL):
        pytest.fail("dkim_tool not built: %s (set DKIM_TOOL)" % TOOL)
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for alg, sel in (("rsa", "rsa2048"), ("ed25519", "ed")):
        pem = d / (sel + ".pem")
        rec = run([TOOL, "keygen", alg, "-d", DOMAIN, "-s", sel,
                   "--out", str(pem)]).decode()
        assert rec.startswith("%s._domainkey.%s. IN TXT" % (sel, DOMAIN))
        out[sel] = (alg, pem, txt_value(rec))
    dns = d / "dns.tsv"
    dns.write_text("".join("%s._domainkey.%s\t%s\n" % (s, DOMAIN, v[2])
                           for s, v in out.items()))
    return out, dns


def sign(keys, sel, msg=MESSAGE, canon="relaxed/relaxed"):
    alg, pem, _ = keys[0][sel]
    return run([TOOL, "sign", "--key", str(pem), "-d", DOMAIN, "-s", sel,
                "-a", "ed25519-sha256" if alg == "ed25519" else "rsa-sha256",
                "-c", canon, "-t", str(int(time.time())), "--chunk", "5"],
               msg)


def dkimpy_dns(keys):
    table = {"%s._domainkey.%s" % (s, DOMAIN): v[2].encode()
             for s, v in keys[0].items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return table.get(name.rstrip(".").lower())
    return dnsfunc


SIGNINGS = [(s, c) for s in ("rsa2048", "ed")
            for c in ("relaxed/relaxed", "simple/simple", "relaxed/simple",
                      "simple/relaxed")]


@pytest.mark.parametrize("sel,canon", SIGNINGS)
def test_dkimpy_verifies_todoku(keys, sel, canon):
    dkim = pytest.importorskip("dkim")
    signed = sign(keys, sel, canon=canon)
    field = signed.split(b"\r\n")
    assert field[0].startswith(b"DKIM-Signature:")
    for i, line in enumerate(field):
        if i > 0 and not line.startswith(b"\t"):
            break
        assert len(line) <= 78, line
    assert dkim.verify(signed, dnsfunc=dkimpy_dns(keys))


@pytest.mark.parametrize("sel,canon", SIGNINGS)
def test_todoku_verifies_itself(keys, sel, canon):
    signed = sign(keys, sel, canon=canon)
    out = run([TOOL, "verify", "--dns", str(keys[1]), "--chunk", "3", "-"],
              signed).decode()
    assert out.startswith("1 pass "), out


@pytest.fixture(scope="module")
def dns_server(keys):
    dnslib = pytest.importorskip("dnslib")
    from dnslib.server import BaseResolver, DNSServer

    table = {"%s._domainkey.%s" % (s, DOMAIN): v[2]
             for s, v in keys[0].items()}

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).rstrip(".").lower()
            if name in table and request.q.qtype == dnslib.QTYPE.TXT:
                v = table[name].encode()
                parts = [v[i:i + 255] for i in range(0, len(v), 255)]
                reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.TXT,
                                           rdata=dnslib.TXT(parts), ttl=60))
            elif name not in table:
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply

    server = DNSServer(Resolver(), address="127.0.0.1", port=0, tcp=False)
    server.start_thread()
    yield server.server.server_address[1]
    server.stop()


PERL = r'''
use strict; use warnings;
use Mail::DKIM::Verifier; use Net::DNS::Resolver;
my $res = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'],
    port => $ARGV[0], recurse => 1, udp_timeout => 5, retry => 1);
Mail::DKIM::DNS::resolver($res);
local $/; my $msg = <STDIN>;
my $v = Mail::DKIM::Verifier->new();
$v->PRINT($msg); $v->CLOSE;
print join(" ", map { $_->result } $v->signatures), "\n";
print STDERR join(" ", map { $_->result_detail } $v->signatures), "\n";
'''


@pytest.mark.parametrize("sel,canon", SIGNINGS)
def test_mail_dkim_verifies_todoku(keys, dns_server, sel, canon):
    if subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e", "1"]).returncode:
        pytest.skip("libmail-dkim-perl not installed")
    signed = sign(keys, sel, canon=canon)
    p = subprocess.run(["perl", "-e", PERL, str(dns_server)], input=signed,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.decode()
    if sel == "ed" and "unsupported algorithm ed25519" in p.stderr.decode():
        pytest.skip("Debian 12's Mail::DKIM 1.20230212 cannot verify ed25519-sha256")
    assert out.split() == ["pass"], (out, p.stderr.decode())


def test_todoku_verifies_dkimpy(tmp_path):
    dkim = pytest.importorskip("dkim")
    data = CORPORA / "dkim" / "dkimpy"
    # the *.pub.txt / *.dns files hold complete key records
    cases = [("2048_testkey.key", b"rsa-sha256",
              "2048_testkey_wo_markers.pub.txt", "rsa"),
             ("ed25519test.key", b"ed25519-sha256", "ed25519test.dns",
              "ed25519")]
    for keyfile, alg, pubfile, kind in cases:
        key = (data / keyfile).read_bytes()
        value = " ".join((data / pubfile).read_text().split())
        dns = tmp_path / ("dns-%s.tsv" % kind)
        dns.write_text("sel._domainkey.%s\t%s\n" % (DOMAIN, value))
        for canon in ((b"relaxed", b"relaxed"), (b"simple", b"simple")):
            sig = dkim.sign(MESSAGE, b"sel", DOMAIN.encode(), key,
                            canonicalize=canon, signature_algorithm=alg)
            out = run([TOOL, "verify", "--dns", str(dns), "-"],
                      sig + MESSAGE).decode()
            assert out.startswith("1 pass "), (kind, canon, out)


def test_todoku_verifies_opendkim(keys, tmp_path):
    tool = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
    if not os.path.exists(tool):
        pytest.skip("opendkim-tools not installed")
    # opendkim-testmsg verifies only against live DNS, so the direction
    # tested is OpenDKIM signing -> todoku verifying. It signs rsa-sha1
    # (no option to change it), which RFC 8301 forbids: todoku must fail
    # it, and with --legacy show that it verifies cryptographically.
    _, pem, _ = keys[0]["rsa2048"]
    signed = run([tool, "-C", "-d", DOMAIN, "-s", "rsa2048", "-k", str(pem)],
                 MESSAGE)
    out = run([TOOL, "verify", "--dns", str(keys[1]), "-"], signed).decode()
    if " a=rsa-sha1 " in out:
        assert out.startswith("1 fail ") and "RFC 8301" in out, out
        out = run([TOOL, "verify", "--legacy", "--dns", str(keys[1]), "-"],
                  signed).decode()
        assert " legacy=1 " in out, out
    else:
        assert out.startswith("1 pass "), out


@pytest.fixture(scope="module")
def dns53(keys):
    """The key records on port 53 of a free 127.0.0.x address, for tools
    that read /etc/resolv.conf (which cannot name a port)."""
    dnslib = pytest.importorskip("dnslib")
    from dnslib.server import BaseResolver, DNSServer
    import socket

    table = {"%s._domainkey.%s" % (s, DOMAIN): v[2]
             for s, v in keys[0].items()}
    asked = []

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).rstrip(".").lower()
            asked.append(name)
            if name in table and request.q.qtype == dnslib.QTYPE.TXT:
                v = table[name].encode()
                parts = [v[i:i + 255] for i in range(0, len(v), 255)]
                reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.TXT,
                                           rdata=dnslib.TXT(parts), ttl=60))
            elif name not in table:
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply

    for last in range(200, 250):
        addr = "127.0.%d.%d" % (os.getpid() % 200 + 1, last)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((addr, 53))
        except OSError:
            continue
        finally:
            probe.close()
        break
    else:
        pytest.fail("no free 127.0.x.y:53 for the resolv.conf DNS server")
    server = DNSServer(Resolver(), address=addr, port=53, tcp=False)
    server.start_thread()
    yield addr, asked
    server.stop()


@pytest.mark.parametrize("sel", ["rsa2048", "ed"])
def test_opendkim_verifies_todoku(keys, dns53, tmp_path, sel):
    """OpenDKIM's verifier (opendkim-testmsg, libopendkim) accepts
    todoku's signatures. It asks the resolver of /etc/resolv.conf, so it
    runs in a private mount namespace whose resolv.conf names our server
    (the host's file is not touched)."""
    tool = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
    if not os.path.exists(tool):
        pytest.fail("opendkim-tools not installed (scripts/deps.sh check)")
    addr, asked = dns53
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver %s\noptions attempts:1 timeout:3\n" % addr)
    good = sign(keys, sel)
    name = "%s._domainkey.%s" % (sel, DOMAIN)
    script = 'mount --bind "$1" /etc/resolv.conf && exec "$2"'

    def opendkim(msg):
        return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh",
                               str(resolv), tool], input=msg,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p = opendkim(good)
    assert name in asked, asked
    assert p.returncode == 0, p.stderr.decode()
    # and it is really verifying: a changed body fails
    p = opendkim(good.replace(b"Hello Bob", b"Hello Eve"))
    assert p.returncode != 0
    assert b"bad signature" in p.stderr.lower() or \
        b"body hash" in p.stderr.lower(), p.stderr


def test_keygen_record_strings(keys):
    for sel, (alg, pem, value) in keys[0].items():
        assert value.startswith("v=DKIM1; k=%s; p=" % alg)
        assert pem.read_text().startswith("-----BEGIN PRIVATE KEY-----")
