"""SIGHUP: the configuration is read again; a broken file is refused and
the running configuration stays; sessions opened before keep working."""
import os
import re
import signal

from world import make_message, render_config
from world.roles import wait_for, wait_log


def _hup(d):
    # not d.signal(): that marks the exit as expected, and the daemon must
    # NOT exit on SIGHUP (teardown then checks it is still alive)
    os.kill(d.master_pid, signal.SIGHUP)


def _rcpt_code(d, rcpt):
    c = d.smtp()
    try:
        c.ehlo()
        r = c.cmd("MAIL FROM:<reload@x.test>")
        assert r.code == 250, r
        return c.cmd("RCPT TO:<%s>" % rcpt)
    finally:
        c.quit()


def _write_config(d, text):
    # atomically, as a careful operator (or config management) would: a
    # reader never sees a half-written file
    tmp = d.config_path.with_suffix(".new")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, d.config_path)


def _add_carol(d):
    d.sections['domain "localhost"']["users"] = "someone alice bob carol"
    _write_config(d, render_config(d.sections))


def _reload_to_carol(d):
    r = _rcpt_code(d, "carol@localhost")
    assert r.code == 550 and r.enh == "5.1.1", r
    mark = len(d.log_text())
    _add_carol(d)
    _hup(d)
    wait_for(lambda: _rcpt_code(d, "carol@localhost").code == 250, 10,
             "RCPT carol@localhost accepted after SIGHUP")
    return mark


def test_sighup_adds_user(todoku):
    d = todoku()
    _reload_to_carol(d)
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("reload@x.test", ["carol@localhost"], make_message(to="carol@localhost"))
    assert r.code == 250, r
    c.quit()
    d.wait_delivered("carol", 1)
    # the others are still there
    assert _rcpt_code(d, "someone@localhost").code == 250
    assert d.running()


def test_sighup_broken_config_keeps_running(todoku):
    d = todoku()
    _reload_to_carol(d)
    # let the good reload reach every role before breaking the file: a
    # message to carol is delivered (queue and local know her) and a run of
    # new sessions all accept her (every smtp-in knows her)
    c = d.smtp()
    c.ehlo()
    assert c.sendmail("reload@x.test", ["carol@localhost"],
                      make_message(to="carol@localhost", subject="first")).code == 250
    c.quit()
    d.wait_delivered("carol", 1)
    for _ in range(10):
        assert _rcpt_code(d, "carol@localhost").code == 250
    good = d.config_text()
    # an unknown key in [smtp], at a known line
    sections = {k: (dict(v) if v is not None else None) for k, v in d.sections.items()}
    sections["smtp"]["max-sise"] = "2M"
    text = render_config(sections)
    bad_line = text.splitlines().index("max-sise = 2M") + 1
    mark = len(d.log_text())
    _write_config(d, text)
    _hup(d)
    m = wait_log(d, r"^.*todoku\.conf:(\d+):.*max-sise.*$", start=mark)
    assert int(m.group(1)) == bad_line, m.group(0)
    assert str(d.config_path) in m.group(0) or "todoku.conf:%d" % bad_line in m.group(0)
    # still running, with the old configuration (carol still accepted)
    assert d.running(), d.log_text()[-3000:]
    r = _rcpt_code(d, "carol@localhost")
    assert r.code == 250, r
    r = _rcpt_code(d, "nobody@localhost")
    assert r.code == 550, r
    c = d.smtp()
    c.ehlo()
    assert c.sendmail("reload@x.test", ["carol@localhost"],
                      make_message(to="carol@localhost", subject="second")).code == 250
    c.quit()
    msgs = d.wait_delivered("carol", 2)
    assert any(b"Subject: second" in m for m in msgs), msgs
    assert d.running()
    # SIGTERM still exits 0 (with the broken file on disk)
    d.terminate()
    assert d.wait_exit(10) == 0, d.log_text()[-3000:]
    d.check_log()
    _write_config(d, good)


def test_session_opened_before_reload_keeps_working(todoku):
    d = todoku()
    old = d.smtp()
    old.ehlo()
    r = old.cmd("MAIL FROM:<before@x.test>")
    assert r.code == 250, r
    r = old.cmd("RCPT TO:<someone@localhost>")
    assert r.code == 250, r
    _reload_to_carol(d)
    # the old session is still open and completes its transaction
    r = old.cmd("RCPT TO:<alice@localhost>")
    assert r.code == 250, r
    r = old.cmd("DATA")
    assert r.code == 354, r
    r = old.data_bytes(b"Subject: before reload\r\n\r\nbody\r\n")
    assert r.code == 250, r
    # and a second transaction on it (carol may or may not be known there)
    r = old.cmd("MAIL FROM:<before2@x.test>")
    assert r.code == 250, r
    r = old.cmd("RCPT TO:<bob@localhost>")
    assert r.code == 250, r
    r = old.cmd("DATA")
    assert r.code == 354, r
    assert old.data_bytes(b"Subject: before reload 2\r\n\r\nbody\r\n").code == 250
    old.quit()
    msgs = d.wait_delivered("someone", 1) + d.wait_delivered("alice", 1) \
        + d.wait_delivered("bob", 1)
    assert any(b"Subject: before reload\r\n" in m or b"Subject: before reload\n" in m
               for m in msgs), msgs
    assert re.search(rb"Subject: before reload 2\r?\n", d.maildir("bob")[0])
