"""DSN parameters (RFC 3461) end to end (issue 3, DESIGN §7 "advertise
DSN only where its parameters are honoured"): offered to trusted clients
only, stored, honoured in our own notifications (NOTIFY, RET, ENVID,
ORCPT), and passed on to next hops that advertise DSN."""
import email
import email.policy
import re
import time

import pytest

from world import make_message, queue_id
from world.roles import wait_for
from world.smtpclient import to_crlf_stuffed

UNTRUSTED = {"server": {"trusted-networks": "10.0.0.0/8"}}


def _txn(d, sender, rcpts, mail_params="", subject="dsn test", body="the body 4b1d\n"):
    """One transaction with DSN parameters. rcpts: [(addr, params)]."""
    c = d.smtp()
    c.ehlo()
    assert "DSN" in c.extensions, c.extensions
    r = c.cmd("MAIL FROM:<%s>%s" % (sender, " " + mail_params if mail_params else ""))
    assert r.code == 250, r
    for addr, params in rcpts:
        r = c.cmd("RCPT TO:<%s>%s" % (addr, " " + params if params else ""))
        assert r.code == 250, (addr, r)
    r = c.cmd("DATA")
    assert r.code == 354, r
    msg = make_message(subject=subject, sender=sender or "x@x.test",
                       to=rcpts[0][0], body=body)
    r = c.data_bytes(to_crlf_stuffed(msg))
    assert r.code == 250, r
    c.quit()
    return queue_id(r.text)


def _reports(d, user="someone"):
    return [m for m in d.maildir(user) if b"report-type=delivery-status" in m]


def _parse(raw):
    """(top message, delivery-status text, [per-recipient field dicts],
    content type of the third part or None)."""
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert m.get_content_type() == "multipart/report", raw[:1500]
    parts = m.get_payload()
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status", raw[:1500]
    blocks = status.get_payload()
    fields = [{k.lower(): " ".join(v.split()) for k, v in blk.items()} for blk in blocks]
    third = parts[2].get_content_type() if len(parts) > 2 else None
    return m, fields[0], fields[1:], third


def _peer_world(dns, smtp_peer, domain, **peer_kw):
    peer = smtp_peer(port=25, **peer_kw)
    dns.zone(domain, ["@ MX 10 mx", "mx A %s" % peer.addr])
    return peer


# ---- advertising and refusing ------------------------------------------


