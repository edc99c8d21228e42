"""SIGHUP and mail that is already queued or in flight (DESIGN §7 "What the
tests must prove": SIGHUP validates the new file fully and keeps the old one
on error; sessions keep the config they started with; queued mail re-routes
at its next attempt).

- A message deferred by relay A, the route changed to relay B and SIGHUP'd:
  its next attempt goes to B (two attempts: A deferred, B delivered).
- A reload whose route names a password file that does not exist is
  refused with file:line, and queued mail keeps the old route.
- An attempt that was routed before the reload and is still waiting for
  DNS finishes with the route it started with (the queue keeps its own
  copy: the old configuration is freed by the reload).
- An inbound SMTP session opened before SIGHUP keeps its max-message-size
  (EHLO SIZE, MAIL SIZE=, and the DATA limit); a session opened after it
  has the new one.
"""
import json
import os
import re
import signal

from world import make_message, queue_id, render_config
from world.roles import wait_for, wait_log

SENDER = "someone@localhost"


def _hup(d):
    # not d.signal(): the daemon must not exit on SIGHUP
    os.kill(d.master_pid, signal.SIGHUP)


def _write_config(d, sections):
    d.sections = sections
    tmp = d.config_path.with_suffix(".new")
    tmp.write_text(render_config(sections))
    os.chmod(tmp, 0o644)
    os.replace(tmp, d.config_path)


def _reload(d, sections, what=r"todoku/queue\[\d+\]: configuration reloaded"):
    """Write the file, SIGHUP, wait until the queue role has it."""
    mark = len(d.log_text())
    _write_config(d, sections)
    _hup(d)
    wait_log(d, what, timeout=10, start=mark)
    return mark


def _sections(d, **changes):
    out = {k: (dict(v) if v is not None else None) for k, v in d.sections.items()}
    for k, v in changes.items():
        out[k] = v
    return out


def _send(d, rcpt, subject="reload"):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject=subject, sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _show(d, qid):
    r = d.cli_run("queue", "show", qid, "--json")
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def _history(d, qid, n):
    def probe():
        s = _show(d, qid)
        if s is None:
            return None
        h = s["recipients"][0]["history"] or []
        return s["recipients"][0] if len(h) >= n else None
    return wait_for(probe, 30, "%d attempt(s) of %s" % (n, qid))


ROUTE = 'route "example.org"'


def test_sighup_reroutes_deferred_mail(todoku, smtp_peer):
    a = smtp_peer(port=2525, replies={"RCPT": "451 4.3.0 relay A is not taking it"})
    b = smtp_peer(port=2525)
    d = todoku(overrides={ROUTE: {"via": "smtp://[%s]:2525" % a.addr},
                          "queue": {"retry": "4s"}})
    qid = _send(d, "friend@example.org")
    rc = _history(d, qid, 1)
    assert rc["state"] == "deferred" and "relay A" in rc["history"][0]["reply"], rc
    _reload(d, _sections(d, **{ROUTE: {"via": "smtp://[%s]:2525" % b.addr}}))
    msgs = b.wait_messages(1, timeout=20)
    assert msgs[0]["rcpts"] == ["friend@example.org"]
    wait_for(lambda: _show(d, qid) is None, 10, "%s delivered and removed" % qid)
    # exactly two attempts: A deferred it, the next one (after the reload)
    # went to B
    tried = re.findall(r"%s: to=<friend@example\.org>, relay=smtp (\S+) .*status=(\w+)"
                       % qid, d.log_text())
    assert tried == [(a.addr, "deferred"), (b.addr, "delivered")], tried
    # (A took no recipient: an empty DATA is what RFC 2920 makes of a
    # pipelined transaction whose every RCPT failed)
    assert [m for m in a.messages if m["rcpts"]] == [] and len(b.messages) == 1


def test_sighup_with_a_missing_password_file_keeps_the_old_route(todoku, smtp_peer,
                                                                   tmp_world):
    a = smtp_peer(port=2525, replies={"RCPT": "451 4.3.0 relay A is not taking it"})
    b = smtp_peer(port=2525)
    d = todoku(overrides={ROUTE: {"via": "smtp://[%s]:2525" % a.addr},
                          "queue": {"retry": "3s"}})
    qid = _send(d, "friend@example.org")
    _history(d, qid, 1)
    bad = _sections(d, **{ROUTE: {"via": "smtp://[%s]:2525" % b.addr, "tls": "must",
                                  "auth-user": "u",
                                  "auth-password-file": str(tmp_world / "missing.secret")}})
    mark = len(d.log_text())
    _write_config(d, bad)
    _hup(d)
    # the file named by the route is read at load: refused, old one kept
    wait_log(d, r"reload refused, keeping the running configuration: "
             r"\S*todoku\.conf:\d+: \[route \"example\.org\"\] "
             r"auth-password-file \S*missing\.secret: cannot open", start=mark)
    # the next attempts still go to A, none to B
    def tries():
        return re.findall(r"%s: to=<friend@example\.org>, relay=smtp (\S+) "
                          % qid, d.log_text())
    wait_for(lambda: len(tries()) >= 3, 30, "three attempts")
    assert set(tries()) == {a.addr}, tries()
    assert b.connections == 0
    assert d.running()


