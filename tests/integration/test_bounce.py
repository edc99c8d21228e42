"""A permanent local delivery failure bounces to the sender (RFC 3464
DSN), never to the null sender.

The failure is arranged with a recipient Maildir that is a symlink to
elsewhere: local delivery must refuse to follow it (permanently), and
must not write anything through it.

(Recipient removed from the configuration between accept and delivery:
hard to arrange reliably, not tested here.)
"""
import email
import email.policy
import os
import re

from world import make_message, queue_id
from world.roles import wait_for, wait_log


def _trap(d, tmp_world, user="alice"):
    """<mailboxes>/<user> -> a directory owned by todoku elsewhere."""
    target = tmp_world / ("elsewhere-" + user)
    target.mkdir(mode=0o755)
    d._own(target)
    link = d.maildir_path(user)
    assert not os.path.lexists(link)
    os.symlink(target, link)
    return link, target


def _all_files(root):
    out = []
    for dp, dns, fns in os.walk(root):
        out.extend(os.path.join(dp, n) for n in dns + fns)
    return out


def _send(d, sender, rcpt, subject):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, [rcpt], make_message(subject=subject, sender=sender or "x@x.test",
                                                to=rcpt, body="original body\n"))
    assert r.code == 250, r
    c.quit()
    qid = queue_id(r.text)
    assert qid, r
    return qid


def _queue_ids(d):
    return {m["id"] for m in d.cli("queue", "list", "--json")}


def test_permanent_failure_bounces_to_sender(todoku, tmp_world):
    d = todoku()
    link, target = _trap(d, tmp_world)
    subject = "bounce me 7f3a"
    qid = _send(d, "someone@localhost", "alice@localhost", subject)
    msgs = d.wait_delivered("someone", 1, timeout=20)
    assert len(msgs) == 1, msgs
    raw = msgs[0]
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    # the envelope sender of a bounce is <>
    rp = m.get_all("Return-Path") or []
    assert rp and all(v.strip() == "<>" for v in rp), (rp, raw[:2000])
    assert (m.get("Auto-Submitted") or "").strip().lower().startswith("auto-replied"), raw[:2000]
    ct = m.get_content_type()
    assert ct == "multipart/report", raw[:2000]
    assert (m.get_param("report-type") or "").lower() == "delivery-status", raw[:2000]
    parts = list(m.walk())
    status_parts = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status_parts) == 1, [p.get_content_type() for p in parts]
    status_text = raw.decode(errors="replace")
    assert re.search(r"(?mi)^Action:\s*failed\s*$", status_text), status_text
    assert re.search(r"(?mi)^Status:\s*5\.\d{1,3}\.\d{1,3}\s*$", status_text), status_text
    assert re.search(r"(?mi)^Final-Recipient:\s*rfc822;\s*alice@localhost\s*$", status_text), \
        status_text
    # the returned headers (message/rfc822 or text/rfc822-headers) hold the
    # original Subject
    returned = [p for p in parts if p.get_content_type() in
                ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")]
    assert returned, [p.get_content_type() for p in parts]
    assert re.search(r"(?m)^Subject: %s\r?$" % re.escape(subject),
                     status_text.split("message/delivery-status", 1)[-1]), status_text
    # nothing written through the symlink; the symlink itself untouched
    assert os.path.islink(link)
    assert _all_files(target) == [], _all_files(target)
    # the original message is gone from the queue
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    log = d.log_text()
    assert re.search(r"%s: to=<alice@localhost>.*status=bounced" % re.escape(qid), log), \
        log[-3000:]
    # no second bounce shows up later
    d.wait_queue_settled(15)
    assert len(d.maildir("someone")) == 1


def test_null_sender_gets_no_bounce(todoku, tmp_world):
    d = todoku()
    link, target = _trap(d, tmp_world)
    qid = _send(d, "", "alice@localhost", "null sender bounce")
    # the delivery failed permanently ...
    wait_log(d, r"%s: to=<alice@localhost>.*status=bounced" % re.escape(qid), timeout=20)
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    d.wait_queue_settled(15)
    # ... and nobody got a notification
    log = d.log_text()
    line = re.search(r"^.*%s: to=<alice@localhost>.*status=bounced.*$" % re.escape(qid),
                     log, re.M).group(0)
    assert "no notification to the null sender" in line, line
    assert not re.search(r"%s: sender non-delivery notification" % re.escape(qid), log), log
    for u in ("someone", "alice", "bob", "postmaster"):
        assert d.maildir(u) == [], u
    assert os.path.islink(link)
    assert _all_files(target) == [], _all_files(target)
    # and the daemon is still fine: a normal message is delivered
    _send(d, "x@x.test", "someone@localhost", "after")
    d.wait_delivered("someone", 1)