def test_ehlo_offers_dsn_to_trusted_clients_only(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    assert "DSN" in c.extensions, c.extensions
    c.quit()
    u = todoku(overrides=UNTRUSTED)
    c = u.smtp()
    c.ehlo()
    assert "DSN" not in c.extensions, c.extensions
    # the parameters are refused as not offered, the transaction goes on
    r = c.cmd("MAIL FROM:<x@example.org> RET=FULL")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("MAIL FROM:<x@example.org> ENVID=abc")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("MAIL FROM:<x@example.org>")
    assert r.code == 250, r
    r = c.cmd("RCPT TO:<someone@localhost> NOTIFY=SUCCESS")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("RCPT TO:<someone@localhost> ORCPT=rfc822;someone@localhost")
    assert (r.code, r.enh) == (555, "5.5.4"), r
    r = c.cmd("RCPT TO:<someone@localhost>")
    assert r.code == 250, r
    c.quit()


def test_trusted_parameters_are_validated(todoku):
    d = todoku()
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<x@localhost> RET=FULL RET=HDRS").code == 501
    assert c.cmd("MAIL FROM:<x@localhost> ENVID=a+0Db").code == 501
    r = c.cmd("MAIL FROM:<x@localhost> RET=HDRS ENVID=q+2Bq")
    assert r.code == 250, r
    assert c.cmd("RCPT TO:<someone@localhost> NOTIFY=NEVER,SUCCESS").code == 501
    assert c.cmd("RCPT TO:<someone@localhost> ORCPT=x400;abc").code == 501
    assert c.cmd("RCPT TO:<someone@localhost> ORCPT=rfc822;a+0Ab").code == 501
    r = c.cmd("RCPT TO:<someone@localhost> NOTIFY=FAILURE,DELAY "
              "ORCPT=rfc822;someone+40localhost")
    assert r.code == 250, r
    c.quit()


# ---- honouring them in our own notifications ---------------------------


def test_notify_never_suppresses_the_bounce(todoku, dns, smtp_peer):
    peer = _peer_world(dns, smtp_peer, "hard.test",
                       replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    # a control recipient with default NOTIFY gets bounced and reported
    _txn(d, "someone@localhost", [("gone@hard.test", "NOTIFY=NEVER")],
         subject="never tell")
    _txn(d, "someone@localhost", [("gone2@hard.test", "")], subject="do tell")
    d.wait_delivered("someone", 1, timeout=20)
    d.wait_queue_settled(20)
    reports = _reports(d)
    assert len(reports) == 1, [r[:300] for r in reports]
    assert b"gone2@hard.test" in reports[0]
    assert b"never tell" not in reports[0]
    assert "RCPT TO:<gone@hard.test>" in peer.all_commands(), peer.transcript()


def test_ret_full_returns_the_whole_message(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=FULL",
         subject="full return", body="secret body line 93c1\n")
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=HDRS",
         subject="headers return", body="secret body line 5e7d\n")
    d.wait_delivered("someone", 2, timeout=20)
    reports = {}
    for raw in _reports(d):
        _, _, _, third = _parse(raw)
        key = "full" if b"full return" in raw else "hdrs"
        reports[key] = (raw, third)
    assert set(reports) == {"full", "hdrs"}
    raw, third = reports["full"]
    assert third == "message/rfc822", raw[:2000]
    assert b"secret body line 93c1" in raw
    raw, third = reports["hdrs"]
    assert third == "text/rfc822-headers", raw[:2000]
    assert b"secret body line 5e7d" not in raw



def _numbered(n, width=60):
    """n numbered lines of width octets (LF), each one distinct."""
    return "".join("line %06d %s\n" % (i, "x" * (width - 13)) for i in range(n))


def _third_part(raw):
    """(content type, bytes with LF line ends) of part 3, the returned
    original (a Maildir copy has LF line ends, the wire CRLF)."""
    raw = raw.replace(b"\r\n", b"\n")
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    boundary = m.get_boundary().encode()
    parts = raw.split(b"\n--" + boundary)
    assert len(parts) == 5 and parts[4].startswith(b"--"), raw[:2000]
    hdr, _, body = parts[3].lstrip(b"\n").partition(b"\n\n")
    return email.message_from_bytes(hdr + b"\n\n").get_content_type(), body


def test_ret_full_returns_a_large_file_stored_body_whole(todoku, dns, smtp_peer):
    """A body stored in its own file (over inline-body-max) comes back
    whole under RET=FULL, not just its headers."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"inline-body-max": "4K"}})
    body = _numbered(5000)  # 300 000 octets
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=FULL",
         subject="large full return", body=body)
    d.wait_delivered("someone", 1, timeout=30)
    raw = _reports(d)[0]
    ctype, part = _third_part(raw)
    assert ctype == "message/rfc822", raw[:2000]
    got = part.partition(b"\n\n")[2]
    assert got == body.encode(), (len(got), len(body))
    assert b"cut at the end" not in raw


def test_ret_full_over_bounce_size_limit_is_cut_at_a_line_end(todoku, dns, smtp_peer):
    """Over [queue] bounce-size-limit: the header block whole, the body cut
    after a complete line, the multipart closed with its own boundary, and
    the text part says so."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr],
               overrides={"queue": {"inline-body-max": "4K",
                                    "bounce-size-limit": "16K"}})
    lines = _numbered(1000)
    body = ("preamble\n--outer-b0\nContent-Type: text/plain\n\nfirst part\n"
            "--outer-b0\nContent-Type: text/plain\n\n" + lines + "--outer-b0--\n")
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<someone@localhost> RET=FULL").code == 250
    assert c.cmd("RCPT TO:<gone@hard.test>").code == 250
    assert c.cmd("DATA").code == 354
    msg = make_message(subject="cut return", sender="someone@localhost", to="gone@hard.test",
                       body=body, extra_headers=(
                           "MIME-Version: 1.0",
                           'Content-Type: multipart/mixed;\n\tboundary="outer-b0"'))
    assert c.data_bytes(to_crlf_stuffed(msg)).code == 250
    c.quit()
    d.wait_delivered("someone", 1, timeout=30)
    raw = _reports(d)[0]
    assert b"cut at the end of a line" in raw.replace(b"\r\n", b"\n").replace(
        b"\n", b" "), raw[:3000]
    ctype, part = _third_part(raw)
    assert ctype == "message/rfc822"
    assert 8 * 1024 < len(part) <= 16 * 1024 + 64, len(part)
    hdr, _, got = part.partition(b"\n\n")
    assert b"Subject: cut return" in hdr and b'boundary="outer-b0"' in hdr
    assert got.endswith(b"\n--outer-b0--\n"), got[-200:]
    kept = got[:-len(b"--outer-b0--\n")].decode().split("\n")
    assert kept[-1] == ""
    wanted = body.split("\n")
    assert kept[:-1] == wanted[:len(kept) - 1], "a prefix of whole lines"
    assert "line 000999" not in got.decode()
    inner = email.message_from_bytes(part, policy=email.policy.compat32)
    assert inner.is_multipart() and len(inner.get_payload()) == 2, inner
    assert not inner.defects, inner.defects


