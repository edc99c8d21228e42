"""Sender authentication on received mail (issue 4): SPF, DKIM and DMARC
checked natively while the message streams in, one Authentication-Results
header of our authserv-id plus Received-SPF, and DMARC p=reject failures
from untrusted clients refused at end of data with 550 5.7.1."""
import re

from world import make_message

UNTRUSTED = {"server": {"trusted-networks": "10.0.0.0/8"}}


def _auth_world(todoku, dns):
    dns.zone("good.test", [
        '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ])
    dns.zone("bad.test", [
        '@ TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ])
    dns.zone("soft.test", [
        '@ TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc TXT "v=DMARC1; p=none"',
    ])
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test"}
    return todoku(dns_servers=[dns.addr], overrides=ov)


def _send(d, sender, body):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, ["someone@localhost"], body)
    c.quit()
    return r


def _ar(msg):
    text = msg.decode("ascii", "replace")
    m = re.search(r"(?ms)^Authentication-Results: (.*?)\n(?=\S)", text)
    assert m, text[:2000]
    return re.sub(r"\s+", " ", m.group(1))


def test_spf_and_dmarc_pass_recorded(todoku, dns):
    d = _auth_world(todoku, dns)
    r = _send(d, "alice@good.test",
              make_message(subject="hi", sender="alice@good.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    msg = d.maildir("someone")[0]
    ar = _ar(msg)
    assert ar.startswith("mx.test;"), ar
    assert "spf=pass" in ar and "smtp.mailfrom=alice@good.test" in ar
    assert "dkim=none" in ar
    assert "arc=none" in ar
    assert "dmarc=pass" in ar and "header.from=good.test" in ar
    assert re.search(rb"(?m)^Received-SPF: pass ", msg)
    # our trace fields sit above the Received: header we added
    text = msg.decode("ascii", "replace")
    assert text.index("Authentication-Results:") < text.index("Received: from")


def test_dmarc_reject_refused_at_end_of_data(todoku, dns):
    d = _auth_world(todoku, dns)
    r = _send(d, "mallory@bad.test",
              make_message(subject="forged", sender="ceo@bad.test",
                           to="someone@localhost"))
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "DMARC" in r.text and "bad.test" in r.text
    assert d.maildir("someone") == []
    assert d.cli("queue", "list", "--json") == []


def test_dmarc_none_failure_is_only_recorded(todoku, dns):
    d = _auth_world(todoku, dns)
    r = _send(d, "bob@soft.test",
              make_message(subject="soft", sender="bob@soft.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    ar = _ar(d.maildir("someone")[0])
    assert "spf=fail" in ar and "dmarc=fail" in ar


def test_trusted_clients_are_not_checked(todoku, dns):
    dns.zone("bad.test", ['@ TXT "v=spf1 -all"', '_dmarc TXT "v=DMARC1; p=reject"'])
    d = todoku(dns_servers=[dns.addr])  # 127.0.0.0/8 trusted (default)
    r = _send(d, "app@bad.test",
              make_message(subject="local", sender="app@bad.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    assert b"Authentication-Results:" not in d.maildir("someone")[0]


def test_dkim_signature_verified(todoku, dns, tmp_world):
    import subprocess
    dkim = __import__("dkim")
    d0 = todoku(start=False)
    out = subprocess.run([d0.bin, "dkim", "keygen", "--domain", "signed.test",
                          "--selector", "s1", "--out", str(tmp_world)],
                         capture_output=True, check=True)
    txt = "".join(re.findall(r'"([^"]*)"', out.stdout.decode()))
    zone_txt = " ".join('"%s"' % txt[i:i + 200] for i in range(0, len(txt), 200))
    dns.zone("signed.test", [
        '@ TXT "v=spf1 ip4:192.0.2.1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
        "s1._domainkey TXT %s" % zone_txt,
    ])
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test"}
    d = todoku(dns_servers=[dns.addr], overrides=ov)
    key = (tmp_world / "s1.signed.test.key").read_bytes()
    msg = make_message(subject="signed", sender="news@signed.test",
                       to="someone@localhost")
    sig = dkim.sign(msg, b"s1", b"signed.test", key,
                    include_headers=[b"from", b"to", b"subject"])
    # SPF fails (not our IP) but the aligned DKIM pass satisfies DMARC
    r = _send(d, "bounce@signed.test", sig + msg)
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    ar = _ar(d.maildir("someone")[0])
    assert "dkim=pass" in ar and "header.d=signed.test" in ar, ar
    assert "spf=fail" in ar and "dmarc=pass" in ar, ar


def test_forged_authentication_results_removed(todoku, dns):
    d = _auth_world(todoku, dns)
    forged = (b"Authentication-Results: MX.TEST; dkim=pass header.d=paypal.example;\r\n"
              b"\tdmarc=pass header.from=paypal.example\r\n"
              b"Authentication-Results: relay.other.example; spf=pass\r\n")
    r = _send(d, "alice@good.test",
              forged + make_message(subject="forged ar", sender="alice@good.test",
                                    to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    msg = d.maildir("someone")[0]
    fields = re.findall(rb"(?mi)^Authentication-Results: *(\S+)", msg)
    assert fields == [b"mx.test;", b"relay.other.example;"], fields
    assert b"paypal.example" not in msg
    assert "removed 1 Authentication-Results" in d.log_text()


def test_arc_chain_verified(todoku, dns, tmp_world):
    """A message sealed by a forwarder (dkimpy's ARC signer, key in the
    test DNS): the chain verifies, arc=pass in our header; a body changed
    after sealing: arc=fail."""
    import subprocess
    dkim = __import__("dkim")
    d0 = todoku(start=False)
    out = subprocess.run([d0.bin, "dkim", "keygen", "--domain", "fwd.test",
                          "--selector", "arc1", "--out", str(tmp_world)],
                         capture_output=True, check=True)
    txt = "".join(re.findall(r'"([^"]*)"', out.stdout.decode()))
    zone_txt = " ".join('"%s"' % txt[i:i + 200] for i in range(0, len(txt), 200))
    dns.zone("fwd.test", ["arc1._domainkey TXT %s" % zone_txt])
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test"}
    d = todoku(dns_servers=[dns.addr], overrides=ov)
    key = (tmp_world / "arc1.fwd.test.key").read_bytes()
    msg = (b"Authentication-Results: fwd.test; spf=pass smtp.mailfrom=a@orig.test\r\n"
           + make_message(subject="forwarded", sender="a@orig.test",
                          to="someone@localhost"))
    sealed = dkim.arc_sign(msg, b"arc1", b"fwd.test", key, b"fwd.test")
    r = _send(d, "list@fwd.test", b"".join(sealed) + msg)
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    ar = _ar(d.maildir("someone")[0])
    assert "arc=pass" in ar, ar
    tampered = b"".join(sealed) + msg.replace(b"forwarded", b"FORWARDED")
    r = _send(d, "list@fwd.test", tampered)
    assert r.code == 250, r
    d.wait_delivered("someone", 2)
    ars = [_ar(m) for m in d.maildir("someone")]
    assert any("arc=fail" in a for a in ars), ars


def test_policy_per_listener(todoku, dns):
    """[listen] sections may set their own dmarc-policy/spf-policy: the
    same forged message is refused on one listener, recorded on the
    other."""
    import smtplib
    dns.zone("bad.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"',
                          '_dmarc TXT "v=DMARC1; p=reject"'])
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test"}
    d = todoku(dns_servers=[dns.addr], overrides=ov)
    # a second listener on the same address, recording only
    d.sections['listen "lenient"'] = {"address": "%s:2526" % d.addr,
                                      "dmarc-policy": "record"}
    d.write_config()
    d.restart()
    msg = make_message(subject="forged", sender="ceo@bad.test", to="someone@localhost")
    r = _send(d, "mallory@bad.test", msg)
    assert r.code == 550 and r.enh == "5.7.1", r
    s = smtplib.SMTP(d.addr, 2526, timeout=20)
    s.ehlo("client.test")
    s.sendmail("mallory@bad.test", ["someone@localhost"],
               msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    s.quit()
    d.wait_delivered("someone", 1)
    assert "dmarc=fail" in _ar(d.maildir("someone")[0])


def test_spf_policy_reject(todoku, dns):
    """[smtp] spf-policy = reject: an SPF fail is refused at end of data
    with 550 5.7.1 and the reason; softfail and pass are accepted. With
    the default (record) the same fail is only recorded."""
    dns.zone("spfbad.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"'])
    dns.zone("spfsoft.test", ['@ TXT "v=spf1 ip4:192.0.2.1 ~all"'])
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test", "spf-policy": "reject"}
    d = todoku(dns_servers=[dns.addr], overrides=ov)
    r = _send(d, "mallory@spfbad.test",
              make_message(subject="f", sender="mallory@spfbad.test",
                           to="someone@localhost"))
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "SPF fail" in r.text and "spfbad.test" in r.text, r
    r = _send(d, "bob@spfsoft.test",
              make_message(subject="s", sender="bob@spfsoft.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    assert "spf=softfail" in _ar(d.maildir("someone")[0])
    assert d.cli("queue", "list", "--json") == []

    ov["smtp"] = {"authserv-id": "mx.test"}
    d2 = todoku(dns_servers=[dns.addr], overrides=ov)
    r = _send(d2, "mallory@spfbad.test",
              make_message(subject="f", sender="mallory@spfbad.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d2.wait_delivered("someone", 1)
    assert "spf=fail" in _ar(d2.maildir("someone")[0])


def test_dmarc_quarantine_adds_header(todoku, dns):
    """p=quarantine failures are accepted with an X-Todoku-Quarantine
    header naming the policy domain; passing mail gets none."""
    dns.zone("q.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"',
                        '_dmarc TXT "v=DMARC1; p=quarantine"'])
    dns.zone("qok.test", ['@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
                          '_dmarc TXT "v=DMARC1; p=quarantine"'])
    d = _auth_world(todoku, dns)
    r = _send(d, "x@q.test",
              make_message(subject="q", sender="x@q.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    r = _send(d, "y@qok.test",
              make_message(subject="ok", sender="y@qok.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 2)
    by_subject = {}
    for m in d.maildir("someone"):
        subj = re.search(rb"(?m)^Subject: (\S+)", m).group(1)
        by_subject[subj] = m
    q = by_subject[b"q"]
    assert re.search(rb"(?m)^X-Todoku-Quarantine: DMARC policy of q\.test "
                     rb"is quarantine", q), q[:1500]
    assert "dmarc=fail" in _ar(q)
    assert b"X-Todoku-Quarantine" not in by_subject[b"ok"]
    assert "dmarc=pass" in _ar(by_subject[b"ok"])


def test_auth_eod_budget_bounds_the_wait(todoku, faulty_dns):
    """DNS that never answers cannot hold end of data beyond
    auth-eod-budget: the message is accepted with spf=temperror and the
    log names the budget."""
    faulty_dns.rule("slow.test", "TXT", "timeout")
    faulty_dns.rule("_dmarc.slow.test", "TXT", "timeout")
    ov = dict(UNTRUSTED)
    ov["smtp"] = {"authserv-id": "mx.test", "auth-eod-budget": "2s"}
    d = todoku(dns_servers=[faulty_dns.addr], overrides=ov)
    r = _send(d, "x@slow.test",
              make_message(subject="slow", sender="x@slow.test",
                           to="someone@localhost"))
    assert r.code == 250, r
    d.wait_delivered("someone", 1)
    ar = _ar(d.maildir("someone")[0])
    assert "spf=temperror" in ar, ar
    assert "auth-eod-budget of 2 s exhausted" in d.log_text(), d.log_text()[-3000:]
