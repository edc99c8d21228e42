"""SMTPUTF8 (RFC 6531/6532) in and out (issue 3: "SMTPUTF8 only when
needed and offered").

smtp-in advertises SMTPUTF8 and takes UTF-8 addresses only in a
transaction whose MAIL carried the SMTPUTF8 parameter (else 553 5.6.7);
U-label domains are stored as A-labels, so a U-label local domain is the
configured A-label domain. smtp-out sends SMTPUTF8 only when the message
needs it and the server offers it; without the offer, a domain-only
UTF-8 address goes out with A-labels and a UTF-8 local part bounces with
5.6.7 and a reason that says so.
"""
import re

from world import make_message, queue_id
from world.roles import wait_for

UTF8_USER = "j\u00fcrgen"                 # jürgen
IDN = "b\u00fccher.test"                   # bücher.test
IDN_A = "xn--bcher-kva.test"


def _utf8_msg(sender, to, subject="utf8 test"):
    return make_message(subject=subject, sender=sender, to=to)


def _submit(d, sender, rcpts, message, params="SMTPUTF8"):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(sender, rcpts, message, mail_params=params)
    c.quit()
    return r


def test_ehlo_advertises_smtputf8_and_8bit_addresses_need_it(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    assert "SMTPUTF8" in [e.split(" ")[0].upper() for e in c.extensions]
    # without the parameter: 553 5.6.7, for MAIL and for RCPT
    r = c.cmd("MAIL FROM:<%s@localhost>" % UTF8_USER)
    assert (r.code, r.enh) == (553, "5.6.7"), r
    r = c.cmd("MAIL FROM:<someone@localhost>")
    assert r.code == 250, r
    r = c.cmd("RCPT TO:<%s@localhost>" % UTF8_USER)
    assert (r.code, r.enh) == (553, "5.6.7"), r
    r = c.cmd("RCPT TO:<someone@%s>" % IDN)
    assert (r.code, r.enh) == (553, "5.6.7"), r
    c.cmd("RSET")
    # ill-formed UTF-8 and C1 controls are syntax errors even with it
    r = c.cmd("MAIL FROM:<a@localhost> SMTPUTF8")
    assert r.code == 250, r
    c.send(b"RCPT TO:<a\xc0\xafb@localhost>\r\n")
    assert c.read_reply().code == 501
    c.send(b"RCPT TO:<a\xc2\x85b@localhost>\r\n")
    assert c.read_reply().code == 501
    c.quit()


def test_utf8_local_part_delivered_locally(todoku):
    d = todoku(users=("someone", UTF8_USER))
    r = _submit(d, "sender@%s" % IDN, ["%s@localhost" % UTF8_USER],
                _utf8_msg("sender@%s" % IDN, "%s@localhost" % UTF8_USER))
    assert r.code == 250, r
    msgs = d.wait_delivered(UTF8_USER, 1)
    assert b"utf8 test" in msgs[0]
    # the Received field names the protocol (RFC 6531 section 3.7.3)
    assert re.search(rb"with UTF8SMTP", msgs[0]), msgs[0][:600]
    # the stored sender domain is the A-label form
    assert ("<sender@%s>" % IDN_A).encode() in msgs[0], msgs[0][:600]


def test_utf8_to_catch_all_and_unknown_utf8_user(todoku):
    d = todoku(overrides={'domain "localhost"': {"catch-all": "someone@localhost"}})
    r = _submit(d, "a@x.test", ["n\u00f6body@localhost"],
                _utf8_msg("a@x.test", "n\u00f6body@localhost"))
    assert r.code == 250, r
    assert len(d.wait_delivered("someone", 1)) == 1


def test_u_label_local_domain_matches_its_a_label_config(todoku, tmp_world):
    d = todoku(overrides={'domain "%s"' % IDN_A: {
        "mailboxes": str(tmp_world / "mail-idn"), "users": "anna"}})
    r = _submit(d, "a@x.test", ["Anna@B\u00dcCHER.test"],
                _utf8_msg("a@x.test", "anna@%s" % IDN))
    assert r.code == 250, r
    assert len(d.wait_delivered("anna", 1, domain=IDN_A)) == 1
    # the A-label needs no SMTPUTF8 at all
    r = _submit(d, "a@x.test", ["anna@%s" % IDN_A],
                _utf8_msg("a@x.test", "anna@%s" % IDN_A), params="")
    assert r.code == 250, r


# ---------------------------------------------------------------------------
# outbound
# ---------------------------------------------------------------------------

def _world(todoku, dns, smtp_peer, domain, offer):
    ehlo = ["PIPELINING", "8BITMIME", "SIZE 10485760"] + (["SMTPUTF8"] if offer else [])
    peer = smtp_peer(port=25, ehlo=ehlo)
    dns.zone(domain, ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr])
    return d, peer


def _mail_cmds(peer):
    return [c for c in peer.all_commands() if c.upper().startswith("MAIL FROM")]


def test_outbound_smtputf8_only_when_needed(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, "far.test", offer=True)
    # ASCII envelope and headers, although the client asked for SMTPUTF8
    r = _submit(d, "someone@localhost", ["ascii@far.test"],
                _utf8_msg("someone@localhost", "ascii@far.test", "plain"))
    assert r.code == 250, r
    peer.wait_messages(1)
    # a UTF-8 local part: needed and offered
    r = _submit(d, "someone@localhost", ["%s@far.test" % UTF8_USER],
                _utf8_msg("someone@localhost", "%s@far.test" % UTF8_USER, "utf8"))
    assert r.code == 250, r
    peer.wait_messages(2)
    mails = _mail_cmds(peer)
    assert len(mails) == 2, mails
    assert "SMTPUTF8" not in mails[0].upper(), mails
    assert mails[1].upper().endswith(" SMTPUTF8") or " SMTPUTF8" in mails[1].upper(), mails
    assert peer.messages[1]["rcpts"] == ["%s@far.test" % UTF8_USER]


