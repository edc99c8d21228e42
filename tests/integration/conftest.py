"""pytest fixtures of the todoku test world. See README.md."""
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from world import FaultyDNS, KnotDNS, Postfix, SMTPPeer, Todoku  # noqa: E402
from world import swaks as _swaks  # noqa: E402

LOG_TAIL = 300  # lines of each server log shown on failure


# ---------------------------------------------------------------------------
# failure reports: attach every server log of the test
# ---------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for title, path in getattr(item, "_world_logs", []):
            try:
                lines = pathlib.Path(path).read_text(errors="replace").splitlines()
            except OSError:
                continue
            rep.sections.append(("%s log (%s)" % (title, rep.when),
                                 "\n".join(lines[-LOG_TAIL:])))
        for title, fn in getattr(item, "_world_texts", []):
            try:
                rep.sections.append(("%s (%s)" % (title, rep.when), fn()))
            except Exception as e:  # noqa: BLE001
                rep.sections.append((title, "unavailable: %r" % e))


@pytest.fixture(autouse=True)
def _world_logs(request):
    request.node._world_logs = []
    request.node._world_texts = []
    return request.node._world_logs


# ---------------------------------------------------------------------------
# base directories and the todoku user
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def world_base():
    base = pathlib.Path("/tmp/todoku-tests-%d" % os.getpid())
    base.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)
    yield base
    if not os.environ.get("TODOKU_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def todoku_user():
    """(uid, gid) of the `todoku` system user, created if missing."""
    # the daemon's roles run as distinct users (DESIGN §7)
    for name in ("todoku", "todoku-queue", "todoku-mail", "todoku-keys"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                pytest.fail("user %s is missing and tests do not run as root" % name)
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", name], check=False)
    pw = pwd.getpwnam("todoku")
    return pw.pw_uid, pw.pw_gid


_test_counter = [0]


@pytest.fixture
def tmp_world(request, world_base):
    """A fresh world-readable directory for this test. Names stay short:
    the spool holds a unix control socket (sun_path is 108 octets)."""
    _test_counter[0] += 1
    name = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name.replace("test_", "", 1))
    d = world_base / ("%03d-%s" % (_test_counter[0], name[:20]))
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    (d / "TEST").write_text(request.node.nodeid + "\n")
    return d


# ---------------------------------------------------------------------------
# DNS
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def null_dns():
    """A session-wide resolver that answers NXDOMAIN to everything (so the
    daemon's PTR and other lookups never leave loopback)."""
    s = FaultyDNS(default="nxdomain")
    yield s
    s.stop()


@pytest.fixture
def dns(tmp_world, _world_logs):
    """knotd serving zones written by the test: dns.zone(name, records)."""
    k = KnotDNS(tmp_world, registry=_world_logs)
    yield k
    k.stop()


@pytest.fixture
def faulty_dns():
    """Scripted DNS server (dnslib): faulty_dns.rule(name, type, action...)."""
    s = FaultyDNS()
    yield s
    s.stop()


# ---------------------------------------------------------------------------
# todoku
# ---------------------------------------------------------------------------

@pytest.fixture
def todoku(request, tmp_world, todoku_user, null_dns, _world_logs):
    """Factory: todoku(overrides={section: {key: value}}, aliases="...",
    users=(...), dns_servers=[...], start=True, name="todoku") -> Todoku.
    Every daemon is stopped with SIGTERM at teardown; it must exit 0 and
    its log must hold no sanitizer report."""
    made = []
    uid, gid = todoku_user

    def make(name=None, **kw):
        kw.setdefault("dns_servers", [null_dns.addr])
        d = Todoku(tmp_world, name=name or "todoku%d" % (len(made) + 1),
                   registry=_world_logs, uid=uid, gid=gid, **kw)
        made.append(d)
        return d

    yield make
    errors = []
    for d in made:
        try:
            d.stop()
            d.check_log()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def daemon(todoku):
    """One todoku with the default configuration."""
    return todoku()


# ---------------------------------------------------------------------------
# peers and clients
# ---------------------------------------------------------------------------

@pytest.fixture
def smtp_peer(request):
    """Factory: smtp_peer(**script) -> SMTPPeer (see world/peer.py)."""
    made = []

    def make(**kw):
        p = SMTPPeer(**kw)
        made.append(p)
        request.node._world_texts.append(("peer %s:%d transcript" % (p.addr, p.port),
                                          p.transcript))
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def postfix(tmp_world, _world_logs):
    """Factory: postfix(relayhost="[127.x.y.z]:2525", extra={main.cf}, tls=(cert, key),
    sasl={user: password}) -> Postfix (see world/postfix.py)."""
    made = []

    def make(relayhost, **kw):
        p = Postfix(tmp_world, relayhost, name="postfix%d" % (len(made) + 1),
                    registry=_world_logs, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def swaks():
    """swaks(server, port, to, from_, body=..., extra_args=[...]) -> (rc, transcript)."""
    return _swaks
