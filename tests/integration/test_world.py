"""Self-tests of the test world: they need no todoku binary."""
import socket
import subprocess
import time

import dns.exception as dexc
import dns.flags as dflags
import dns.message as dmsg
import dns.query as dquery
import dns.rcode as drcode
import dns.rdatatype as drdtype
import dns.resolver as dres
import pytest

from world import SMTPClient, make_message


# -- Knot --------------------------------------------------------------------

def test_knot_serves_zone_written_by_test(dns):
    dns.zone("example.test", ["@ MX 10 mx1", "@ MX 20 mx2", "mx1 A 127.0.0.9",
                              "mx2 A 127.0.0.10", "@ TXT \"v=spf1 -all\""])
    r = dres.Resolver(configure=False)
    r.nameservers = [dns.addr]
    mx = sorted((x.preference, str(x.exchange)) for x in r.resolve("example.test", "MX"))
    assert mx == [(10, "mx1.example.test."), (20, "mx2.example.test.")]
    assert [a.address for a in r.resolve("mx1.example.test", "A")] == ["127.0.0.9"]
    # NODATA and NXDOMAIN are told apart
    with pytest.raises(dres.NoAnswer):
        r.resolve("example.test", "AAAA")
    with pytest.raises(dres.NXDOMAIN):
        r.resolve("nope.example.test", "A")


