"""How smtp-out puts a message on the wire (issue 3, docs/performance.md
"Session 3: the 4 KiB drain").

A message that went out as several small writes (trace headers, body,
end of data) waited at each one for the peer's delayed ACK under Nagle's
algorithm: about 40 ms per message on Linux, which capped delivery over
one connection at ~25 messages/s. smtp-out now disables Nagle on its
sockets and gathers the message and its terminator into writes of up to
SMTPO_BODY_CHUNK. Proved with strace, not with a clock: the outbound
socket gets TCP_NODELAY before it connects, and a small message is one
write() from its first byte to the final dot.
"""
import re

from world import make_message, queue_id

SENDER = "someone@localhost"
SOCKET_RE = re.compile(r"^(\d+)\s+socket\(.*\) = (\d+)<")
CALL_RE = re.compile(r"^(\d+)\s+(\w+)\((\d+)<((?:->|[^>])*)>(.*)$")


def _send(d, rcpt, subject, body):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject=subject, body=body,
                                                sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _socket_calls(trace, peer_addr):
    """-> [(call, arguments)] on the socket smtp-out connected to
    peer_addr:25, from socket() on (strace -f -yy output)."""
    calls = {}       # (pid, fd) -> calls since that fd's socket()
    found = None
    for ln in open(trace, errors="replace"):
        ln = ln.rstrip("\n")
        m = SOCKET_RE.match(ln)
        if m:
            key = (m.group(1), m.group(2))
            if key == found:
                break           # the fd now names another socket
            calls[key] = []
            continue
        m = CALL_RE.match(ln)
        if not m or m.group(2) not in ("setsockopt", "connect", "write"):
            continue
        key = (m.group(1), m.group(3))
        if key not in calls:
            continue
        calls[key].append((m.group(2), m.group(5)))
        if found is None and m.group(2) == "connect" \
                and 'inet_addr("%s")' % peer_addr in m.group(5) \
                and "htons(25)" in m.group(5):
            found = key
    assert found, "no connect() to %s:25 in the trace" % peer_addr
    return calls[found]


def test_small_message_is_one_write_on_a_nodelay_socket(todoku, dns, smtp_peer, tmp_world):
    peer = smtp_peer(port=25)
    dns.zone("wire.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    trace = tmp_world / "strace.out"
    d = todoku(dns_servers=[dns.addr],
               wrapper=["strace", "-f", "-qq", "-yy", "-s", "20000",
                        "-e", "trace=socket,setsockopt,connect,write",
                        "-o", str(trace)])
    body = "".join("line %04d of a four kilobyte message, more or less\n" % i
                   for i in range(80))
    qid = _send(d, "user@wire.test", "one write", body)
    assert qid
    peer.wait_messages(1)
    assert b"line 0079 of a four kilobyte message" in peer.messages[0]["data"]
    d.stop()

    calls = _socket_calls(trace, peer.addr)
    names = [n for n, _ in calls]
    assert any(n == "setsockopt" and "TCP_NODELAY, [1]" in a
               for n, a in calls[:names.index("connect")]), \
        "no TCP_NODELAY on smtp-out's socket before connect(): %r" % \
        [(n, a[:120]) for n, a in calls[:3]]
    writes = [a for n, a in calls if n == "write"]
    data_at = [i for i, w in enumerate(writes) if "DATA\\r\\n" in w]
    assert data_at, "no DATA command in the writes to the peer: %r" % \
        [w[:120] for w in writes]
    after = writes[data_at[0] + 1:]
    assert after, [w[:120] for w in writes]
    msg = after[0]
    # the whole message and its terminator in one write: the string is
    # complete (no "..." truncation) and ends with CRLF . CRLF
    assert "line 0000 of a four" in msg and "line 0079 of a four" in msg, msg[:300]
    assert re.search(r'\\r\\n\.\\r\\n", \d+\) = \d+$', msg), msg[-200:]
    # and what follows is a command again (RSET or QUIT), not more data
    assert len(after) == 1 or re.match(r'"(RSET|QUIT)\\r\\n"', after[1].lstrip(", ")), \
        [w[:120] for w in after[:3]]


def test_a_finished_attempt_frees_its_slot_before_its_result_is_committed(todoku, dns, smtp_peer):
    """The queue runs at most 64 attempts at once. A finished attempt
    frees its slot when smtp-out's result arrives; the result's commit
    may come later (delivery results wait for a commit that happens
    anyway, DESIGN §7 allows a duplicate after a crash). Here results
    wait up to 10 minutes (test knob TODOKU_SPOOL_LAZY_MS) and no other
    commit comes after the last message is accepted: if slots waited for
    the commit, the 6 messages beyond the first 64 would not leave for
    10 minutes."""
    n = 70
    # the greeting waits until all n are queued, so 64 take the slots
    # and 6 wait for one
    peer = smtp_peer(port=25, greeting_delay=4)
    dns.zone("slots.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    # a long retry step: the queue's own wake-up (at most the largest
    # backoff away) must not be what starts them either
    d = todoku(dns_servers=[dns.addr], env={"TODOKU_SPOOL_LAZY_MS": "600000"},
               overrides={"queue": {"retry": "1h"}})
    c = d.smtp()
    c.ehlo()
    for i in range(n):
        r = c.sendmail(SENDER, ["user%d@slots.test" % i],
                       make_message(subject="slot %d" % i, body="x\n",
                                    sender=SENDER, to="user%d@slots.test" % i))
        assert r.code == 250, r
    c.quit()
    peer.wait_messages(n, timeout=60)
    got = sorted(m["rcpts"][0] for m in peer.messages if m["rcpts"])
    assert got == sorted("user%d@slots.test" % i for i in range(n)), got


def test_next_attempt_takes_the_idle_connection(todoku, dns, smtp_peer):
    """Mail that leaves as fast as it arrives makes one queue session per
    message. smtp-out keeps a finished connection idle for connection-idle-time
    (1 s); the next attempt to the same first address takes it (after
    RSET) instead of connecting again. Each try below sends a message,
    waits until it left the queue (its session is over), then sends the
    next one; without the connection cache every message is a new
    connection. Tried up to five times so that one slow moment of the
    machine (over a second between the two) cannot fail it."""
    from world.roles import wait_for
    peer = smtp_peer(port=25)
    dns.zone("idle.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr])
    reused = False
    for k in range(5):
        qid = _send(d, "first%d@idle.test" % k, "first %d" % k, "x\n")
        peer.wait_messages(2 * k + 1)
        wait_for(lambda: qid not in {m["id"] for m in d.cli("queue", "list", "--json")},
                 15, "%s gone from the queue" % qid)
        before = len(peer.sessions)
        _send(d, "second%d@idle.test" % k, "second %d" % k, "y\n")
        peer.wait_messages(2 * k + 2)
        if len(peer.sessions) == before:
            reused = True
            break
    assert reused, "every message had its own connection: %r" % \
        [s.commands for s in peer.sessions]
    verbs = [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in peer.all_commands()]
    assert "RSET" in verbs, verbs      # reuse only after RSET (DESIGN §7)
