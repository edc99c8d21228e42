"""IPv6 as a family (DESIGN §7 "IPv6"; issue 3 "DNS and routing"): the
family health memory that suspends IPv6 after network-level failures and
probes it again later, the source address and HELO name of each family,
and max-attempt-time.

Tests that need IPv6 addresses other than ::1, or an IPv6 network that
fails, run in a private network namespace made by the `netns` fixture:
only `lo` (up), extra addresses on it, and an `unreachable` route for the
discard prefix 100::/64, so nothing can leave the namespace. The pytest
main thread enters it before the test's servers start (knotd, peers and
todoku inherit it) and goes back to the original namespace at teardown.
"""
import ctypes
import json
import os
import re
import subprocess
import time

import pytest

from world import make_message, queue_id
from world.net import alloc_addr
from world.roles import wait_for, wait_log

SENDER = "someone@localhost"
CLONE_NEWNET = 0x40000000

PEER6 = "fd00:7e57::25"  # the IPv6 peer's own address in the namespace
SRC6 = "fd00:7e57::5"  # our IPv6 source address


def _ip(*args):
    subprocess.run(["ip"] + list(args), check=True)


@pytest.fixture
def netns(null_dns, todoku_user, world_base):
    """The calling thread (pytest's) in a fresh network namespace; the
    session-wide servers above were started before, outside it."""
    libc = ctypes.CDLL(None, use_errno=True)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(orig)
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    try:
        _ip("link", "set", "lo", "up")
        for a in (PEER6, SRC6):
            _ip("-6", "addr", "add", a + "/128", "dev", "lo", "nodad")
        _ip("-6", "route", "add", "unreachable", "100::/64")
        yield
    finally:
        if libc.setns(orig, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(orig)


def _send(d, rcpt, subject, also=()):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt] + list(also),
                   make_message(subject=subject, sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _got(peer, rcpt):
    return [m for m in list(peer.messages) if rcpt in m["rcpts"]]


def _keep(s, line):
    """Peers defer keep*@ so the message (and its record) stays queued."""
    return ("450 4.2.0 keep me queued"
            if line.upper().startswith("RCPT TO:<KEEP") else None)


def _record(d, qid, rcpt, timeout=20):
    """(the first attempt's record of rcpt, the text of queue show)."""
    def first():
        r = d.cli_run("queue", "show", qid, "--json")
        if r.returncode != 0:
            return None
        for rc in json.loads(r.stdout)["recipients"]:
            if rc["address"] == rcpt and rc["history"]:
                return rc["history"][0]["record"]
        return None
    rec = wait_for(first, timeout, "a record for %s" % rcpt)
    return rec, d.cli_run("queue", "show", qid).stdout.decode()


# ---------------------------------------------------------------------------
# the family health memory
# ---------------------------------------------------------------------------

def test_ipv6_suspended_after_network_failures_then_probed(netns, todoku, dns,
                                                           smtp_peer):
    v4 = smtp_peer(port=25, on_command=_keep)
    v6 = smtp_peer(addr="::1", port=25, on_command=_keep)
    # b1/b2: the IPv6 address is unreachable (no route), IPv4 works;
    # dual: both families work
    dns.zone("fam.test", ["b1 MX 10 mx1", "mx1 AAAA 100::1", "mx1 A %s" % v4.addr,
                          "b2 MX 10 mx2", "mx2 AAAA 100::2", "mx2 A %s" % v4.addr,
                          "dual MX 10 mx", "mx AAAA ::1", "mx A %s" % v4.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        # one smtp-out: the family memory is per process, and
        # destinations are spread over the processes by a hash
        "delivery": {"ip": "prefer-ipv6", "ipv6-suspend-after": "2",
                     "ipv6-suspend-for": "8s", "processes": "1"}})
    _send(d, "a@b1.fam.test", "one")
    wait_for(lambda: _got(v4, "a@b1.fam.test"), 20, "a@b1 over IPv4")
    assert "IPv6 suspended" not in d.log_text(), \
        "one unreachable address is not a broken family"
    _send(d, "b@b2.fam.test", "two")
    wait_for(lambda: _got(v4, "b@b2.fam.test"), 20, "b@b2 over IPv4")
    m = wait_log(d, r"IPv6 suspended for 8s: network-level connection failures "
                 r"at 2 IPv6 addresses.*\[100::2\]", 10)
    suspended_at = time.monotonic()

    # suspended: the dual-stack destination goes to IPv4, ::1 untouched
    qid = _send(d, "c@dual.fam.test", "three", also=["keep@dual.fam.test"])
    wait_for(lambda: _got(v4, "c@dual.fam.test"), 20, "c@dual over IPv4")
    assert v6.connections == 0, v6.transcript()
    assert re.search(r"%s: IPv6 suspended \(\d+s left\): IPv4 addresses first"
                     % qid, d.log_text())
    # the attempt record says so, typed and in the text
    rec, text = _record(d, qid, "keep@dual.fam.test")
    assert rec["ipv6_plan"] == "ipv4-first", rec
    assert [a["family"] for a in rec["addresses"]] == [4], rec
    assert "IPv6 suspended: IPv4 addresses first" in text, text

    # after ipv6-suspend-for one attempt probes IPv6 (usual order: ::1 first)
    time.sleep(max(0.0, suspended_at + 9 - time.monotonic()))
    start = m.end()
    qid = _send(d, "e@dual.fam.test", "four", also=["keep2@dual.fam.test"])
    wait_for(lambda: _got(v6, "e@dual.fam.test"), 20, "e@dual over IPv6")
    assert not _got(v4, "e@dual.fam.test")
    wait_log(d, r"%s: IPv6 suspension time over: this attempt probes IPv6" % qid,
             10, start=start)
    rec, text = _record(d, qid, "keep2@dual.fam.test")
    assert rec["ipv6_plan"] == "probe", rec
    assert rec["addresses"][0]["family"] == 6, rec
    assert "IPv6 suspension over: this attempt probes IPv6" in text, text
    wait_log(d, r"IPv6 resumed: mx\.fam\.test \[::1\]:25 accepted a "
             r"connection", 10, start=start)


def test_refused_ipv6_port_is_not_a_network_failure(netns, todoku, dns,
                                                     smtp_peer):
    """A host that refuses the port answered: the IPv6 path works. Only
    the unreachable addresses count towards the suspension."""
    v4 = smtp_peer(port=25)
    recs = []
    for i in range(3):
        # PEER6 has no listener on 25 here: connection refused
        recs += ["r%d MX 10 mx%d" % (i, i), "mx%d AAAA %s" % (i, PEER6),
                 "mx%d A %s" % (i, v4.addr)]
    for i in range(2):
        recs += ["u%d MX 10 mxu%d" % (i, i), "mxu%d AAAA 100::%d" % (i, i + 1),
                 "mxu%d A %s" % (i, v4.addr)]
    dns.zone("ref.test", recs)
    d = todoku(dns_servers=[dns.addr], overrides={
        "delivery": {"ip": "prefer-ipv6", "ipv6-suspend-after": "2",
                     "processes": "1"}})
    for dom in ("r0", "r1", "r2", "u0"):
        _send(d, "x@%s.ref.test" % dom, dom)
        wait_for(lambda: _got(v4, "x@%s.ref.test" % dom), 20, dom)
    log = d.log_text()
    assert "Connection refused" in log
    assert "IPv6 suspended" not in log, "a refused port counted"
    _send(d, "x@u1.ref.test", "u1")
    wait_for(lambda: _got(v4, "x@u1.ref.test"), 20, "u1")
    wait_log(d, r"IPv6 suspended for 600s: network-level connection failures "
             r"at 2 IPv6 addresses", 10)


def test_max_addresses_cuts_the_final_order(netns, todoku, dns, smtp_peer):
    """DESIGN §7: one attempt tries at most max-addresses. The cut falls
    on smtp-out's final order: with IPv6 suspended the IPv4 address that
    stood behind more than max-addresses IPv6 ones is moved first and
    tried, instead of being cut before it could move forward."""
    v4 = smtp_peer(port=25, on_command=_keep)
    dns.zone("cap.test", ["b1 MX 10 mx1", "mx1 AAAA 100::1", "mx1 A %s" % v4.addr,
                          "b2 MX 10 mx2", "mx2 AAAA 100::2", "mx2 A %s" % v4.addr,
                          "many MX 10 mxm", "mxm AAAA 100::11",
                          "mxm AAAA 100::12", "mxm AAAA 100::13",
                          "mxm A %s" % v4.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"ip": "prefer-ipv6", "max-addresses": "2",
                     "ipv6-suspend-after": "2", "processes": "1"}})
    _send(d, "a@b1.cap.test", "one")
    wait_for(lambda: _got(v4, "a@b1.cap.test"), 20, "a@b1 over IPv4")
    _send(d, "b@b2.cap.test", "two")
    wait_for(lambda: _got(v4, "b@b2.cap.test"), 20, "b@b2 over IPv4")
    wait_log(d, r"IPv6 suspended for \d+s", 10)

    # three IPv6 addresses ahead of the IPv4 one, max-addresses 2
    qid = _send(d, "c@many.cap.test", "three", also=["keep@many.cap.test"])
    wait_for(lambda: _got(v4, "c@many.cap.test"), 20,
             "c@many over IPv4 in the first attempt")
    rec, text = _record(d, qid, "keep@many.cap.test")
    assert rec["ipv6_plan"] == "ipv4-first", rec
    assert [a["address"] for a in rec["addresses"]] == [v4.addr], rec
    lim = rec["address_limit"]
    assert lim["max"] == 2 and lim["addresses"] == 4, rec
    # the IPv4 address and one IPv6 address were kept; the other two left out
    assert len(lim["skipped"]) == 2, rec
    assert set(lim["skipped"]) < {"100::11", "100::12", "100::13"}, rec
    assert lim["skipped_unlisted"] == 0, rec
    assert re.search(r"max-addresses 2 of 4 addresses in the attempt's order; "
                     r"skipped by the limit: 100::1\d, 100::1\d\n", text), text
    assert re.search(r"%s: max-addresses 2: the last 2 of 4 addresses" % qid,
                     d.log_text())


