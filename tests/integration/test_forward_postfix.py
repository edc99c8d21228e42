"""End to end (issue 4, "Tests that must exist"): mail forwarded by todoku
through an alias arrives at a real Postfix with SPF pass thanks to SRS,
with a valid ARC seal and a DKIM signature that dkimpy verifies.

The world, all on loopback:
- knotd serves orig.test (the original sender: an SPF record that does
  not list todoku, a DKIM key, DMARC p=none), mx.test (todoku's hostname,
  so its SRS domain: SPF ip4: todoku's outbound source address, and the
  ARC key) and remote.test (MX = the Postfix below);
- todoku: trusted-networks = 10.0.0.0/8, so the test client on 127.x is a
  stranger; an SRS secret; [dkim "mx.test"] as the ARC sealing key;
  [delivery] source-ipv4 = a loopback address of its own; the alias
  fwd@localhost -> friend@remote.test;
- Postfix as remote.test's MX: virtual Maildir delivery, and Debian's
  policyd-spf (postfix-policyd-spf-python) spawned as a policy service
  that checks SPF; that Postfix runs in a private mount namespace whose
  resolv.conf names only knotd, so policyd-spf (dnspython, the system
  resolver) sees the test DNS.

The message is DKIM-signed for orig.test with dkimpy before it enters
todoku. On the Maildir copy: policyd-spf's Received-SPF says Pass for
the SRS sender; dkimpy's arc_verify (DNS from knotd) passes with our set
at i=1 cv=none; dkimpy's verify passes for the original signature.
"""
import re
import subprocess

from world import make_message
from world.net import alloc_addr
from world.roles import wait_for

POLICYD_SPF = "/usr/bin/policyd-spf"


def _keygen(bin_, tmp, domain, selector):
    out = subprocess.run([bin_, "dkim", "keygen", "--domain", domain, "--selector",
                          selector, "--out", str(tmp)],
                         capture_output=True, check=True).stdout.decode()
    txt = "".join(re.findall(r'"([^"]*)"', out))
    return tmp / ("%s.%s.key" % (selector, domain)), txt


def _zone_txt(txt):
    return " ".join('"%s"' % txt[i:i + 200] for i in range(0, len(txt), 200))


def _knot_txt(knot):
    """dkimpy dnsfunc: TXT records from the test's knotd, nothing else."""
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [knot.addr]
    r.port = knot.port

    def dnsfunc(name, timeout=5):
        try:
            ans = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return None
        for rr in ans:
            return b"".join(rr.strings)
        return None
    return dnsfunc


def _crlf(b):
    return re.sub(rb"(?<!\r)\n", b"\r\n", b)


def _fields(msg, name):
    text = msg.decode("ascii", "replace")
    return [re.sub(r"\s+", " ", v).strip() for v in
            re.findall(r"(?msi)^%s:(.*?)\r?\n(?=\S)" % re.escape(name), text)]


def _receiver(postfix, dns, tmp_world):
    vmail = tmp_world / "vmail"
    vmail.mkdir(mode=0o755)
    subprocess.run(["chown", "nobody:nogroup", str(vmail)], check=True)
    conf = tmp_world / "policyd-spf.conf"
    conf.write_text("debugLevel = 1\n"
                    "TestOnly = 1\n"
                    "HELO_reject = Fail\n"
                    "Mail_From_reject = Fail\n"
                    "PermError_reject = False\n"
                    "TempError_Defer = False\n"
                    # the default skips 127.0.0.0/8: here everything is loopback
                    "skip_addresses = 192.0.2.255/32\n"
                    "Header_Type = SPF\n")
    conf.chmod(0o644)
    pf = postfix("", extra={
        "mydestination": "",
        "virtual_mailbox_domains": "remote.test",
        "virtual_mailbox_base": str(vmail),
        "virtual_mailbox_maps": "static:friend/",
        "virtual_uid_maps": "static:65534",
        "virtual_gid_maps": "static:65534",
        "virtual_minimum_uid": "100",
        "smtpd_recipient_restrictions":
            "reject_unauth_destination, check_policy_service unix:private/policyd-spf",
        "policyd-spf_time_limit": "3600",
    }, master=["policyd-spf/unix = policyd-spf unix - n n - 0 spawn user=nobody "
               "argv=%s %s" % (POLICYD_SPF, conf)],
        resolv=[dns.addr])
    return pf, vmail / "friend" / "new"