def test_attempt_routed_before_reload_keeps_its_route(todoku, faulty_dns, smtp_peer):
    """The route's relay is a name whose A query hangs; the reload (which
    frees the old configuration) comes while the attempt waits for it."""
    old = smtp_peer(port=2525)
    new = smtp_peer(port=2525)
    faulty_dns.rule("relay.old.test", "A", "timeout")
    faulty_dns.rule("relay.old.test", "AAAA", "timeout")
    d = todoku(dns_servers=[faulty_dns.addr], overrides={
        ROUTE: {"via": "smtp://relay.old.test:2525", "helo": "old-route.example"},
        "queue": {"retry": "1h"}})
    qid = _send(d, "friend@example.org")
    wait_for(lambda: any(q[1] == "relay.old.test." for q in list(faulty_dns.queries)),
             10, "the relay's address query")
    _reload(d, _sections(d, **{ROUTE: {"via": "smtp://[%s]:2525" % new.addr,
                                       "helo": "new-route.example"}}))
    # now the name resolves: libunbound's retransmission gets the answer
    faulty_dns.rule("relay.old.test", "A", "answer",
                    ["relay.old.test. 300 A %s" % old.addr])
    faulty_dns.rule("relay.old.test", "AAAA", "nodata")
    msgs = old.wait_messages(1, timeout=40)
    assert msgs[0]["rcpts"] == ["friend@example.org"]
    # the attempt kept everything of its route, HELO included
    assert msgs[0]["helo"] == "old-route.example", msgs[0]
    wait_for(lambda: _show(d, qid) is None, 15, "%s delivered" % qid)
    assert new.connections == 0
    # and the next message takes the new route
    _send(d, "other@example.org", subject="after")
    msgs = new.wait_messages(1, timeout=20)
    assert msgs[0]["helo"] == "new-route.example"
    assert d.running()


def _size(ehlo_reply):
    for line in ehlo_reply.lines:
        m = re.match(r"SIZE (\d+)$", line)
        if m:
            return int(m.group(1))
    return None


def test_inbound_session_keeps_the_limits_it_started_with(todoku):
    # 1M before the reload, 2M after
    d = todoku(overrides={"smtp": {"max-message-size": "1M"}})
    before = d.smtp()
    assert _size(before.ehlo()) == 1048576
    _reload(d, _sections(d, smtp=dict(d.sections["smtp"], **{"max-message-size": "2M"})),
            what=r"configuration reloaded; new sessions use it")

    # every new session has the new limit (each smtp-in process reloaded)
    def all_new():
        for _ in range(6):
            c = d.smtp()
            try:
                if _size(c.ehlo()) != 2097152:
                    return False
            finally:
                c.quit()
        return True
    wait_for(all_new, 10, "new sessions with SIZE 2097152")
    after = d.smtp()
    assert _size(after.ehlo()) == 2097152
    # the old session: still 1M, in EHLO, for MAIL SIZE= and for DATA
    assert _size(before.ehlo()) == 1048576
    r = before.cmd("MAIL FROM:<%s> SIZE=1500000" % SENDER)
    assert r.code == 552, r
    body = ("x" * 76 + "\r\n") * 16000                   # about 1.25 MB
    msg = make_message(subject="big", sender=SENDER, to="someone@localhost", body=body)
    r = before.sendmail(SENDER, ["someone@localhost"], msg)
    assert r.code == 552, r
    before.quit()
    # the new session takes the same message
    r = after.cmd("MAIL FROM:<%s> SIZE=1500000" % SENDER)
    assert r.code == 250, r
    after.cmd("RSET")
    r = after.sendmail(SENDER, ["someone@localhost"], msg)
    assert r.code == 250, r
    after.quit()
    got = d.wait_delivered("someone", 1)
    assert len(got) == 1 and len(got[0]) > 1200000
