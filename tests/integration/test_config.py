"""Configuration errors are reported with FILE:LINE and exit code 2."""
import subprocess

from world import todoku_bin


def _bad_config(tmp_world):
    p = tmp_world / "bad.conf"
    p.write_text("[server]\nhostname = mx.test\nno-such-key = 1\n"
                 "[listen \"smtp\"]\naddress = 127.0.0.1:2525\n")
    return p


def test_config_check_unknown_key(tmp_world):
    p = _bad_config(tmp_world)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:3:" % p).encode() in r.stderr, r.stderr


def test_serve_refuses_bad_config(tmp_world):
    p = _bad_config(tmp_world)
    r = subprocess.run([todoku_bin(), "serve", "-f", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:3:" % p).encode() in r.stderr, r.stderr


def test_config_check_accepts_world_config(todoku):
    d = todoku(start=False)
    r = d.cli_run("config", "check")
    assert r.returncode == 0, r.stderr


_BASE = "[server]\nhostname = mx.test\n[listen \"smtp\"]\naddress = 127.0.0.1:2525\n"


def test_dns_sizes_effective_values(tmp_world):
    """[dns] libunbound sizes: defaults and set values are printed."""
    p = tmp_world / "dns.conf"
    p.write_text(_BASE)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    for line in (b"outgoing-range = 1024\n", b"outgoing-num-tcp = 64\n",
                 b"msg-cache-size = 16M\n", b"rrset-cache-size = 32M\n"):
        assert line in r.stdout, r.stdout
    p.write_text(_BASE + "[dns]\noutgoing-range = 2048\noutgoing-num-tcp = 8\n"
                 "msg-cache-size = 100M\nrrset-cache-size = 200m\n")
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    dns = r.stdout.split(b"\n[dns]\n", 1)[1]
    for line in (b"outgoing-range = 2048\n", b"outgoing-num-tcp = 8\n",
                 b"msg-cache-size = 100M\n", b"rrset-cache-size = 200M\n"):
        assert line in dns, r.stdout


def test_dns_size_bad_value_names_line(tmp_world):
    p = tmp_world / "dns.conf"
    p.write_text(_BASE + "[dns]\nmsg-cache-size = 10K\n")
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:6: msg-cache-size = 10K is out of range" % p).encode() \
        in r.stderr, r.stderr
    p.write_text(_BASE + "[dns]\noutgoing-range = lots\n")
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:6: bad value \"lots\" for outgoing-range" % p).encode() \
        in r.stderr, r.stderr


def test_dnssec_keys_checked_with_line(tmp_world):
    p = tmp_world / "dns.conf"
    missing = tmp_world / "no-such-root.key"
    p.write_text(_BASE + "[dns]\ndnssec = validate\ntrust-anchor-file = %s\n" % missing)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    # the line of the key that names the file (dnssec = validate is line 6)
    assert ("%s:7: [dns] trust-anchor-file %s: No such file" % (p, missing)).encode() \
        in r.stderr, r.stderr
    p.write_text(_BASE + "[dns]\nservers = 127.0.0.53\n\nresolver = recursive\n")
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:8: resolver = recursive" % p).encode() in r.stderr, r.stderr
    ta = tmp_world / "root.key"
    ta.write_text(". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n")
    p.write_text(_BASE + "[dns]\nresolver = recursive\ndnssec = validate\n"
                 "trust-anchor-file = %s\n" % ta)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    dns = r.stdout.split(b"\n[dns]\n", 1)[1]
    for line in (b"resolver = recursive\n", b"dnssec = validate\n",
                 ("trust-anchor-file = %s\n" % ta).encode(), b"root-hints = \"\"\n"):
        assert line in dns, r.stdout


def _check(p):
    return subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                          capture_output=True, timeout=20)


