"""Retries that end (issue 3): a recipient deferred for warn-after gets
one delay warning (RFC 3464 Action: delayed, Will-Retry-Until) quoting the
remote reply; after give-up-after it bounces with the same facts; never a
notification to the null sender."""
import email
import email.policy
import pytest
import re

from world import make_message


def _setup(todoku, dns, smtp_peer, **queue):
    peer = smtp_peer(port=25, replies={"RCPT": ["450 4.5.0 Mail system is Busy"]})
    dns.zone("slow.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    q = {"retry": "1s", "warn-after": "2s", "give-up-after": "6s"}
    q.update(queue)
    d = todoku(dns_servers=[dns.addr], overrides={"queue": q})
    return d, peer


def _send(d, sender):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, ["friend@slow.test"],
                   make_message(subject="patience", sender=sender or "x@y.test",
                                to="friend@slow.test"))
    c.quit()
    assert r.code == 250, r


def _human(raw):
    """The human-readable part (the first part) of a multipart/report."""
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    first = next(iter(m.iter_parts()))
    assert first.get_content_type() == "text/plain", first.get_content_type()
    return first.get_content()


def _assert_names_host(text, peer):
    """The last host tried, by name and address, in the human text."""
    assert "mx.slow.test" in text, text
    assert peer.addr in text, text


def _dsns(d):
    return [m for m in d.maildir("someone") if b"report-type=delivery-status" in m]


@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_delay_warning_then_bounce_quote_the_remote_reply(todoku, dns, smtp_peer):
    d, peer = _setup(todoku, dns, smtp_peer)
    _send(d, "someone@localhost")
    d.wait_delivered("someone", 1, timeout=20)
    first = _dsns(d)
    assert len(first) == 1
    warn = first[0].decode("ascii", "replace")
    assert re.search(r"(?mi)^Action: delayed", warn), warn
    assert re.search(r"(?mi)^Will-Retry-Until: ", warn), warn
    assert "450 4.5.0 Mail system is Busy" in warn
    assert "Final-Recipient: rfc822; friend@slow.test" in warn
    human = _human(first[0])
    assert "450 4.5.0 Mail system is Busy" in human, human
    _assert_names_host(human, peer)
    # then the final bounce after give-up-after, saying the same
    d.wait_delivered("someone", 2, timeout=30)
    msgs = _dsns(d)
    assert len(msgs) == 2, "exactly one warning and one bounce"
    bounce = [m for m in msgs if m != first[0]][0].decode("ascii", "replace")
    assert re.search(r"(?mi)^Action: failed", bounce), bounce
    assert re.search(r"(?mi)^Status: 4\.4\.7", bounce), bounce
    assert "Mail system is Busy" in bounce
    human = _human(bounce.encode())
    assert "Mail system is Busy" in human, human
    _assert_names_host(human, peer)
    assert d.cli("queue", "list", "--json") == [] or all(
        m["sender"] == "" for m in d.cli("queue", "list", "--json"))
    # attempts, not connections: a retry within the 1 s idle linger of
    # smtp-out takes the previous attempt's connection (after RSET)
    rcpts = [c for c in peer.all_commands() if c.upper().startswith("RCPT")]
    assert len(rcpts) >= 3, "retried several times before giving up"


@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_no_warning_or_bounce_to_null_sender(todoku, dns, smtp_peer):
    d, peer = _setup(todoku, dns, smtp_peer)
    _send(d, "")
    d.wait_queue_settled(30)
    assert _dsns(d) == []
    assert d.maildir("someone") == []
    assert "no notification to the null sender" in d.log_text()
