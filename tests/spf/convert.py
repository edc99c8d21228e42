#!/usr/bin/python3
"""Convert an openspf/pyspf SPF test suite (YAML) to the line format that
tests/unit/test_spf.c reads. Run by the test itself; the output goes to
the build directory and is never committed.

    convert.py SUITE.yml OUT.txt

Output: one record per line, fields separated by one space. Every value
field starts with "=" and then the value's octets, with "%" and any octet
outside 0x21..0x7e written as %XX, so empty values and spaces survive.

    scenario N
    rr =NAME TYPE =VALUE        TYPE: A AAAA MX PTR CNAME TXT
    exists =NAME                the name exists (even with no records)
    timeout =NAME TYPES         queries time out except for TYPES ("-")
    test =NAME =HOST =MAILFROM =HELO RESULTS EXP
                                RESULTS: comma list; EXP: "-" or =TEXT

Zone conventions of the suite (see corpora/spf/README.md): an SPF entry
is served as TXT unless the name has TXT entries; "TXT: NONE" means the
name exists without TXT; a bare TIMEOUT makes queries for the name time
out except for the types listed before it.
"""
import sys

import yaml


def octets(v):
    if isinstance(v, bytes):
        return v
    s = str(v)
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def esc(v):
    out = ["="]
    for b in octets(v):
        if b == 0x25 or b < 0x21 or b > 0x7E:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def txt(v):
    if isinstance(v, list):
        return b"".join(octets(x) for x in v)
    return octets(v)


def zone_lines(zone):
    lines = []
    for name, entries in (zone or {}).items():
        entries = entries or []
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        answerable = []
        timeout = False
        for e in entries:
            if e == "TIMEOUT":
                timeout = True
                continue
            ((t, v),) = e.items()
            if t == "SPF":
                if has_txt:
                    continue
                t = "TXT"
            if t == "TXT" and v == "NONE":
                continue
            if t == "TXT":
                lines.append("rr %s TXT %s" % (esc(name), esc(txt(v))))
            elif t == "MX":
                lines.append("rr %s MX %s" % (esc(name), esc(v[1])))
            else:
                lines.append("rr %s %s %s" % (esc(name), t, esc(v)))
            if not timeout and t not in answerable:
                answerable.append(t)
        lines.append("exists %s" % esc(name))
        if timeout:
            lines.append("timeout %s %s" % (esc(name), ",".join(answerable) or "-"))
    return lines


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: convert.py SUITE.yml OUT.txt\n")
        return 2
    with open(sys.argv[1], "rb") as f:
        docs = list(yaml.safe_load_all(f))
    out = []
    for n, doc in enumerate(docs):
        if not doc:
            continue
        out.append("scenario %d" % n)
        out.extend(zone_lines(doc.get("zonedata")))
        for name, t in (doc.get("tests") or {}).items():
            res = t["result"]
            if not isinstance(res, list):
                res = [res]
            exp = esc(t["explanation"]) if "explanation" in t else "-"
            out.append("test %s %s %s %s %s %s" % (
                esc(name), esc(t.get("host", "")), esc(t.get("mailfrom", "")),
                esc(t.get("helo", "")), ",".join(res), exp))
    with open(sys.argv[2], "w", encoding="ascii") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