def test_ret_full_with_a_line_over_998_octets_returns_the_headers(todoku, dns, smtp_peer):
    """RET=FULL of an original with a body line over 998 octets (accepted:
    DESIGN §7): returning it would have it folded on the way, so the
    bounce carries the header only, as text/rfc822-headers, says why, and
    no line of the bounce passes 998 octets."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    long_line = "L" * 1500
    _txn(d, "someone@localhost", [("gone@hard.test", "")], mail_params="RET=FULL",
         subject="long line return", body="first body line\n%s\nlast\n" % long_line)
    d.wait_delivered("someone", 1, timeout=20)
    raw = _reports(d)[0]
    _, _, rcpts, third = _parse(raw)
    assert rcpts[0].get("action") == "failed", rcpts
    assert third == "text/rfc822-headers", raw[:3000]
    assert b"Subject: long line return" in raw
    assert b"first body line" not in raw and b"LLLL" not in raw
    flat = b" ".join(raw.replace(b"\r\n", b"\n").split())
    assert (b"Your original message is not attached whole: line 2 of its body "
            b"is 1500 octets long, more than the 998 octets") in flat, raw[:3000]
    assert max(len(ln) for ln in raw.replace(b"\r\n", b"\n").split(b"\n")) <= 998


def test_ret_full_8bit_original_returned_unchanged_with_8bitmime(todoku, dns, smtp_peer):
    """A signed 8-bit original goes back byte for byte (never re-encoded),
    so the bounce is 8bit and is sent with BODY=8BITMIME (RFC 6152)."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    back = _peer_world(dns, smtp_peer, "return.test")
    d = todoku(dns_servers=[dns.addr])
    body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 signed text 7f3a\n".encode() * 3
    c = d.smtp()
    c.ehlo()
    assert c.cmd("MAIL FROM:<writer@return.test> RET=FULL BODY=8BITMIME").code == 250
    assert c.cmd("RCPT TO:<gone@hard.test>").code == 250
    assert c.cmd("DATA").code == 354
    msg = make_message(subject="signed 8bit", sender="writer@return.test",
                       to="gone@hard.test", body=body, extra_headers=(
                           "DKIM-Signature: v=1; a=rsa-sha256; d=return.test; s=s1;\n"
                           "\th=from:to:subject; bh=abc=; b=def=",
                           "MIME-Version: 1.0",
                           "Content-Type: text/plain; charset=utf-8",
                           "Content-Transfer-Encoding: 8bit"))
    assert c.data_bytes(to_crlf_stuffed(msg)).code == 250
    c.quit()
    got = back.wait_messages(1)[0]
    assert got["mail_from"] == "", got
    mail = [x for x in got["session"].commands if x.upper().startswith("MAIL FROM")][0]
    assert "BODY=8BITMIME" in mail.upper(), mail
    assert msg.replace(b"\n", b"\r\n") in got["data"], got["data"][:3000]
    ctype, _ = _third_part(got["data"])
    assert ctype == "message/rfc822"
    top = email.message_from_bytes(got["data"], policy=email.policy.compat32)
    assert top["Content-Transfer-Encoding"] == "8bit", top