def test_knot_rewrite_zone_and_second_zone(dns):
    dns.zone("a.test", ["www A 127.0.0.1"])
    dns.zone("b.test", ["www A 127.0.0.2"])
    dns.zone("a.test", ["www A 127.0.0.3"])
    r = dres.Resolver(configure=False)
    r.nameservers = [dns.addr]
    assert [a.address for a in r.resolve("www.a.test", "A")] == ["127.0.0.3"]
    assert [a.address for a in r.resolve("www.b.test", "A")] == ["127.0.0.2"]
    # kdig agrees (a second, independent client)
    out = subprocess.run(["kdig", "@%s" % dns.addr, "+short", "www.b.test", "A"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out.strip() == "127.0.0.2"


def test_knot_large_answer_truncates_over_udp(dns):
    dns.zone("big.test", ["@ TXT \"%s\"" % ("x%03d" % i * 50)[:250] for i in range(12)]
             + ["@ MX %d mx%d" % (i, i) for i in range(60)])
    q = dmsg.make_query("big.test", drdtype.MX)  # no EDNS: 512 octets
    a = dquery.udp(q, dns.addr, timeout=2)
    assert a.flags & dflags.TC
    a = dquery.tcp(q, dns.addr, timeout=2)
    assert len(a.answer[0]) == 60


# -- scripted DNS --------------------------------------------------------------

def _q(server, name, rdtype, tcp=False, timeout=1.0):
    q = dmsg.make_query(name, rdtype)
    if tcp:
        return dquery.tcp(q, server.addr, timeout=timeout)
    return dquery.udp(q, server.addr, timeout=timeout)


def test_faulty_dns_behaviours(faulty_dns):
    f = faulty_dns
    f.rule("ok.test", "MX", "answer", ["ok.test. 60 MX 10 mx.ok.test."])
    f.rule("fail.test", "MX", "servfail")
    f.rule("slow.test", "MX", "timeout")
    f.rule("tc.test", "MX", "truncate", ["tc.test. 60 MX 10 mx.tc.test."])
    f.rule("tcnotcp.test", "MX", "truncate_notcp", ["tcnotcp.test. 60 MX 10 mx.x.test."])
    f.rule("huge.test", "MX", "answer",
           ["huge.test. 60 MX %d mx%d.a-rather-long-host-name.huge.test." % (i, i) for i in range(80)])
    f.rule("bad.test", "MX", "malformed")
    f.rule("empty.test", "MX", "nodata")

    a = _q(f, "ok.test", "MX")
    assert str(a.answer[0][0].exchange) == "mx.ok.test."
    assert _q(f, "fail.test", "MX").rcode() == drcode.SERVFAIL
    with pytest.raises(dexc.Timeout):
        _q(f, "slow.test", "MX", timeout=0.5)
    a = _q(f, "tc.test", "MX")
    assert a.flags & dflags.TC and not a.answer
    assert str(_q(f, "tc.test", "MX", tcp=True).answer[0][0].exchange) == "mx.tc.test."
    assert _q(f, "tcnotcp.test", "MX").flags & dflags.TC
    with pytest.raises((EOFError, ConnectionError, OSError)):
        _q(f, "tcnotcp.test", "MX", tcp=True)
    a = _q(f, "huge.test", "MX")
    assert a.flags & dflags.TC
    assert len(_q(f, "huge.test", "MX", tcp=True).answer[0]) == 80
    with pytest.raises(Exception):
        _q(f, "bad.test", "MX")
    a = _q(f, "empty.test", "MX")
    assert a.rcode() == drcode.NOERROR and not a.answer
    assert _q(f, "unknown.test", "A").rcode() == drcode.NXDOMAIN
    assert ("tcp", "huge.test.", "MX") in f.queries


def test_faulty_dns_without_tcp_refuses_connections():
    from world import FaultyDNS
    f = FaultyDNS(tcp=False)
    try:
        f.rule("x.test", "A", "truncate")
        assert _q(f, "x.test", "A").flags & dflags.TC
        s = socket.socket()
        with pytest.raises(ConnectionRefusedError):
            s.connect((f.addr, 53))
        s.close()
    finally:
        f.stop()


# -- scripted SMTP peer ----------------------------------------------------------

def test_peer_records_transaction_and_multiline(smtp_peer):
    p = smtp_peer(replies={"RCPT": ["451 4.3.0 try later", "250 2.1.5 ok"],
                           "NOOP": ["250-first", "250-second", "250 2.0.0 third"]})
    c = SMTPClient(p.addr, p.port)
    assert c.greeting.code == 220
    r = c.ehlo("me.test")
    assert r.code == 250 and "PIPELINING" in c.extensions
    assert c.cmd("NOOP").lines == ["first", "second", "2.0.0 third"]
    assert c.cmd("MAIL FROM:<a@x.test>").code == 250
    assert c.cmd("RCPT TO:<b@y.test>").code == 451
    assert c.cmd("RCPT TO:<c@y.test>").code == 250
    assert c.cmd("DATA").code == 354
    r = c.data_bytes(b"Subject: hi\r\n\r\n..dot\r\nbody\r\n")
    assert r.code == 250
    c.quit()
    (m,) = p.wait_messages(1)
    assert m["mail_from"] == "a@x.test" and m["rcpts"] == ["c@y.test"]
    assert m["data"] == b"Subject: hi\r\n\r\n.dot\r\nbody\r\n"
    assert p.sessions[0].helo == "me.test"
    assert "RCPT TO:<b@y.test>" in p.all_commands()


def test_peer_never_greets_and_greets_late(smtp_peer):
    silent = smtp_peer(greeting=None)
    c = SMTPClient(silent.addr, silent.port, timeout=0.5, read_greeting=False)
    with pytest.raises(socket.timeout):
        c.read_reply()
    c.close()
    late = smtp_peer(greeting_delay=0.3)
    c = SMTPClient(late.addr, late.port, timeout=5)
    assert c.greeting.code == 220
    c.close()


def test_peer_drops_mid_data_and_on_command(smtp_peer):
    from world import SMTPClosed
    p = smtp_peer(drop_mid_data=100)
    c = SMTPClient(p.addr, p.port)
    c.ehlo()
    c.cmd("MAIL FROM:<a@x.test>")
    c.cmd("RCPT TO:<b@y.test>")
    assert c.cmd("DATA").code == 354
    with pytest.raises((SMTPClosed, OSError)):
        c.send(b"x" * 50 + b"\r\n" + b"y" * 200 + b"\r\n.\r\n")
        c.read_reply()
    c.close()
    assert p.messages == []
    q = smtp_peer(replies={"MAIL": "drop"}, data_reply="554 5.7.1 no")
    c = SMTPClient(q.addr, q.port)
    c.ehlo()
    c.send(b"MAIL FROM:<a@x.test>\r\n")
    assert c.closed(5)


def test_peer_5xx_data_reply_not_recorded_as_accepted(smtp_peer):
    p = smtp_peer(data_reply=["554 5.7.1 spam", "250 2.0.0 ok"])
    c = SMTPClient(p.addr, p.port)
    c.ehlo()
    assert c.sendmail("a@x.test", ["b@y.test"], make_message()).code == 554
    assert c.sendmail("a@x.test", ["b@y.test"], make_message()).code == 250
    c.quit()
    assert len(p.wait_messages(1)) == 1
    assert len(p.sessions[0].messages) == 2


# -- swaks and Postfix -------------------------------------------------------------

def test_swaks_to_peer(smtp_peer, swaks):
    p = smtp_peer()
    rc, out = swaks(p.addr, p.port, "rcpt@y.test", "from@x.test", body="hello swaks")
    assert rc == 0, out
    (m,) = p.wait_messages(1)
    assert m["mail_from"] == "from@x.test" and m["rcpts"] == ["rcpt@y.test"]
    assert b"hello swaks" in m["data"]
    p2 = smtp_peer(replies={"RCPT": "550 5.1.1 no such user"})
    rc, out = swaks(p2.addr, p2.port, "rcpt@y.test")
    assert rc != 0 and "550 5.1.1" in out


def test_postfix_relays_to_peer(smtp_peer, postfix):
    p = smtp_peer()
    pf = postfix(relayhost="[%s]:%d" % (p.addr, p.port))
    pf.sendmail("alice@postfix.test", ["bob@far.test"],
                make_message(sender="alice@postfix.test", to="bob@far.test",
                             subject="via sendmail", body="one\n"))
    c = SMTPClient(pf.addr, pf.port)
    c.ehlo()
    assert c.sendmail("carol@postfix.test", ["dave@far.test"],
                      make_message(subject="via smtp", body="two\n")).code == 250
    c.quit()
    msgs = p.wait_messages(2, timeout=60)
    got = {(m["mail_from"], tuple(m["rcpts"])) for m in msgs}
    assert got == {("alice@postfix.test", ("bob@far.test",)),
                   ("carol@postfix.test", ("dave@far.test",))}
    assert all(m["helo"] == "postfix.test" for m in msgs)
    assert any(b"Subject: via smtp" in m["data"] for m in msgs)
