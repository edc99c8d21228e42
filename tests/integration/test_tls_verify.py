"""Certificate verification of outbound TLS (issue 3, DESIGN §7): verify =
none | ca per [delivery] and [route], SNI and the name check against the MX
host name, a failed verification is a connection-level failure for that
address (next address, finally deferred 4.7.5 quoting OpenSSL's exact
error), never a delivery over an unverified channel or in plaintext, and
the attempt record says whether the certificate was verified and by which
policy. The CA and certificates are made per test with the openssl CLI."""
import re
import subprocess
import time

from world import TestCA, alloc_addr, make_message, queue_id, self_signed
from world.roles import wait_log

SENDER = "someone@localhost"


def _send(d, rcpts):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, rcpts, make_message(subject="tls verify", sender=SENDER,
                                               to=rcpts[0]))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)
def _zone_mx(dns, domain, hosts):
    recs = []
    for pref, label, addr in hosts:
        recs += ["@ MX %d %s" % (pref, label), "%s A %s" % (label, addr)]
    dns.zone(domain, recs)


def _keep(session, line):
    """keep@ stays deferred, so the message and its record stay queued."""
    if line.upper().startswith("RCPT TO:<KEEP@"):
        return "450 4.2.0 keep me queued"
    return None


def _envelope_verbs(peer):
    return [c for c in peer.all_commands()
            if c.upper().startswith(("MAIL", "RCPT", "DATA", "AUTH"))]


def _verifying(ca, **extra):
    conf = {"tls": "must", "verify": "ca", "ca": str(ca.cert)}
    conf.update(extra)
    return {"delivery": conf, "queue": {"retry": "1h"}}


def test_verify_ca_right_name_delivers_and_records_verified(todoku, dns, smtp_peer, tmp_world):
    """MX 10 presents a certificate for another name: skipped; MX 20 has the
    right one: delivered there, in the same attempt, record says verified."""
    ca = TestCA(tmp_world / "pki")
    wrong = smtp_peer(port=25, tls=ca.issue("other.test"), on_command=_keep)
    right = smtp_peer(port=25, tls=ca.issue("mx.good.test"), on_command=_keep)
    _zone_mx(dns, "good.test", [(10, "first", wrong.addr), (20, "mx", right.addr)])
    d = todoku(dns_servers=[dns.addr], overrides=_verifying(ca))
    qid = _send(d, ["user@good.test", "keep@good.test"])
    rc = d.wait_history(qid, "user@good.test")
    h = rc["history"][0]
    assert rc["state"] == "delivered", rc
    first, last = h["record"]["addresses"]
    assert re.match(r"TLSv1\.[23]$", last["tls"]["version"]), h
    assert (last["host"], last["tls"]["result"], last["tls"]["verified"],
            last["tls"]["verify"], last["tls"]["name"]) == \
        ("mx.good.test", "ok", True, "ca", "mx.good.test"), h
    assert (first["host"], first["address"], first["outcome"]) == \
        ("first.good.test", wrong.addr, "tls-failed"), h
    assert "certificate verification failed (verify = ca, name " \
        "first.good.test): hostname mismatch" in first["tls"]["error"], h
    msgs = [m for m in right.messages if "user@good.test" in m["rcpts"]]
    assert len(msgs) == 1, right.transcript()
    assert all(s.tls for s in right.sessions if s.messages), right.transcript()
    assert right.sessions[0].sni == "mx.good.test"
    assert wrong.sessions and wrong.sessions[0].sni == "first.good.test"
    assert _envelope_verbs(wrong) == [], wrong.transcript()


def test_verify_ca_wrong_name_defers_475(todoku, dns, smtp_peer, tmp_world):
    ca = TestCA(tmp_world / "pki")
    peer = smtp_peer(port=25, tls=ca.issue("somebody-else.test"))
    _zone_mx(dns, "wrong.test", [(10, "mx", peer.addr)])
    d = todoku(dns_servers=[dns.addr], overrides=_verifying(ca))
    qid = _send(d, ["user@wrong.test"])
    rc = d.wait_history(qid, "user@wrong.test")
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert h["status"] == "4.7.5", h
    assert "certificate verification failed (verify = ca, name mx.wrong.test): " \
        "hostname mismatch" in h["reply"], h
    assert "hostname mismatch" in h["record"]["addresses"][0]["tls"]["error"], h
    wait_log(d, r"mx\.wrong\.test \[%s\]:25: TLS handshake failed: certificate "
             r"verification failed \(verify = ca, name mx\.wrong\.test\): hostname "
             r"mismatch" % re.escape(peer.addr), 5)
    assert peer.messages == [] and _envelope_verbs(peer) == [], peer.transcript()
    assert peer.sessions[0].commands[-1].startswith("<TLS handshake failed"), \
        peer.transcript()


