"""todoku check spf / check dkim / dkim keygen against the real DNS of the
test world (knotd), the scripted faulty DNS, and dkimpy as the signer."""
import base64
import json
import os
import pathlib
import re
import stat
import subprocess

import dkim
import yaml

from world import todoku_bin

SUITE = pathlib.Path("/work/shared/corpora/spf/rfc7208-tests.yml")


def run(*args, stdin=None, timeout=60):
    return subprocess.run([todoku_bin()] + [str(a) for a in args], input=stdin,
                          capture_output=True, timeout=timeout)


def spf(server, ip, mail_from, helo=None, json_out=False, extra=()):
    args = ["check", "spf", "--ip", ip, "--mail-from", mail_from, "--dns", server]
    if helo is not None:
        args += ["--helo", helo]
    if json_out:
        args.append("--json")
    r = run(*(args + list(extra)))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    if json_out:
        return json.loads(r.stdout)
    out = {}
    for line in r.stdout.decode().splitlines():
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def zone_string(s):
    """A zone-file character-string for s (bytes), split at 255 octets."""
    parts = []
    for i in range(0, max(len(s), 1), 255):
        chunk = s[i:i + 255]
        esc = "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c)
                      else "\\%03d" % b for b in chunk)
        parts.append('"%s"' % esc)
    return " ".join(parts)


def txt(s):
    return zone_string(s.encode() if isinstance(s, str) else s)


# ---------------------------------------------------------------------------
# SPF
# ---------------------------------------------------------------------------

def test_spf_pass_ip4(dns):
    dns.zone("spf1.test", ['@ TXT "v=spf1 ip4:192.0.2.0/24 -all"'])
    r = spf(dns.addr, "192.0.2.7", "alice@spf1.test", helo="mx.spf1.test")
    assert r["result"] == "pass"
    assert r["mechanism"] == "ip4:192.0.2.0/24"
    assert "matched in spf1.test" in r["reason"]
    j = spf(dns.addr + ":53", "192.0.2.7", "alice@spf1.test", json_out=True)
    assert j["result"] == "pass" and j["domain"] == "spf1.test"
    assert j["mechanism"] == "ip4:192.0.2.0/24" and j["explanation"] is None
    assert j["dns_queries"] >= 1


def test_spf_fail_with_explanation(dns):
    dns.zone("spf2.test", [
        '@ TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why._spf.%{d}"',
        'why._spf TXT "%{i} is not one of the %{d} mail servers"',
    ])
    r = spf(dns.addr, "198.51.100.9", "bob@spf2.test")
    assert r["result"] == "fail"
    assert r["mechanism"] == "-all"
    assert r["explanation"] == "198.51.100.9 is not one of the spf2.test mail servers"
    j = spf(dns.addr, "198.51.100.9", "bob@spf2.test", json_out=True)
    assert j["result"] == "fail"
    assert j["explanation"] == "198.51.100.9 is not one of the spf2.test mail servers"


def test_spf_include_chain_softfail_redirect(dns):
    dns.zone("spf3.test", [
        '@ TXT "v=spf1 include:_a.spf3.test ~all"',
        '_a TXT "v=spf1 include:_b.spf3.test -all"',
        '_b TXT "v=spf1 ip4:203.0.113.0/28 -all"',
        'redir TXT "v=spf1 redirect=_b.spf3.test"',
    ])
    r = spf(dns.addr, "203.0.113.5", "c@spf3.test")
    assert r["result"] == "pass"
    assert "include:_a.spf3.test" in r["reason"]
    assert "ip4:203.0.113.0/28" in r["reason"]
    r = spf(dns.addr, "203.0.113.99", "c@spf3.test")
    assert r["result"] == "softfail" and r["mechanism"] == "~all"
    r = spf(dns.addr, "203.0.113.5", "c@redir.spf3.test")
    assert r["result"] == "pass" and r["domain"] == "redir.spf3.test"
    r = spf(dns.addr, "203.0.113.99", "c@redir.spf3.test")
    assert r["result"] == "fail"
    assert "_b.spf3.test" in r["reason"]