def test_envid_and_orcpt_in_a_bounce(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost",
         [("gone@hard.test", "ORCPT=rfc822;Gone+2Bold+40hard.test")],
         mail_params="ENVID=env+2Bid+3D42")
    d.wait_delivered("someone", 1, timeout=20)
    _, msg_fields, rcpts, _ = _parse(_reports(d)[0])
    assert msg_fields.get("original-envelope-id") == "env+id=42", msg_fields
    assert rcpts[0].get("original-recipient") == "rfc822;Gone+old@hard.test", rcpts
    assert rcpts[0].get("action") == "failed", rcpts



def test_utf8_orcpt_decoded_for_people_kept_encoded_in_the_report(todoku, dns, smtp_peer):
    """RFC 6533: ORCPT=utf-8;J\\x{F6}rg... is shown as Jörg in the text
    part and stays in its 7-bit form in Original-Recipient."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr])
    qid = _txn(d, "someone@localhost",
               [("gone@hard.test", "ORCPT=utf-8;J\\x{f6}rg+2Bx@b\\x{E4}r.test")])
    d.wait_delivered("someone", 1, timeout=20)
    raw = _reports(d)[0]
    m, _, rcpts, _ = _parse(raw)
    assert rcpts[0].get("original-recipient") == "utf-8;J\\x{F6}rg\\x{2B}x@b\\x{E4}r.test", rcpts
    text = m.get_payload()[0]
    assert text.get_content_charset() == "utf-8", text
    shown = text.get_payload(decode=True).decode("utf-8")
    assert "Original recipient: <J\u00f6rg+x@b\u00e4r.test>" in shown, shown
    assert "<gone@hard.test>" in shown, shown


def _rcpt_cmds(peer):
    return [c for c in peer.all_commands() if c.upper().startswith("RCPT TO")]


def test_raw_utf8_orcpt_under_smtputf8(todoku, dns, smtp_peer):
    """RFC 6533 §3: ORCPT=utf-8;<raw UTF-8> (utf-8-addr-unitext) is taken
    only in a transaction whose MAIL carried SMTPUTF8, stored in its 7-bit
    form, passed on raw to a next hop that takes this message with
    SMTPUTF8 and in the 7-bit utf-8-addr-xtext form to one that offers
    DSN only, and shown decoded in a bounce."""
    both = smtp_peer(port=25, ehlo=["PIPELINING", "8BITMIME", "DSN", "SMTPUTF8"])
    dsn_only = smtp_peer(port=25, ehlo=["PIPELINING", "8BITMIME", "DSN"],
                         replies={"RCPT": ["550 5.1.1 no such user here"]})
    dns.zone("uni.test", ["@ MX 10 mx", "mx A %s" % both.addr])
    dns.zone("seven.test", ["@ MX 10 mx", "mx A %s" % dsn_only.addr])
    d = todoku(dns_servers=[dns.addr])
    orcpt = "J\u00f6rg+x@b\u00e4r.test"   # the + must travel as \x{2B}
    raw = "ORCPT=utf-8;J\u00f6rg+2Bx@b\u00e4r.test"  # xtext + raw UTF-8
    c = d.smtp()
    c.ehlo()
    # without SMTPUTF8 on MAIL: refused
    assert c.cmd("MAIL FROM:<someone@localhost>").code == 250
    r = c.cmd("RCPT TO:<j\u00fcrgen@uni.test> NOTIFY=FAILURE %s" % raw)
    assert (r.code, r.enh) == (553, "5.6.7"), r   # the UTF-8 address first
    r = c.cmd("RCPT TO:<ascii@uni.test> NOTIFY=FAILURE %s" % raw)
    assert (r.code, r.enh) == (501, "5.5.4"), r
    c.cmd("RSET")
    # with it: taken; the UTF-8 local part makes SMTPUTF8 needed outbound
    assert c.cmd("MAIL FROM:<someone@localhost> SMTPUTF8").code == 250
    r = c.cmd("RCPT TO:<j\u00fcrgen@uni.test> NOTIFY=FAILURE %s" % raw)
    assert r.code == 250, r
    r = c.cmd("RCPT TO:<gone@seven.test> NOTIFY=FAILURE %s" % raw)
    assert r.code == 250, r
    # ill-formed UTF-8, a C1 control, a leading-zero escape: 501
    for bad in (b"a\xc0\xafb@b.test", b"a\xc2\x85b@b.test", b"a\\x{00E4}@b.test"):
        c.send(b"RCPT TO:<x@seven.test> ORCPT=utf-8;" + bad + b"\r\n")
        assert c.read_reply().code == 501, bad
    assert c.cmd("DATA").code == 354
    # ASCII header: only the envelope needs SMTPUTF8 (at uni.test)
    msg = make_message(subject="unitext orcpt", sender="someone@localhost",
                       to="gone@seven.test")
    r = c.data_bytes(to_crlf_stuffed(msg))
    assert r.code == 250, r
    qid = queue_id(r.text)
    c.quit()

    both.wait_messages(1)
    rc = _rcpt_cmds(both)
    assert rc == ["RCPT TO:<j\u00fcrgen@uni.test> NOTIFY=FAILURE "
                  "ORCPT=utf-8;J\u00f6rg\\x{2B}x@b\u00e4r.test"], rc
    assert any(m.upper().startswith("MAIL FROM") and "SMTPUTF8" in m.upper()
               for m in both.all_commands())
    # the DSN-only hop: 7-bit form (no SMTPUTF8 needed for this recipient)
    wait_for(lambda: _rcpt_cmds(dsn_only), 20, "RCPT at the DSN-only hop")
    rc = _rcpt_cmds(dsn_only)
    assert rc[0] == ("RCPT TO:<gone@seven.test> NOTIFY=FAILURE "
                     "ORCPT=utf-8;J\\x{F6}rg\\x{2B}x@b\\x{E4}r.test"), rc
    assert all(ord(ch) < 128 for ch in rc[0]), rc
    # the bounce: 7-bit in Original-Recipient, decoded for people
    d.wait_delivered("someone", 1, timeout=20)
    rep = _reports(d)[0]
    m, _, rcpts, _ = _parse(rep)
    assert rcpts[0].get("original-recipient") == \
        "utf-8;J\\x{F6}rg\\x{2B}x@b\\x{E4}r.test", rcpts
    shown = m.get_payload()[0].get_payload(decode=True).decode("utf-8")
    assert "Original recipient: <%s>" % orcpt in shown, shown
    assert qid


def test_notify_success_local_delivery_reports_delivered(todoku):
    d = todoku()
    _txn(d, "someone@localhost",
         [("alice@localhost", "NOTIFY=SUCCESS ORCPT=rfc822;Alice+40localhost"),
          ("bob@localhost", "")],
         mail_params="ENVID=ticket-7")
    d.wait_delivered("alice", 1, timeout=20)
    d.wait_delivered("bob", 1, timeout=20)
    d.wait_delivered("someone", 1, timeout=20)
    d.wait_queue_settled(20)
    reports = _reports(d)
    assert len(reports) == 1, "one report, for alice only (bob asked for nothing)"
    m, msg_fields, rcpts, third = _parse(reports[0])
    assert msg_fields.get("original-envelope-id") == "ticket-7", msg_fields
    assert len(rcpts) == 1, rcpts
    assert rcpts[0].get("action") == "delivered", rcpts
    assert rcpts[0].get("status", "").startswith("2."), rcpts
    assert rcpts[0].get("original-recipient") == "rfc822;Alice@localhost", rcpts
    assert rcpts[0].get("final-recipient") == "rfc822; alice@localhost", rcpts
    # a success report returns headers only
    assert third in (None, "text/rfc822-headers"), third
    rp = m.get_all("Return-Path") or []
    assert rp and all(v.strip() == "<>" for v in rp), rp


def test_original_recipient_without_orcpt_is_what_the_client_gave(todoku):
    d = todoku(aliases="team@localhost: alice@localhost")
    _txn(d, "someone@localhost", [("team@localhost", "NOTIFY=SUCCESS")])
    d.wait_delivered("alice", 1, timeout=20)
    d.wait_delivered("someone", 1, timeout=20)
    _, _, rcpts, _ = _parse(_reports(d)[0])
    assert rcpts[0].get("action") == "delivered", rcpts
    assert rcpts[0].get("original-recipient") == "rfc822;team@localhost", rcpts
    assert rcpts[0].get("final-recipient") == "rfc822; alice@localhost", rcpts



def test_alias_to_several_addresses_reports_expanded(todoku, dns, smtp_peer):
    """RFC 3461 §6.2.7.3 / RFC 3464 Action: expanded: a NOTIFY=SUCCESS
    recipient that is an alias for several addresses gets one "expanded"
    report; its addresses get the NOTIFY without SUCCESS (no "delivered"
    report each), FAILURE still holds (a bounce for the one that fails)."""
    _peer_world(dns, smtp_peer, "hard.test",
                replies={"RCPT": ["550 5.1.1 no such user here"]})
    d = todoku(dns_servers=[dns.addr],
               aliases="team@localhost: alice@localhost, gone@hard.test\n"
                       "solo@localhost: bob@localhost")
    _txn(d, "someone@localhost",
         [("team@localhost", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Team+40localhost"),
          ("solo@localhost", "NOTIFY=SUCCESS")],
         mail_params="ENVID=exp-1")
    d.wait_delivered("alice", 1, timeout=20)
    d.wait_delivered("bob", 1, timeout=20)
    d.wait_delivered("someone", 3, timeout=20)
    d.wait_queue_settled(20)
    got = {}
    reports = _reports(d)
    assert len(reports) == 3, [r[:400] for r in reports]  # none for alice
    for raw in reports:
        _, msg_fields, rcpts, third = _parse(raw)
        assert len(rcpts) == 1, rcpts
        assert msg_fields.get("original-envelope-id") == "exp-1", msg_fields
        got[rcpts[0]["action"]] = (rcpts[0], third, raw)
    assert sorted(got) == ["delivered", "expanded", "failed"], got.keys()
    exp, third, raw = got["expanded"]
    assert exp["final-recipient"] == "rfc822; team@localhost", exp
    assert exp["original-recipient"] == "rfc822;Team@localhost", exp
    assert exp["status"].startswith("2."), exp
    assert third in (None, "text/rfc822-headers"), third
    # the one-address alias is forwarding, not expansion: its final
    # recipient's own "delivered" report, as before
    assert got["delivered"][0]["final-recipient"] == "rfc822; bob@localhost"
    assert got["failed"][0]["final-recipient"] == "rfc822; gone@hard.test"
    assert got["failed"][0]["original-recipient"] == "rfc822;Team@localhost"


def test_no_success_report_to_the_null_sender(todoku):
    d = todoku()
    _txn(d, "", [("alice@localhost", "NOTIFY=SUCCESS")])
    d.wait_delivered("alice", 1, timeout=20)
    d.wait_queue_settled(20)
    for user in ("someone", "alice", "bob"):
        assert _reports(d, user) == [], user


def test_success_to_a_peer_without_dsn_reports_relayed(todoku, dns, smtp_peer):
    peer = _peer_world(dns, smtp_peer, "plain.test")  # default EHLO: no DSN
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost",
         [("friend@plain.test", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend+40plain.test")],
         mail_params="RET=FULL ENVID=e1")
    peer.wait_messages(1)
    d.wait_delivered("someone", 1, timeout=20)
    _, msg_fields, rcpts, _ = _parse(_reports(d)[0])
    assert rcpts[0].get("action") == "relayed", rcpts
    assert rcpts[0].get("original-recipient") == "rfc822;friend@plain.test", rcpts
    assert msg_fields.get("original-envelope-id") == "e1"
    cmds = "\n".join(peer.sessions[0].commands)
    assert "NOTIFY" not in cmds and "ORCPT" not in cmds, cmds
    assert "RET=" not in cmds and "ENVID" not in cmds, cmds


def test_parameters_passed_to_a_peer_with_dsn(todoku, dns, smtp_peer):
    peer = _peer_world(dns, smtp_peer, "dsn.test",
                       ehlo=("PIPELINING", "8BITMIME", "SIZE 10485760", "DSN"))
    d = todoku(dns_servers=[dns.addr])
    _txn(d, "someone@localhost",
         [("a@dsn.test", "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A+2Bx+40dsn.test"),
          ("b@dsn.test", "NOTIFY=NEVER"),
          ("c@dsn.test", "")],
         mail_params="RET=HDRS ENVID=id+20with+2Bspace")
    peer.wait_messages(1)
    d.wait_queue_settled(20)
    cmds = peer.sessions[0].commands
    mail = [c for c in cmds if c.upper().startswith("MAIL FROM")][0]
    assert "RET=HDRS" in mail and "ENVID=id+20with+2Bspace" in mail, mail
    rcpt = {re.search(r"<([^>]*)>", c).group(1): c for c in cmds
            if c.upper().startswith("RCPT TO")}
    assert "NOTIFY=SUCCESS,DELAY" in rcpt["a@dsn.test"], rcpt
    assert "ORCPT=rfc822;A+2Bx@dsn.test" in rcpt["a@dsn.test"], rcpt
    assert "NOTIFY=NEVER" in rcpt["b@dsn.test"], rcpt
    assert "NOTIFY" not in rcpt["c@dsn.test"], rcpt
    # the next hop reports success itself: no "relayed" report from us
    time.sleep(1)
    assert _reports(d) == []


@pytest.mark.slow  # skipped in the sanitizer pass (make check)
def test_delay_warning_honours_notify_per_recipient(todoku, dns, smtp_peer):
    _peer_world(dns, smtp_peer, "slow.test",
                replies={"RCPT": ["450 4.5.0 Mail system is Busy"]})
    d = todoku(dns_servers=[dns.addr],
               overrides={"queue": {"retry": "1s", "warn-after": "2s",
                                    "give-up-after": "30s"}})
    _txn(d, "someone@localhost",
         [("quiet@slow.test", "NOTIFY=FAILURE"),
          ("loud@slow.test", ""),
          ("loud2@slow.test", "NOTIFY=DELAY")])
    d.wait_delivered("someone", 1, timeout=20)
    time.sleep(3)  # further retries: no second warning for this event
    reports = _reports(d)
    assert len(reports) == 1, "one warning per message per event"
    _, _, rcpts, _ = _parse(reports[0])
    finals = sorted(r.get("final-recipient") for r in rcpts)
    assert finals == ["rfc822; loud2@slow.test", "rfc822; loud@slow.test"], rcpts
    assert all(r.get("action") == "delayed" for r in rcpts), rcpts


def test_queue_show_prints_the_parameters(todoku, faulty_dns):
    faulty_dns.default = "servfail"  # the mail stays queued
    d = todoku(dns_servers=[faulty_dns.addr])
    qid = _txn(d, "someone@localhost",
               [("x@example.org", "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;X+40example.org"),
                ("y@example.org", "")],
               mail_params="RET=FULL ENVID=abc+2B1")
    m = d.cli("queue", "show", qid, "--json")
    assert (m["dsn_ret"], m["dsn_envid"]) == ("FULL", "abc+1"), m
    rc = {r["address"]: r for r in m["recipients"]}
    assert rc["x@example.org"]["dsn_notify"] == "SUCCESS,DELAY", rc
    assert rc["x@example.org"]["dsn_orcpt"] == "rfc822;X@example.org", rc
    assert (rc["y@example.org"]["dsn_notify"], rc["y@example.org"]["dsn_orcpt"]) == ("", "")
    text = d.cli("queue", "show", qid)
    assert "dsn: ret FULL, envid abc+1" in text, text
    assert "dsn: notify SUCCESS,DELAY, orcpt rfc822;X@example.org" in text, text
