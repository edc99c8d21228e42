"""An MX host that is ourselves by address (RFC 5321 §5.1: the client
recognises itself "by name or address"; DESIGN §7's rule): an MX host
with another name whose A record is one of todoku's own listening
addresses (or, for a wildcard listener, an interface address) counts as
us: every MX of its preference or worse is dropped, none left bounces
5.4.6 (RFC 3463: routing loop), and the message never comes back to
todoku's own smtp-in. A more preferred MX that is not us is still used.

todoku listens on port 25 of its own 127.x address here (or on a
wildcard listener whose port is [delivery] port), so without the check
the message would really be delivered back to itself."""
import re
import socket

from world import make_message, queue_id
from world.roles import wait_for

SENDER = "someone@localhost"


def _send(d, rcpt):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject="loop test",
                                                sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _bounce(d):
    msgs = d.wait_delivered("someone", 1, timeout=30)
    d.wait_queue_settled()
    assert len(d.maildir("someone")) == 1
    return re.sub(r"\s+", " ", msgs[0].decode("utf-8", "replace"))


def _wait_deferred(d, qid):
    def deferred():
        for m in d.cli("queue", "list", "--json"):
            if m["id"] == qid:
                for rc in m["recipients"]:
                    if rc["state"] == "deferred":
                        return rc
        return None
    return wait_for(deferred, 30, "the recipient of %s deferred" % qid)


def _sessions(d):
    """Transactions todoku's smtp-in saw (ours: one per _send; the start
    probe of the test world connects without one)."""
    return len(re.findall(r"< MAIL FROM:", d.log_text()))


def test_mx_with_our_address_bounces_5_4_6(todoku, dns):
    d = todoku(port=25, start=False, dns_servers=[dns.addr])
    dns.zone("other.test", ["mx A %s" % d.addr])
    dns.zone("loop.test", ["@ MX 10 mx.other.test."])
    d.start()
    _send(d, "user@loop.test")
    text = _bounce(d)
    assert re.search(r"Status: 5\.4\.6", text), text[:3000]
    assert "mx.other.test" in text and d.addr in text, text[:3000]
    assert "mail loop" in text, text[:3000]
    # our own submission only: nothing came back in through smtp-in
    assert _sessions(d) == 1, d.log_text()[-4000:]
    assert "Received: from mx.test" not in text.split("Status:")[0], text[:2000]


def test_more_preferred_mx_used_ours_by_address_skipped(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25)
    d = todoku(port=25, start=False, dns_servers=[dns.addr])
    dns.zone("other.test", ["mx A %s" % d.addr, "peer A %s" % peer.addr])
    # our address at 10 and at 20: only the MX at 5 is more preferred
    dns.zone("pref.test", ["@ MX 5 peer.other.test.",
                           "@ MX 10 mx.other.test.",
                           "@ MX 20 mx.other.test."])
    d.start()
    _send(d, "user@pref.test")
    wait_for(lambda: peer.messages and any("user@pref.test" in m["rcpts"]
                                           for m in peer.messages),
             30, "delivery to the more preferred MX")
    d.wait_queue_settled()
    assert _sessions(d) == 1, d.log_text()[-4000:]
    log = d.log_text()
    assert re.search(r"MX host mx\.other\.test \(preference 10\) has address "
                     r"%s, one of this host's own addresses" % re.escape(d.addr),
                     log), log[-4000:]
    assert d.maildir("someone") == []


def test_more_preferred_mx_failing_defers_never_loops(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, replies={"RCPT": "451 4.3.0 try later"})
    d = todoku(port=25, start=False, dns_servers=[dns.addr],
               overrides={"queue": {"retry": "1h"}})
    dns.zone("other.test", ["mx A %s" % d.addr, "peer A %s" % peer.addr])
    dns.zone("defer.test", ["@ MX 5 peer.other.test.",
                            "@ MX 10 mx.other.test."])
    d.start()
    qid = _send(d, "user@defer.test")
    _wait_deferred(d, qid)
    assert _sessions(d) == 1, d.log_text()[-4000:]
    assert d.maildir("someone") == []


def _free_port():
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_wildcard_listener_interface_address_is_ours(todoku, dns):
    """A listener on 0.0.0.0: every interface address is ours; 127.0.0.1
    (lo) is one of them, though no listener names it."""
    port = _free_port()
    d = todoku(start=False, dns_servers=[dns.addr],
               overrides={'listen "wild"': {"address": "0.0.0.0:%d" % port},
                          "delivery": {"port": str(port)}})
    dns.zone("wild.test", ["@ MX 10 mx.wild.test.", "mx A 127.0.0.1"])
    d.start()
    _send(d, "user@wild.test")
    text = _bounce(d)
    assert re.search(r"Status: 5\.4\.6", text), text[:3000]
    assert "mx.wild.test" in text and "127.0.0.1" in text, text[:3000]
    assert _sessions(d) == 1, d.log_text()[-4000:]


def test_smarthost_at_our_address_is_not_a_loop(todoku, smtp_peer):
    """A [route] via one of our own addresses on another port (a content
    filter on this host) is used: only MX hosts are checked by address,
    as Postfix does for an explicit next hop."""
    d = todoku(start=False)
    flt = smtp_peer(addr=d.addr, port=10025)
    d.sections['route "*"'] = {"via": "smtp://[%s]:%d" % (d.addr, flt.port)}
    d.write_config()
    d.start()
    _send(d, "user@far.test")
    wait_for(lambda: any("user@far.test" in m["rcpts"] for m in flt.messages),
             30, "delivery to the content filter")
    d.wait_queue_settled()