def test_spf_null_sender_checks_helo(dns):
    dns.zone("spf4.test", ['mx TXT "v=spf1 ip4:192.0.2.44 -all"'])
    r = spf(dns.addr, "192.0.2.44", "", helo="mx.spf4.test")
    assert r["result"] == "pass" and r["domain"] == "mx.spf4.test"


def test_spf_none(dns):
    dns.zone("spf5.test", ['@ A 192.0.2.1'])
    r = spf(dns.addr, "192.0.2.1", "x@spf5.test")
    assert r["result"] == "none"


def test_spf_servfail_is_temperror(faulty_dns):
    faulty_dns.default = "servfail"
    r = spf(faulty_dns.addr, "192.0.2.1", "x@broken.test")
    assert r["result"] == "temperror", r


def test_spf_time_limit(faulty_dns):
    faulty_dns.rule("slow.test", "TXT", "timeout")
    r = run("check", "spf", "--ip", "192.0.2.1", "--mail-from", "x@slow.test",
            "--dns", faulty_dns.addr, "--timeout", "2", "--json", timeout=30)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["result"] == "temperror"
    # ended by the evaluation's own deadline, not by the resolver giving
    # up on its own (libunbound would, after ~18 s, with another reason)
    assert "no answer within 2 s" in json.dumps(out), out


def test_spf_dns_from_config(dns, tmp_world):
    dns.zone("spf6.test", ['@ TXT "v=spf1 -all"'])
    conf = tmp_world / "todoku.conf"
    conf.write_text('[server]\nhostname = mx.test\nspool = %s/spool\n'
                    '[listen "smtp"]\naddress = 127.0.0.1:2525\n'
                    '[dns]\nservers = %s:53\n' % (tmp_world, dns.addr))
    r = run("check", "spf", "--ip", "192.0.2.1", "--mail-from", "x@spf6.test",
            "-c", conf)
    assert r.returncode == 0, r.stderr
    assert b"result: fail" in r.stdout


def test_spf_usage_errors():
    r = run("check", "spf", "--mail-from", "a@b.test")
    assert r.returncode == 64 and b"--ip" in r.stderr
    r = run("check", "spf", "--ip", "192.0.2.300", "--mail-from", "a@b.test")
    assert r.returncode == 64 and b"not an IPv4 or IPv6 address" in r.stderr
    r = run("check", "spf", "--ip", "192.0.2.1")
    assert r.returncode == 64 and b"--mail-from" in r.stderr
    r = run("check", "spf", "--ip", "192.0.2.1", "--mail-from", "",)
    assert r.returncode == 64 and b"--helo" in r.stderr
    r = run("check", "spf", "--ip", "192.0.2.1", "--mail-from", "a@b.test",
            "--dns", "not-an-address")
    assert r.returncode == 64 and b"--dns" in r.stderr
    r = run("check", "spf", "--bogus")
    assert r.returncode == 64
    r = run("check", "nothing")
    assert r.returncode == 64


# RFC 7208 suite samples, their zone data served by knotd (SPF-type records
# are published as TXT, as the suite's drivers do).
SUITE_CASES = [
    ("Include mechanism semantics and syntax", "include-fail"),
    ("Include mechanism semantics and syntax", "include-softfail"),
    ("Include mechanism semantics and syntax", "include-neutral"),
    ("Include mechanism semantics and syntax", "include-none"),
    ("IP4 mechanism syntax", "ip4-mapped-ip6"),
    ("Semantics of exp and other modifiers", "include-ignores-exp"),
    ("Semantics of exp and other modifiers", "redirect-cancels-prior-exp"),
    ("Semantics of exp and other modifiers", "redirect-implicit"),
]


