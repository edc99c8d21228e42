"""Mail loops end with 554 5.4.6 (RFC 5321 §6.3, RFC 3463 X.4.6): a
message whose header block carries more than [smtp] max-hops Received
fields is refused at the end of DATA and nothing of it is queued; one
with exactly max-hops fields is accepted. Folded fields and any case of
the name count; Received-like names (X-Received, Received-SPF) and
"Received:" in the body do not."""
import subprocess
import time

from world import make_message, todoku_bin


def _received(i, style):
    """One Received field; style picks case and folding."""
    if style == 0:
        return "Received: from h%d.test (h%d.test [192.0.2.%d]) by mx%d.test; " \
               "Tue, 1 Jan 2030 00:00:00 +0000" % (i, i, i % 250 + 1, i)
    if style == 1:
        return "received: from h%d.test\n\tby mx%d.test with ESMTP\n\t" \
               "id %d; Tue, 1 Jan 2030 00:00:00 +0000" % (i, i, i)
    if style == 2:
        return "RECEIVED:\n from h%d.test by mx%d.test; Tue, 1 Jan 2030 " \
               "00:00:00 +0000" % (i, i)
    return "ReCeIvEd : from h%d.test by mx%d.test; Tue, 1 Jan 2030 " \
           "00:00:00 +0000" % (i, i)


def _message(n, subject):
    extra = [_received(i, i % 4) for i in range(n)]
    # names that are not Received never count
    extra += ["X-Received: by 10.0.0.1 with SMTP",
              "Received-SPF: pass (test)"]
    return make_message(subject=subject, extra_headers=extra,
                        body="Received: in the body does not count\n")


def _send(d, n, subject):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("loop@x.test", ["someone@localhost"], _message(n, subject))
    # the session goes on after a refusal
    assert c.cmd("NOOP").code == 250
    c.quit()
    return r


def _check_limit(d, limit):
    refused = _send(d, limit + 1, "one too many")
    assert refused.code == 554 and refused.enh == "5.4.6", refused
    assert "%d Received" % (limit + 1) in refused.text, refused
    assert "loop" in refused.text, refused
    accepted = _send(d, limit, "just enough")
    assert accepted.code == 250, accepted
    d.wait_delivered("someone", 1)
    d.wait_queue_settled()
    time.sleep(0.5)
    msgs = d.maildir("someone")
    assert len(msgs) == 1, [m[:200] for m in msgs]
    assert b"Subject: just enough" in msgs[0]
    # nothing of the refused message was ever stored
    assert d.cli("queue", "list", "--json") == []
    log = d.log_text()
    assert "Received header fields (mail loop?)" in log, log[-3000:]


def test_default_limit_100_accepts_100_refuses_101(todoku):
    d = todoku()
    _check_limit(d, 100)


def test_configured_limit_counts_folded_and_any_case(todoku):
    d = todoku(overrides={"smtp": {"max-hops": "5"}})
    _check_limit(d, 5)


def test_max_hops_shown_and_checked(tmp_world):
    base = "[server]\nhostname = mx.test\n[listen \"smtp\"]\n" \
           "address = 127.0.0.1:2525\n"
    p = tmp_world / "hops.conf"
    p.write_text(base)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert b"\nmax-hops = 100\n" in r.stdout.split(b"\n[smtp]\n", 1)[1]
    p.write_text(base + "[smtp]\nmax-hops = 0\n")
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:6: max-hops = 0 is out of range" % p).encode() in r.stderr, \
        r.stderr
