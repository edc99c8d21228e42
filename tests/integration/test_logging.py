"""Logging: the SMTP dialogue at debug level, one line per event keyed by
the queue id at every level, control characters escaped."""
import re

from world import make_message, queue_id
from world.roles import wait_log


def _one_message(d, sender, rcpt="someone@localhost", subject="log test"):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, [rcpt], make_message(subject=subject, sender=sender, to=rcpt))
    assert r.code == 250, r
    qid = queue_id(r.text)
    assert qid, r
    c.quit()
    d.wait_delivered(rcpt.split("@")[0], 1)
    return qid


def test_debug_logs_dialogue_and_events(todoku):
    d = todoku()  # fixture default: log-level = debug
    sender = "dialogue.sender@x.test"
    qid = _one_message(d, sender)
    # per-event lines, keyed by the queue id
    wait_log(d, r"%s: to=<someone@localhost>, relay=\S.*, status=delivered" % re.escape(qid))
    log = d.log_text()
    assert re.search(r"%s: from=<%s>" % (re.escape(qid), re.escape(sender)), log), log[-3000:]
    # the dialogue in both directions
    assert re.search(r"< MAIL FROM:<%s>" % re.escape(sender), log), log[-3000:]
    assert re.search(r"> 250 2\.1\.0", log), log[-3000:]
    assert re.search(r"< RCPT TO:<someone@localhost>", log), log[-3000:]
    assert re.search(r"> 250 2\.1\.5", log), log[-3000:]
    assert re.search(r"> 250 2\.0\.0 .*%s" % re.escape(qid), log), log[-3000:]


def test_info_logs_events_but_no_dialogue(todoku):
    d = todoku(overrides={"server": {"log-level": "info"}})
    sender = "info.sender@x.test"
    qid = _one_message(d, sender)
    wait_log(d, r"%s: to=<someone@localhost>, relay=\S.*, status=delivered" % re.escape(qid))
    log = d.log_text()
    assert re.search(r"%s: from=<%s>" % (re.escape(qid), re.escape(sender)), log), log[-3000:]
    assert "MAIL FROM:<%s>" % sender not in log, log[-3000:]
    assert not re.search(r"< (EHLO|MAIL|RCPT|DATA|QUIT)\b", log), log[-3000:]
    assert not re.search(r"> 250 2\.1\.[05]", log), log[-3000:]


def test_control_characters_are_escaped(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    r = c.cmd(b"NOOP \x1b[31mred\x1b[0m\x07")
    assert r.code == 250, r       # NOOP takes (and ignores) a parameter
    r = c.cmd("MAIL FROM:<esc.marker@x.test>")
    assert r.code == 250, r
    c.quit()
    wait_log(d, r"< MAIL FROM:<esc\.marker@x\.test>")
    raw = d.log_path.read_bytes()
    assert b"\x1b" not in raw, "raw ESC byte in the log"
    assert b"\x07" not in raw, "raw BEL byte in the log"
    text = raw.decode(errors="replace")
    assert re.search(r"< NOOP \\x1b\[31mred\\x1b\[0m\\x07", text), text[-3000:]
