"""ARC sealing of forwarded mail (issue 4, RFC 8617 §5.1).

A message from an untrusted client that todoku forwards through an alias
to another domain leaves with one ARC set made with the [dkim] key of
srs-domain (here the hostname mx.test): ARC-Authentication-Results with
our results, an ARC-Message-Signature and an ARC-Seal whose cv= is our
verdict on the chain as received. dkimpy's arc_verify checks what the
next hop got. Mail that is not forwarded gets no ARC set, and a chain
whose newest seal already says cv=fail is never sealed again.

The world: knotd serves orig.test (the sender, SPF without us),
remote.test (the forward's destination, MX = a scripted peer) and
fwd.test (an earlier forwarder's ARC key); todoku trusts 10.0.0.0/8 so
the test client on 127.x is a stranger.
"""
import re
import subprocess

from world import make_message
from world.roles import wait_for

SEAL_SEL = b"arc"
SEAL_DOMAIN = b"mx.test"


def _keygen(bin_, tmp, domain, selector):
    out = subprocess.run([bin_, "dkim", "keygen", "--domain", domain, "--selector",
                          selector, "--out", str(tmp)],
                         capture_output=True, check=True).stdout.decode()
    txt = "".join(re.findall(r'"([^"]*)"', out))
    path = tmp / ("%s.%s.key" % (selector, domain))
    return path, txt


def _zone_txt(txt):
    return " ".join('"%s"' % txt[i:i + 200] for i in range(0, len(txt), 200))


def _world(todoku, dns, smtp_peer, tmp_world):
    d0 = todoku(start=False)
    seal_key, seal_txt = _keygen(d0.bin, tmp_world, "mx.test", "arc")
    subprocess.run(["chown", "todoku-keys", str(seal_key)], check=True)
    seal_key.chmod(0o600)
    fwd_key, fwd_txt = _keygen(d0.bin, tmp_world, "fwd.test", "arc1")
    remote = smtp_peer(port=25)
    dns.zone("remote.test", ["@ MX 10 mx", "mx A %s" % remote.addr])
    dns.zone("orig.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"'])
    dns.zone("fwd.test", ["arc1._domainkey TXT %s" % _zone_txt(fwd_txt)])
    d = todoku(overrides={"server": {"trusted-networks": "10.0.0.0/8"},
                          "smtp": {"authserv-id": "mx.test"},
                          'dkim "mx.test"': {"selector": "arc", "key": str(seal_key)}},
               aliases="fwd@localhost: friend@remote.test",
               dns_servers=[dns.addr])
    records = {"arc._domainkey.mx.test": seal_txt.encode(),
               "arc1._domainkey.fwd.test": fwd_txt.encode()}
    return d, remote, records, fwd_key.read_bytes()


def _send(d, sender, rcpt, msg):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, [rcpt], msg)
    c.quit()
    assert r.code == 250, r


def _received(peer, n):
    return wait_for(lambda: list(peer.messages) if len(peer.messages) >= n else None,
                    25.0, "%d message(s) at %s" % (n, peer.addr))[n - 1]["data"]


def _crlf(b):
    return re.sub(rb"(?<!\r)\n", b"\r\n", b)


def _arc_verify(msg, records):
    dkim = __import__("dkim")

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), b"")
    return dkim.arc_verify(_crlf(msg), dnsfunc=dnsfunc)


def _unfold(msg, name):
    text = msg.decode("ascii", "replace")
    return [re.sub(r"\s+", " ", v) for v in
            re.findall(r"(?msi)^%s: (.*?)\r?\n(?=\S)" % re.escape(name), text)]


