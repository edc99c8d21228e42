"""Inbound SMTP: greeting, EHLO, delivery to Maildir, PIPELINING, 8BITMIME,
SIZE, line limits, SMTP smuggling, NUL bytes, error limits."""
import re

import pytest

from world import header, make_message, queue_id, to_crlf_stuffed

MAX = 1048576  # [smtp] max-message-size = 1M (K/M/G are powers of 1024)


def _assert_enh(r, code_class=None):
    assert r.enh is not None, "reply without enhanced status code: %r" % r
    assert r.enh[0] == str(r.code)[0], "enhanced code class differs from reply code: %r" % r
    if code_class:
        assert r.enh == code_class, r


# -- greeting, EHLO, enhanced status codes ----------------------------------------

def test_greeting_and_ehlo_extensions(daemon):
    c = daemon.smtp()
    assert c.greeting.code == 220
    assert c.greeting.lines[0].startswith("mx.test ESMTP todoku"), c.greeting
    r = c.ehlo("client.test")
    assert r.code == 250
    assert r.lines[0].split()[0] == "mx.test"
    for ext in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"):
        assert ext in c.extensions, r
    assert c.extensions.get("SIZE") == [str(MAX)], r
    c.quit()


@pytest.mark.parametrize("hello", ["EHLO", "HELO"])
def test_every_reply_after_hello_has_enhanced_status(daemon, hello):
    c = daemon.smtp()
    assert c.cmd("%s client.test" % hello).code == 250
    r = c.cmd("NOOP")
    assert r.code == 250
    _assert_enh(r)
    r = c.cmd("RSET")
    assert r.code == 250
    _assert_enh(r)
    r = c.cmd("MAIL FROM:<a@x.test>")
    assert r.code == 250
    _assert_enh(r, "2.1.0")
    r = c.cmd("RCPT TO:<someone@localhost>")
    assert r.code == 250
    _assert_enh(r, "2.1.5")
    r = c.cmd("RCPT TO:<nobody@localhost>")
    assert r.code == 550
    _assert_enh(r, "5.1.1")
    r = c.cmd("FROBNICATE")
    assert 500 <= r.code < 600
    _assert_enh(r)
    r = c.cmd("DATA")
    assert r.code == 354
    r = c.data_bytes(to_crlf_stuffed(make_message()))
    assert r.code == 250
    _assert_enh(r, "2.0.0")
    r = c.cmd("QUIT")
    assert r.code == 221
    _assert_enh(r)
    daemon.wait_delivered("someone", 1)


# -- delivery ---------------------------------------------------------------------

def _check_trace_headers(msg, sender, rcpt, helo, qid):
    assert b"\r" not in msg, "Maildir file must use LF line ends"
    lines = msg.split(b"\n")
    assert lines[0] == b"Return-Path: <%s>" % sender.encode(), lines[:3]
    assert lines[1] == b"Delivered-To: %s" % rcpt.encode(), lines[:3]
    assert lines[2].startswith(b"Received: "), lines[:3]
    received = header(msg, "Received")[0]
    m = re.match(r"from (\S+) \((\S+) \[(127\.\d+\.\d+\.\d+)\]\)", received)
    assert m, received
    assert m.group(1) == helo
    assert re.search(r"\bby mx\.test\b", received), received
    assert re.search(r"\bid %s\b" % re.escape(qid), received), (qid, received)


def test_swaks_delivers_to_maildir(daemon, swaks):
    rc, out = swaks(daemon.addr, daemon.port, "someone@localhost", "sender@client.test",
                    body="Hello from swaks\nsecond line")
    assert rc == 0, out
    m = re.search(r"<[-~]\s+250 2\.0\.0 Ok: queued as (\S+)", out)
    assert m, out
    qid = m.group(1)
    (msg,) = daemon.wait_delivered("someone", 1)
    _check_trace_headers(msg, "sender@client.test", "someone@localhost", "client.test", qid)
    assert b"\nHello from swaks\nsecond line\n" in msg
    assert len(daemon.maildir_files("someone")) == 1


