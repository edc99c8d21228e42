"""Per-state timeouts (RFC 5321 §4.5.3.2, [smtp] timeout-*): a client that
goes silent is told 421 4.4.2 and disconnected; an accepted transaction
is never half-stored."""
import time


def test_idle_client_gets_421_after_command_timeout(todoku):
    d = todoku(overrides={"smtp": {"timeout-command": "2s"}})
    c = d.smtp()
    c.ehlo()
    t0 = time.monotonic()
    r = c.read_reply(timeout=10)
    waited = time.monotonic() - t0
    assert r.code == 421 and r.enh == "4.4.2", r
    assert waited >= 1.5, "timed out before the configured 2 s"
    assert c.closed(timeout=3)
    assert "timeout in state cmd" in d.log_text()


def test_silent_client_in_data_gets_421_and_nothing_is_delivered(todoku):
    d = todoku(overrides={"smtp": {"timeout-data-block": "2s",
                                   "timeout-command": "30s"}})
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<slow@x.test>").code == 250
    assert c.cmd("RCPT TO:<someone@localhost>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: half\r\n\r\nthe first half of the body\r\n")
    r = c.read_reply(timeout=10)
    assert r.code == 421 and r.enh == "4.4.2", r
    assert c.closed(timeout=3)
    time.sleep(1)
    assert d.maildir("someone") == []
    assert d.cli("queue", "list", "--json") == []