# ---------------------------------------------------------------------------
# source address and HELO per family, globally and per route
# ---------------------------------------------------------------------------

def test_source_address_and_helo_per_family(netns, todoku, dns, smtp_peer):
    v4 = smtp_peer(port=25)
    v6 = smtp_peer(addr=PEER6, port=25)
    src4 = alloc_addr(ports=())
    dns.zone("fam.test", ["four MX 10 mx4", "mx4 A %s" % v4.addr,
                          "six MX 10 mx6", "mx6 AAAA %s" % PEER6])
    d = todoku(dns_servers=[dns.addr], overrides={
        "delivery": {"helo": "v4.mx.test", "helo-ipv6": "v6.mx.test",
                     "source-ipv4": src4, "source-ipv6": SRC6},
        # a route's own names win; its helo counts over IPv6 too
        'route "r6.test"': {"via": "smtp://mx6.fam.test:25",
                            "helo-ipv6": "r6.relay.test"},
        'route "r4.test"': {"via": "smtp://mx4.fam.test:25",
                            "helo": "r4.relay.test", "helo-ipv6": "no.test"},
        'route "rb.test"': {"via": "smtp://mx6.fam.test:25",
                            "helo": "rb.relay.test"},
    })
    for rcpt in ("a@four.fam.test", "b@six.fam.test", "c@r6.test",
                 "d@r4.test", "e@rb.test"):
        _send(d, rcpt, "hi")
    wait_for(lambda: len(v4.messages) >= 2 and len(v6.messages) >= 3, 20,
             "all five messages")

    def seen(peer, rcpt):
        m = _got(peer, rcpt)
        assert len(m) == 1, peer.transcript()
        return m[0]["helo"], m[0]["session"].peer_addr[0]

    assert seen(v4, "a@four.fam.test") == ("v4.mx.test", src4)
    assert seen(v6, "b@six.fam.test") == ("v6.mx.test", SRC6)
    assert seen(v6, "c@r6.test") == ("r6.relay.test", SRC6)
    assert seen(v4, "d@r4.test") == ("r4.relay.test", src4)
    assert seen(v6, "e@rb.test") == ("rb.relay.test", SRC6)
    out = d.cli_run("config", "check").stdout.decode()
    assert "helo-ipv6 = v6.mx.test" in out