def test_postfix_relays_into_todoku(daemon, postfix):
    pf = postfix(relayhost="[%s]:%d" % (daemon.addr, daemon.port))
    body = "via postfix\nline two\n"
    pf.sendmail("alice@postfix.test", ["someone@localhost"],
                make_message(sender="alice@postfix.test", subject="interop", body=body))
    (msg,) = daemon.wait_delivered("someone", 1, timeout=60)
    assert msg.split(b"\n")[0] == b"Return-Path: <alice@postfix.test>"
    assert msg.split(b"\n")[1] == b"Delivered-To: someone@localhost"
    received = header(msg, "Received")[0]
    assert received.startswith("from postfix.test ("), received
    assert b"Subject: interop\n" in msg and msg.endswith(b"\n\nvia postfix\nline two\n")


def test_pipelining_four_replies_in_order(daemon):
    c = daemon.smtp()
    c.ehlo()
    c.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<someone@localhost>\r\n"
           b"RCPT TO:<alice@localhost>\r\nDATA\r\n")
    r = c.read_replies(4)
    assert [x.code for x in r] == [250, 250, 250, 354], r
    assert [x.enh for x in r[:3]] == ["2.1.0", "2.1.5", "2.1.5"], r
    end = c.data_bytes(to_crlf_stuffed(make_message(subject="pipelined")))
    assert end.code == 250, end
    c.quit()
    for u in ("someone", "alice"):
        (msg,) = daemon.wait_delivered(u, 1)
        assert b"Subject: pipelined\n" in msg


def test_8bitmime_delivered_byte_exact(daemon):
    raw8 = bytes(b for b in range(0x80, 0x100))
    body = (b"UTF-8: \xe5\xb1\x8a\xe3\x81\x8f \xc3\xa9t\xc3\xa9\n"
            b"all high octets: " + raw8 + b"\n"
            b"latin-1: caf\xe9\n.leading dot\nend\n")
    msg_in = make_message(subject="eight bit", body=body,
                          extra_headers=["Content-Type: text/plain; charset=utf-8",
                                         "Content-Transfer-Encoding: 8bit"])
    c = daemon.smtp()
    c.ehlo()
    r = c.sendmail("a@x.test", ["someone@localhost"], msg_in, mail_params="BODY=8BITMIME")
    assert r.code == 250, r
    c.quit()
    (got,) = daemon.wait_delivered("someone", 1)
    assert got.endswith(b"\n" + msg_in), "8-bit message altered in transit"


# -- SIZE ---------------------------------------------------------------------------

def test_size_parameter_over_limit_refused(daemon):
    c = daemon.smtp()
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@x.test> SIZE=%d" % (MAX + 1))
    assert r.code == 552 and r.enh == "5.3.4", r
    r = c.cmd("MAIL FROM:<a@x.test> SIZE=1000")
    assert r.code == 250, r
    c.quit()


