"""Outbound delivery (issue 3): the right MX or nothing, every address
tried, per-recipient outcomes, bounces that quote the remote server.

Each test builds a small world: a DNS server (knotd, or the scripted
FaultyDNS for broken answers), scripted SMTP peers on 127.x.y.z:25, and a
todoku whose lookup role forwards to that DNS server. Mail is submitted
from 127.0.0.1 (trusted) for a non-local domain; we look at what the
peers saw, at `todoku queue list|show --json`, and at the DSNs that land
in someone@localhost's Maildir.

Every test fails if its feature is missing (a fallback to the A record,
no TCP retry of a truncated answer, one address per attempt, no greeting
timeout, 4xx treated as 5xx or the reverse, TLS `must` ignored, ...).
No assertion is about speed; every wait is bounded.
"""
import pytest
import email
import email.policy
import re
import time

from world import alloc_addr, make_message, queue_id
from world.roles import wait_for, wait_log

SENDER = "someone@localhost"
LONG = "a-rather-long-label-to-make-the-answer-big-0123456789"  # 53 octets


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _send(d, rcpts, sender=SENDER, subject="outbound test", body="hello out there\n"):
    """Submit one message over SMTP from 127.0.0.1; return its queue id."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, rcpts, make_message(subject=subject, body=body,
                                               sender=sender or "nobody@x.test",
                                               to=rcpts[0]))
    c.quit()
    assert r.code == 250, r
    qid = queue_id(r.text)
    assert qid, r
    return qid


def _show(d, qid):
    """`queue show ID --json`, or None once the message left the queue."""
    r = d.cli_run("queue", "show", qid, "--json")
    if r.returncode != 0:
        assert b"no such message" in r.stderr + r.stdout, r
        return None
    import json
    return json.loads(r.stdout)


def _rcpt(d, qid, address):
    s = _show(d, qid)
    if s is None:
        return None
    for rc in s["recipients"]:
        if rc["address"] == address:
            return rc
    raise AssertionError("%s not among the recipients of %s: %r" % (address, qid, s))


def _listed(d, qid, address):
    """The recipient as `queue list --json` shows it, or None."""
    for m in d.cli("queue", "list", "--json"):
        if m["id"] == qid:
            for rc in m["recipients"]:
                if rc["address"] == address:
                    return rc
    return None


def _queue_ids(d):
    return {m["id"] for m in d.cli("queue", "list", "--json")}


def _wait_history(d, qid, address, n=1, timeout=30.0):
    """Wait until the recipient has at least n history entries; return it."""
    def probe():
        rc = _rcpt(d, qid, address)
        assert rc is not None, "%s left the queue before %d attempt(s) were seen" % (qid, n)
        return rc if len(rc.get("history") or []) >= n else None
    return wait_for(probe, timeout, "%d attempt(s) recorded for %s of %s" % (n, address, qid))


def _tried(h):
    """The addresses an attempt tried, from its record: [(addr, outcome)]."""
    return [(a["address"], a["outcome"]) for a in (h.get("record") or {}).get("addresses", [])]


def _dsn(d, n=1, timeout=20.0):
    """The n-th DSN in someone@localhost's Maildir, as (raw, parsed, text):
    text is every decoded part plus the raw bytes, whitespace collapsed."""
    msgs = d.wait_delivered("someone", n, timeout=timeout)
    raw = msgs[n - 1]
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    pieces = [raw.decode("utf-8", "replace")]
    for part in m.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload:
            pieces.append(payload.decode("utf-8", "replace"))
    text = re.sub(r"\s+", " ", "\n".join(pieces))
    return raw, m, text


def _check_failed_dsn(raw, m, status, rcpt):
    assert m.get_content_type() == "multipart/report", raw[:3000]
    rp = m.get_all("Return-Path") or []
    assert rp and all(v.strip() == "<>" for v in rp), (rp, raw[:3000])
    s = raw.decode("utf-8", "replace")
    assert re.search(r"(?mi)^Action:\s*failed\s*$", s), s[:4000]
    assert re.search(r"(?mi)^Status:\s*%s\s*$" % re.escape(status), s), (status, s[:4000])
    assert re.search(r"(?mi)^Final-Recipient:\s*rfc822;\s*%s\s*$" % re.escape(rcpt), s), s[:4000]


def _wait_peer_rcpt(peer, rcpt, timeout=25.0):
    """The first message the peer accepted with rcpt among its recipients.
    (With PIPELINING, a transaction whose RCPTs all failed still shows up
    in peer.messages with no recipients and no data: the client sent
    DATA in the same batch and then a lone dot, RFC 2920 section 3.1.)"""
    def probe():
        for msg in list(peer.messages):
            if rcpt in msg["rcpts"]:
                return msg
        return None
    return wait_for(probe, timeout, "a message for %s at %s:%d" % (rcpt, peer.addr, peer.port))


def _peer_verbs(peer):
    return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in peer.all_commands()]


def _zone_mx(dns, domain, hosts):
    """hosts: [(preference, label, [addr, ...])] -> MX + A records."""
    recs = []
    for pref, label, addrs in hosts:
        recs.append("@ MX %d %s" % (pref, label))
        recs.extend("%s A %s" % (label, a) for a in addrs)
    dns.zone(domain, recs)


# ---------------------------------------------------------------------------
# DNS: the right MX or nothing (DESIGN §1 story 1, RFC 5321 §5.1)
# ---------------------------------------------------------------------------

def _assert_dns_deferred(d, qid, rcpt, domain, n=1):
    rc = _wait_history(d, qid, rcpt, n=n, timeout=40)
    assert rc["state"] == "deferred", rc
    for h in rc["history"]:
        assert h["result"] == "deferred", rc
        assert h["status"] == "4.4.3", rc
        assert h["where"] == "dns %s" % domain, rc
    listed = _listed(d, qid, rcpt)
    assert listed is not None and listed["state"] == "deferred", listed
    assert listed["attempts"] >= n, listed
    return rc


def test_mx_servfail_defers_and_never_touches_the_a_record(todoku, faulty_dns, smtp_peer):
    web = smtp_peer(port=25)          # the "web server": the domain's A record
    faulty_dns.rule("sf.test", "MX", "servfail")
    faulty_dns.rule("sf.test", "A", "answer", ["sf.test. 300 A %s" % web.addr])
    faulty_dns.rule("sf.test", "AAAA", "nodata")
    d = todoku(dns_servers=[faulty_dns.addr])
    qid = _send(d, "user@sf.test")
    # two attempts, so a fallback on the retry would be caught as well
    rc = _assert_dns_deferred(d, qid, "user@sf.test", "sf.test", n=2)
    assert "SERVFAIL" in rc["history"][0]["reply"] or "SERVFAIL" in \
        [q["rcode"] for q in rc["history"][0]["record"]["dns"]], rc
    assert web.connections == 0, web.transcript()
    assert ("udp", "sf.test.", "MX") in faulty_dns.queries or \
        ("tcp", "sf.test.", "MX") in faulty_dns.queries, faulty_dns.queries
    assert d.maildir("someone") == []   # deferred, not bounced


@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_mx_timeout_defers_and_never_touches_the_a_record(todoku, faulty_dns, smtp_peer):
    web = smtp_peer(port=25)
    faulty_dns.rule("to.test", "MX", "timeout")
    faulty_dns.rule("to.test", "A", "answer", ["to.test. 300 A %s" % web.addr])
    faulty_dns.rule("to.test", "AAAA", "nodata")
    d = todoku(dns_servers=[faulty_dns.addr])
    qid = _send(d, "user@to.test")
    # libunbound gives up on the silent server after a few seconds
    _assert_dns_deferred(d, qid, "user@to.test", "to.test", n=1)
    assert web.connections == 0, web.transcript()
    assert d.maildir("someone") == []


def _big_mx(domain, n=8):
    return ["%s. 300 MX %d mx%d.%s.%s." % (domain, 10 * (i + 1), i, LONG, domain)
            for i in range(n)]


def test_mx_answer_truncated_over_udp_is_retried_over_tcp(todoku, faulty_dns, smtp_peer):
    mx = smtp_peer(port=25)
    web = smtp_peer(port=25)
    domain = "big.test"
    records = _big_mx(domain)
    assert sum(len(r) for r in records) > 512
    faulty_dns.rule(domain, "MX", "truncate", records)     # TC=1 over UDP
    faulty_dns.rule(domain, "A", "answer", ["%s. 300 A %s" % (domain, web.addr)])
    faulty_dns.rule(domain, "AAAA", "nodata")
    for i in range(8):
        host = "mx%d.%s.%s" % (i, LONG, domain)
        faulty_dns.rule(host, "A", "answer", ["%s. 300 A %s" % (host, mx.addr)])
        faulty_dns.rule(host, "AAAA", "nodata")
    d = todoku(dns_servers=[faulty_dns.addr])
    _send(d, "user@%s" % domain, subject="truncated mx")
    msg = _wait_peer_rcpt(mx, "user@%s" % domain, timeout=30)
    assert msg["rcpts"] == ["user@%s" % domain], msg
    assert b"Subject: truncated mx" in msg["data"]
    assert ("tcp", domain + ".", "MX") in faulty_dns.queries, faulty_dns.queries
    assert web.connections == 0, web.transcript()
    d.wait_queue_settled(15)


def test_mx_truncated_and_tcp_refused_defers(todoku, faulty_dns, smtp_peer):
    mx = smtp_peer(port=25)
    web = smtp_peer(port=25)
    domain = "notcp.test"
    records = _big_mx(domain)
    faulty_dns.rule(domain, "MX", "truncate_notcp", records)  # TC over UDP, TCP closes
    faulty_dns.rule(domain, "A", "answer", ["%s. 300 A %s" % (domain, web.addr)])
    faulty_dns.rule(domain, "AAAA", "nodata")
    for i in range(8):
        host = "mx%d.%s.%s" % (i, LONG, domain)
        faulty_dns.rule(host, "A", "answer", ["%s. 300 A %s" % (host, mx.addr)])
    d = todoku(dns_servers=[faulty_dns.addr])
    qid = _send(d, "user@%s" % domain)
    _assert_dns_deferred(d, qid, "user@%s" % domain, domain, n=2)
    assert web.connections == 0, web.transcript()
    assert mx.connections == 0, mx.transcript()
    assert d.maildir("someone") == []


def test_nodata_means_implicit_mx(todoku, dns, smtp_peer):
    host = smtp_peer(port=25)
    dns.zone("plain.test", ["@ A %s" % host.addr])           # no MX at all
    d = todoku(dns_servers=[dns.addr])
    qid = _send(d, "user@plain.test", subject="implicit mx")
    msg = _wait_peer_rcpt(host, "user@plain.test", timeout=20)
    assert msg["rcpts"] == ["user@plain.test"], msg
    assert msg["mail_from"] == SENDER, msg
    assert b"Subject: implicit mx" in msg["data"]
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    assert d.maildir("someone") == []


def test_nxdomain_bounces_5_1_2(todoku, dns, smtp_peer):
    other = smtp_peer(port=25)
    dns.zone("exists.test", ["@ MX 10 mx", "mx A %s" % other.addr])
    d = todoku(dns_servers=[dns.addr])
    rcpt = "user@nowhere.exists.test"                         # NXDOMAIN
    qid = _send(d, rcpt, subject="to nowhere")
    raw, m, text = _dsn(d)
    _check_failed_dsn(raw, m, "5.1.2", rcpt)
    assert "nowhere.exists.test" in text, text[:3000]
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    assert other.connections == 0, other.transcript()
    d.wait_queue_settled(10)
    assert len(d.maildir("someone")) == 1


def test_null_mx_bounces_5_1_10_without_any_connection(todoku, dns, smtp_peer):
    web = smtp_peer(port=25)
    dns.zone("nomail.test", ["@ MX 0 .", "@ A %s" % web.addr])
    d = todoku(dns_servers=[dns.addr])
    rcpt = "user@nomail.test"
    qid = _send(d, rcpt)
    raw, m, text = _dsn(d)
    _check_failed_dsn(raw, m, "5.1.10", rcpt)
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    assert web.connections == 0, web.transcript()


def test_null_sender_gets_no_dsn_for_nxdomain(todoku, dns):
    dns.zone("exists.test", ["@ A 127.0.0.1"])
    d = todoku(dns_servers=[dns.addr])
    rcpt = "user@nowhere.exists.test"
    qid = _send(d, rcpt, sender="")
    wait_log(d, r"%s: to=<%s>.*bounced" % (re.escape(qid), re.escape(rcpt)), timeout=20)
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    d.wait_queue_settled(10)
    time.sleep(1)   # a DSN, were one made, would be queued/delivered by now
    assert d.cli("queue", "list", "--json") == [], d.cli("queue", "list", "--json")
    for u in ("someone", "alice", "bob", "postmaster"):
        assert d.maildir(u) == [], u


# ---------------------------------------------------------------------------
# every address of every MX host (DESIGN §1 story 5)
# ---------------------------------------------------------------------------

@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_round_robin_host_with_a_dead_address(todoku, dns, smtp_peer):
    """mx.rr.test has three addresses, the first one dead (nothing listens).
    The resolver rotates the A RRset, so keep sending until an attempt met
    the dead address first: that attempt must go on to a live address and
    deliver, all in one attempt."""
    keep = lambda s, line: ("450 4.2.0 keep me queued"   # noqa: E731
                            if line.upper().startswith("RCPT TO:<KEEP@") else None)
    live1 = smtp_peer(port=25, on_command=keep)
    dead = alloc_addr(ports=(25,))
    live2 = smtp_peer(port=25, on_command=keep)
    _zone_mx(dns, "rr.test", [(10, "mx", [dead, live1.addr, live2.addr])])
    # retry far away: only first attempts happen during the test (so a
    # health memory of dead addresses cannot hide the dead one either)
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"},
                                                  "delivery": {"timeout-connect": "5s"}})
    seen = []
    for i in range(15):
        # "keep@" stays deferred so the message (and its record) stays queued
        qid = _send(d, ["u%d@rr.test" % i, "keep@rr.test"], subject="rr %d" % i)
        rc = _wait_history(d, qid, "u%d@rr.test" % i, n=1, timeout=30)
        h = rc["history"][0]
        tried = _tried(h)
        seen.append((rc["state"], tried))
        if tried and tried[0][0] == dead:
            assert tried[0][1] == "refused", h
            assert rc["state"] == "delivered", (rc, seen)
            assert rc["attempts"] == 1, rc
            assert h["result"] == "delivered", h
            assert tried[-1][0] in (live1.addr, live2.addr), h
            assert re.match(r"smtp mx\.rr\.test \[(%s|%s)\]:25 after" % (
                re.escape(live1.addr), re.escape(live2.addr)), h["where"]), h
            got = [msg for p in (live1, live2) for msg in p.messages
                   if "u%d@rr.test" % i in msg["rcpts"]]
            assert len(got) == 1, (live1.transcript(), live2.transcript())
            return
        assert rc["state"] == "delivered", (rc, seen)
        time.sleep(1.1)   # the resolver's rotation changes with time
    raise AssertionError("the dead address was never first in 15 attempts: %r" % seen)


def test_mx_that_never_greets_falls_through_to_the_next_mx(todoku, dns, smtp_peer):
    silent = smtp_peer(port=25, greeting=None)     # accepts TCP, never says 220
    backup = smtp_peer(port=25)
    _zone_mx(dns, "quiet.test", [(10, "mx1", [silent.addr]), (20, "mx2", [backup.addr])])
    d = todoku(dns_servers=[dns.addr], overrides={"delivery": {"timeout-greeting": "2s"},
                                                  "queue": {"retry": "1h"}})
    qid = _send(d, "user@quiet.test", subject="silent mx")
    # retry is 1h: delivery must happen within the first attempt
    msg = _wait_peer_rcpt(backup, "user@quiet.test", timeout=25)
    assert msg["rcpts"] == ["user@quiet.test"], msg
    assert b"Subject: silent mx" in msg["data"]
    assert silent.connections >= 1, "the preferred MX was never tried"
    assert silent.all_commands() == [], silent.transcript()
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    assert d.maildir("someone") == []


# ---------------------------------------------------------------------------
# per-recipient outcomes (DESIGN §1 story 5, story 2)
# ---------------------------------------------------------------------------

def test_450_busy_is_retried_then_delivered(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, replies={"RCPT": ["450 4.5.0 Mail system is Busy",
                                                "250 2.1.5 Ok"]})
    _zone_mx(dns, "busy.test", [(10, "mx", [peer.addr])])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "3s 3s"}})
    rcpt = "user@busy.test"
    qid = _send(d, rcpt, subject="busy then ok")

    def deferred_or_gone():
        rc = _rcpt(d, qid, rcpt)
        if rc is None:
            return "gone"
        return rc if rc["state"] == "deferred" else None
    rc = wait_for(deferred_or_gone, 20, "first attempt deferred")
    assert rc != "gone", "delivered before a deferral was seen: %s" % peer.transcript()
    h = rc["history"][-1]
    assert h["result"] == "deferred" and h["status"] == "4.5.0", rc
    assert h["reply"] == "450 4.5.0 Mail system is Busy", h
    assert "after RCPT" in h["where"], h
    msg = _wait_peer_rcpt(peer, rcpt)
    assert msg["rcpts"] == [rcpt], msg
    assert b"Subject: busy then ok" in msg["data"]
    assert len(peer.sessions) >= 2, peer.transcript()
    assert _peer_verbs(peer).count("RCPT") >= 2, peer.transcript()
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    assert d.maildir("someone") == []   # no bounce for a 4xx


def test_553_no_such_user_bounces_at_once_quoting_the_reply(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, replies={"RCPT": "553 5.3.2 No such user"})
    _zone_mx(dns, "nouser.test", [(10, "mx", [peer.addr])])
    d = todoku(dns_servers=[dns.addr])      # retry 2s 4s 8s
    rcpt = "ghost@nouser.test"
    qid = _send(d, rcpt, subject="to a ghost")
    raw, m, text = _dsn(d)
    _check_failed_dsn(raw, m, "5.3.2", rcpt)
    assert "553 5.3.2 No such user" in text, text[:4000]
    assert "mx.nouser.test" in text, text[:4000]     # names the remote host
    # the human-readable part states the last host and its address
    human = m.get_payload()[0]
    assert human.get_content_type() == "text/plain", human.get_content_type()
    human = human.get_payload(decode=True).decode("ascii", "replace")
    assert "mx.nouser.test [%s]" % peer.addr in human, human
    assert "553 5.3.2 No such user" in human, human
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    time.sleep(3)   # longer than the first retry interval (2s)
    assert _peer_verbs(peer).count("RCPT") == 1, peer.transcript()
    assert len(peer.sessions) == 1, peer.transcript()
    # DATA may have been pipelined; then only a lone dot followed
    assert all(msg["rcpts"] == [] and msg["data"] == b"" for msg in peer.messages), \
        peer.messages
    assert len(d.maildir("someone")) == 1


def test_multiline_550_after_data_is_quoted_whole(todoku, dns, smtp_peer):
    lines = ["550-5.7.1 [127.0.0.1] Our system has detected that this",
             "550-5.7.1 message is likely unsolicited mail. To reduce",
             "550 5.7.1 the amount of spam sent to us, it was blocked."]
    peer = smtp_peer(port=25, data_reply=lines)
    _zone_mx(dns, "strict.test", [(10, "mx", [peer.addr])])
    d = todoku(dns_servers=[dns.addr])
    rcpt = "user@strict.test"
    qid = _send(d, rcpt, subject="contact form")
    raw, m, text = _dsn(d)
    _check_failed_dsn(raw, m, "5.7.1", rcpt)
    for ln in lines:
        assert ln in text, (ln, raw.decode("utf-8", "replace")[:5000])
    assert "mx.strict.test" in text, text[:4000]
    wait_for(lambda: qid not in _queue_ids(d), 15, "%s removed from the queue" % qid)
    time.sleep(3)   # no retry after a 5xx at the end of data
    assert _peer_verbs(peer).count("DATA") == 1, peer.transcript()


# ---------------------------------------------------------------------------
# TLS policy
# ---------------------------------------------------------------------------

def test_tls_must_without_starttls_defers_and_sends_nothing_in_clear(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25)         # its EHLO offers no STARTTLS
    assert not any("STARTTLS" in x.upper() for x in peer.ehlo)
    _zone_mx(dns, "clear.test", [(10, "mx", [peer.addr])])
    d = todoku(dns_servers=[dns.addr], overrides={"delivery": {"tls": "must"}})
    rcpt = "user@clear.test"
    qid = _send(d, rcpt)
    rc = _wait_history(d, qid, rcpt, n=2, timeout=30)
    assert rc["state"] == "deferred", rc
    for h in rc["history"]:
        assert h["result"] == "deferred", rc
        assert h["status"].startswith("4."), rc
    listed = _listed(d, qid, rcpt)
    assert listed is not None and listed["state"] == "deferred", listed
    verbs = _peer_verbs(peer)
    assert peer.connections >= 1 and "EHLO" in verbs, peer.transcript()
    for v in ("MAIL", "RCPT", "DATA"):
        assert v not in verbs, peer.transcript()
    assert peer.messages == []
    assert d.maildir("someone") == []