def test_forward_reaches_postfix_with_spf_pass_arc_and_dkim(todoku, dns, postfix, tmp_world):
    dkim = __import__("dkim")
    d0 = todoku(start=False)
    src = alloc_addr(ports=())
    orig_key, orig_txt = _keygen(d0.bin, tmp_world, "orig.test", "s1")
    seal_key, seal_txt = _keygen(d0.bin, tmp_world, "mx.test", "arc")
    subprocess.run(["chown", "todoku-keys", str(seal_key)], check=True)
    seal_key.chmod(0o600)
    secret = tmp_world / "srs-secrets"
    secret.write_text("e2e-forward-secret-0123456789\n")
    secret.chmod(0o644)

    pf, maildir = _receiver(postfix, dns, tmp_world)
    dns.zone("orig.test", ['@ TXT "v=spf1 ip4:192.0.2.1 -all"',
                           '_dmarc TXT "v=DMARC1; p=none"',
                           "s1._domainkey TXT %s" % _zone_txt(orig_txt)])
    dns.zone("mx.test", ['@ TXT "v=spf1 ip4:%s -all"' % src,
                         "arc._domainkey TXT %s" % _zone_txt(seal_txt)])
    dns.zone("remote.test", ["@ MX 10 mx", "mx A %s" % pf.addr])

    d = todoku(overrides={"server": {"trusted-networks": "10.0.0.0/8",
                                     "srs-secret-file": str(secret)},
                          "smtp": {"authserv-id": "mx.test"},
                          "delivery": {"source-ipv4": src, "tls": "none"},
                          'dkim "mx.test"': {"selector": "arc", "key": str(seal_key)}},
               aliases="fwd@localhost: friend@remote.test",
               dns_servers=[dns.addr])

    msg = _crlf(make_message(subject="forwarded to postfix", sender="alice@orig.test",
                             to="fwd@localhost", body="Hello from orig.test.\n"))
    sig = dkim.sign(msg, b"s1", b"orig.test", orig_key.read_bytes(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("alice@orig.test", ["fwd@localhost"], sig + msg)
    c.quit()
    assert r.code == 250, r

    files = wait_for(lambda: sorted(maildir.glob("*")) if maildir.is_dir() and
                     any(maildir.iterdir()) else None, 30.0,
                     "the forward in Postfix's Maildir (%s)" % maildir)
    got = files[0].read_bytes()

    # SPF at Postfix: policyd-spf's verdict on the SRS sender from our address
    spf = [f for f in _fields(got, "Received-SPF") if "identity=mailfrom" in f]
    assert len(spf) == 1, got[:3000]
    assert spf[0].startswith("Pass"), spf
    # (policyd-spf prints the sender lowercased)
    m = re.search(r"envelope-from=\"?(srs0=[^;\" ]+=orig\.test=alice@mx\.test)", spf[0], re.I)
    assert m, spf
    assert "client-ip=%s;" % src in spf[0], spf
    rp = _fields(got, "Return-Path")
    assert len(rp) == 1 and rp[0].lower() == "<%s>" % m.group(1).lower(), rp
    assert rp[0].startswith("<SRS0="), rp
    assert "status=sent" in pf.log_text() or "delivered to maildir" in pf.log_text()

    knot = _knot_txt(dns)
    # ARC: our set at i=1, cv=none, and dkimpy validates the chain
    seals = _fields(got, "ARC-Seal")
    assert len(seals) == 1 and "i=1;" in seals[0] and "cv=none;" in seals[0], seals
    assert "d=mx.test;" in seals[0] and "s=arc;" in seals[0], seals
    aar = _fields(got, "ARC-Authentication-Results")
    assert len(aar) == 1 and aar[0].startswith("i=1; mx.test; spf=fail"), aar
    assert "dkim=pass" in aar[0] and "header.d=orig.test" in aar[0], aar
    cv, results, comment = dkim.arc_verify(_crlf(got), dnsfunc=knot)
    assert cv == b"pass", (cv, results, comment)

    # the original DKIM signature survived the forward
    assert dkim.verify(_crlf(got), dnsfunc=knot), "dkimpy: original signature broken"
