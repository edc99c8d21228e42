"""`make run`: `todoku serve -f` without -c uses the built-in configuration
(docs/config.md "Built-in configuration"): it listens on 127.0.0.1:2525,
keeps its spool and Maildirs under ./var of the working directory, accepts
mail for someone@localhost, and Ctrl-C (SIGINT) stops it with exit 0.

127.0.0.1:2525 is fixed by the built-in configuration, so this test cannot
use an address of its own: it waits for the address's lock (world.net.
hold_fixed: test processes of this checkout, parallel workers or another
run, take turns), then checks the port is free and fails with a clear
message if something else holds it for 30 s (it never kills that).
"""
import os
import signal
import socket
import subprocess

import pytest

from world import make_message, queue_id, todoku_bin, wait_port
from world.net import hold_fixed
from world.smtpclient import SMTPClient
from world.roles import wait_for

ADDR, PORT = "127.0.0.1", 2525


def _port_free():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ADDR, PORT))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def fixed_port():
    fd = hold_fixed(ADDR, PORT)
    yield
    os.close(fd)


def test_builtin_configuration_receives_and_stops_on_sigint(tmp_world, todoku_user,
                                                            fixed_port):
    # a test run of an older checkout may hold it for a few seconds
    try:
        wait_for(_port_free, 30, "%s:%d free" % (ADDR, PORT), interval=0.5)
    except AssertionError:
        pytest.fail("%s:%d is in use by another process; the built-in configuration "
                    "needs it (find it with `ss -ltnp 'sport = :%d'`)" % (ADDR, PORT, PORT))
    wd = tmp_world / "make-run"
    wd.mkdir(mode=0o755)
    os.chmod(wd, 0o755)
    logp = wd / "serve.log"
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    with open(logp, "wb") as logf:
        proc = subprocess.Popen([todoku_bin(), "serve", "-f"], cwd=wd,
                                stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)
    try:
        assert wait_port(ADDR, PORT, 10, proc), \
            "no listener on %s:%d; log:\n%s" % (ADDR, PORT, logp.read_text(errors="replace"))
        c = SMTPClient(ADDR, PORT, timeout=10)
        assert c.greeting.code == 220, c.greeting.raw
        assert "localhost" in c.greeting.text          # hostname = localhost
        c.ehlo()
        r = c.sendmail("tour@example.net", ["someone@localhost"],
                       make_message(subject="built-in tour", sender="tour@example.net",
                                    to="someone@localhost"))
        assert r.code == 250, r
        qid = queue_id(r.text)
        assert qid, r
        c.quit()
        new = wd / "var" / "mail" / "localhost" / "someone" / "new"

        def delivered():
            try:
                names = [n for n in os.listdir(new) if not n.startswith(".")]
            except FileNotFoundError:
                return None
            return names or None
        names = wait_for(delivered, 15, "a message in %s" % new)
        assert len(names) == 1, names
        body = (new / names[0]).read_bytes()
        assert b"Subject: built-in tour" in body
        assert qid.encode() in body                    # the Received: line names it
        assert (wd / "var" / "spool").is_dir()
        # Ctrl-C: the master exits 0
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(15)
        assert rc == 0, "exit %r after SIGINT; log:\n%s" % (rc, logp.read_text(errors="replace"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log = logp.read_text(errors="replace")
    assert "listening on 127.0.0.1:2525" in log, log
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in log, log
    # nothing is left holding the fixed port
    wait_for(_port_free, 5, "%s:%d released" % (ADDR, PORT))
