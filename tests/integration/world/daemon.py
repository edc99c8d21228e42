"""The todoku daemon under test: config writer, process control, helpers."""
import json
import os
import pathlib
import signal
import subprocess
import time

from .net import alloc_addr, wait_port
from .smtpclient import SMTPClient

REPO = pathlib.Path(__file__).resolve().parents[3]
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer", "ThreadSanitizer")


def todoku_bin():
    return os.environ.get("TODOKU_BIN") or str(REPO / "build" / "todoku")


def fsync_shim_path():
    """The test-only LD_PRELOAD fsync shim built next to the binary
    (tests/shim/fsync_shim.c); $TODOKU_SHIM overrides."""
    return os.environ.get("TODOKU_SHIM") or str(
        pathlib.Path(todoku_bin()).parent / "tests" / "shim" / "libfsync_shim.so")


def render_config(sections):
    """sections: {"server": {...}, 'listen "smtp"': {...}} -> INI text.
    A value of None drops the key (or the whole section)."""
    out = []
    for name, kv in sections.items():
        if kv is None:
            continue
        out.append("[%s]" % name)
        for k, v in kv.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):
                v = " ".join(str(x) for x in v)
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


def merge_sections(base, overrides):
    res = {k: dict(v) for k, v in base.items()}
    for name, kv in (overrides or {}).items():
        if kv is None:
            res[name] = None
            continue
        if res.get(name) is None:
            res[name] = {}
        res[name].update(kv)
    return res


class DaemonError(AssertionError):
    pass