def test_outbound_without_smtputf8_a_labels_or_bounce(todoku, dns, smtp_peer):
    domain = "b\u00fccher-far.test"
    a_label = domain.encode("idna").decode()   # xn--bcher-far-q9a.test
    d, peer = _world(todoku, dns, smtp_peer, a_label, offer=False)
    r = _submit(d, "someone@localhost",
                ["ok@%s" % domain, "%s@%s" % (UTF8_USER, domain)],
                _utf8_msg("someone@localhost", "ok@%s" % a_label))
    assert r.code == 250, r
    qid = queue_id(r.text)
    peer.wait_messages(1)
    msg = peer.messages[0]
    assert msg["rcpts"] == ["ok@%s" % a_label], msg
    for c in peer.all_commands():
        assert "SMTPUTF8" not in c.upper(), c
        assert all(ord(ch) < 128 for ch in c), c
    # the UTF-8 local part bounced at once, with the reason
    msgs = d.wait_delivered("someone", 1, timeout=30)
    text = msgs[0].decode("utf-8", "replace")
    assert re.search(r"(?mi)^Status:\s*5\.6\.7\s*$", text), text[:3000]
    assert "does not offer SMTPUTF8" in re.sub(r"\s+", " ", text), text[:3000]
    assert qid


def test_outbound_utf8_header_without_offer_bounces(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, "plain-far.test", offer=False)
    m = make_message(subject="caf\u00e9 \u2615", sender="someone@localhost",
                     to="x@plain-far.test")
    r = _submit(d, "someone@localhost", ["x@plain-far.test"], m)
    assert r.code == 250, r
    msgs = d.wait_delivered("someone", 1, timeout=30)
    text = msgs[0].decode("utf-8", "replace")
    assert re.search(r"(?mi)^Status:\s*5\.6\.7\s*$", text), text[:3000]
    assert "header contains UTF-8" in re.sub(r"\s+", " ", text), text[:3000]
    assert peer.messages == []
    # the same message without SMTPUTF8 in MAIL is plain 8-bit MIME mail
    r = _submit(d, "someone@localhost", ["x@plain-far.test"], m, params="BODY=8BITMIME")
    assert r.code == 250, r
    peer.wait_messages(1)


# ---------------------------------------------------------------------------
# lines longer than 998 octets (DESIGN section 7; RFC 5321 4.5.3.1.6)
# ---------------------------------------------------------------------------

def _wire_lines(data):
    """Lines as they were on the wire (the peer removed one stuffed dot)."""
    assert b"\r\n" in data
    lines = data.split(b"\r\n")[:-1]
    for ln in lines:
        assert b"\r" not in ln and b"\n" not in ln, ln[:80]
    return [len(ln) + (1 if ln.startswith(b".") else 0) for ln in lines]


def _long_msg(sender, to):
    words = " ".join("w%04d" % i for i in range(400))          # 2399 octets
    body = ("." + "b" * 2999 + "\n" + "short line\n").encode()
    return make_message(subject="long", sender=sender, to=to,
                        extra_headers=("X-Long: " + words,), body=body), words


def test_long_lines_accepted_and_folded_outbound(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, "far.test", offer=False)
    m, words = _long_msg("someone@localhost", "x@far.test")
    r = _submit(d, "someone@localhost", ["x@far.test", "someone@localhost"], m,
                params="")
    assert r.code == 250, r
    # stored intact: the local copy has the long lines as sent
    local = d.wait_delivered("someone", 1)[0]
    assert ("X-Long: " + words).encode() in local
    assert b"." + b"b" * 2999 in local
    peer.wait_messages(1)
    data = peer.messages[0]["data"]
    assert max(_wire_lines(data)) <= 998, max(_wire_lines(data))
    # header folded at blanks: unfolding gives the field back
    hdr = data.split(b"\r\n\r\n", 1)[0]
    assert ("X-Long: " + words).encode() in hdr.replace(b"\r\n ", b" ")
    # body broken after 998 octets, nothing lost
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body.replace(b"\r\n", b"").startswith(b"." + b"b" * 2999 + b"short line")


def test_long_line_in_mail_we_signed_bounces(todoku, dns, smtp_peer, tmp_world):
    import subprocess
    peer = smtp_peer(port=25)
    dns.zone("far.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d0 = todoku(start=False)
    out = subprocess.run([d0.bin, "dkim", "keygen", "--domain", "corp.test",
                          "--selector", "s1", "--out", str(tmp_world)],
                         capture_output=True, check=True)
    assert out.returncode == 0
    key = tmp_world / "s1.corp.test.key"
    subprocess.run(["chown", "todoku-keys", str(key)], check=True)
    key.chmod(0o600)
    d = todoku(dns_servers=[dns.addr],
               overrides={'dkim "corp.test"': {"selector": "s1", "key": str(key)},
                          'domain "corp.test"': {"mailboxes": str(tmp_world / "corp"),
                                                 "catch-all": "someone@localhost"}})
    m, _ = _long_msg("ceo@corp.test", "x@far.test")
    r = _submit(d, "ceo@corp.test", ["x@far.test"], m, params="")
    assert r.code == 250, r
    msgs = d.wait_delivered("someone", 1, timeout=30)
    text = re.sub(r"\s+", " ", msgs[0].decode("utf-8", "replace"))
    assert re.search(r"Status: 5\.6\.3", text), text[:3000]
    assert "carries our DKIM signature" in text, text[:3000]
    assert peer.messages == []
    assert all(not c.upper().startswith("MAIL") for c in peer.all_commands())
