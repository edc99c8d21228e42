"""[route] via = smtps:// (implicit TLS, issue 3) and the HELO name per
route (issue 3: "Source address and HELO name configurable globally and per
route").

smtps: the relay speaks TLS from its first byte (world.SMTPPeer with
implicit_tls): todoku handshakes before it reads the greeting, never sends
STARTTLS, and the attempt record says TLS; with verify = ca the relay's
certificate must name the via address. A relay that answers in plaintext on
an smtps route gets a TLS ClientHello and nothing else: the mail is
deferred, never sent in clear, and no plaintext session is tried.

HELO: [route] helo is what that relay sees in EHLO; routes without one use
[delivery] helo."""

from world import TestCA, alloc_addr, make_message, queue_id, self_signed
from world.roles import wait_for

SENDER = "someone@localhost"


def _send(d, rcpts, subject="smtps"):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, rcpts, make_message(subject=subject, sender=SENDER,
                                               to=rcpts[0]))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)
def _keep(session, line):
    """keep@ stays deferred, so the message and its record stay queued."""
    if line.upper().startswith("RCPT TO:<KEEP@"):
        return "450 4.2.0 keep me queued"
    return None


def _verbs(peer):
    return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in peer.all_commands()]


def test_smtps_route_delivers_over_implicit_tls(todoku, smtp_peer, tmp_world):
    relay = smtp_peer(port=465, tls=self_signed(tmp_world / "pki", "relay.test"),
                      implicit_tls=True, on_command=_keep)
    d = todoku(overrides={'route "example.org"': {"via": "smtps://[%s]" % relay.addr},
                          "queue": {"retry": "1h"}})
    qid = _send(d, ["friend@example.org", "keep@example.org"])
    rc = d.wait_history(qid, "friend@example.org")
    assert rc["state"] == "delivered", rc
    msgs = [m for m in relay.messages if m["rcpts"] == ["friend@example.org"]]
    assert len(msgs) == 1, relay.transcript()
    assert b"Subject: smtps" in msgs[0]["data"]
    s = msgs[0]["session"]
    # TLS came first: the handshake is the session's first event, before
    # EHLO, and STARTTLS was neither offered nor sent
    assert s.tls and s.commands[0].startswith("<TLS TLSv1."), s.commands
    assert s.commands[1].upper().startswith("EHLO"), s.commands
    assert "STARTTLS" not in _verbs(relay), relay.transcript()
    assert s.sni is None          # [IP]: no SNI (RFC 6066)
    # the default port of smtps:// is 465, and the record says TLS
    h = rc["history"][0]
    assert "[%s]:465" % relay.addr in h["where"], h
    tls = h["record"]["addresses"][0]["tls"]
    assert tls["version"].startswith("TLSv1."), h
    assert (tls["result"], tls["policy"], tls["verified"], tls["verify"]) == \
        ("ok", "smtps", False, "none"), h


def test_smtps_route_verify_ca(todoku, smtp_peer, tmp_world):
    ca = TestCA(tmp_world / "pki")
    addr = alloc_addr(ports=(4650,))
    relay = smtp_peer(port=4650, addr=addr, tls=ca.issue("relay.test", ip=addr),
                      implicit_tls=True, on_command=_keep)
    d = todoku(overrides={'route "example.org"': {
        "via": "smtps://[%s]:4650" % relay.addr, "verify": "ca", "ca": str(ca.cert)},
        "queue": {"retry": "1h"}})
    qid = _send(d, ["friend@example.org", "keep@example.org"])
    rc = d.wait_history(qid, "friend@example.org")
    assert rc["state"] == "delivered", rc
    tls = rc["history"][0]["record"]["addresses"][0]["tls"]
    assert (tls["result"], tls["verified"], tls["verify"], tls["name"]) == \
        ("ok", True, "ca", relay.addr), rc
    assert [m["rcpts"] for m in relay.messages] == [["friend@example.org"]]


def test_smtps_route_verify_ca_wrong_certificate_defers(todoku, smtp_peer, tmp_world):
    ca = TestCA(tmp_world / "pki")
    relay = smtp_peer(port=465, tls=ca.issue("someone-else.test"), implicit_tls=True)
    d = todoku(overrides={'route "example.org"': {
        "via": "smtps://[%s]" % relay.addr, "verify": "ca", "ca": str(ca.cert)},
        "queue": {"retry": "1h"}})
    qid = _send(d, ["friend@example.org"])
    rc = d.wait_history(qid, "friend@example.org")
    h = rc["history"][0]
    assert rc["state"] == "deferred" and h["status"] == "4.7.5", rc
    assert "certificate verification failed (verify = ca, name %s)" % relay.addr \
        in h["reply"], h
    assert "EHLO" not in _verbs(relay) and relay.messages == [], relay.transcript()


def test_smtps_route_to_plaintext_relay_never_falls_back(todoku, smtp_peer):
    # an ordinary SMTP server on the smtps port: it greets in plaintext
    relay = smtp_peer(port=465)
    d = todoku(overrides={'route "example.org"': {"via": "smtps://[%s]" % relay.addr},
                          "queue": {"retry": "1h"}})
    qid = _send(d, ["friend@example.org"])
    rc = d.wait_history(qid, "friend@example.org")
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert h["status"].startswith("4."), h
    assert "TLS" in h["reply"] + " ".join(
        a["outcome"] + " " + (a["detail"] or "") for a in h["record"]["addresses"]), h
    # what the relay read: TLS records only, never an SMTP command (no
    # EHLO in clear, no envelope, no second plaintext connection)
    verbs = _verbs(relay)
    for v in ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "STARTTLS", "QUIT"):
        assert v not in verbs, relay.transcript()
    assert relay.messages == []
    assert d.maildir("someone") == [], "no bounce"


def test_helo_per_route_and_global(todoku, smtp_peer):
    # one relay behind two routes and a third domain: what each EHLO says
    relay = smtp_peer(port=2525)
    other = smtp_peer(port=2525)
    d = todoku(overrides={
        "delivery": {"helo": "global-helo.example"},
        'route "a.example"': {"via": "smtp://[%s]:2525" % relay.addr,
                              "helo": "route-a.example"},
        'route "b.example"': {"via": "smtp://[%s]:2525" % relay.addr},
        'route "c.example"': {"via": "smtp://[%s]:2525" % other.addr,
                              "helo": "route-c.example"},
    })
    _send(d, ["x@a.example"], subject="a")
    _send(d, ["y@b.example"], subject="b")
    _send(d, ["z@c.example"], subject="c")
    wait_for(lambda: len(relay.messages) >= 2 and other.messages, 20,
             "three messages at the relays")
    helo_of = {tuple(m["rcpts"]): m["helo"] for m in relay.messages + other.messages}
    assert helo_of == {("x@a.example",): "route-a.example",
                       ("y@b.example",): "global-helo.example",
                       ("z@c.example",): "route-c.example"}, helo_of
