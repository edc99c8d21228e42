"""SIGTERM during a session: 421 4.3.2 to the client, exit code 0."""
import socket

from world import SMTPClosed


def test_sigterm_mid_session(daemon):
    c = daemon.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@x.test>").code == 250
    assert c.cmd("RCPT TO:<someone@localhost>").code == 250
    daemon.terminate()
    try:
        r = c.read_reply(timeout=8)
    except socket.timeout:
        # the daemon may answer only the next command
        r = c.cmd("NOOP", timeout=8)
    assert r.code == 421 and r.enh == "4.3.2", r
    assert c.closed(8), "connection still open after 421"
    assert daemon.wait_exit(10) == 0
    daemon.check_log()


def test_sigterm_idle_and_in_data(daemon):
    idle = daemon.smtp()
    idle.ehlo()
    data = daemon.smtp()
    data.ehlo()
    assert data.cmd("MAIL FROM:<a@x.test>").code == 250
    assert data.cmd("RCPT TO:<someone@localhost>").code == 250
    assert data.cmd("DATA").code == 354
    data.send(b"Subject: half\r\n\r\nsome text\r\n")
    daemon.terminate()
    r = _reply_or(idle, b"NOOP\r\n")
    assert r is not None and r.code == 421 and r.enh == "4.3.2", r
    r = _reply_or(data, b".\r\n")
    assert r is not None and r.code == 421 and r.enh == "4.3.2", r
    assert daemon.wait_exit(10) == 0
    assert daemon.maildir("someone") == []


def _reply_or(c, nudge):
    """The unsolicited reply, or the reply to `nudge` if none comes."""
    try:
        return c.read_reply(timeout=8)
    except socket.timeout:
        pass
    except SMTPClosed:
        return None
    try:
        c.send(nudge)
        return c.read_reply(timeout=8)
    except (SMTPClosed, OSError):
        return None