def suite_zones(zonedata):
    """{zone: [lines]} from a scenario's zonedata (zone = last two labels)."""
    zones = {}
    for name, recs in zonedata.items():
        if any(r == "TIMEOUT" for r in recs):
            continue
        owner = name.rstrip(".").lower() + "."
        zone = ".".join(owner.rstrip(".").split(".")[-2:])
        lines = zones.setdefault(zone, [])
        has_txt = any(isinstance(r, dict) and "TXT" in r for r in recs)
        for r in recs:
            (typ, val), = r.items()
            if typ == "SPF" and has_txt:
                continue
            if typ in ("SPF", "TXT"):
                vals = val if isinstance(val, list) else [val]
                strings = " ".join(txt(v.encode("latin-1") if isinstance(v, str) else v)
                                   for v in vals)
                lines.append("%s TXT %s" % (owner, strings))
            elif typ in ("A", "AAAA"):
                lines.append("%s %s %s" % (owner, typ, val))
            elif typ == "MX":
                lines.append("%s MX %d %s." % (owner, val[0], val[1].rstrip(".")))
            elif typ in ("CNAME", "PTR"):
                lines.append("%s %s %s." % (owner, typ, val.rstrip(".")))
    return zones


def test_spf_rfc7208_suite_sample(dns):
    docs = {d["description"]: d for d in yaml.safe_load_all(SUITE.read_text())}
    served = set()
    checked = 0
    for scenario, name in SUITE_CASES:
        sc = docs[scenario]
        if scenario not in served:
            for zone, lines in suite_zones(sc["zonedata"]).items():
                dns.zone(zone, lines)
            served.add(scenario)
        case = sc["tests"][name]
        r = spf(dns.addr, case["host"], case["mailfrom"], helo=case.get("helo"),
                json_out=True)
        want = case["result"]
        want = want if isinstance(want, list) else [want]
        assert r["result"] in want, (name, r)
        exp = case.get("explanation")
        if exp and exp != "DEFAULT" and r["result"] == "fail":
            assert r["explanation"] == exp, (name, r)
        checked += 1
    assert checked == len(SUITE_CASES)


# ---------------------------------------------------------------------------
# DKIM
# ---------------------------------------------------------------------------

MESSAGE = (b"From: Alice <alice@dkim.test>\r\n"
           b"To: bob@example.test\r\n"
           b"Subject: keygen round trip\r\n"
           b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
           b"Message-ID: <1@dkim.test>\r\n"
           b"\r\n"
           b"Hello Bob,\r\n"
           b"this body is signed.\r\n")


def keygen(tmp_world, selector, ed25519=False, domain="dkim.test"):
    args = ["dkim", "keygen", "--domain", domain, "--selector", selector,
            "--out", tmp_world]
    if ed25519:
        args.append("--ed25519")
    r = run(*args)
    assert r.returncode == 0, r.stderr
    record = r.stdout.decode()
    key = tmp_world / ("%s.%s.key" % (selector, domain))
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    owner = record.split()[0]
    assert owner == "%s._domainkey.%s." % (selector, domain)
    assert " IN TXT (" in record
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', record)
    assert strings and all(len(s) <= 255 for s in strings)
    joined = "".join(strings)
    assert joined.startswith("v=DKIM1; k=%s; p=" % ("ed25519" if ed25519 else "rsa"))
    return key, strings


def publish(dns, domain, selector, strings):
    dns.zone(domain, ['%s._domainkey TXT %s' % (selector, " ".join('"%s"' % s for s in strings))])


def check_dkim(dns, *args, stdin=None):
    r = run("check", "dkim", *args, "--dns", dns.addr, stdin=stdin)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout.decode()


