"""Destinations (DESIGN §7 "Destinations and scheduling", "IPv6"; issue 3):
per-destination concurrency with slow start and a dead state, connection
reuse, and the IPv6 -> IPv4 retry after a policy rejection.

Each test: knotd with one zone, scripted peers on port 25, one todoku.
Peers count simultaneous connections (peer.max_active); the queue logs
its concurrency changes ("destination KEY: concurrency C after ...").
"""
import json
import re
import time

from world import make_message, queue_id
from world.peer import Gauge
from world.roles import wait_for, wait_log

SENDER = "someone@localhost"


def _send_many(d, rcpts, subject="dest"):
    """One SMTP session, one transaction per recipient list; queue ids."""
    c = d.smtp()
    c.ehlo()
    ids = []
    for i, rc in enumerate(rcpts):
        rc = [rc] if isinstance(rc, str) else rc
        r = c.sendmail(SENDER, rc, make_message(subject="%s %d" % (subject, i),
                                                sender=SENDER, to=rc[0]))
        assert r.code == 250, r
        ids.append(queue_id(r.text))
    c.quit()
    return ids


def _show(d, qid):
    r = d.cli_run("queue", "show", qid, "--json")
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def _delivered(peer):
    return [m for m in list(peer.messages) if m["rcpts"]]


# ---------------------------------------------------------------------------
# concurrency, slow start, dead destinations
# ---------------------------------------------------------------------------

def test_concurrency_limit_never_exceeded(todoku, dns, smtp_peer):
    # the peer greets after 1 s, so every session stays open a while
    peer = smtp_peer(port=25, greeting_delay=1.0)
    dns.zone("conc.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    n = 30
    _send_many(d, ["u%d@conc.test" % i for i in range(n)], subject="conc")
    wait_for(lambda: len(_delivered(peer)) >= n, 40, "%d messages at the peer" % n)
    d.wait_queue_settled(10)
    limits = [float(x) for x in re.findall(
        r"destination mx\.conc\.test: concurrency ([0-9.]+)", d.log_text())]
    most = int(max([5.0] + limits))
    assert 2 <= peer.max_active <= most, (peer.max_active, limits)
    assert sorted(r for m in _delivered(peer) for r in m["rcpts"]) == \
        sorted("u%d@conc.test" % i for i in range(n))


def test_delivery_keys_set_the_limits(todoku, dns, smtp_peer):
    # [delivery] keys reach the queue (concurrency) and smtp-out (messages
    # per connection): by default this burst shares connections and runs
    # several at once (the tests above and below)
    peer = smtp_peer(port=25, greeting_delay=0.5)
    dns.zone("keys.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"destination-concurrency": "1",
                     "destination-concurrency-max": "1",
                     "connection-max-messages": "1"}})
    n = 6
    _send_many(d, ["u%d@keys.test" % i for i in range(n)], subject="keys")
    wait_for(lambda: len(_delivered(peer)) >= n, 40, "%d messages at the peer" % n)
    d.wait_queue_settled(10)
    # one session at a time: the next connection opens only after the
    # previous one sent QUIT (the queue frees a slot when smtp-out says
    # the connection is closed, not when its message is answered). With
    # the default concurrency (5) and one message per connection, 5
    # would be open.
    assert peer.max_active == 1, (peer.max_active, peer.transcript())
    assert all(len(s.messages) <= 1 for s in peer.sessions), peer.transcript()
    assert peer.connections >= n
    assert sorted(r for m in _delivered(peer) for r in m["rcpts"]) == \
        sorted("u%d@keys.test" % i for i in range(n))


def test_idle_cached_connection_counts_against_the_limit(todoku, dns, smtp_peer):
    """A connection smtp-out keeps open for reuse is a connection the
    destination sees: with a limit of 1, a message that arrives while it
    lingers goes over it (or waits for it to close), never over a second
    connection. Two MX hosts of equal preference, so the next attempt's
    first address is often the other host's, where a fresh connection
    would have been opened beside the idle one."""
    g = Gauge()
    p1 = smtp_peer(port=25, gauge=g)
    p2 = smtp_peer(port=25, gauge=g)
    dns.zone("idle.test", ["@ MX 10 mx1", "@ MX 10 mx2",
                           "mx1 A %s" % p1.addr, "mx2 A %s" % p2.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"destination-concurrency": "1",
                     "destination-concurrency-max": "1"}})
    n = 10
    c = d.smtp()
    c.ehlo()
    for i in range(n):
        rc = "u%d@idle.test" % i
        r = c.sendmail(SENDER, [rc], make_message(subject="idle %d" % i,
                                                  sender=SENDER, to=rc))
        assert r.code == 250, r
        # delivered before the next one arrives, inside the idle linger
        wait_for(lambda: len(_delivered(p1)) + len(_delivered(p2)) > i, 20,
                 "message %d at a peer" % i)
        time.sleep(0.1)
    c.quit()
    d.wait_queue_settled(10)
    got = sorted(r for p in (p1, p2) for m in _delivered(p) for r in m["rcpts"])
    assert got == sorted("u%d@idle.test" % i for i in range(n))
    assert g.max_active == 1, (g.max_active, p1.transcript(), p2.transcript())
    # the messages shared a connection: one host saw them all
    assert p1.connections + p2.connections < n, (p1.connections, p2.connections)


