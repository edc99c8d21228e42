"""DSN parameters (RFC 3461) end to end (issue 3, DESIGN §7 "advertise
DSN only where its parameters are honoured"): offered to trusted clients
only, stored, honoured in our own notifications (NOTIFY, RET, ENVID,
ORCPT), and passed on to next hops that advertise DSN."""
import email
import email.policy
import re
import time

import pytest

from world import make_message, queue_id
from world.smtpclient import to_crlf_stuffed

UNTRUSTED = {"server": {"trusted-networks": "10.0.0.0/8"}}


def _txn(d, sender, rcpts, mail_params="", subject="dsn test", body="the body 4b1d\n"):
    """One transaction with DSN parameters. rcpts: [(addr, params)]."""
    c = d.smtp()
    c.ehlo()
    assert "DSN" in c.extensions, c.extensions
    r = c.cmd("MAIL FROM:<%s>%s" % (sender, " " + mail_params if mail_params else ""))
    assert r.code == 250, r
    for addr, params in rcpts:
        r = c.cmd("RCPT TO:<%s>%s" % (addr, " " + params if params else ""))
        assert r.code == 250, (addr, r)
    r = c.cmd("DATA")
    assert r.code == 354, r
    msg = make_message(subject=subject, sender=sender or "x@x.test",
                       to=rcpts[0][0], body=body)
    r = c.data_bytes(to_crlf_stuffed(msg))
    assert r.code == 250, r
    c.quit()
    return queue_id(r.text)


def _reports(d, user="someone"):
    return [m for m in d.maildir(user) if b"report-type=delivery-status" in m]


def _parse(raw):
    """(top message, delivery-status text, [per-recipient field dicts],
    content type of the third part or None)."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert m.get_content_type() == "multipart/report", raw[:1500]
    parts = m.get_payload()
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status", raw[:1500]
    blocks = status.get_payload()
    fields = [{k.lower(): " ".join(v.split()) for k, v in blk.items()} for blk in blocks]
    third = parts[2].get_content_type() if len(parts) > 2 else None
    return m, fields[0], fields[1:], third


def _peer_world(dns, smtp_peer, domain, **peer_kw):
    peer = smtp_peer(port=25, **peer_kw)
    dns.zone(domain, ["@ MX 10 mx", "mx A %s" % peer.addr])
    return peer


# ---- advertising and refusing ------------------------------------------


def test_ehlo_offers_dsn_to_trusted_clients_only(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    assert "DSN" in c.extensions, c.extensions
    c.quit()
    u = todoku(overrides=UNTRUSTED)
    c = u.smtp()
    c.ehlo()
    assert "DSN" not in c.extensions, c.extensions
    # the parameters are refused as not offered, the transaction goes on
    r = c.cmd("MAIL FROM:<x@example.org> RET=FULL")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("MAIL FROM:<x@example.org> ENVID=abc")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("MAIL FROM:<x@example.org>")
    assert r.code == 250, r
    r = c.cmd("RCPT TO:<someone@localhost> NOTIFY=SUCCESS")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("RCPT TO:<someone@localhost> ORCPT=rfc822;someone@localhost")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("RCPT TO:<someone@localhost>")
    assert r.code == 250, r
    c.quit()


def test_trusted_parameters_are_validated(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@localhost> RET=FULL RET=HDRS").code == 501
    assert c.cmd("MAIL FROM:<x@localhost> ENVID=a+0Db").code == 501
    r = c.cmd("MAIL FROM:<x@localhost> RET=HDRS ENVID=q+2Bq")
    assert r.code == 250, r
    assert c.cmd("RCPT TO:<someone@localhost> NOTIFY=NEVER,SUCCESS").code == 501
    assert c.cmd("RCPT TO:<someone@localhost> ORCPT=x400;abc").code == 501
    assert c.cmd("RCPT TO:<someone@localhost> ORCPT=rfc822;a+0Ab").code == 501
    r = c.cmd("RCPT TO:<someone@localhost> NOTIFY=FAILURE,DELAY "
              "ORCPT=rfc822;someone+40localhost")
    assert r.code == 250, r
    c.quit()


# ---- honouring them in our own notifications ---------------------------


def test_notify_never_suppresses_the_bounce(todoku, dns, smtp_peer):
    peer = _peer_world(dns, smtp_peer, "hard.test",
                       replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    # a control recipient with default NOTIFY gets bounced and reported
    _txn(d, "someone@localhost", [("gone@hard.test", "NOTIFY=NEVER")],
         subject="never tell")
    _txn(d, "someone@localhost", [("gone2@hard.test", "")], subject="do tell")
    d.wait_delivered("someone", 1, timeout=20)
    d.wait_queue_settled(20)
    reports = _reports(d)
    assert len(reports) == 1, [r[:300] for r in reports]
    assert b"gone2@hard.test" in reports[0]
    assert b"never tell" not in reports[0]
    assert "RCPT TO:<gone@hard.test>" in peer.all_commands(), peer.transcript()


def test_ret_full_returns_the_whole_message(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=FULL",
         subject="full return", body="secret body line 93c1\n")
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=HDRS",
         subject="headers return", body="secret body line 5e7d\n")
    d.wait_delivered("someone", 2, timeout=20)
    reports = {}
    for raw in _reports(d):
        _, _, _, third = _parse(raw)
        key = "full" if b"full return" in raw else "hdrs"
        reports[key] = (raw, third)
    assert set(reports) == {"full", "hdrs"}
    raw, third = reports["full"]
    assert third == "message/rfc822", raw[:2000]
    assert b"secret body line 93c1" in raw
    raw, third = reports["hdrs"]
    assert third == "text/rfc822-headers", raw[:2000]
    assert b"secret body line 5e7d" not in raw


def test_envid_and_orcpt_in_a_bounce(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost",
         [("gone@hard.test", "ORCPT=rfc822;Gone+2Bold+40hard.test")],
         mail_params="ENVID=env+2Bid+3D42")
    d.wait_delivered("someone", 1, timeout=20)
    _, msg_fields, rcpts, _ = _parse(_reports(d)[0])
    assert msg_fields.get("original-envelope-id") == "env+id=42", msg_fields
    assert rcpts[0].get("original-recipient") == "rfc822;Gone+old@hard.test", rcpts
    assert rcpts[0].get("action") == "failed", rcpts


@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_delay_warning_honours_notify_per_recipient(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "slow.test",
                replies={"RCPT": ["450 4.5.0 Mail system is Busy"]})
    d = todoku(dns_servers=[dns.addr],
               overrides={"queue": {"retry": "1s", "warn-after": "2s",
                                    "give-up-after": "30s"}})
    _txn(d, "someone@localhost",
         [("quiet@slow.test", "NOTIFY=FAILURE"),
          ("loud@slow.test", ""),
          ("loud2@slow.test", "NOTIFY=DELAY")])
    d.wait_delivered("someone", 1, timeout=20)
    time.sleep(3)  # further retries: no second warning for this event
    reports = _reports(d)
    assert len(reports) == 1, "one warning per message per event"
    _, _, rcpts, _ = _parse(reports[0])
    finals = sorted(r.get("final-recipient") for r in rcpts)
    assert finals == ["rfc822; loud2@slow.test", "rfc822; loud@slow.test"], rcpts
    assert all(r.get("action") == "delayed" for r in rcpts), rcpts