def test_forward_is_sealed_and_local_mail_is_not(todoku, dns, smtp_peer, tmp_world):
    d, remote, records, _ = _world(todoku, dns, smtp_peer, tmp_world)
    _send(d, "alice@orig.test", "fwd@localhost",
          make_message(subject="sealed forward", sender="alice@orig.test", to="fwd@localhost"))
    msg = _received(remote, 1)
    seals = _unfold(msg, "ARC-Seal")
    assert len(seals) == 1, msg[:3000]
    assert "i=1;" in seals[0] and "cv=none;" in seals[0] and "d=mx.test;" in seals[0], seals
    aar = _unfold(msg, "ARC-Authentication-Results")
    assert len(aar) == 1 and aar[0].startswith("i=1; mx.test; spf=fail"), aar
    assert "smtp.mailfrom=alice@orig.test" in aar[0] and "arc=none" in aar[0], aar
    assert "dmarc=" in aar[0], aar
    # the set sits on top, above our Authentication-Results
    assert msg.index(b"ARC-Seal:") < msg.index(b"Authentication-Results: mx.test")
    cv, results, comment = _arc_verify(msg, records)
    assert cv == b"pass", (cv, results, comment)
    assert "ARC-sealed i=1" in d.log_text()

    # a local recipient: no ARC set
    _send(d, "alice@orig.test", "someone@localhost",
          make_message(subject="local", sender="alice@orig.test", to="someone@localhost"))
    d.wait_delivered("someone", 1)
    assert b"ARC-Seal" not in d.maildir("someone")[0]


def test_chain_pass_sealed_at_next_instance(todoku, dns, smtp_peer, tmp_world):
    dkim = __import__("dkim")
    d, remote, records, fwd_key = _world(todoku, dns, smtp_peer, tmp_world)
    base = _crlf(b"Authentication-Results: fwd.test; spf=pass smtp.mailfrom=a@orig.test\n"
                 + make_message(subject="list post", sender="a@orig.test", to="fwd@localhost"))
    sealed = b"".join(dkim.arc_sign(base, b"arc1", b"fwd.test", fwd_key, b"fwd.test")) + base
    _send(d, "list@fwd.test", "fwd@localhost", sealed)
    msg = _received(remote, 1)
    seals = _unfold(msg, "ARC-Seal")
    assert len(seals) == 2, msg[:4000]
    ours = [s for s in seals if "d=mx.test;" in s]
    assert len(ours) == 1 and "i=2;" in ours[0] and "cv=pass;" in ours[0], seals
    assert any("i=2; mx.test;" in a and "arc=pass" in a
               for a in _unfold(msg, "ARC-Authentication-Results")), msg[:4000]
    cv, results, comment = _arc_verify(msg, records)
    assert cv == b"pass", (cv, results, comment)


def test_broken_chain_sealed_once_with_cv_fail(todoku, dns, smtp_peer, tmp_world):
    """RFC 8617 §5.1.2: a chain that does not validate is sealed with
    cv=fail (over our set alone); a chain whose newest seal says cv=fail
    is left as it is."""
    dkim = __import__("dkim")
    d, remote, records, fwd_key = _world(todoku, dns, smtp_peer, tmp_world)
    base = _crlf(b"Authentication-Results: fwd.test; spf=pass smtp.mailfrom=a@orig.test\n"
                 + make_message(subject="list post", sender="a@orig.test", to="fwd@localhost"))
    sealed = b"".join(dkim.arc_sign(base, b"arc1", b"fwd.test", fwd_key, b"fwd.test")) + base
    tampered = sealed.replace(b"list post", b"LIST POST")
    _send(d, "list@fwd.test", "fwd@localhost", tampered)
    msg = _received(remote, 1)
    ours = [s for s in _unfold(msg, "ARC-Seal") if "d=mx.test;" in s]
    assert len(ours) == 1 and "i=2;" in ours[0] and "cv=fail;" in ours[0], msg[:4000]
    assert any("arc=fail" in a for a in _unfold(msg, "ARC-Authentication-Results"))
    cv, _, comment = _arc_verify(msg, records)   # dkimpy: "chain terminated"
    assert cv != b"pass" and "fail" in comment, (cv, comment)

    # what we just sent, forwarded back through us: cv=fail is final
    again = re.sub(rb"(?m)^Authentication-Results: mx\.test;.*\r\n(\s.*\r\n)*", b"", msg)
    _send(d, "list@fwd.test", "fwd@localhost", again)
    msg2 = _received(remote, 2)
    assert len(_unfold(msg2, "ARC-Seal")) == 2, msg2[:4000]
    assert "chain already sealed as failed" in d.log_text()