def test_tight_limit_with_one_message_per_connection(todoku, dns, smtp_peer):
    """Limit 2 and connection-max-messages 1: every message closes its
    connection (QUIT) while the next ones are ready; the peer never sees a
    third session (4 were seen when the slot was freed at the message's
    reply, before its connection had closed)."""
    peer = smtp_peer(port=25)
    dns.zone("tight.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"destination-concurrency": "2",
                     "destination-concurrency-max": "2",
                     "connection-max-messages": "1"}})
    n = 24
    _send_many(d, ["u%d@tight.test" % i for i in range(n)], subject="tight")
    wait_for(lambda: len(_delivered(peer)) >= n, 60, "%d messages at the peer" % n)
    d.wait_queue_settled(10)
    assert peer.connections >= n
    assert peer.max_active <= 2, (peer.max_active, peer.transcript())
    assert sorted(r for m in _delivered(peer) for r in m["rcpts"]) == \
        sorted("u%d@tight.test" % i for i in range(n))


def test_dead_after_one_failure(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, greeting="421 4.3.2 Service not available, closing")
    dns.zone("dead1.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"destination-concurrency": "1", "dead-after": "1"}})
    _send_many(d, ["u0@dead1.test"], subject="dead1")
    wait_log(d, r"destination mx\.dead1\.test is not responding "
                r"\(1 failed connections at concurrency 1\)", timeout=20)


def test_dead_destination_defers_backlog_and_probes_once_per_step(todoku, dns, smtp_peer):
    # answers every connection with 421: a connection-level failure
    peer = smtp_peer(port=25, greeting="421 4.3.2 Service not available, closing")
    dns.zone("dead.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1s 2s"}})
    ids = _send_many(d, ["u%d@dead.test" % i for i in range(10)], subject="dead")
    wait_log(d, r"destination mx\.dead\.test is not responding", timeout=20)
    n0, t0 = peer.connections, time.monotonic()
    time.sleep(4.5)
    probes = peer.connections - n0
    # steps of 1 s then 2 s: at most 3 probes in 4.5 s, one connection each
    assert 1 <= probes <= 3, (probes, peer.transcript())
    # every message gets deferred, the ones after the death by the
    # destination state: with retries every 1-2 s such deferrals come
    # soon, however many first attempts failed for real under load
    def histories():
        reasons, records = [], []
        for qid in ids:
            s = _show(d, qid)
            assert s is not None, "%s left the queue" % qid
            h = s["recipients"][0]["history"]
            if not h:
                return None  # not attempted yet
            assert all(x["result"] == "deferred" for x in h), h
            reasons.extend(x["reply"] for x in h)
            records.extend(x["record"] for x in h)
        dead = [r for r in records
                if r["next_reason"] == "destination not responding (dead): the next probe of it"]
        return (reasons, dead) if dead else None
    reasons, dead = wait_for(histories, 20, "deferrals by the dead state")
    assert any(re.search(r"destination mx\.dead\.test is not responding; next probe at", r)
               for r in reasons), reasons
    # the attempt record says why the next attempt is when it is
    assert any(r["next_attempt"] in r["result"]["reply"] for r in dead), dead
    assert len(re.findall(r"destination mx\.dead\.test is not responding \(",
                          d.log_text())) == 1
    assert peer.messages == []


# ---------------------------------------------------------------------------
# connection reuse
# ---------------------------------------------------------------------------