def test_missing_named_files_point_at_their_key(tmp_world):
    """Every file a configuration key names (password file, aliases,
    users, SRS secrets, CA stores, DNS files, DKIM keys): when it is
    missing, the error names the configuration file and the line of that
    key, then the key and the path."""
    p = tmp_world / "files.conf"
    gone = tmp_world / "no-such-file"
    ok = tmp_world / "present"
    ok.write_text("someone\n")
    cases = [
        ("[server]\naliases = %s\n", "[server] aliases %s: cannot open"),
        ("[server]\nsrs-secret-file = %s\n",
         "[server] srs-secret-file %s: cannot open"),
        ('[domain "localhost"]\nmailboxes = /tmp\nusers-file = %s\n',
         '[domain "localhost"] users-file %s: cannot open'),
        ('[route "relay.test"]\nvia = smtp://127.0.0.1:25\ntls = must\n'
         "auth-user = u\nauth-password-file = %s\n",
         '[route "relay.test"] auth-password-file %s: cannot open'),
        ('[route "relay.test"]\nvia = smtp://127.0.0.1:25\nverify = ca\n'
         "ca = %s\n", '[route "relay.test"]: ca %s: No such file'),
        ("[delivery]\ntls = must\nverify = ca\nca = %s\n",
         "[delivery]: ca %s: No such file"),
        ("[dns]\nresolver = recursive\nroot-hints = %s\n",
         "[dns] root-hints %s: No such file"),
        ('[dkim "example.test"]\nselector = s1\nkey = %s\n',
         '[dkim "example.test"] key %s: No such file'),
    ]
    for extra, msg in cases:
        if extra.startswith("[server]"):
            text = _BASE.replace("hostname = mx.test\n", "hostname = mx.test\n"
                                 + extra.split("\n", 1)[1] % gone)
        else:
            text = _BASE + extra % gone
        p.write_text(text)
        r = _check(p)
        assert r.returncode == 2, (extra, r)
        line = text.splitlines().index(
            next(ln for ln in text.splitlines() if str(gone) in ln)) + 1
        want = "%s:%d: %s" % (p, line, msg % gone)
        assert want.encode() in r.stderr, (want, r.stderr)
    # an error inside such a file is the file's own file:line
    bad = tmp_world / "users"
    bad.write_text("someone\n\nnot a user\n")
    p.write_text(_BASE + '[domain "localhost"]\nmailboxes = /tmp\n'
                 "users-file = %s\n" % bad)
    r = _check(p)
    assert r.returncode == 2, r
    assert ("%s:3: " % bad).encode() in r.stderr, r.stderr
    # present files pass
    p.write_text(_BASE + '[domain "localhost"]\nmailboxes = /tmp\n'
                 "users-file = %s\n" % ok)
    assert _check(p).returncode == 0


def test_serve_reports_missing_password_file_with_line(tmp_world):
    p = tmp_world / "serve.conf"
    gone = tmp_world / "relay.secret"
    p.write_text(_BASE + '[route "*"]\nvia = smtps://127.0.0.1:465\n'
                 "auth-user = u\nauth-password-file = %s\n" % gone)
    r = subprocess.run([todoku_bin(), "serve", "-f", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ('%s:8: [route "*"] auth-password-file %s: cannot open: No such file'
            % (p, gone)).encode() in r.stderr, r.stderr


def _documented_keys():
    """{section: set of keys} from the tables of docs/config.md: every
    back-quoted name in the first column of a table row, counted for the
    `## [section ...]` heading above it (its `###` subsections included)."""
    import pathlib
    import re
    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md"
    keys, section = {}, None
    for ln in doc.read_text().splitlines():
        h = re.match(r"^## \[(\w[\w-]*)", ln)
        if h:
            section = h.group(1)
            keys.setdefault(section, set())
        elif ln.startswith("## "):
            section = None
        elif section and ln.startswith("| `"):
            first = ln.split("|")[1]
            keys[section].update(re.findall(r"`([a-z0-9-]+)`", first))
    return keys


def test_every_effective_key_is_documented(tmp_world):
    """Every key `config check` prints (with every kind of section present)
    has a row in docs/config.md under its section's heading, so a key added
    without documentation fails here."""
    import re
    p = tmp_world / "all.conf"
    (tmp_world / "k.pem").write_text("")  # config check wants it to exist
    p.write_text(_BASE + "[domain \"localhost\"]\nmailboxes = %s\n"
                 "[route \"*\"]\nvia = smtp://[127.0.0.1]:25\n"
                 "[dkim \"mx.test\"]\nselector = s1\nkey = %s\n"
                 % (tmp_world / "mail", tmp_world / "k.pem"))
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20, text=True)
    assert r.returncode == 0, r.stderr
    documented = _documented_keys()
    printed, section, missing = {}, None, []
    for ln in r.stdout.splitlines():
        h = re.match(r"^\[(\w[\w-]*)", ln)
        if h:
            section = h.group(1)
            printed.setdefault(section, set())
            continue
        k = re.match(r"^([a-z0-9-]+) = ", ln)
        if k and section:
            printed[section].add(k.group(1))
            if k.group(1) not in documented.get(section, ()):
                missing.append("[%s] %s" % (section, k.group(1)))
    assert {"server", "smtp", "queue", "dns", "delivery", "listen", "domain",
            "route", "dkim"} <= set(printed), printed.keys()
    assert sum(map(len, printed.values())) > 60, printed
    assert not missing, "keys not documented in docs/config.md: %s" % missing
