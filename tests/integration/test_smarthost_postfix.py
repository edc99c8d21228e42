"""Smarthost route with SMTP AUTH over STARTTLS, relaying through a real
Postfix (issue 3): Postfix relays only for SASL-authenticated clients
(Cyrus SASL, private sasldb), offers AUTH only after STARTTLS, and hands
the mail on to a scripted peer. todoku authenticates after STARTTLS and
the peer gets the message; a wrong password keeps the mail (the reply is
quoted in the attempt record); a Postfix without STARTTLS, even one that
offers AUTH in plaintext, never sees AUTH or the envelope (deferred)."""
import re
import time

from world import TestCA, make_message, queue_id
from world.roles import wait_for

SENDER = "someone@localhost"
RCPT = "friend@example.org"


def _send(d, rcpts=(RCPT,)):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, list(rcpts), make_message(subject="via postfix", sender=SENDER,
                                                     to=rcpts[0]))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)

def _route(pf, tmp_world, password, **extra):
    pw = tmp_world / "relay.password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    conf = {"via": "smtp://[%s]:%d" % (pf.addr, pf.port), "tls": "must",
            "auth-user": "todoku", "auth-password-file": str(pw)}
    conf.update(extra)
    return {'route "*"': conf, "queue": {"retry": "1h"}}


def _postfix_commands(pf):
    """The commands Postfix's smtpd logged under debug_peer_list."""
    return re.findall(r"smtpd\[\d+\]: < \S+: (\S+)", pf.log_text())


DEBUG_PEERS = {"debug_peer_list": "127.0.0.0/8"}


def test_auth_over_starttls_through_postfix(todoku, postfix, smtp_peer, tmp_world):
    ca = TestCA(tmp_world / "pki")
    final = smtp_peer(port=2525)
    pf = postfix(relayhost="[%s]:2525" % final.addr,
                 tls=lambda addr: ca.issue("relay.postfix.test", ip=addr),
                 sasl={"todoku": "s3cret-pass"})
    d = todoku(overrides=_route(pf, tmp_world, "s3cret-pass",
                                verify="ca", ca=str(ca.cert)))
    _send(d)
    msgs = final.wait_messages(1, timeout=40)
    assert msgs[0]["rcpts"] == [RCPT] and msgs[0]["mail_from"] == SENDER
    assert b"Subject: via postfix" in msgs[0]["data"]
    log = wait_for(lambda: re.search(r"sasl_method=PLAIN, sasl_username=todoku(@\S+)?",
                                     pf.log_text()), 10, "sasl_username in Postfix log")
    assert log
    # TLS before AUTH: Postfix logged the TLS session from todoku
    assert re.search(r"Anonymous TLS connection established from|"
                     r"TLS connection established from", pf.log_text()), pf.log_text()
    d.wait_queue_settled(20)
    assert re.search(r"relay=smtp %s \[%s\]:25 after end of data, status=delivered"
                     % (re.escape(pf.addr), re.escape(pf.addr)), d.log_text())
    assert "> AUTH PLAIN <redacted>" in d.log_text() or "AUTH PLAIN" in d.log_text()
    assert "s3cret-pass" not in d.log_text()


def test_wrong_password_keeps_the_mail_and_quotes_the_reply(todoku, postfix, smtp_peer,
                                                            tmp_world):
    ca = TestCA(tmp_world / "pki")
    final = smtp_peer(port=2525)
    pf = postfix(relayhost="[%s]:2525" % final.addr,
                 tls=ca.issue("relay.postfix.test"), sasl={"todoku": "right-one"})
    d = todoku(overrides=_route(pf, tmp_world, "wrong-one"))
    qid = _send(d)
    rc = d.wait_history(qid, RCPT, timeout=40.0)
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert h["status"].startswith("4."), h
    assert re.search(r"535 5\.7\.8 Error: authentication failed", h["reply"]), h
    wait_for(lambda: "authentication failed" in pf.log_text(), 10, "Postfix logged the failure")
    assert not re.search(r"sasl_method=\w+, sasl_username=", pf.log_text())
    assert final.messages == [] and final.connections == 0
    auth = [t for t in h["record"]["dialogue"]
            if (t["command"] or "").startswith("AUTH")]
    assert [t["command"] for t in auth] == ["AUTH PLAIN <redacted>"], h
    assert auth[0]["reply"].startswith("535 5.7.8"), h
    assert h["record"]["addresses"][0]["outcome"] == "auth-refused", h
    assert "wrong-one" not in d.log_text()
    # one attempt (retry = 1h) is one login: a refused login is not
    # repeated at other addresses or by sending the job back
    time.sleep(2)
    fails = re.findall(r"authentication failed", pf.log_text())
    assert len(fails) == 1, pf.log_text()[-3000:]
    assert "refused our login" in h["reply"], h


def test_postfix_without_starttls_never_gets_auth_in_clear(todoku, postfix, smtp_peer,
                                                           tmp_world):
    """This Postfix offers AUTH in plaintext (smtpd_tls_auth_only = no) but
    no STARTTLS: todoku must not authenticate, nor send the envelope."""
    final = smtp_peer(port=2525)
    pf = postfix(relayhost="[%s]:2525" % final.addr, sasl={"todoku": "s3cret-pass"},
                 extra=dict(DEBUG_PEERS, smtpd_tls_auth_only="no"))
    d = todoku(overrides=_route(pf, tmp_world, "s3cret-pass"))
    qid = _send(d)
    rc = d.wait_history(qid, RCPT, timeout=40.0)
    assert rc["state"] == "deferred", rc
    addrs = rc["history"][0]["record"]["addresses"]
    assert "STARTTLS" in rc["history"][0]["reply"] + \
        " ".join(a["detail"] or "" for a in addrs), rc
    cmds = wait_for(lambda: _postfix_commands(pf), 10, "Postfix logged the client's commands")
    assert "EHLO" in [c.upper() for c in cmds], cmds
    assert re.search(r"> \S+: 250-AUTH PLAIN LOGIN", pf.log_text()), "AUTH was offered"
    for c in cmds:
        assert c.upper() not in ("AUTH", "MAIL", "RCPT", "DATA"), cmds
    assert "sasl_username=" not in pf.log_text()   # not even a failed AUTH
    assert final.messages == []
