"""The connection cache key and shared destinations (DESIGN §7
"Destinations and scheduling"; issue 3 "Connection reuse").

A connection is reused only for mail that would open the very same
connection: same address and port, source address, HELO, TLS policy and
verify name, SASL identity. Two routes to one relay that differ in HELO,
TLS policy, AUTH user or source address never share a connection; two identical ones do (they are one
destination: the smarthost).

Domains whose MX hosts are the same host are one destination: they share
its concurrency limit, so the peer never sees more connections at once than
that limit, however the mail is split across domains.

The peer greets after a delay, so every connection stays open while the
rest of the burst becomes ready; it records which HELO, TLS state and AUTH
identity each connection had and which messages it carried.
"""
import base64
import re

import pytest

from world import alloc_addr, make_message, queue_id, self_signed
from world.roles import wait_for

SENDER = "someone@localhost"


def _send_all(d, rcpts):
    """One SMTP session, one message per recipient (in this order)."""
    c = d.smtp()
    c.ehlo()
    for i, rcpt in enumerate(rcpts):
        r = c.sendmail(SENDER, [rcpt], make_message(subject="cache %d" % i,
                                                    sender=SENDER, to=rcpt))
        assert r.code == 250, r
        assert queue_id(r.text)
    c.quit()


def _auth_user(session):
    """The user name of the session's AUTH PLAIN (None without AUTH)."""
    for cmd in session.commands:
        m = re.match(r"AUTH PLAIN (\S+)$", cmd, re.I)
        if m:
            return base64.b64decode(m.group(1)).split(b"\0")[1].decode()
    return None


def _identity(session):
    return (session.helo, session.tls, _auth_user(session), session.peer_addr[0])


def _passwords(tmp_world):
    out = {}
    for user in ("alice", "bob"):
        p = tmp_world / ("%s.secret" % user)
        p.write_text("pw-%s\n" % user)
        p.chmod(0o600)
        out[user] = str(p)
    return out


# route b.example differs from route a.example in exactly one key field
VARIANTS = {
    "same": ({}, {}),
    "helo": ({"helo": "a-side.example"}, {"helo": "b-side.example"}),
    "tls": ({"tls": "none"}, {"tls": "may"}),
    "sasl": ({"tls": "must", "auth-user": "alice"}, {"tls": "must", "auth-user": "bob"}),
    "source": ({}, {"source-ipv4": "SOURCE"}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_connection_shared_only_with_the_same_key(variant, todoku, smtp_peer, tmp_world):
    relay = smtp_peer(port=2525, greeting_delay=1.0,
                      tls=self_signed(tmp_world / "pki", "relay.test"),
                      ehlo=("PIPELINING", "8BITMIME", "SIZE 10485760",
                            "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"),
                      replies={"AUTH": "235 2.7.0 Authentication successful"})
    pw = _passwords(tmp_world)
    a, b = (dict(x) for x in VARIANTS[variant])
    source = alloc_addr(ports=())
    for conf in (a, b):
        if conf.get("source-ipv4") == "SOURCE":
            conf["source-ipv4"] = source
        if "auth-user" in conf:
            conf["auth-password-file"] = pw[conf["auth-user"]]
    via = "smtp://[%s]:2525" % relay.addr
    d = todoku(overrides={'route "a.example"': dict(a, via=via),
                          'route "b.example"': dict(b, via=via),
                          "queue": {"retry": "1h"}})
    rcpts = ["u1@a.example", "u2@b.example", "u3@a.example", "u4@b.example"]
    _send_all(d, rcpts)
    wait_for(lambda: len(relay.messages) >= 4, 30, "4 messages at the relay")
    d.wait_queue_settled(10)
    domains = {}
    for s in relay.sessions:
        for m in s.messages:
            domains.setdefault(id(s), set()).add(m["rcpts"][0].split("@")[1])
    assert sorted(r for m in relay.messages for r in m["rcpts"]) == sorted(rcpts)
    assert len(relay.messages) == 4, relay.transcript()
    if variant == "same":
        # one destination, one key: the four messages ride one connection
        assert relay.connections == 1, relay.transcript()
        assert domains == {id(relay.sessions[0]): {"a.example", "b.example"}}
        return
    # never a connection carrying mail of both routes, and each connection
    # is what its route asks for
    want = {"a.example": set(), "b.example": set()}
    for s in relay.sessions:
        if s.messages:
            dom = s.messages[0]["rcpts"][0].split("@")[1]
            want[dom].add(_identity(s))
    assert all(len(x) == 1 for x in domains.values()), relay.transcript()
    assert len(want["a.example"]) == 1 and len(want["b.example"]) == 1, want
    ida, idb = want["a.example"].pop(), want["b.example"].pop()
    assert ida != idb, (ida, idb)
    if variant == "helo":
        assert (ida[0], idb[0]) == ("a-side.example", "b-side.example")
    elif variant == "tls":
        assert (ida[1], idb[1]) == (False, True)
    elif variant == "sasl":
        assert (ida[2], idb[2]) == ("alice", "bob")
        assert ida[1] and idb[1]
    else:
        assert ida[3] != source and idb[3] == source, (ida, idb)


def test_domains_sharing_mx_hosts_share_the_limit(todoku, dns, smtp_peer):
    """Two domains, one MX host: one destination, one limit (2) for both."""
    # the peer greets after 1 s: the whole burst is ready (routed, bodies
    # loaded) long before the first session could end, so open sessions
    # stay busy until the backlog is gone and none closes mid-burst
    peer = smtp_peer(port=25, greeting_delay=1.0)
    dns.zone("shared.test", ["mx A %s" % peer.addr])
    dns.zone("one.test", ["@ MX 10 mx.shared.test."])
    dns.zone("two.test", ["@ MX 10 mx.shared.test."])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"destination-concurrency": "2",
                     "destination-concurrency-max": "2"}})
    n = 8
    rcpts = []
    for i in range(n):
        rcpts += ["a%d@one.test" % i, "b%d@two.test" % i]
    _send_all(d, rcpts)
    wait_for(lambda: len(peer.messages) >= 2 * n, 60, "%d messages at the peer" % (2 * n))
    d.wait_queue_settled(10)
    assert sorted(r for m in peer.messages for r in m["rcpts"]) == sorted(rcpts)
    log = d.log_text()
    assert not re.search(r"destination (one|two)\.test|destination \S*\.(one|two)\.test", log)
    # both domains' mail went over the same connections
    mixed = [s for s in peer.sessions
             if len({m["rcpts"][0].split("@")[1] for m in s.messages}) == 2]
    assert mixed, peer.transcript()
    # two domains with a limit of 2 each would have had 4 connections open
    # at once (6 were seen with the destination keyed per domain)
    assert peer.max_active == 2, (peer.max_active, peer.transcript())
