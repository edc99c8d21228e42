"""DMARC aggregate reports (issue 4, RFC 9990 / RFC 7489 section 7.2):
every DMARC evaluation of a message from an untrusted client under a
policy with rua= is kept in the spool (refused p=reject mail too); `todoku
queue dmarc-report` sends one gzipped XML report per policy domain through
the queue to the rua address, after the external-destination check of RFC
7489 section 7.1 (a v=DMARC1 TXT record at
<policy-domain>._report._dmarc.<rua-domain>)."""
import email
import gzip
import re
import xml.etree.ElementTree as ET

from world import make_message
from world.roles import wait_for

NS = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}


def _world(todoku, dns, smtp_peer, authorize=True, extra_queue=None):
    peer = smtp_peer(port=25)
    dns.zone("sender.test", [
        '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        'bounces TXT "v=spf1 -all"',
        '_dmarc TXT "v=DMARC1; p=none; rua=mailto:agg@reports.test"',
    ])
    dns.zone("strict.test", [
        '@ TXT "v=spf1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:agg@reports.test"',
    ])
    reports = ["@ MX 10 mx", "mx A %s" % peer.addr]
    if authorize:
        reports += ['sender.test._report._dmarc TXT "v=DMARC1"',
                    'strict.test._report._dmarc TXT "v=DMARC1"']
    dns.zone("reports.test", reports)
    queue = {"dmarc-reports": "on", "dmarc-report-from": "dmarc@mx.test",
             "dmarc-report-org": "Todoku <Test> & Co"}
    queue.update(extra_queue or {})
    d = todoku(dns_servers=[dns.addr], overrides={
        "server": {"trusted-networks": "10.0.0.0/8"},  # loopback untrusted
        "smtp": {"authserv-id": "mx.test"},
        "queue": queue,
    })
    return d, peer


def _send(d, mail_from, from_hdr, subject, extra=b""):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(mail_from, ["someone@localhost"],
                   extra + make_message(subject=subject, sender=from_hdr,
                                        to="someone@localhost"))
    c.quit()
    return r


# A signature whose key does not exist: DKIM permerror, reported as such.
BAD_SIG = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
           b"d=sender.test; s=nokey; h=from:to:subject;\r\n"
           b"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n")


def _report(peer, domain, timeout=30):
    def probe():
        for m in list(peer.messages):
            if b"Report Domain: " + domain.encode() in m["data"]:
                return m
        return None
    return wait_for(probe, timeout, "a DMARC report for %s" % domain)


def _parse(msg):
    mime = email.message_from_bytes(msg["data"])
    parts = [p for p in mime.walk() if p.get_content_type() == "application/gzip"]
    assert len(parts) == 1, msg["data"][:3000]
    name = parts[0].get_filename()
    xml = gzip.decompress(parts[0].get_payload(decode=True))
    return mime, name, ET.fromstring(xml)


def _rows(root):
    out = []
    for rec in root.findall("d:record", NS):
        row = rec.find("d:row", NS)
        pe = row.find("d:policy_evaluated", NS)
        auth = rec.find("d:auth_results", NS)
        out.append({
            "ip": row.findtext("d:source_ip", namespaces=NS),
            "count": int(row.findtext("d:count", namespaces=NS)),
            "disposition": pe.findtext("d:disposition", namespaces=NS),
            "dkim": pe.findtext("d:dkim", namespaces=NS),
            "spf": pe.findtext("d:spf", namespaces=NS),
            "header_from": rec.findtext("d:identifiers/d:header_from", namespaces=NS),
            "envelope_from": rec.findtext("d:identifiers/d:envelope_from", namespaces=NS),
            "spf_result": auth.findtext("d:spf/d:result", namespaces=NS),
            "spf_domain": auth.findtext("d:spf/d:domain", namespaces=NS),
            "dkim_results": [(k.findtext("d:domain", namespaces=NS),
                              k.findtext("d:selector", namespaces=NS),
                              k.findtext("d:result", namespaces=NS))
                             for k in auth.findall("d:dkim", NS)],
        })
    return out


