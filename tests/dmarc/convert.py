#!/usr/bin/python3
"""Turn the DMARC corpora into a line format for tests/unit/test_dmarc.c.

usage: convert.py CORPORA_DIR OUT

Every field is percent-encoded (urllib.parse.quote, safe='') so fields
never hold spaces; lines are "kind field...":

  psl-rule RULE            one rule of public_suffix_list.dat (ICANN and
                           PRIVATE), IDN labels as A-labels ("!", "*" kept)
  psl-test INPUT EXPECT    psl/tests.txt; A-labels; "-" = null
  ma-case ID TITLE         a mailauth case starts
  ma-txt NAME RECORD       a TXT record (its strings joined)
  ma-nx NAME               NXDOMAIN
  ma-other KIND [RECORD]   every other name: NXDOMAIN, TIMEOUT or TXT
  ma-from ADDR             one From address (several = several lines)
  ma-dkim DOMAIN / ma-spf DOMAIN   identifiers that passed
  ma-expect KEY VALUE      asserted upstream (true/false for booleans)
  ma-end
"""
import json
import sys
from urllib.parse import quote


def q(s):
    return quote(str(s), safe='')


def alabel(name):
    out = []
    for lab in name.split('.'):
        if lab and any(ord(c) > 127 for c in lab):
            lab = 'xn--' + lab.encode('punycode').decode('ascii')
        out.append(lab.lower())
    return '.'.join(out)


def psl(corpora, w):
    with open(corpora + '/dmarc/psl/public_suffix_list.dat', encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('//'):
                continue
            rule = line.split()[0]
            prefix = ''
            if rule.startswith('!'):
                prefix, rule = '!', rule[1:]
            w.write('psl-rule %s\n' % q(prefix + alabel(rule)))
    with open(corpora + '/dmarc/psl/tests.txt', encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('//'):
                continue
            inp, exp = line.split()
            inp = '-' if inp == 'null' else alabel(inp)
            exp = '-' if exp == 'null' else alabel(exp)
            w.write('psl-test %s %s\n' % (q(inp), q(exp)))


def mailauth(corpora, w):
    with open(corpora + '/dmarc/mailauth/dmarc-verify-cases.json') as f:
        data = json.load(f)
    for c in data['cases']:
        w.write('ma-case %s %s\n' % (q(c['id']), q(c['title'])))
        for name, v in c['dns_txt'].items():
            if v == 'NXDOMAIN':
                w.write('ma-nx %s\n' % q(name))
                continue
            for rec in v['TXT']:
                w.write('ma-txt %s %s\n' % (q(name), q(''.join(rec))))
        other = c['other_dns_names']
        if isinstance(other, dict):
            for rec in other['TXT']:
                w.write('ma-other TXT %s\n' % q(''.join(rec)))
        else:
            w.write('ma-other %s\n' % q(other))
        froms = c['header_from']
        for a in froms if isinstance(froms, list) else [froms]:
            w.write('ma-from %s\n' % q(a))
        for d in c['dkim_pass_domains']:
            w.write('ma-dkim %s\n' % q(d))
        for d in c['spf_pass_domains']:
            w.write('ma-spf %s\n' % q(d))
        for k, v in c['expected'].items():
            if isinstance(v, bool):
                v = 'true' if v else 'false'
            w.write('ma-expect %s %s\n' % (q(k), q(v)))
        w.write('ma-end\n')


def main():
    corpora, out = sys.argv[1], sys.argv[2]
    with open(out, 'w', encoding='ascii') as w:
        psl(corpora, w)
        mailauth(corpora, w)


if __name__ == '__main__':
    main()