def test_verify_ca_unknown_ca_defers_475(todoku, dns, smtp_peer, tmp_world):
    ours = TestCA(tmp_world / "pki", "our CA")
    rogue = TestCA(tmp_world / "rogue", "rogue CA")
    peer = smtp_peer(port=25, tls=rogue.issue("mx.rogue.test"))
    _zone_mx(dns, "rogue.test", [(10, "mx", peer.addr)])
    d = todoku(dns_servers=[dns.addr], overrides=_verifying(ours))
    qid = _send(d, ["user@rogue.test"])
    rc = d.wait_history(qid, "user@rogue.test", n=1)
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert h["status"] == "4.7.5", h
    assert "certificate verification failed (verify = ca, name mx.rogue.test): " \
        "unable to get local issuer certificate" in h["reply"], h
    assert peer.messages == [] and _envelope_verbs(peer) == [], peer.transcript()


def test_verify_ca_expired_certificate_defers_475(todoku, dns, smtp_peer, tmp_world):
    ca = TestCA(tmp_world / "pki")
    peer = smtp_peer(port=25, tls=ca.issue("mx.old.test", days=0))
    time.sleep(1.1)   # notAfter is the second it was made: now in the past
    _zone_mx(dns, "old.test", [(10, "mx", peer.addr)])
    d = todoku(dns_servers=[dns.addr], overrides=_verifying(ca))
    qid = _send(d, ["user@old.test"])
    rc = d.wait_history(qid, "user@old.test")
    h = rc["history"][0]
    assert rc["state"] == "deferred" and h["status"] == "4.7.5", rc
    assert "certificate verification failed (verify = ca, name mx.old.test): " \
        "certificate has expired" in h["reply"], h
    assert peer.messages == [] and _envelope_verbs(peer) == [], peer.transcript()


def test_verify_none_self_signed_delivers_not_verified(todoku, dns, smtp_peer, tmp_world):
    peer = smtp_peer(port=25, tls=self_signed(tmp_world / "pki", "mx.plain.test"),
                     on_command=_keep)
    _zone_mx(dns, "plain.test", [(10, "mx", peer.addr)])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    qid = _send(d, ["user@plain.test", "keep@plain.test"])
    rc = d.wait_history(qid, "user@plain.test")
    assert rc["state"] == "delivered", rc
    tls = rc["history"][0]["record"]["addresses"][0]["tls"]
    assert re.match(r"TLSv1\.[23]$", tls["version"]) and tls["cipher"], rc
    assert (tls["result"], tls["verified"], tls["verify"]) == ("ok", False, "none"), rc
    assert peer.sessions[0].tls and peer.sessions[0].sni == "mx.plain.test"


def test_route_verify_ca_checks_the_smarthost_address(todoku, smtp_peer, tmp_world):
    """via = smtp://[IP]: the certificate must name that IP address."""
    ca = TestCA(tmp_world / "pki")
    addr = alloc_addr(ports=(2525,))
    relay = smtp_peer(port=2525, addr=addr, tls=ca.issue("relay.test", ip=addr),
                      on_command=_keep)
    d = todoku(overrides={'route "*"': {"via": "smtp://[%s]:2525" % relay.addr,
                                       "verify": "ca", "ca": str(ca.cert)},
                          "queue": {"retry": "1h"}})
    qid = _send(d, ["friend@example.org", "keep@example.org"])
    rc = d.wait_history(qid, "friend@example.org")
    assert rc["state"] == "delivered", rc
    tls = rc["history"][0]["record"]["addresses"][0]["tls"]
    assert (tls["result"], tls["verified"], tls["verify"], tls["name"]) == \
        ("ok", True, "ca", relay.addr), rc
    assert relay.sessions[0].sni is None   # no SNI for an address (RFC 6066)


def test_verify_config_errors(todoku, tmp_world):
    d = todoku(start=False)
    d.write_config()
    base = d.config_path.read_text()
    bad = tmp_world / "bad.conf"
    for extra, needle in [
        ("[delivery]\nverify = ca\n", b"verify = ca needs tls = must"),
        ("[delivery]\nverify = maybe\n", b"none or ca"),
        ('[route "*"]\nvia = smtp://relay.example:25\ntls = may\nverify = ca\n',
         b"verify = ca needs tls = must"),
        ("[delivery]\ntls = must\nverify = ca\nca = /nonexistent/ca.pem\n",
         b"/nonexistent/ca.pem"),
    ]:
        bad.write_text(base + "\n" + extra)
        r = subprocess.run([d.bin, "config", "check", "-c", str(bad)], capture_output=True)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr, (extra, r.stderr)
        assert b"bad.conf" in r.stderr, r.stderr