def test_messages_to_one_destination_share_a_connection(todoku, dns, smtp_peer):
    """Issue 3: 50 messages to one domain use fewer connections than
    messages, and the peer never sees more connections at once than the
    destination's concurrency limit."""
    peer = smtp_peer(port=25, greeting_delay=1.0)
    dns.zone("reuse.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    n = 50
    _send_many(d, ["u%d@reuse.test" % i for i in range(n)], subject="reuse")
    wait_for(lambda: len(_delivered(peer)) >= n, 60, "%d messages at the peer" % n)
    d.wait_queue_settled(10)
    # fewer connections than messages: on average at least two per connection
    assert peer.connections <= n // 2, (peer.connections, peer.transcript())
    # a second transaction on a connection starts with RSET (250)
    shared = [s for s in peer.sessions if len(s.messages) > 1]
    assert shared, peer.transcript()
    verbs = [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in shared[0].commands]
    assert verbs.count("MAIL") >= 2 and "RSET" in verbs, shared[0].commands
    assert verbs.index("RSET") < len(verbs) - 1 - verbs[::-1].index("MAIL"), verbs
    # every message once, each in exactly one transaction
    assert sum(len(s.messages) for s in peer.sessions) == n, peer.transcript()
    assert sorted(r for m in _delivered(peer) for r in m["rcpts"]) == \
        sorted("u%d@reuse.test" % i for i in range(n))
    # the limit the queue announced (slow start from 5 by default) held
    limits = [float(x) for x in re.findall(
        r"destination mx\.reuse\.test: concurrency ([0-9.]+)", d.log_text())]
    most = int(max([5.0] + limits))
    assert 1 <= peer.max_active <= most, (peer.max_active, limits)


# ---------------------------------------------------------------------------
# IPv6 policy rejection -> IPv4 in the same attempt
# ---------------------------------------------------------------------------

GMAIL_V6 = ["550-5.7.1 [::1] Our system has detected that this message does",
            "550-5.7.1 not meet IPv6 sending guidelines regarding PTR records and",
            "550 5.7.1 authentication. Please review the guidelines. - gsmtp"]


def test_ipv6_policy_reject_is_retried_over_ipv4(todoku, dns, smtp_peer):
    v6 = smtp_peer(addr="::1", port=25, replies={"RCPT": GMAIL_V6})
    keep = lambda s, line: ("450 4.2.0 keep me queued"   # noqa: E731
                            if line.upper().startswith("RCPT TO:<KEEP@") else None)
    v4 = smtp_peer(port=25, on_command=keep)
    dns.zone("six.test", ["@ MX 10 mx", "mx AAAA ::1", "mx A %s" % v4.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"},
                                                  "delivery": {"ip": "prefer-ipv6"}})
    qid = _send_many(d, [["user@six.test", "keep@six.test"]], subject="v6")[0]

    def delivered():
        s = _show(d, qid)
        assert s is not None
        for rc in s["recipients"]:
            if rc["address"] == "user@six.test" and rc["state"] == "delivered":
                return rc
        return None
    rc = wait_for(delivered, 20, "user@six.test delivered")
    assert rc["attempts"] == 1, rc
    assert len(rc["history"]) == 1, rc
    assert "[%s]" % v4.addr in rc["history"][0]["where"], rc
    # the record: the IPv6 address, then the IPv4 retry, typed and in text
    addrs = rc["history"][0]["record"]["addresses"]
    assert [(a["family"], a["ipv4_retry"]) for a in addrs] == \
        [(6, False), (4, True)], addrs
    text = d.cli_run("queue", "show", qid).stdout.decode()
    assert "IPv4 retry after a policy refusal over IPv6" in text, text
    assert v6.connections >= 1 and "RCPT TO:<user@six.test>" in v6.all_commands()
    assert [m["rcpts"] for m in _delivered(v4)] == [["user@six.test"]]
    log = d.log_text()
    assert re.search(r"refused the message over IPv6 \(.*IPv6 sending guidelines", log), log[-3000:]
    assert re.search(r"destination mx\.six\.test: IPv4 first .*IPv6 sending guidelines", log)
    # the next message goes to IPv4 first (after the idle connection is gone)
    time.sleep(1.5)
    n6 = v6.connections
    _send_many(d, ["next@six.test"], subject="v4 first")
    wait_for(lambda: any("next@six.test" in m["rcpts"] for m in v4.messages), 20,
             "next@six.test at the IPv4 peer")
    assert v6.connections == n6, v6.transcript()


def test_ipv4_retry_stays_within_the_limit(todoku, dns, smtp_peer):
    """The IPv4 retry after an IPv6 policy refusal takes over the
    session's slot: the IPv6 connection says QUIT before the IPv4 one
    opens (it used to open beside it while the IPv6 one idled), and the
    session's other messages move with it."""
    g = Gauge()
    v6 = smtp_peer(addr="::1", port=25, replies={"RCPT": GMAIL_V6}, gauge=g)
    v4 = smtp_peer(port=25, gauge=g)
    dns.zone("six1.test", ["@ MX 10 mx", "mx AAAA ::1", "mx A %s" % v4.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"ip": "prefer-ipv6", "destination-concurrency": "1",
                     "destination-concurrency-max": "1"}})
    rcpts = ["u%d@six1.test" % i for i in range(3)]
    _send_many(d, rcpts, subject="v6 limit")
    wait_for(lambda: len(_delivered(v4)) >= 3, 30, "three messages over IPv4")
    d.wait_queue_settled(10)
    assert sorted(r for m in _delivered(v4) for r in m["rcpts"]) == rcpts
    assert v6.connections >= 1 and _delivered(v6) == []
    assert g.max_active == 1, (g.max_active, v6.transcript(), v4.transcript())