def test_message_over_limit_without_size_refused_at_end_of_data(daemon):
    c = daemon.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@x.test>").code == 250
    assert c.cmd("RCPT TO:<someone@localhost>").code == 250
    assert c.cmd("DATA").code == 354
    line = b"x" * 998 + b"\r\n"
    big = b"Subject: too big\r\n\r\n" + line * (MAX // len(line) + 50)
    r = c.data_bytes(big)
    assert r.code == 552 and r.enh == "5.3.4", r
    c.close()
    # a small message afterwards is the only thing that arrives
    c = daemon.smtp()
    c.ehlo()
    assert c.sendmail("a@x.test", "someone@localhost",
                      make_message(subject="small after big")).code == 250
    c.quit()
    daemon.wait_delivered("someone", 1)
    daemon.wait_queue_settled()
    msgs = daemon.maildir("someone")
    assert len(msgs) == 1 and b"Subject: small after big\n" in msgs[0]


# -- line limits and bad bytes -----------------------------------------------------

def test_overlong_command_line_refused_session_continues(daemon):
    c = daemon.smtp()
    c.ehlo()
    r = c.cmd(b"MAIL FROM:<" + b"a" * 3000 + b"@x.test>")
    assert r.code == 500 and r.enh == "5.5.2", r
    r = c.cmd("NOOP")
    assert r.code == 250, r
    # and the session is still usable for a transaction
    assert c.sendmail("a@x.test", "someone@localhost", make_message()).code == 250
    c.quit()
    daemon.wait_delivered("someone", 1)


def test_long_data_line_accepted(daemon):
    long_line = b"L" * 4998  # 5000 octets with CRLF
    msg_in = make_message(subject="long line", body=long_line + b"\nafter\n")
    c = daemon.smtp()
    c.ehlo()
    assert c.sendmail("a@x.test", "someone@localhost", msg_in).code == 250
    c.quit()
    (got,) = daemon.wait_delivered("someone", 1)
    assert b"\n" + long_line + b"\nafter\n" in got


@pytest.mark.parametrize("line", [b"NO\x00OP\r\n", b"MAIL FROM:<a\x00b@x.test>\r\n"],
                         ids=["noop", "mail"])
def test_nul_in_command_refused(daemon, line):
    c = daemon.smtp()
    c.ehlo()
    c.send(line)
    r = c.read_reply()
    assert r.code == 500 and r.enh == "5.5.2", r
    assert c.cmd("NOOP").code == 250
    c.quit()


# -- SMTP smuggling -------------------------------------------------------------------

SMUGGLE_VARIANTS = {
    "lf.lf": b"\n.\n",
    "lf.crlf": b"\n.\r\n",
    "crlf.lf": b"\r\n.\n",
    "cr.crlf": b"\r.\r\n",
    "crlf.cr": b"\r\n.\r",
}


@pytest.mark.parametrize("variant", list(SMUGGLE_VARIANTS), ids=list(SMUGGLE_VARIANTS))
def test_smtp_smuggling_refused(daemon, variant):
    seq = SMUGGLE_VARIANTS[variant]
    c = daemon.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@x.test>").code == 250
    assert c.cmd("RCPT TO:<someone@localhost>").code == 250
    assert c.cmd("DATA").code == 354
    payload = (b"From: <a@x.test>\r\nSubject: carrier\r\n\r\nhello" + seq +
               b"MAIL FROM:<admin@victim.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n"
               b"From: <admin@victim.test>\r\nSubject: SMUGGLED\r\n\r\nsmuggled body\r\n"
               b".\r\n")
    c.send(payload)
    r = c.read_reply()
    assert r.code == 550 and r.enh == "5.5.2", r
    # the session goes on and a clean message is delivered exactly once
    assert c.sendmail("b@x.test", "someone@localhost",
                      make_message(sender="b@x.test", subject="clean")).code == 250
    c.quit()
    daemon.wait_delivered("someone", 1)
    daemon.wait_queue_settled()
    msgs = daemon.maildir("someone")
    assert len(msgs) == 1, msgs
    assert b"Subject: clean\n" in msgs[0]
    for u in ("someone", "alice", "bob"):
        for m in daemon.maildir(u):
            assert b"SMUGGLED" not in m and b"carrier" not in m, m


# -- error limits ------------------------------------------------------------------

def test_too_many_recipients_452(todoku):
    d = todoku(overrides={"smtp": {"max-recipients": "100"}})
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@x.test>").code == 250
    for i in range(100):
        r = c.cmd("RCPT TO:<someone@localhost>" if i % 2 else "RCPT TO:<alice@localhost>")
        assert r.code == 250, (i, r)
    r = c.cmd("RCPT TO:<bob@localhost>")
    assert r.code == 452 and r.enh == "4.5.3", r
    assert c.cmd("DATA").code == 354
    assert c.data_bytes(to_crlf_stuffed(make_message())).code == 250
    c.quit()
    d.wait_delivered("someone", 1)
    d.wait_delivered("alice", 1)
    d.wait_queue_settled()
    assert d.maildir("bob") == []


def test_too_many_errors_421_and_close(todoku):
    d = todoku(overrides={"smtp": {"max-errors": "3"}})
    c = d.smtp()
    c.ehlo()
    codes = []
    for i in range(6):
        try:
            r = c.cmd("BOGUS%d" % i)
        except Exception:  # noqa: BLE001 - closed without a 421: fail below
            break
        codes.append(r)
        if r.code == 421:
            break
    assert all(500 <= r.code < 600 for r in codes[:3]), codes
    assert codes[-1].code == 421 and codes[-1].enh == "4.7.0", codes
    assert len(codes) in (4, 5), codes
    assert c.closed(5), "connection still open after 421"
