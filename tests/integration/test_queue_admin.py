"""todoku queue flush | hold | release | delete | bounce: each does what it
says, is logged, and answers bad IDs with a clear error."""
import time

from world import make_message, queue_id


def _world(todoku, dns, smtp_peer, rcpt_replies):
    peer = smtp_peer(port=25, replies={"RCPT": rcpt_replies})
    dns.zone("later.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    # retries an hour apart: only the operator makes it go again
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    return d, peer


def _send(d):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("someone@localhost", ["friend@later.test"],
                   make_message(subject="admin", sender="someone@localhost",
                                to="friend@later.test"))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _accepted(peer):
    return [m for m in peer.messages if m["rcpts"]]


def _wait_accepted(peer, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _accepted(peer):
            return
        time.sleep(0.1)
    raise AssertionError("the peer never accepted the message")


def _wait_state(d, qid, state, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for m in d.cli("queue", "list", "--json"):
            if m["id"] == qid and m["recipients"][0]["state"] == state:
                return m
        time.sleep(0.2)
    raise AssertionError("%s never reached %s" % (qid, state))


def test_hold_release_flush(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer,
                     ["450 4.5.0 Mail system is Busy", "250 2.1.5 Ok"])
    qid = _send(d)
    _wait_state(d, qid, "deferred")
    assert d.cli_run("queue", "hold", qid).returncode == 0
    m = [m for m in d.cli("queue", "list", "--json") if m["id"] == qid][0]
    assert m["held"] is True
    d.cli_run("queue", "flush")
    time.sleep(1.5)
    assert _accepted(peer) == [], "a held message was delivered"
    assert d.cli_run("queue", "release", qid).returncode == 0
    _wait_accepted(peer)
    d.wait_queue_settled(10)
    log = d.log_text()
    assert "%s: held by the operator" % qid in log
    assert "%s: released by the operator" % qid in log


def test_flush_retries_now(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer,
                     ["450 4.5.0 Mail system is Busy", "250 2.1.5 Ok"])
    qid = _send(d)
    _wait_state(d, qid, "deferred")
    r = d.cli_run("queue", "flush", qid)
    assert r.returncode == 0, r.stderr
    _wait_accepted(peer)


def test_delete(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, ["450 4.5.0 Mail system is Busy"])
    qid = _send(d)
    _wait_state(d, qid, "deferred")
    assert d.cli_run("queue", "delete", qid).returncode == 0
    assert all(m["id"] != qid for m in d.cli("queue", "list", "--json"))
    r = d.cli_run("queue", "show", qid)
    assert r.returncode != 0
    assert "%s: deleted by the operator" % qid in d.log_text()
    assert d.maildir("someone") == [], "delete sends no notification"


def test_bounce_returns_to_sender(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, ["450 4.5.0 Mail system is Busy"])
    qid = _send(d)
    _wait_state(d, qid, "deferred")
    assert d.cli_run("queue", "bounce", qid).returncode == 0
    d.wait_delivered("someone", 1, timeout=15)
    dsn = d.maildir("someone")[0].decode("ascii", "replace")
    assert "Action: failed" in dsn
    assert "returned to the sender by the postmaster" in dsn


def test_bad_ids(todoku):
    d = todoku()
    d.cli("queue", "list", "--json")  # waits for the control socket
    r = d.cli_run("queue", "hold", "../../etc")
    assert r.returncode == 64 and b"not a queue ID" in r.stderr
    r = d.cli_run("queue", "release", "0036ZZZZZZZZZZ")
    assert r.returncode == 1 and b"no such message" in r.stderr
