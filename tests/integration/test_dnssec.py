"""[dns] resolver = recursive and dnssec = validate, in a private DNS tree.

Two knotd instances on loopback: the fixture `dns` serves a root zone "."
(signed), a second one serves the TLDs "signed." (signed, its DS in the
root), "bogus." (signed, but the root holds a DS of another key) and
"plain." (unsigned, no DS). todoku resolves from the root itself
(root-hints names only the first knotd) and trusts the root key through a
trust-anchor file made from what knotd serves. Nothing leaves loopback.
"""
import dns.dnssec as dnssec
import dns.name as dnsname
import pytest

from world import KnotDNS, make_message, queue_id
from world.roles import wait_for

SENDER = "someone@localhost"


@pytest.fixture
def tree(dns, tmp_world, smtp_peer):
    """-> (paths dict, {tld: peer})."""
    child = KnotDNS(tmp_world / "child")
    try:
        peers = {}
        for tld, signed in (("signed", True), ("bogus", True), ("plain", False)):
            peers[tld] = smtp_peer(port=25, data_reply="451 4.3.0 not today")
            child.zone(tld, ["@ NS ns", "ns A %s" % child.addr, "@ MX 10 mx",
                             "mx A %s" % peers[tld].addr], signed=signed)
        ds = {}
        for tld in ("signed", "bogus"):
            key = [k for k in child.dnskeys(tld) if k.flags & 1][0]
            ds[tld] = dnssec.make_ds(dnsname.from_text(tld + "."), key, "SHA256")
        # the root's DS for bogus. is the DS of signed.'s key: no match
        root = ["@ SOA a.root. h.root. 1 3600 600 86400 60", "@ NS a.root.",
                "a.root. A %s" % dns.addr]
        for tld in ("signed", "bogus", "plain"):
            root += ["%s. NS ns.%s." % (tld, tld), "ns.%s. A %s" % (tld, child.addr)]
        root.append("signed. DS %s" % ds["signed"])
        root.append("bogus. DS %d %d %d %s" % (
            ds["bogus"].key_tag, ds["signed"].algorithm, ds["signed"].digest_type,
            ds["signed"].digest.hex()))
        dns.zone(".", root, signed=True)
        ta = tmp_world / "root.key"
        ta.write_text("".join(". 300 IN DNSKEY %s\n" % k for k in dns.dnskeys(".")))
        hints = tmp_world / "root.hints"
        hints.write_text(". 3600000 NS a.root.\na.root. 3600000 A %s\n" % dns.addr)
        for f in (ta, hints):
            f.chmod(0o644)
        yield {"trust-anchor-file": str(ta), "root-hints": str(hints)}, peers
    finally:
        child.stop()


def _send(d, rcpt):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject="dnssec", body="hi\n",
                                                 sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _first_attempt(d, qid, rcpt, timeout=40):
    import json

    def probe():
        r = d.cli_run("queue", "show", qid, "--json")
        assert r.returncode == 0, r
        for rc in json.loads(r.stdout)["recipients"]:
            if rc["address"] == rcpt and rc.get("history"):
                return rc
        return None
    return wait_for(probe, timeout, "an attempt for %s" % rcpt)


def _sec(h, qtype, qname):
    """The DNSSEC state the attempt record gives the answer for qname."""
    (q,) = [q for q in h["record"]["dns"]
            if q["qtype"] == qtype and q["qname"].rstrip(".") == qname]
    return q["dnssec"]


def _replies(h):
    """The recipient's reply and every reply of the record's dialogue."""
    return " ".join([h["reply"]] + [t["reply"] or "" for t in h["record"]["dialogue"]])


def _daemon(todoku, files, dnssec):
    dns_sect = {"resolver": "recursive", "root-hints": files["root-hints"],
                "dnssec": dnssec, "trust-anchor-file": files["trust-anchor-file"]}
    return todoku(dns_servers=[], overrides={"dns": dns_sect})


def test_validate_secure_reaches_mx_and_records_secure(todoku, tree):
    files, peers = tree
    d = _daemon(todoku, files, "validate")
    qid = _send(d, "user@signed")
    rc = _first_attempt(d, qid, "user@signed")
    h = rc["history"][0]
    assert "4.3.0 not today" in _replies(h), rc  # the MX of signed. was reached
    assert _sec(h, "MX", "signed") == "secure", rc
    assert _sec(h, "A", "mx.signed") == "secure", rc
    assert peers["signed"].connections >= 1


def test_validate_bogus_defers_and_never_connects(todoku, tree):
    files, peers = tree
    d = _daemon(todoku, files, "validate")
    qid = _send(d, "user@bogus")
    rc = _first_attempt(d, qid, "user@bogus")
    h = rc["history"][0]
    assert rc["state"] == "deferred", rc
    assert h["status"] == "4.4.3", rc
    assert _sec(h, "MX", "bogus") == "bogus", rc
    # text for people: a space is a space, not a DNS presentation \032
    assert "failed temporarily (DNSSEC bogus);" in h["reply"], rc
    assert "\\0" not in h["reply"] + rc["last_reply"], rc
    assert peers["bogus"].connections == 0, peers["bogus"].transcript()
    assert d.maildir("someone") == []


def test_validate_unsigned_zone_is_insecure(todoku, tree):
    files, peers = tree
    d = _daemon(todoku, files, "validate")
    qid = _send(d, "user@plain")
    rc = _first_attempt(d, qid, "user@plain")
    assert "4.3.0 not today" in _replies(rc["history"][0]), rc
    assert _sec(rc["history"][0], "MX", "plain") == "insecure", rc


def test_recursive_without_dnssec_delivers_even_to_bogus(todoku, tree):
    files, peers = tree
    d = _daemon(todoku, files, "no")
    qid = _send(d, "user@bogus")
    rc = _first_attempt(d, qid, "user@bogus")
    assert peers["bogus"].connections >= 1, rc
    assert {q["dnssec"] for q in rc["history"][0]["record"]["dns"]} == \
        {"unchecked"}, rc
