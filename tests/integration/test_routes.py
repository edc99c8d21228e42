"""[route] smarthosts (DESIGN §1 story 2: route external mail through the
ISP's relay): no MX lookup, precedence exact > .parent > *, TLS policy per
route, a relay that does not resolve keeps the mail."""
import time

from world import make_message, queue_id


def _send(d, rcpt):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("someone@localhost", [rcpt],
                   make_message(subject="via relay", sender="someone@localhost",
                                to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _accepted(peer):
    return [m for m in peer.messages if m["rcpts"]]


def _wait(fn, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_star_route_sends_everything_to_the_smarthost(todoku, smtp_peer):
    relay = smtp_peer(port=2525)
    # the default world DNS answers NXDOMAIN to everything: without the
    # route this mail would bounce 5.1.2
    d = todoku(overrides={'route "*"': {"via": "smtp://[%s]:2525" % relay.addr}})
    _send(d, "friend@example.org")
    msgs = _wait(lambda: _accepted(relay))
    assert msgs[0]["rcpts"] == ["friend@example.org"]
    assert msgs[0]["mail_from"] == "someone@localhost"
    d.wait_queue_settled(10)
    assert d.maildir("someone") == [], "no bounce"


def test_route_precedence_exact_then_parent_then_star(todoku, smtp_peer):
    exact = smtp_peer(port=2525)
    parent = smtp_peer(port=2525)
    star = smtp_peer(port=2525)
    d = todoku(overrides={
        'route "*"': {"via": "smtp://[%s]:2525" % star.addr},
        'route ".example.net"': {"via": "smtp://[%s]:2525" % parent.addr},
        'route "mail.example.net"': {"via": "smtp://[%s]:2525" % exact.addr},
    })
    _send(d, "a@mail.example.net")
    _send(d, "b@deep.sub.example.net")
    _send(d, "c@example.com")
    _wait(lambda: _accepted(exact) and _accepted(parent) and _accepted(star))
    assert [m["rcpts"] for m in _accepted(exact)] == [["a@mail.example.net"]]
    assert [m["rcpts"] for m in _accepted(parent)] == [["b@deep.sub.example.net"]]
    assert [m["rcpts"] for m in _accepted(star)] == [["c@example.com"]]


def test_route_tls_must_never_sends_in_clear(todoku, smtp_peer):
    relay = smtp_peer(port=2525)  # offers no STARTTLS
    d = todoku(overrides={'route "example.org"': {
        "via": "smtp://[%s]:2525" % relay.addr, "tls": "must"}})
    qid = _send(d, "friend@example.org")

    def deferred():
        for m in d.cli("queue", "list", "--json"):
            if m["id"] == qid and m["recipients"][0]["state"] == "deferred":
                return m
        return None
    m = _wait(deferred)
    assert "TLS" in m["recipients"][0]["last_reply"]
    for s in relay.sessions:
        assert not any(c.upper().startswith(("MAIL", "RCPT", "DATA"))
                       for c in s.commands), s.commands


def test_unresolvable_smarthost_defers_not_bounces(todoku):
    d = todoku(overrides={'route "*"': {"via": "smtp://relay.nowhere.test:2525"}})
    qid = _send(d, "friend@example.org")

    def deferred():
        for m in d.cli("queue", "list", "--json"):
            if m["id"] == qid and m["recipients"][0]["state"] == "deferred":
                return m
        return None
    m = _wait(deferred)
    assert "smarthost" in m["recipients"][0]["last_reply"]
    assert d.maildir("someone") == [], "no bounce for our own misconfiguration"


def test_route_config_errors(todoku, tmp_world):
    import subprocess
    d = todoku(start=False)
    d.write_config()
    base = d.config_path.read_text()
    bad = tmp_world / "bad.conf"
    for extra, needle in [
        ('[route "*"]\nvia = ftp://relay.example:21\n', b"via"),
        ('[route "*"]\nvia = smtp://relay.example:587\nauth-user = u\n'
         'auth-password-file = /nonexistent\n', b"AUTH is only sent over TLS"),
        ('[route "*"]\ntls = must\n', b"has no via"),
        ('[route "*"]\nvia = smtp://a.example\n[route "*"]\n'
         'via = smtp://b.example\n', b"duplicate section"),
    ]:
        bad.write_text(base + "\n" + extra)
        r = subprocess.run([d.bin, "config", "check", "-c", str(bad)],
                           capture_output=True)
        assert r.returncode == 2, (extra, r.stderr)
        assert needle in r.stderr, (extra, r.stderr)
        assert b"bad.conf:" in r.stderr, r.stderr


def test_source_address_global_and_per_route(todoku, smtp_peer):
    from world.net import alloc_addr
    src_global = alloc_addr(ports=())
    src_route = alloc_addr(ports=())
    a = smtp_peer(port=2525)
    b = smtp_peer(port=2525)
    d = todoku(overrides={
        "delivery": {"source-ipv4": src_global},
        'route "a.example"': {"via": "smtp://[%s]:2525" % a.addr},
        'route "b.example"': {"via": "smtp://[%s]:2525" % b.addr,
                              "source-ipv4": src_route},
    })
    _send(d, "x@a.example")
    _send(d, "y@b.example")
    _wait(lambda: _accepted(a) and _accepted(b))
    assert a.sessions[0].peer_addr[0] == src_global
    assert b.sessions[0].peer_addr[0] == src_route