def test_dkim_keygen_rsa_sign_verify(dns, tmp_world):
    key, strings = keygen(tmp_world, "s2025")
    assert len(strings) >= 2          # a 2048-bit key needs two strings
    publish(dns, "dkim.test", "s2025", strings)
    signed = dkim.sign(MESSAGE, b"s2025", b"dkim.test", key.read_bytes())
    msg = signed + MESSAGE
    # on disk with LF line ends, as files usually are
    f = tmp_world / "signed.eml"
    f.write_bytes(msg.replace(b"\r\n", b"\n"))
    out = check_dkim(dns, f)
    assert out.startswith("pass: "), out
    assert "d=dkim.test s=s2025" in out and "2048-bit key" in out
    j = json.loads(check_dkim(dns, f, "--json"))
    assert len(j["signatures"]) == 1
    s = j["signatures"][0]
    assert (s["result"], s["domain"], s["selector"], s["key_bits"]) == \
        ("pass", "dkim.test", "s2025", 2048)
    assert s["algorithm"] == "rsa-sha256"
    # the same message on stdin with CRLF
    assert check_dkim(dns, "-", stdin=msg).startswith("pass: ")
    # tampered body
    bad = msg.replace(b"this body is signed.", b"this body was changed")
    out = check_dkim(dns, "-", stdin=bad)
    assert out.startswith("fail: body hash did not verify"), out


def test_dkim_keygen_ed25519_sign_verify(dns, tmp_world):
    key, strings = keygen(tmp_world, "ed1", ed25519=True)
    publish(dns, "dkim.test", "ed1", strings)
    der = base64.b64decode(b"".join(l for l in key.read_bytes().splitlines()
                                    if not l.startswith(b"-----")))
    seed = base64.b64encode(der[-32:])   # dkimpy takes the raw seed
    signed = dkim.sign(MESSAGE, b"ed1", b"dkim.test", seed,
                       signature_algorithm=b"ed25519-sha256")
    out = check_dkim(dns, "-", stdin=signed + MESSAGE)
    assert out.startswith("pass: "), out
    assert "a=ed25519-sha256" in out
    # a key that is not published: the lookup finds nothing
    signed = dkim.sign(MESSAGE, b"nokey", b"dkim.test", seed,
                       signature_algorithm=b"ed25519-sha256")
    out = check_dkim(dns, "-", stdin=signed + MESSAGE)
    assert out.startswith("permerror: "), out
    assert "s=nokey" in out


def test_dkim_none_and_errors(dns, tmp_world):
    out = check_dkim(dns, "-", stdin=MESSAGE)
    assert out.startswith("none"), out
    assert json.loads(check_dkim(dns, "-", "--json", stdin=MESSAGE)) == {"signatures": []}
    r = run("check", "dkim", tmp_world / "missing.eml", "--dns", dns.addr)
    assert r.returncode == 1 and b"cannot read" in r.stderr
    r = run("check", "dkim", "a.eml", "b.eml")
    assert r.returncode == 64


def test_dkim_keygen_refuses_overwrite_and_bad_names(tmp_world):
    keygen(tmp_world, "once")
    key = tmp_world / "once.dkim.test.key"
    before = key.read_bytes()
    r = run("dkim", "keygen", "--domain", "dkim.test", "--selector", "once",
            "--out", tmp_world)
    assert r.returncode == 1 and b"already exists" in r.stderr
    assert key.read_bytes() == before
    r = run("dkim", "keygen", "--domain", "dkim.test")
    assert r.returncode == 64 and b"--selector" in r.stderr
    r = run("dkim", "keygen", "--domain", "../etc", "--selector", "x",
            "--out", tmp_world)
    assert r.returncode == 64
    r = run("dkim", "keygen", "--domain", "dkim.test", "--selector", "a/b",
            "--out", tmp_world)
    assert r.returncode == 64
    r = run("dkim", "frobnicate")
    assert r.returncode == 64


# ---------------------------------------------------------------------------
# DMARC
# ---------------------------------------------------------------------------

