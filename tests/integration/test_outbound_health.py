"""Per-address health memory (issue 3): an address that just refused us
is tried last by the next attempt, so a dead round-robin member does not
cost every message a failed connection; the attempt record says so and
shows the dialogue with each reply next to its command."""
import time

from world import make_message, queue_id
from world.net import alloc_addr


def _send(d, subject, rcpts=("friend@rr.test",)):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("someone@localhost", list(rcpts),
                   make_message(subject=subject, sender="someone@localhost",
                                to="friend@rr.test"))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _history(d, qid, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = d.cli_run("queue", "show", qid, "--json")
        if r.returncode != 0:
            return None  # delivered and removed
        time.sleep(0.1)
    raise AssertionError("message %s never left the queue" % qid)


def test_dead_address_is_tried_last_next_time(todoku, dns, smtp_peer):
    dead = alloc_addr(ports=(25,))  # nothing listens there
    # keep@ is deferred so the second message (and its record) stays
    keep = lambda s, line: ("450 4.2.0 keep me queued"   # noqa: E731
                            if line.upper().startswith("RCPT TO:<KEEP@") else None)
    peer = smtp_peer(port=25, on_command=keep)
    # the preferred MX is dead: the first attempt must try it first
    dns.zone("rr.test", ["@ MX 10 mx1", "@ MX 20 mx2",
                         "mx1 A %s" % dead, "mx2 A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "delivery": {"ip": "ipv4-only", "timeout-connect": "2s"}})
    first = _send(d, "one")
    _wait_peer(peer, 1)
    # the first connection's idle linger is over: the second attempt
    # connects afresh (and orders its addresses) rather than reusing it
    end = time.monotonic() + 10
    while peer.active and time.monotonic() < end:
        time.sleep(0.05)
    assert peer.active == 0, "the first connection stayed open"
    time.sleep(0.3)  # its close reaches the queue (O_CLOSED)
    second = _send(d, "two", rcpts=("friend@rr.test", "keep@rr.test"))
    _wait_peer(peer, 2)
    failed = [l for l in d.log_text().splitlines()
              if "[%s]" % dead in l and "trying the next address" in l]
    assert any(first in l for l in failed), "first attempt tried mx1 first"
    assert not any(second in l for l in failed), \
        "the address that just refused us was tried first again"
    # the second attempt's record names the address ordered last, typed
    # and in the text, though it was never tried
    end = time.monotonic() + 15
    while True:
        m = d.cli("queue", "show", second, "--json")
        hist = [r for r in m["recipients"] if r["address"] == "keep@rr.test"][0]["history"]
        if hist or time.monotonic() > end:
            break
        time.sleep(0.1)
    rec = hist[0]["record"]
    assert rec["failed_recently"] == [dead], rec
    assert [a["address"] for a in rec["addresses"]] == [peer.addr], rec
    assert rec["addresses"][0]["failed_recently"] is False, rec
    text = d.cli_run("queue", "show", second).stdout.decode()
    assert "failed recently, ordered last: %s\n" % dead in text, text


def _wait_peer(peer, n, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len([m for m in peer.messages if m["rcpts"]]) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("peer got fewer than %d messages" % n)


def test_attempt_record_has_dialogue_and_dns(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, replies={"RCPT": ["450 4.5.0 Mail system is Busy"]})
    dns.zone("busy.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("someone@localhost", ["friend@busy.test"],
                   make_message(subject="busy", sender="someone@localhost",
                                to="friend@busy.test"))
    qid = queue_id(r.text)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        m = d.cli("queue", "show", qid, "--json")
        hist = m["recipients"][0]["history"]
        if hist:
            break
        time.sleep(0.1)
    h = hist[0]
    assert h["result"] == "deferred"
    assert h["status"] == "4.5.0"
    assert h["reply"] == "450 4.5.0 Mail system is Busy"
    assert "after RCPT" in h["where"] or "RCPT" in h["where"]
    rec = h["record"]
    dns = {(q["qtype"], q["qname"]): [(r.get("pref"), r["data"]) for r in q["records"]]
           for q in rec["dns"]}
    assert dns[("MX", "busy.test")] == [(10, "mx.busy.test")], rec
    assert dns[("A", "mx.busy.test")] == [(None, peer.addr)], rec
    assert ("RCPT TO:<friend@busy.test>", "450 4.5.0 Mail system is Busy") in \
        [(t["command"], t["reply"]) for t in rec["dialogue"]], rec
    # and the human-readable form shows it too
    text = d.cli_run("queue", "show", qid).stdout.decode()
    assert "450 4.5.0 Mail system is Busy" in text
    assert "> RCPT TO:<friend@busy.test>" in text
