"""SRS (issue 4; DESIGN §1 story 1: a forward that soft-failed SPF).

Mail that todoku forwards through an alias to another domain leaves with
an SRS0 envelope sender in our domain; a bounce to that address comes
back from anyone (even an untrusted client), is verified and delivered
to the original sender; forged, expired and malformed SRS addresses are
refused; the null sender and our own senders are never rewritten.

The world: knotd serving remote.test (the forward's destination) and
orig.test (the original sender's domain), each with a scripted SMTP peer
as MX; todoku with trusted-networks = 10.0.0.0/8 so the test client on
127.x is an ordinary stranger. Expired addresses are built here with the
rule of src/mail/srs.c (HMAC-SHA-256 over NUL-separated lowercased
fields, the first 30 bits in base32, the day mod 1024 in two base32
characters), checked first against what todoku itself produced.
"""
import base64
import hashlib
import hmac
import os
import re
import subprocess
import time

from world import make_message, queue_id
from world.roles import wait_for, wait_log

SECRET = "first-secret-0123456789abcdef"
OLD_SECRET = "older-secret-fedcba9876543210"
HOSTNAME = "mx.test"          # the default srs-domain: [server] hostname
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SRS0_RE = re.compile(r"^SRS0=([A-Z2-7]{6})=([A-Z2-7]{2})=([^=]+)=(.+)@(.+)$")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def srs_hash(secret, fields):
    mac = hmac.new(secret.encode(), b"".join(f.lower().encode() + b"\0" for f in fields),
                   hashlib.sha256).digest()
    bits = int.from_bytes(mac, "big")
    total = len(mac) * 8
    return "".join(B32[(bits >> (total - 5 * (i + 1))) & 31] for i in range(6))


def srs0(secret, local, domain, when=None, our=HOSTNAME):
    day = int((time.time() if when is None else when) // 86400) % 1024
    ts = B32[day >> 5] + B32[day & 31]
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(secret, ["0", ts, domain, local]),
                                     ts, domain, local, our)


def _world(todoku, dns, smtp_peer, tmp_world, trusted="10.0.0.0/8", secrets=(SECRET, OLD_SECRET),
           aliases="fwd@localhost: friend@remote.test", extra_server=None, **kw):
    remote = smtp_peer(port=25, **kw)
    orig = smtp_peer(port=25)
    dns.zone("remote.test", ["@ MX 10 mx", "mx A %s" % remote.addr])
    dns.zone("orig.test", ["@ MX 10 mx", "mx A %s" % orig.addr])
    server = {"trusted-networks": trusted}
    if secrets:
        path = tmp_world / "srs-secrets"
        path.write_text("\n".join(secrets) + "\n\n")
        os.chmod(path, 0o644)
        server["srs-secret-file"] = str(path)
    server.update(extra_server or {})
    d = todoku(overrides={"server": server}, aliases=aliases, dns_servers=[dns.addr])
    return d, remote, orig


def _send(d, sender, rcpts, subject="srs test"):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, rcpts, make_message(subject=subject, sender=sender or "x@orig.test",
                                               to=rcpts[0]))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _rcpt_reply(d, rcpt, sender=""):
    c = d.smtp()
    c.ehlo()
    r = c.cmd("MAIL FROM:<%s>" % sender)
    assert r.code == 250, r
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    c.quit()
    return r


def _msgs_for(peer, rcpt, n=1, timeout=25.0):
    def probe():
        got = [m for m in list(peer.messages) if rcpt in m["rcpts"]]
        return got if len(got) >= n else None
    return wait_for(probe, timeout, "%d message(s) for %s at %s" % (n, rcpt, peer.addr))


# ---------------------------------------------------------------------------
# forward, bounce back, forgeries
# ---------------------------------------------------------------------------