def dmarc_message(from_="Alice <alice@dm.test>", extra=b""):
    return (("From: %s\r\n" % from_).encode() + extra +
            b"To: bob@example.test\r\n"
            b"Subject: dmarc check\r\n"
            b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            b"Message-ID: <dmarc@dm.test>\r\n"
            b"\r\n"
            b"Hello Bob.\r\n")


def check_dmarc(dns, ip, mail_from, msg, helo=None, json_out=False):
    args = ["check", "dmarc", "--ip", ip, "--mail-from", mail_from,
            "--dns", dns.addr, "-"]
    if helo is not None:
        args += ["--helo", helo]
    if json_out:
        args.append("--json")
    r = run(*args, stdin=msg)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    if json_out:
        return json.loads(r.stdout)
    out = {}
    for line in r.stdout.decode().splitlines():
        k, _, v = line.partition(": ")
        out.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def test_dmarc_pass_by_aligned_spf(dns):
    dns.zone("dm1.test", [
        '@ TXT "v=spf1 -all"',
        'mail TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ])
    # relaxed alignment walks up to _dmarc.test: served (NXDOMAIN) like a
    # real TLD would, else the walk ends in temperror
    dns.zone("test", [])
    msg = dmarc_message("Alice <alice@dm1.test>")
    r = check_dmarc(dns, "192.0.2.5", "bounce@mail.dm1.test", msg)
    assert r["dmarc"] == "pass", r
    assert r["from-domain"] == "dm1.test"
    assert r["policy"] == "reject (p= at dm1.test)"
    assert r["disposition"] == "none"
    assert r["aligned"] == "spf (relaxed) mail.dm1.test", r
    assert r["spf"].startswith("pass (mailfrom mail.dm1.test: ")
    assert r["dkim"].startswith("none")
    assert r["authentication-results"] == \
        "dmarc=pass (p=reject) header.from=dm1.test"
    j = check_dmarc(dns, "192.0.2.5", "bounce@mail.dm1.test", msg,
                    json_out=True)
    assert j["result"] == "pass" and j["applicable"] is True
    assert j["aligned"] == {"spf": {"domain": "mail.dm1.test",
                                    "mode": "relaxed"}, "dkim": None}
    assert (j["policy"], j["policy_tag"], j["policy_domain"]) == \
        ("reject", "p", "dm1.test")
    assert j["spf"]["result"] == "pass" and j["dkim"] == []
    assert j["authentication_results"] == \
        "dmarc=pass (p=reject) header.from=dm1.test"
    # the null sender: SPF checks the HELO name, which aligns too
    r = check_dmarc(dns, "192.0.2.5", "<>", msg, helo="mail.dm1.test")
    assert r["dmarc"] == "pass" and r["spf"].startswith("pass (helo ")


def test_dmarc_pass_by_aligned_dkim_spf_fails(dns, tmp_world):
    key, strings = keygen(tmp_world, "dm", domain="dm2.test")
    dns.zone("dm2.test", [
        '@ TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        '_dmarc TXT "v=DMARC1; p=reject; adkim=s"',
        'dm._domainkey TXT %s' % " ".join('"%s"' % s for s in strings),
    ])
    msg = dmarc_message("Alice <alice@dm2.test>")
    signed = dkim.sign(msg, b"dm", b"dm2.test", key.read_bytes())
    r = check_dmarc(dns, "198.51.100.7", "alice@dm2.test", signed + msg)
    assert r["dmarc"] == "pass", r
    assert r["aligned"] == "dkim (strict) dm2.test", r
    assert r["spf"].startswith("fail (mailfrom dm2.test: "), r
    assert r["dkim"].startswith("pass: signature verified (d=dm2.test s=dm")
    j = check_dmarc(dns, "198.51.100.7", "alice@dm2.test", signed + msg,
                    json_out=True)
    assert j["aligned"]["dkim"] == {"domain": "dm2.test", "mode": "strict"}
    assert j["aligned"]["spf"] is None
    assert j["spf"]["result"] == "fail"
    assert j["dkim"][0]["result"] == "pass"


def test_dmarc_fail_reject(dns):
    dns.zone("dm3.test", [
        '@ TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ])
    msg = dmarc_message("<alice@dm3.test>")
    r = check_dmarc(dns, "203.0.113.9", "alice@dm3.test", msg)
    assert r["dmarc"] == "fail", r
    assert r["policy"] == "reject (p= at dm3.test)"
    assert r["disposition"] == "reject"
    assert r["aligned"] == "none"
    assert r["spf"].startswith("fail ")
    assert r["authentication-results"] == \
        "dmarc=fail (p=reject) header.from=dm3.test"
    j = check_dmarc(dns, "203.0.113.9", "alice@dm3.test", msg, json_out=True)
    assert (j["result"], j["disposition"]) == ("fail", "reject")
    # no record at all: none (the walk ends at _dmarc.test: NXDOMAIN)
    dns.zone("dm3b.test", ['@ TXT "v=spf1 -all"'])
    r = check_dmarc(dns, "203.0.113.9", "a@dm3b.test",
                    dmarc_message("a@dm3b.test"))
    assert r["dmarc"] == "temperror" and "_dmarc.test" in r["reason"], r
    dns.zone("test", [])
    r = check_dmarc(dns, "203.0.113.9", "a@dm3b.test",
                    dmarc_message("a@dm3b.test"))
    assert r["dmarc"] == "none" and "no DMARC record" in r["reason"], r


def test_dmarc_subdomain_sp_and_np(dns):
    dns.zone("dm4.test", [
        '@ TXT "v=spf1 -all"',
        '_dmarc TXT "v=DMARC1; p=none; sp=quarantine; np=reject"',
        'sub A 192.0.2.1',
    ])
    r = check_dmarc(dns, "203.0.113.9", "x@sub.dm4.test",
                    dmarc_message("x@sub.dm4.test"))
    assert r["dmarc"] == "fail", r
    assert r["from-domain"] == "sub.dm4.test"
    assert r["policy"] == "quarantine (sp= at dm4.test)", r
    assert r["disposition"] == "quarantine"
    # a From domain that does not exist (A, AAAA, MX asked): np=
    r = check_dmarc(dns, "203.0.113.9", "x@sub.dm4.test",
                    dmarc_message("x@ghost.dm4.test"))
    assert r["dmarc"] == "fail", r
    assert r["policy"] == "reject (np= at dm4.test)", r
    assert r["disposition"] == "reject"
    # the organizational domain itself: p=
    r = check_dmarc(dns, "203.0.113.9", "x@dm4.test",
                    dmarc_message("x@dm4.test"))
    assert r["policy"] == "none (p= at dm4.test)" and r["disposition"] == "none"


def test_dmarc_testing_lowers_disposition(dns):
    dns.zone("dm5.test", [
        '@ TXT "v=spf1 -all"',
        '_dmarc TXT "v=DMARC1; p=reject; t=y"',
    ])
    r = check_dmarc(dns, "203.0.113.9", "x@dm5.test",
                    dmarc_message("x@dm5.test"))
    assert r["dmarc"] == "fail", r
    assert r["policy"] == "reject (p= at dm5.test)"
    assert r["disposition"].startswith("quarantine (t=y"), r
    assert "dis=quarantine" in r["authentication-results"]
    j = check_dmarc(dns, "203.0.113.9", "x@dm5.test",
                    dmarc_message("x@dm5.test"), json_out=True)
    assert (j["policy"], j["disposition"], j["testing"]) == \
        ("reject", "quarantine", True)


def test_dmarc_several_from_not_applicable(dns):
    dns.zone("dm6.test", [
        '@ TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        '_dmarc TXT "v=DMARC1; p=reject"',
    ])
    msg = dmarc_message("a@dm6.test", extra=b"From: b@other.test\r\n")
    r = check_dmarc(dns, "192.0.2.1", "a@dm6.test", msg)
    assert r["dmarc"] == "none", r
    assert r["reason"].startswith("DMARC does not apply: the message has 2 "
                                  "From header fields"), r
    assert r["spf"].startswith("pass ")
    j = check_dmarc(dns, "192.0.2.1", "a@dm6.test", msg, json_out=True)
    assert j["result"] == "none" and j["applicable"] is False
    assert j["policy"] is None and "2 From header fields" in j["reason"]
    msg = dmarc_message("a@dm6.test").replace(b"From: a@dm6.test\r\n", b"")
    r = check_dmarc(dns, "192.0.2.1", "a@dm6.test", msg)
    assert r["dmarc"] == "none" and "no From header field" in r["reason"]


def test_dmarc_usage_errors():
    r = run("check", "dmarc", "--mail-from", "a@b.test", "-")
    assert r.returncode == 64 and b"--ip" in r.stderr
    r = run("check", "dmarc", "--ip", "192.0.2.1", "-")
    assert r.returncode == 64 and b"--mail-from" in r.stderr
    r = run("check", "dmarc", "--ip", "192.0.2.1", "--mail-from", "a@b.test",
            "--dns", "127.0.0.1", "/nonexistent/message.eml")
    assert r.returncode == 1 and b"cannot read" in r.stderr


# ---------------------------------------------------------------------------
# ARC
# ---------------------------------------------------------------------------

ARC_MESSAGE = (b"Authentication-Results: fwd.test; spf=pass "
               b"smtp.mailfrom=a@orig.test\r\n"
               b"From: Alice <a@orig.test>\r\n"
               b"To: list@fwd.test\r\n"
               b"Subject: forwarded through a list\r\n"
               b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
               b"Message-ID: <arc@orig.test>\r\n"
               b"\r\n"
               b"This body is sealed.\r\n")


def check_arc(dns, msg, json_out=False):
    args = ["check", "arc", "--dns", dns.addr]
    if json_out:
        args.append("--json")
    r = run(*args, stdin=msg)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    if json_out:
        return json.loads(r.stdout)
    return dict(line.partition(": ")[::2]
                for line in r.stdout.decode().splitlines())


def test_arc_pass_fail_none(dns, tmp_world):
    key, strings = keygen(tmp_world, "arc1", domain="fwd.test")
    publish(dns, "fwd.test", "arc1", strings)
    sealed = b"".join(dkim.arc_sign(ARC_MESSAGE, b"arc1", b"fwd.test",
                                    key.read_bytes(), b"fwd.test"))
    assert sealed.startswith(b"ARC-Seal:")
    msg = sealed + ARC_MESSAGE
    f = tmp_world / "sealed.eml"
    f.write_bytes(msg.replace(b"\r\n", b"\n"))
    r = run("check", "arc", f, "--dns", dns.addr)
    assert r.returncode == 0, r.stderr
    out = dict(line.partition(": ")[::2]
               for line in r.stdout.decode().splitlines())
    assert out["arc"] == "pass", out
    assert out["instances"] == "1"
    assert out["authentication-results"].startswith("arc=pass (i=1)")
    j = check_arc(dns, msg, json_out=True)
    assert (j["result"], j["instances"], j["temporary"]) == ("pass", 1, False)
    # the body changed after sealing
    bad = msg.replace(b"This body is sealed.", b"This body was altered")
    out = check_arc(dns, bad)
    assert out["arc"] == "fail", out
    assert "AMS(1)" in out["reason"] and "body" in out["reason"], out
    assert out["authentication-results"].startswith("arc=fail (")
    # no ARC header fields
    out = check_arc(dns, ARC_MESSAGE)
    assert out["arc"] == "none" and out["instances"] == "0", out
    assert out["authentication-results"] == "arc=none"
    assert check_arc(dns, ARC_MESSAGE, json_out=True)["result"] == "none"