def test_aggregate_report_counts_and_fields(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer)
    for i in range(3):      # SPF pass, aligned: DMARC pass
        assert _send(d, "a@sender.test", "a@sender.test", "ok %d" % i).code == 250
    for i in range(2):      # SPF fail at bounces.sender.test: DMARC fail, p=none
        assert _send(d, "x@bounces.sender.test", "a@sender.test",
                     "bad %d" % i).code == 250
    # a broken DKIM signature: its own record
    assert _send(d, "a@sender.test", "a@sender.test", "sig", BAD_SIG).code == 250
    # p=reject and failing: refused, and still counted
    r = _send(d, "x@strict.test", "ceo@strict.test", "forged")
    assert r.code == 550 and r.enh == "5.7.1", r
    d.wait_delivered("someone", 6)

    summary = d.cli("queue", "dmarc-report")
    assert "sender.test: 6 messages reported to agg@reports.test" in summary, summary
    assert "strict.test: 1 messages reported to agg@reports.test" in summary, summary

    msg = _report(peer, "sender.test")
    assert msg["rcpts"] == ["agg@reports.test"], msg
    assert msg["mail_from"] == "dmarc@mx.test", msg
    mime, name, root = _parse(msg)
    assert mime.get_content_type() == "multipart/mixed"
    assert re.fullmatch(r"Report Domain: sender\.test Submitter: mx\.test "
                        r"Report-ID: \S+", mime["Subject"]), mime["Subject"]
    assert re.fullmatch(r"mx\.test!sender\.test!\d+!\d+\.xml\.gz", name), name
    md = root.find("d:report_metadata", NS)
    assert md.findtext("d:org_name", namespaces=NS) == "Todoku <Test> & Co"
    assert md.findtext("d:email", namespaces=NS) == "dmarc@mx.test"
    assert mime["Subject"].endswith(md.findtext("d:report_id", namespaces=NS))
    begin = int(md.findtext("d:date_range/d:begin", namespaces=NS))
    end = int(md.findtext("d:date_range/d:end", namespaces=NS))
    assert 0 < begin <= end
    pp = root.find("d:policy_published", NS)
    assert pp.findtext("d:domain", namespaces=NS) == "sender.test"
    assert pp.findtext("d:p", namespaces=NS) == "none"
    assert pp.findtext("d:adkim", namespaces=NS) == "r"
    rows = _rows(root)
    assert sum(r["count"] for r in rows) == 6, rows
    ok = [r for r in rows if r["spf"] == "pass" and not r["dkim_results"]]
    assert len(ok) == 1 and ok[0]["count"] == 3, rows
    assert ok[0]["spf_result"] == "pass" and ok[0]["envelope_from"] == "sender.test"
    assert ok[0]["header_from"] == "sender.test" and ok[0]["disposition"] == "none"
    assert ok[0]["ip"].startswith("127."), ok
    bad = [r for r in rows if r["spf"] == "fail"]
    assert len(bad) == 1 and bad[0]["count"] == 2, rows
    assert bad[0]["spf_result"] == "fail"
    assert bad[0]["spf_domain"] == "bounces.sender.test"
    signed = [r for r in rows if r["dkim_results"]]
    assert len(signed) == 1 and signed[0]["count"] == 1, rows
    assert signed[0]["dkim_results"][0][:2] == ("sender.test", "nokey"), signed
    assert signed[0]["dkim_results"][0][2] != "pass"

    strict = _report(peer, "strict.test")
    _, _, sroot = _parse(strict)
    srows = _rows(sroot)
    assert len(srows) == 1 and srows[0]["count"] == 1, srows
    assert srows[0]["disposition"] == "reject" and srows[0]["spf"] == "fail"
    assert sroot.findtext("d:policy_published/d:p", namespaces=NS) == "reject"

    # rows sent are gone: a second run has nothing to say
    wait_for(lambda: len(peer.messages) >= 2, 10, "both reports")
    again = d.cli("queue", "dmarc-report")
    assert "no DMARC report rows" in again, again
    assert len(peer.messages) == 2


def test_unauthorized_external_destination_gets_nothing(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, authorize=False)
    assert _send(d, "a@sender.test", "a@sender.test", "ok").code == 250
    d.wait_delivered("someone", 1)
    summary = d.cli("queue", "dmarc-report")
    assert "not sent to agg@reports.test" in summary, summary
    log = d.log_text()
    assert re.search(r"dmarc report for sender\.test: not sent to agg@reports\.test: "
                     r".*_report\._dmarc", log), log[-3000:]
    # nothing left in the queue, nothing reached the peer
    assert d.cli("queue", "list", "--json") == []
    assert peer.messages == []


def test_size_limit_suffix_is_honoured(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25)
    dns.zone("sender.test", [
        '@ TXT "v=spf1 ip4:127.0.0.0/8 -all"',
        '_dmarc TXT "v=DMARC1; p=none; rua=mailto:agg@reports.test!1k"',
    ])
    dns.zone("reports.test", ["@ MX 10 mx", "mx A %s" % peer.addr,
                              'sender.test._report._dmarc TXT "v=DMARC1"'])
    d = todoku(dns_servers=[dns.addr], overrides={
        "server": {"trusted-networks": "10.0.0.0/8"},
        "queue": {"dmarc-reports": "on"}})
    assert _send(d, "a@sender.test", "a@sender.test", "ok").code == 250
    d.wait_delivered("someone", 1)
    summary = d.cli("queue", "dmarc-report")
    assert "exceed its size limit of 1024" in summary, summary
    assert peer.messages == []


def test_reporting_off_keeps_nothing(todoku, dns, smtp_peer):
    d, peer = _world(todoku, dns, smtp_peer, extra_queue={"dmarc-reports": "off"})
    assert _send(d, "a@sender.test", "a@sender.test", "ok").code == 250
    d.wait_delivered("someone", 1)
    assert "no DMARC report rows" in d.cli("queue", "dmarc-report")


def test_timer_sends_without_the_cli(todoku, dns, smtp_peer):
    """dmarc-report-interval drives the queue role's own runs."""
    d, peer = _world(todoku, dns, smtp_peer,
                     extra_queue={"dmarc-report-interval": "2s"})
    assert _send(d, "a@sender.test", "a@sender.test", "ok").code == 250
    d.wait_delivered("someone", 1)
    msg = _report(peer, "sender.test", timeout=30)
    _, _, root = _parse(msg)
    assert [r["count"] for r in _rows(root)] == [1]
    assert "DMARC report queued" in d.log_text()
