"""SMTP details of DESIGN §7 and issue 2 that need exact boundaries:
command lines up to 2048 octets (2049 refused 500 5.5.2, the session goes
on), VRFY answers 252 without telling whether the user exists, HELP
answers 214, and a client that keeps sending data past the bare-LF
discard limit gets 421 and is disconnected."""
import time

from world import make_message

LINE_MAX = 2048          # octets of a command line, CRLF not counted


def _noop(n):
    """A NOOP command line of exactly n octets (without its CRLF)."""
    return "NOOP " + "a" * (n - 5)


def test_command_line_of_2048_octets_accepted_2049_refused(daemon):
    c = daemon.smtp()
    c.ehlo()
    for n in (2000, LINE_MAX):
        r = c.cmd(_noop(n))
        assert r.code == 250 and r.enh == "2.0.0", (n, r)
    r = c.cmd(_noop(LINE_MAX + 1))
    assert r.code == 500 and r.enh == "5.5.2", r
    # the session goes on: a message still goes through
    r = c.cmd("RSET")
    assert r.code == 250, r
    r = c.sendmail("long@x.test", ["someone@localhost"],
                   make_message(subject="after long lines", to="someone@localhost"))
    assert r.code == 250, r
    c.quit()
    msgs = daemon.wait_delivered("someone", 1)
    assert b"Subject: after long lines" in msgs[0]


def test_command_line_at_the_limit_split_before_its_lf(daemon):
    """The 2048 octets and the CR arrive first, the LF later: still a
    command line of 2048 octets, not an over-long one."""
    c = daemon.smtp()
    c.ehlo()
    c.send((_noop(LINE_MAX) + "\r").encode())
    time.sleep(0.3)
    c.send(b"\n")
    r = c.read_reply()
    assert r.code == 250 and r.enh == "2.0.0", r
    assert c.cmd("NOOP").code == 250
    c.quit()


def test_vrfy_252_discloses_nothing_and_help_214(daemon):
    c = daemon.smtp()
    c.ehlo()
    known = c.cmd("VRFY someone")
    unknown = c.cmd("VRFY nobody-here")
    known_full = c.cmd("VRFY <someone@localhost>")
    unknown_full = c.cmd("VRFY <nobody-here@localhost>")
    for r in (known, unknown, known_full, unknown_full):
        assert r.code == 252 and r.enh == "2.5.2", r
    # the same reply for a user that exists and one that does not
    assert known.raw == unknown.raw == known_full.raw == unknown_full.raw
    for r in (known, known_full):
        assert "someone" not in r.text, r
    h = c.cmd("HELP")
    assert h.code == 214, h
    assert h.enh is not None and h.enh.startswith("2."), h
    # the session is unaffected
    assert c.cmd("NOOP").code == 250
    c.quit()


def test_discard_past_the_limit_gets_421_and_close(todoku):
    """After a bare LF in DATA the rest is discarded until CRLF.CRLF; past
    2 * max-message-size + 1 MiB of discarded data the server gives up
    with 421 and closes (src/todoku/smtp_in.c)."""
    size = 64 * 1024
    d = todoku(overrides={"smtp": {"max-message-size": str(size)}})
    limit = 2 * size + 1024 * 1024
    c = d.smtp(timeout=20)
    c.ehlo()
    assert c.cmd("MAIL FROM:<flood@x.test>").code == 250
    assert c.cmd("RCPT TO:<someone@localhost>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: flood\r\n\r\nbare LF here\nthen more\r\n")
    chunk = b"x" * 1000 + b"\r\n"
    sent = 0
    try:
        while sent < limit + 256 * 1024:
            c.send(chunk * 64)
            sent += len(chunk) * 64
    except OSError:
        pass            # the server may close while we are still sending
    r = c.read_reply(timeout=20)
    assert r.code == 421, r
    assert r.enh is not None and r.enh.startswith("4."), r
    assert c.closed(10)
    assert d.maildir("someone") == []
    # the daemon is fine: another client is served
    c2 = d.smtp()
    assert c2.ehlo().code == 250
    c2.quit()