def test_per_family_keys_are_validated(todoku, tmp_world):
    d = todoku(start=False)
    d.write_config()
    base = d.config_path.read_text()
    bad = tmp_world / "bad.conf"
    for extra, needle in [
        ("[delivery]\nhelo-ipv6 = not a name\n", b"helo-ipv6"),
        ("[delivery]\nipv6-suspend-after = 65\n", b"ipv6-suspend-after"),
        ("[delivery]\nipv6-suspend-for = 0s\n", b"ipv6-suspend-for"),
        ("[delivery]\nmax-attempt-time = 2d\n", b"max-attempt-time"),
        ('[route "x.test"]\nvia = smtp://[127.0.0.1]:25\n'
         "helo-ipv6 = bad name\n", b"helo-ipv6"),
    ]:
        bad.write_text(base + "\n" + extra)
        r = subprocess.run([d.bin, "config", "check", "-c", str(bad)],
                           capture_output=True)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr, (extra, r.stderr)
        assert re.search(rb"bad\.conf:\d+", r.stderr), r.stderr


# ---------------------------------------------------------------------------
# max-attempt-time
# ---------------------------------------------------------------------------

def test_max_attempt_time_stops_trying_addresses(todoku, dns, smtp_peer):
    # three MX hosts that accept TCP and never greet
    peers = [smtp_peer(port=25, greeting=None) for _ in range(3)]
    dns.zone("slow.test", ["@ MX 10 mx1", "@ MX 20 mx2", "@ MX 30 mx3"] +
             ["mx%d A %s" % (i + 1, p.addr) for i, p in enumerate(peers)])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"ip": "ipv4-only", "timeout-greeting": "2s",
                     "max-attempt-time": "3s"}})
    qid = _send(d, "x@slow.test", "slow")

    def deferred():
        r = d.cli_run("queue", "show", qid, "--json")
        if r.returncode != 0:
            return None
        rc = json.loads(r.stdout)["recipients"][0]
        return rc if rc["history"] else None
    rc = wait_for(deferred, 30, "the first attempt recorded")
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert re.search(r"attempt time limit reached after [12] of 3 addresses of "
                     r"slow\.test \(max-attempt-time 3s\); last: mx[12]\.slow\.test",
                     h["reply"]), h
    assert peers[0].connections == 1
    assert peers[2].connections == 0, "all three addresses were tried"
    # typed in the record: how many of how many addresses were tried
    rec = h["record"]
    assert rec["time_limit"] == {"tried": len(rec["addresses"]),
                                 "addresses": 3}, rec
    assert rec["time_limit"]["tried"] in (1, 2), rec
    text = d.cli_run("queue", "show", qid).stdout.decode()
    assert re.search(r"attempt time limit reached after [12] of 3 addresses\n",
                     text), text