class Todoku:
    """One todoku daemon with its own address, spool and Maildirs.

    Created by the `todoku` fixture factory; see tests/integration/README.md.
    """

    def __init__(self, world_dir, name="todoku", overrides=None, aliases=None,
                 users=("someone", "alice", "bob"), dns_servers=None, port=2525,
                 addr=None, start=True, registry=None, uid=None, gid=None, wrapper=None,
                 env=None, exec_wrapper=False, fsync_shim=None):
        self.dir = pathlib.Path(world_dir) / name
        self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.addr = addr or alloc_addr(ports=(port,))
        self.port = port
        self.spool = self.dir / "spool"
        self.mail = self.dir / "mail"
        self.config_path = self.dir / "todoku.conf"
        self.log_path = self.dir / "todoku.log"
        self.bin = todoku_bin()
        self.proc = None
        self._expected_exit = False
        self.exit_codes = []
        self._uid, self._gid = uid, gid
        self.wrapper = list(wrapper or [])   # e.g. ["strace", "-f", "-o", F]
        # a wrapper that execs todoku (setpriv) leaves no process of its own
        self.exec_wrapper = exec_wrapper
        self.extra_env = dict(env or {})      # e.g. {"LD_PRELOAD": ...}
        # fsync_shim={"match": "queue.db-wal", "delay_us": 20000,
        #             "fail": "eio", "trigger": F, "log": F}: preload
        # tests/shim/fsync_shim.c into every process of the daemon
        self.fsync_shim = dict(fsync_shim) if fsync_shim is not None else None
        if self.fsync_shim is not None:
            shim = fsync_shim_path()
            assert os.path.exists(shim), "fsync shim not built: %s" % shim
            self.extra_env["LD_PRELOAD"] = shim
            for k, v in self.fsync_shim.items():
                self.extra_env["TODOKU_SHIM_" + k.upper()] = str(v)
        for d in (self.spool, self.mail, self.mail / "localhost"):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._own(d)
        sections = {
            "server": {
                "hostname": "mx.test",
                "spool": str(self.spool),
                "user": "todoku",
                "log-level": "debug",
                "trusted-networks": "127.0.0.0/8 ::1",
            },
            "smtp": {"max-message-size": "1M"},
            "queue": {"retry": "2s 4s 8s"},
            'listen "smtp"': {"address": "%s:%d" % (self.addr, port)},
            'domain "localhost"': {
                "mailboxes": str(self.mail / "localhost"),
                "users": " ".join(users),
            },
        }
        if dns_servers:
            sections["dns"] = {"servers": " ".join(dns_servers)}
        if aliases is not None:
            ap = self.dir / "aliases"
            ap.write_text(aliases if aliases.endswith("\n") else aliases + "\n")
            os.chmod(ap, 0o644)
            sections["server"]["aliases"] = str(ap)
        self.sections = merge_sections(sections, overrides)
        # create mailbox roots of any extra [domain "x"] sections
        for sec, kv in self.sections.items():
            if kv and sec.startswith("domain ") and kv.get("mailboxes"):
                p = pathlib.Path(kv["mailboxes"])
                p.mkdir(mode=0o755, parents=True, exist_ok=True)
                self._own(p)
        self.write_config()
        if registry is not None:
            registry.append(("todoku %s (%s:%d)" % (name, self.addr, port), self.log_path))
        if start:
            self.start()

    # -- setup ---------------------------------------------------------------
    def _own(self, path):
        if self._uid is not None:
            os.chown(path, self._uid, self._gid)

    def write_config(self, text=None):
        self.config_path.write_text(text if text is not None else render_config(self.sections))
        os.chmod(self.config_path, 0o644)

    def config_text(self):
        return self.config_path.read_text()

    # -- process control --------------------------------------------------
    def start(self, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        logf = open(self.log_path, "ab")
        logf.write(b"=== starting %s serve -f -c %s\n" % (self.bin.encode(), str(self.config_path).encode()))
        logf.flush()
        env = dict(os.environ)
        env.update(self.extra_env)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        if self.fsync_shim is not None:   # the shim is preloaded before ASan's runtime
            env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
        if self.wrapper:   # LeakSanitizer cannot run under ptrace (strace)
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen(
            self.wrapper + [self.bin, "serve", "-f", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True, env=env)
        logf.close()
        self._expected_exit = False
        if not wait_port(self.addr, self.port, timeout, self.proc):
            rc = self.proc.poll()
            if rc is None:
                self._killgroup()
                self.proc.wait(5)
            raise DaemonError("todoku did not accept connections on %s:%d within %.0fs "
                              "(exit code %r); log:\n%s" % (self.addr, self.port, timeout,
                                                          rc, self.log_text()[-4000:]))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _killgroup(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    @property
    def master_pid(self):
        """pid of todoku's master (not of a wrapper such as strace)."""
        if not self.wrapper or self.exec_wrapper:
            return self.proc.pid
        for _ in range(100):
            try:
                kids = open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)).read().split()
            except OSError:
                kids = []
            if kids:
                return int(kids[0])
            time.sleep(0.05)
        raise DaemonError("cannot find the todoku process under its wrapper")

    def signal(self, sig):
        """Send sig to the master process (it may exit: that is expected)."""
        self._expected_exit = True
        os.kill(self.master_pid, sig)

    def terminate(self):
        """SIGTERM without waiting; see wait_exit()."""
        self.signal(signal.SIGTERM)

    def wait_exit(self, timeout=10.0):
        """Wait for the master to exit; return its exit code."""
        rc = self.proc.wait(timeout)
        self.exit_codes.append(rc)
        self._reap_group()
        return rc

    def check_alive(self):
        """Raise if the daemon exited without a test asking it to."""
        if self.proc is not None and self.proc.poll() is not None and not self._expected_exit:
            raise DaemonError("todoku exited unexpectedly with code %r; log tail:\n%s"
                              % (self.proc.returncode, self.log_text()[-4000:]))

    def stop(self, timeout=10.0, check=True):
        """SIGTERM; wait; assert exit code 0 and a clean log."""
        if check:
            self.check_alive()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self._expected_exit = True
        os.kill(self.master_pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._killgroup()
            self.proc.wait(5)
            if check:
                raise DaemonError("todoku did not exit within %.0fs of SIGTERM" % timeout)
            return None
        self.exit_codes.append(rc)
        self._reap_group()
        if check:
            if rc != 0:
                raise DaemonError("todoku exited with %r after SIGTERM; log tail:\n%s"
                                  % (rc, self.log_text()[-4000:]))
            self.check_log()
        return rc

    def _reap_group(self):
        # Any process of ours still in the daemon's process group is a
        # straggler: kill it so it cannot hold ports for the next test.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with open(self.log_path, "ab") as f:
            f.write(b"=== test world: killing stragglers in process group\n")
        self._killgroup()

    def kill9(self):
        """SIGKILL the whole daemon (every process of its process group),
        like a crash of the machine, and wait until it is gone."""
        with open(self.log_path, "ab") as f:
            f.write(b"=== test world: SIGKILL\n")
        self._expected_exit = True
        self._killgroup()
        self.proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)

    def restart(self, timeout=10.0):
        if self.running():
            self.stop()
        return self.start(timeout)

    def check_log(self):
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in text:
                raise DaemonError("sanitizer report (%s) in todoku log:\n%s" % (m, text[-8000:]))

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- clients ------------------------------------------------------------
    def smtp(self, timeout=10.0, source=None, read_greeting=True):
        return SMTPClient(self.addr, self.port, timeout=timeout, source=source,
                          read_greeting=read_greeting)

    # -- Maildir ------------------------------------------------------------
    def maildir_path(self, user, domain="localhost"):
        sec = self.sections.get('domain "%s"' % domain) or {}
        root = pathlib.Path(sec.get("mailboxes") or (self.mail / domain))
        return root / user

    def maildir_files(self, user, domain="localhost"):
        d = self.maildir_path(user, domain) / "new"
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        return [d / n for n in names if not n.startswith(".")]

    def maildir(self, user, domain="localhost"):
        """Bytes of every message in <mailboxes>/<user>/new/ (sorted by name)."""
        out = []
        for p in self.maildir_files(user, domain):
            try:
                out.append(p.read_bytes())
            except FileNotFoundError:
                pass
        return out

    def wait_delivered(self, user, n, timeout=15.0, domain="localhost"):
        """Wait until at least n messages are in user's new/; return them."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.maildir(user, domain)
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError("%s@%s: %d message(s) delivered within %.0fs, wanted %d"
                                     % (user, domain, len(msgs), timeout, n))
            time.sleep(0.05)

    # -- CLI ----------------------------------------------------------------
    def cli_run(self, *args, timeout=20):
        return subprocess.run([self.bin] + list(args) + ["-c", str(self.config_path)],
                              capture_output=True, timeout=timeout)

    def cli(self, *args, timeout=20):
        """Run `todoku ARGS -c CONFIG`; assert exit 0; JSON-decode stdout if
        --json was given, else return stdout text."""
        deadline = time.monotonic() + 5
        while True:
            r = self.cli_run(*args, timeout=timeout)
            # 69 (EX_UNAVAILABLE): control socket not up yet right after a
            # (re)start; retry briefly.
            if r.returncode != 69 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if r.returncode != 0:
            raise AssertionError("todoku %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode,
                                    r.stdout.decode(errors="replace"),
                                    r.stderr.decode(errors="replace")))
        if "--json" in args:
            return json.loads(r.stdout)
        return r.stdout.decode(errors="replace")

    def recipient(self, qid, address):
        """`queue show QID --json`'s entry for one recipient (the message
        must still be queued)."""
        r = self.cli_run("queue", "show", qid, "--json")
        assert r.returncode == 0, (qid, r)
        for rc in json.loads(r.stdout)["recipients"]:
            if rc["address"] == address:
                return rc
        raise AssertionError("%s not in %s" % (address, qid))

    def wait_history(self, qid, address, n=1, timeout=30.0):
        """The recipient once it has at least n attempts in its history."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.recipient(qid, address)
            if len(rc.get("history") or []) >= n:
                return rc
            if time.monotonic() > deadline:
                raise AssertionError("%d attempt(s) for %s not reached within %.0fs"
                                     % (n, address, timeout))
            time.sleep(0.05)

    def queue_pending(self):
        """Recipients of queued messages that are not in a final state."""
        out = []
        for m in self.cli("queue", "list", "--json"):
            for r in m.get("recipients", []):
                if r.get("state") not in ("delivered", "bounced"):
                    out.append((m["id"], r.get("address"), r.get("state")))
        return out

    def wait_queue_settled(self, timeout=30.0):
        """Wait until no recipient is queued/deferred any more."""
        deadline = time.monotonic() + timeout
        while True:
            pend = self.queue_pending()
            if not pend:
                return
            if time.monotonic() > deadline:
                raise AssertionError("queue not settled within %.0fs: %r" % (timeout, pend[:20]))
            time.sleep(0.1)
