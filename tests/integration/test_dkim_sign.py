"""DKIM signing of mail todoku sends on (issue 4): mail from a trusted
client whose From domain has a [dkim] section gets a DKIM-Signature made
by the keys role; dkimpy verifies it; other domains are not signed."""
import re
import subprocess

from world import make_message


def _keygen(bin_, tmp, domain, selector, ed25519=False):
    args = [bin_, "dkim", "keygen", "--domain", domain, "--selector", selector,
            "--out", str(tmp)]
    if ed25519:
        args.append("--ed25519")
    out = subprocess.run(args, capture_output=True, check=True).stdout.decode()
    txt = "".join(re.findall(r'"([^"]*)"', out))
    path = tmp / ("%s.%s.key" % (selector, domain))
    subprocess.run(["chown", "todoku-keys", str(path)], check=True)
    path.chmod(0o600)
    return path, txt


def _verify(msg, records):
    dkim = __import__("dkim")

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), b"")
    return dkim.verify(msg, dnsfunc=dnsfunc)


def test_signed_for_configured_domain(todoku, tmp_world):
    d0 = todoku(start=False)
    rsa_key, rsa_txt = _keygen(d0.bin, tmp_world, "corp.test", "s1")
    ed_key, ed_txt = _keygen(d0.bin, tmp_world, "ed.test", "e1", ed25519=True)
    d = todoku(overrides={
        'dkim "corp.test"': {"selector": "s1", "key": str(rsa_key)},
        'dkim "ed.test"': {"selector": "e1", "key": str(ed_key),
                           "algorithm": "ed25519-sha256"},
    })
    c = d.smtp()
    c.ehlo()
    for sender in ("ceo@corp.test", "bot@ed.test", "x@unsigned.test"):
        r = c.sendmail(sender, ["someone@localhost"],
                       make_message(subject="from " + sender, sender=sender,
                                    to="someone@localhost"))
        assert r.code == 250, r
    c.quit()
    d.wait_delivered("someone", 3)
    records = {"s1._domainkey.corp.test": rsa_txt.encode(),
               "e1._domainkey.ed.test": ed_txt.encode()}
    by_subject = {}
    for m in d.maildir("someone"):
        subj = re.search(rb"(?m)^Subject: (.*?)\r?$", m).group(1).decode()
        by_subject[subj] = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    m = by_subject["from ceo@corp.test"]
    assert b"DKIM-Signature:" in m and b"d=corp.test" in m
    assert b"a=rsa-sha256" in m
    # what the recipient gets (Return-Path etc. added at delivery) verifies
    body = m.split(b"\r\nDelivered-To:", 1)[1].split(b"\r\n", 1)[1]
    assert _verify(body, records), "dkimpy could not verify our RSA signature"
    m = by_subject["from bot@ed.test"]
    assert b"a=ed25519-sha256" in m
    body = m.split(b"\r\nDelivered-To:", 1)[1].split(b"\r\n", 1)[1]
    assert _verify(body, records), "dkimpy could not verify our Ed25519 signature"
    assert b"DKIM-Signature:" not in by_subject["from x@unsigned.test"]
    assert "DKIM-signed for corp.test" in d.log_text()


def test_bad_dkim_config(todoku, tmp_world):
    d = todoku(start=False)
    d.write_config()
    bad = tmp_world / "bad.conf"
    bad.write_text(d.config_path.read_text() + '\n[dkim "corp.test"]\nselector = s1\n')
    r = subprocess.run([d.bin, "config", "check", "-c", str(bad)], capture_output=True)
    assert r.returncode == 2 and b"needs selector and key" in r.stderr, r.stderr
    assert b"bad.conf:" in r.stderr


def test_key_readable_by_others_refused(todoku, tmp_world):
    """A signing key that other users can read, or that the keys role's
    user does not own, stops the start-up with the command that fixes
    it (DESIGN §7: keys are for the keys role alone)."""
    d0 = todoku(start=False)
    key, _ = _keygen(d0.bin, tmp_world, "corp.test", "s1")
    d = todoku(overrides={'dkim "corp.test"': {"selector": "s1",
                                               "key": str(key)}},
               start=False)
    key.chmod(0o640)
    r = subprocess.run([d.bin, "serve", "-f", "-c", str(d.config_path)],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"can be read by other users (mode 0640)" in r.stderr, r.stderr
    assert ("chmod 600 %s" % key).encode() in r.stderr
    key.chmod(0o600)
    subprocess.run(["chown", "root", str(key)], check=True)
    r = subprocess.run([d.bin, "serve", "-f", "-c", str(d.config_path)],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert ("chown todoku-keys %s" % key).encode() in r.stderr, r.stderr
    subprocess.run(["chown", "todoku-keys", str(key)], check=True)
    d.start()
    d.stop()


def test_signed_header_list(todoku, tmp_world):
    """h= covers From (oversigned), To, Subject, Date, Message-ID, the
    MIME fields and List-Unsubscribe/-Post when present, and nothing that
    is absent except the extra From; c= is relaxed/relaxed."""
    d0 = todoku(start=False)
    key, txt = _keygen(d0.bin, tmp_world, "corp.test", "s1")
    d = todoku(overrides={'dkim "corp.test"': {"selector": "s1",
                                               "key": str(key)}})
    extra = ("MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8",
             "Content-Transfer-Encoding: 7bit",
             "List-Unsubscribe: <mailto:unsub@corp.test>",
             "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
             "X-Mailer: not signed")
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("news@corp.test", ["someone@localhost"],
                   make_message(subject="list", sender="news@corp.test",
                                to="someone@localhost", extra_headers=extra))
    assert r.code == 250, r
    c.quit()
    d.wait_delivered("someone", 1)
    m = d.maildir("someone")[0].replace(b"\r\n", b"\n")
    sig = re.search(rb"(?ms)^DKIM-Signature:(.*?)\n(?=\S)", m).group(1)
    sig = re.sub(rb"\s+", b"", sig).decode()
    tags = dict(t.split("=", 1) for t in sig.split(";") if "=" in t)
    assert tags["c"] == "relaxed/relaxed", tags
    h = [x.lower() for x in tags["h"].split(":")]
    for want in ("from", "to", "subject", "date", "message-id",
                 "mime-version", "content-type", "content-transfer-encoding",
                 "list-unsubscribe", "list-unsubscribe-post"):
        assert want in h, (want, h)
    assert h.count("from") == 2, h  # oversigned: no From can be added
    assert "x-mailer" not in h and "cc" not in h and "reply-to" not in h, h
    m = m.replace(b"\n", b"\r\n")
    body = m.split(b"\r\nDelivered-To:", 1)[1].split(b"\r\n", 1)[1]
    assert _verify(body, {"s1._domainkey.corp.test": txt.encode()})