def test_forward_gets_srs_sender_and_bounce_returns_to_origin(todoku, dns, smtp_peer, tmp_world):
    d, remote, orig = _world(todoku, dns, smtp_peer, tmp_world)
    _send(d, "alice@orig.test", "fwd@localhost", subject="forwarded")
    msg = _msgs_for(remote, "friend@remote.test")[0]
    m = SRS0_RE.match(msg["mail_from"] or "")
    assert m, msg["mail_from"]
    h, ts, dom, local, our = m.groups()
    assert (dom, local, our) == ("orig.test", "alice", HOSTNAME), msg["mail_from"]
    assert b"Subject: forwarded" in msg["data"]
    # our Python rule is todoku's rule (so the crafted addresses below are real)
    assert h == srs_hash(SECRET, ["0", ts, dom, local]), (h, msg["mail_from"])
    srs_addr = msg["mail_from"]
    d.wait_queue_settled(15)

    # the bounce comes back from a stranger: accepted, forwarded to alice
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("", [srs_addr], make_message(subject="Undelivered Mail", sender="MAILER-DAEMON@remote.test",
                                                to=srs_addr))
    c.quit()
    assert r.code == 250, r
    qid = queue_id(r.text)
    back = _msgs_for(orig, "alice@orig.test")[0]
    assert back["mail_from"] in ("", None), back     # a bounce stays a bounce
    assert back["rcpts"] == ["alice@orig.test"], back
    assert b"Subject: Undelivered Mail" in back["data"]
    d.wait_queue_settled(15)
    assert qid in d.log_text(), "bounce queued"
    assert "reversed to <alice@orig.test>" in d.log_text()

    # lowercased in transit (some MTAs do): still verifies
    assert _rcpt_reply(d, srs_addr.lower()).code == 250
    # the second secret verifies too (key rotation)
    assert _rcpt_reply(d, srs0(OLD_SECRET, "bob", "orig.test")).code == 250

    # forged: one hash character changed
    bad = ("A" if h[0] != "A" else "B") + h[1:]
    forged = srs_addr.replace("SRS0=" + h, "SRS0=" + bad)
    r = _rcpt_reply(d, forged)
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "forged or expired SRS address" in r.text, r
    # forged: signed with a secret we do not hold
    r = _rcpt_reply(d, srs0("not-our-secret-0123456789", "alice", "orig.test"))
    assert (r.code, r.enh) == (550, "5.7.1"), r
    # forged: the embedded address changed (hash kept)
    r = _rcpt_reply(d, srs_addr.replace("=alice@", "=mallory@"))
    assert (r.code, r.enh) == (550, "5.7.1"), r

    # expired: a correct hash over a timestamp 30 days old
    old = srs0(SECRET, "alice", "orig.test", when=time.time() - 30 * 86400)
    r = _rcpt_reply(d, old)
    assert (r.code, r.enh) == (550, "5.7.1"), r
    assert "forged or expired SRS address" in r.text, r
    # ...while 20 days is within the default 21
    assert _rcpt_reply(d, srs0(SECRET, "alice", "orig.test", when=time.time() - 20 * 86400)).code == 250

    # malformed
    for junk in ("SRS0=abc@%s" % HOSTNAME, "SRS0=AAAAAA=ZZ@%s" % HOSTNAME):
        r = _rcpt_reply(d, junk)
        assert (r.code, r.enh) == (550, "5.1.1"), (junk, r)

    # still no open relay: plain remote addresses and SRS addresses at
    # other domains are refused to a stranger
    r = _rcpt_reply(d, "alice@orig.test")
    assert r.code == 554 and r.enh == "5.7.1", r
    r = _rcpt_reply(d, srs_addr.replace("@" + HOSTNAME, "@elsewhere.test"))
    assert r.code == 554 and r.enh == "5.7.1", r

    # nothing else reached alice's MX
    time.sleep(1)
    assert len([x for x in orig.messages if x["rcpts"]]) == 1, orig.transcript()


def test_null_and_local_senders_are_not_rewritten(todoku, dns, smtp_peer, tmp_world):
    d, remote, _ = _world(todoku, dns, smtp_peer, tmp_world)
    _send(d, "", "fwd@localhost", subject="null sender")
    _send(d, "someone@localhost", "fwd@localhost", subject="local sender")
    msgs = _msgs_for(remote, "friend@remote.test", n=2)
    by_subject = {}
    for x in msgs:
        s = re.search(rb"Subject: ([^\r\n]*)", x["data"]).group(1).decode()
        by_subject[s] = x["mail_from"]
    assert by_subject["null sender"] in ("", None), by_subject
    assert by_subject["local sender"] == "someone@localhost", by_subject
    d.wait_queue_settled(15)


