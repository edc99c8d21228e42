#!/usr/bin/python3
"""DKIM conformance: run every applicable vector of $TODOKU_CORPORA/dkim
through dkim_tool and print counts per set. Exit 1 on any unexpected
result. The corpus is read in place (never copied); see README.md here.

usage: run_corpus.py DKIM_TOOL
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPORA = pathlib.Path(os.environ.get("TODOKU_CORPORA",
                                      REPO.parent / "shared" / "corpora"))
DKIM = CORPORA / "dkim"
TOOL = None
TMP = None
FAILURES = []


def crlf(data):
    """Lone LF to CRLF (dkimpy's files are LF; dkimpy converts too)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def verify(msg, dns, now=None, legacy=False, chunk=None):
    args = [TOOL, "verify", "--dns", str(dns)]
    if now is not None:
        args += ["--now", str(now)]
    if legacy:
        args.append("--legacy")
    if chunk:
        args += ["--chunk", str(chunk)]
    path = TMP / "msg.eml"
    path.write_bytes(msg)
    out = subprocess.run(args + [str(path)], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    res = []
    for line in out.splitlines():
        if line == "overflow":
            continue
        f = line.split(" ", 6)
        res.append({"result": f[1], "legacy": f[5] == "legacy=1",
                    "reason": f[6][len("reason="):], "line": line})
    return res


def report(name, passed, failed, extra=""):
    print("dkim %s: %d passed, %d failed%s" % (name, passed, failed, extra))


def check(name, ok, what):
    if not ok:
        FAILURES.append("%s: %s" % (name, what))
    return ok


def tsv(path):
    rows = []
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    head = lines[0].split("\t")
    for l in lines[1:]:
        rows.append(dict(zip(head, l.split("\t"))))
    return rows


def run_all_chunks(msg, dns, now, legacy=False):
    """The result must not depend on the chunk size."""
    ref = verify(msg, dns, now, legacy)
    for chunk in (1, 7, 64, 1000):
        if [r["line"] for r in verify(msg, dns, now, legacy, chunk)] != \
                [r["line"] for r in ref]:
            return ref, False
    return ref, True


def set_rfc8463():
    d = DKIM / "rfc8463"
    ok = bad = 0
    for row in tsv(d / "expected.tsv"):
        res, stable = run_all_chunks((d / row["file"]).read_bytes(),
                                     d / "dns-txt.tsv", 1528637909)
        got = res[int(row["signature"]) - 1]["result"]
        if check("rfc8463 " + row["file"] + "#" + row["signature"],
                 got == row["expected"] and stable, got):
            ok += 1
        else:
            bad += 1
    report("rfc8463", ok, bad)
    return bad


def set_dkimpy():
    d = DKIM / "dkimpy"
    ok = bad = 0
    for row in tsv(d / "expected.tsv"):
        msg = crlf((d / row["file"]).read_bytes())
        res, stable = run_all_chunks(msg, d / row["dns_records"], None)
        i = int(row["signature"]) - 1
        got = res[i]["result"] if i < len(res) else "none"
        if check("dkimpy %s#%s" % (row["file"], row["signature"]),
                 got == row["expected"] and stable,
                 "%s (%s)" % (got, res[i]["reason"] if i < len(res) else "")):
            ok += 1
        else:
            bad += 1
    report("dkimpy", ok, bad)
    return bad


def canon(kind, mode, data):
    p = subprocess.run([TOOL, "canon-" + kind, mode], input=data,
                       stdout=subprocess.PIPE)
    return p.returncode, p.stdout


def set_go_msgauth():
    d = DKIM / "go-msgauth"
    ok = bad = 0
    for row in tsv(d / "expected.tsv"):
        res, stable = run_all_chunks((d / row["file"]).read_bytes(),
                                     d / "dns-txt.tsv", None)
        got = ";".join(r["result"] for r in res) or "none"
        if check("go-msgauth " + row["file"], got == row["expected"] and
                 stable, got):
            ok += 1
        else:
            bad += 1
    vec = json.loads((d / "canonicalization.json").read_text())
    cases = []
    for v in vec["simple_body"]:
        # go-msgauth turns bare LF into CRLF; we assume CRLF input, so
        # the whole input is normalised first (then split every way).
        cases.append(("body", "simple", crlf("".join(v["input_chunks"])
                                             .encode()), v["canonical"]))
    for v in vec["relaxed_body"] + vec.get("relaxed_body_split_crlf", []):
        data = v.get("input")
        if data is None:
            data = "".join(v["input_chunks"])
        cases.append(("body", "relaxed", data.encode(), v["canonical"]))
    for v in vec["relaxed_header"]:
        cases.append(("header", "relaxed", v["input"].encode(),
                      v["canonical"]))
    cok = cbad = 0
    for kind, mode, data, want in cases:
        rc, out = canon(kind, mode, data)
        if check("go-msgauth canon %s/%s %r" % (kind, mode, data),
                 rc == 0 and out == want.encode(), repr(out)):
            cok += 1
        else:
            cbad += 1
    report("go-msgauth", ok, bad)
    report("go-msgauth canonicalization", cok, cbad)
    return bad + cbad


def fake_dns():
    """FAKE_DNS.dat to dkim_tool's format."""
    out = []
    for line in (DKIM / "mail-dkim" / "FAKE_DNS.dat").read_text().splitlines():
        if not line.strip() or line[0] in "#;":
            continue
        parts = line.split(None, 1)
        name, value = parts[0], parts[1].strip() if len(parts) > 1 else ""
        if value == '""':
            value = ""
        elif value == "NXDOMAIN":
            value = "!NXDOMAIN"
        elif value.startswith("~~"):
            value = "!TEMPFAIL"
        out.append("%s\t%s" % (name, value))
    path = TMP / "fake-dns.tsv"
    path.write_text("\n".join(out) + "\n")
    return path


def deviations():
    """The table in README.md: | file | Mail::DKIM | todoku | reason |."""
    dev = {}
    in_table = False
    for line in (HERE / "README.md").read_text().splitlines():
        if line.startswith("<!-- deviations -->"):
            in_table = True
            continue
        if in_table and line.startswith("<!-- end -->"):
            break
        m = re.match(r"\|\s*`?([\w.]+\.txt)`?\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|",
                     line)
        if in_table and m:
            dev[m.group(1)] = (m.group(2), m.group(3))
    return dev


def overall(res):
    """Mail::DKIM's message result: the best signature wins."""
    if not res:
        return "none"
    kinds = {"pass": "pass", "fail": "fail", "neutral": "fail"}
    got = [kinds.get(r["result"], "invalid") for r in res]
    for k in ("pass", "fail", "invalid"):
        if k in got:
            return k
    return "invalid"


def set_mail_dkim():
    d = DKIM / "mail-dkim"
    dns = fake_dns()
    dev = deviations()
    ok = bad = deviated = legacy = 0
    for row in tsv(d / "expected.tsv"):
        path = d / "corpus" / row["file"]
        if not path.exists():
            continue
        msg = path.read_bytes()
        res, stable = run_all_chunks(msg, dns, None, legacy=True)
        got = overall(res)
        want = "none" if row["kind"] == "domainkeys" else row["expected"]
        name = "mail-dkim " + row["file"]
        if row["file"] in dev:
            dwant, dgot = dev[row["file"]]
            check(name + " (listed deviation)",
                  dwant == row["expected"] and got == dgot and stable,
                  "got %s, README says %s" % (got, dgot))
            if got == dgot and stable:
                deviated += 1
                legacy += any(r["legacy"] for r in res)
            else:
                bad += 1
            continue
        if check(name, got == want and stable,
                 "got %s want %s: %s" % (got, want,
                                          [r["line"] for r in res])):
            ok += 1
        else:
            bad += 1
    report("mail-dkim", ok, bad,
           "; %d deviations listed in tests/dkim/README.md (%d of them "
           "verify cryptographically under pre-RFC 8301 rules)"
           % (deviated, legacy))
    return bad


def main():
    global TOOL, TMP
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    TOOL = sys.argv[1]
    if not DKIM.is_dir():
        print("dkim corpus not found at %s (set TODOKU_CORPORA)" % DKIM)
        sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        TMP = pathlib.Path(tmp)
        bad = set_rfc8463() + set_dkimpy() + set_go_msgauth() + \
            set_mail_dkim()
    for f in FAILURES:
        print("UNEXPECTED: " + f)
    sys.exit(1 if bad or FAILURES else 0)


if __name__ == "__main__":
    main()