def test_one_message_two_senders_two_transactions(todoku, dns, smtp_peer, tmp_world):
    # trusted client: one message to a forwarded and a direct recipient
    # at the same domain must not share one MAIL FROM
    d, remote, _ = _world(todoku, dns, smtp_peer, tmp_world, trusted="127.0.0.0/8")
    _send(d, "alice@orig.test", ["fwd@localhost", "direct@remote.test"], subject="split")
    fwd = _msgs_for(remote, "friend@remote.test")[0]
    direct = _msgs_for(remote, "direct@remote.test")[0]
    assert direct["rcpts"] == ["direct@remote.test"], direct
    assert direct["mail_from"] == "alice@orig.test", direct
    assert fwd["rcpts"] == ["friend@remote.test"], fwd
    assert SRS0_RE.match(fwd["mail_from"]), fwd
    d.wait_queue_settled(15)


def test_forwarded_flag_survives_a_restart(todoku, dns, smtp_peer, tmp_world):
    # the first attempt is deferred; after a restart the recipient is
    # loaded from the spool and must still get the SRS sender
    d, remote, _ = _world(todoku, dns, smtp_peer, tmp_world,
                          replies={"RCPT": ["451 4.3.0 try later", "250 2.1.5 ok"]})
    _send(d, "alice@orig.test", "fwd@localhost", subject="after restart")
    wait_for(lambda: any(c.upper().startswith("RCPT") for c in remote.all_commands()), 20,
             "first RCPT at the peer")
    d.restart()
    msg = _msgs_for(remote, "friend@remote.test", timeout=30)[0]
    assert SRS0_RE.match(msg["mail_from"]), msg
    mails = [c for c in remote.all_commands() if c.upper().startswith("MAIL")]
    assert all("SRS0=" in c for c in mails), mails
    d.wait_queue_settled(15)


def test_srs_off_keeps_sender_and_warns(todoku, dns, smtp_peer, tmp_world):
    d, remote, _ = _world(todoku, dns, smtp_peer, tmp_world, secrets=())
    wait_log(d, "SRS is off", 10)
    _send(d, "alice@orig.test", "fwd@localhost", subject="no srs")
    msg = _msgs_for(remote, "friend@remote.test")[0]
    assert msg["mail_from"] == "alice@orig.test", msg
    # SRS addresses are then nothing special: unknown here
    r = _rcpt_reply(d, srs0(SECRET, "alice", "orig.test"))
    assert r.code in (550, 554), r
    d.wait_queue_settled(15)


def test_srs_domain_and_config(todoku, dns, smtp_peer, tmp_world):
    d, remote, _ = _world(todoku, dns, smtp_peer, tmp_world,
                          extra_server={"srs-domain": "Bounces.Example.TEST", "srs-max-age": "10"})
    out = d.cli_run("config", "check")
    text = out.stdout.decode()
    assert out.returncode == 0, out
    assert "srs-domain = bounces.example.test" in text, text
    assert "srs-max-age = 10d" in text, text
    assert SECRET not in text and OLD_SECRET not in text      # the path, never the secret
    _send(d, "alice@orig.test", "fwd@localhost")
    msg = _msgs_for(remote, "friend@remote.test")[0]
    assert msg["mail_from"].endswith("=alice@bounces.example.test"), msg
    # max age 10: 15 days old is expired
    r = _rcpt_reply(d, srs0(SECRET, "alice", "orig.test", when=time.time() - 15 * 86400,
                            our="bounces.example.test"))
    assert (r.code, r.enh) == (550, "5.7.1"), r
    assert _rcpt_reply(d, srs0(SECRET, "alice", "orig.test", our="bounces.example.test")).code == 250
    d.wait_queue_settled(15)

    # a short secret and an empty file are refused with FILE:LINE
    bad = tmp_world / "short-secret"
    bad.write_text("\nshort\n")
    conf = tmp_world / "bad.conf"
    conf.write_text(d.config_path.read_text().replace(
        str(tmp_world / "srs-secrets"), str(bad)))
    r = subprocess.run([d.bin, "config", "check", "-c", str(conf)], capture_output=True)
    assert r.returncode != 0
    assert "short-secret:2:" in (r.stderr + r.stdout).decode(), r
    bad.write_text("\n\n")
    r = subprocess.run([d.bin, "config", "check", "-c", str(conf)], capture_output=True)
    assert r.returncode != 0 and b"no secret" in r.stderr + r.stdout, r
