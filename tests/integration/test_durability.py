"""Durability: kill -9 at random moments under load; fsync before 250."""
import os
import random
import re
import socket
import threading
import time

from world import SMTPClient, SMTPClosed, header, queue_id, to_crlf_stuffed

N_MESSAGES = 200
N_THREADS = 16


def _message(msgid, big):
    lines = ["From: <load@x.test>", "To: <someone@localhost>",
             "Subject: load %s" % msgid, "Message-ID: <%s@load.test>" % msgid, ""]
    for i in range(3000 if big else 20):
        lines.append("%s line %04d %s" % (msgid, i, "abcdefghij" * 6))
    lines.append("END %s" % msgid)
    return ("\n".join(lines) + "\n").encode()


class Load:
    """16 client threads sending until N_MESSAGES got a 250."""

    def __init__(self, d, seed):
        self.d = d
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.state = {}          # msgid -> unsent | dot | acked | refused
        self.next = 0
        self.acked = 0
        self.attempts = 0
        self.errors = []

    def _new_id(self):
        with self.lock:
            if self.acked >= N_MESSAGES or self.attempts >= 4 * N_MESSAGES:
                return None
            self.next += 1
            self.attempts += 1
            mid = "m%05d" % self.next
            self.state[mid] = "unsent"
            return mid

    def _connect(self, deadline):
        while time.monotonic() < deadline:
            try:
                c = SMTPClient(self.d.addr, self.d.port, timeout=15)
                if c.greeting.code == 220:
                    return c
                c.close()
            except (OSError, SMTPClosed, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("could not reach the daemon for 40 s")

    def client(self):
        try:
            while True:
                mid = self._new_id()
                if mid is None:
                    return
                self._one(mid)
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))

    def _one(self, mid):
        big = int(mid[1:]) % 10 == 0          # some bodies above inline-body-max
        payload = to_crlf_stuffed(_message(mid, big))
        c = self._connect(time.monotonic() + 40)
        try:
            if c.cmd("EHLO load.test").code != 250:
                return
            if c.cmd("MAIL FROM:<load@x.test>").code != 250:
                return
            if c.cmd("RCPT TO:<someone@localhost>").code != 250:
                return
            if c.cmd("DATA").code != 354:
                return
            c.send(payload)
            with self.lock:
                self.state[mid] = "dot"
            c.send(b".\r\n")
            r = c.read_reply()
            with self.lock:
                if r.code == 250:
                    self.state[mid] = "acked"
                    self.acked += 1
                else:
                    self.state[mid] = "refused"
            try:
                c.cmd("QUIT", timeout=2)
            except (OSError, SMTPClosed, ValueError):
                pass
        except (OSError, SMTPClosed, ValueError):
            pass                       # killed under us: state says how far we got
        finally:
            c.close()


def test_kill9_under_load_loses_nothing(todoku):
    seed = int(os.environ.get("TODOKU_TEST_SEED") or time.time())
    print("seed", seed)
    d = todoku()
    load = Load(d, seed)
    kills = sorted(load.rnd.sample(range(10, N_MESSAGES - 10), load.rnd.randint(3, 5)))
    threads = [threading.Thread(target=load.client, daemon=True) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    done_kills = 0
    deadline = time.monotonic() + 180
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        if done_kills < len(kills) and load.acked >= kills[done_kills]:
            time.sleep(load.rnd.uniform(0, 0.03))
            d.kill9()
            time.sleep(load.rnd.uniform(0, 0.2))
            d.start()
            done_kills += 1
        time.sleep(0.005)
    for t in threads:
        t.join(60)
    assert not load.errors, load.errors
    assert done_kills == len(kills), (done_kills, kills)
    assert load.acked >= N_MESSAGES, (load.acked, load.attempts)

    d.stop()                       # a clean stop/start as the final restart
    d.start()
    d.wait_queue_settled(timeout=60)

    seen = {}
    for p in d.maildir_files("someone"):
        msg = p.read_bytes()
        (mid_hdr,) = header(msg, "Message-ID")
        mid = re.match(r"<(m\d+)@load\.test>", mid_hdr).group(1)
        assert msg.endswith(b"\nEND %s\n" % mid.encode()), "truncated: %s" % p
        assert msg.count(b"\nEND ") == 1, "two messages in one file: %s" % p
        seen[mid] = seen.get(mid, 0) + 1

    acked = [m for m, s in load.state.items() if s == "acked"]
    missing = [m for m in acked if m not in seen]
    assert not missing, "accepted (250) but lost: %r" % missing
    dup3 = {m: n for m, n in seen.items() if n > 2}
    assert not dup3, "delivered more than twice: %r" % dup3
    never_finished = {m: load.state[m] for m in seen if load.state.get(m) not in ("acked", "dot")}
    assert not never_finished, "delivered though end of data was never sent or was refused: %r" \
        % never_finished
    dups = sum(1 for n in seen.values() if n == 2)
    print("acked %d, delivered %d distinct, %d duplicated, %d kills at %r"
          % (len(acked), len(seen), dups, len(kills), kills))


# -- fsync before 250, proved with strace --------------------------------------------
#
# DESIGN §7: "for every queue ID the fsync of the WAL (or of the body file and
# its directory) returns before smtp-in writes that ID's 250".  The trace ties
# each queue ID to the writes that carry it: the WAL page write that holds the
# ID (its msg row and primary-key entry are written as text), and for a body
# kept as a file (named by the ID) the last write to that file.  Each of those
# must be followed by an fdatasync/fsync of the same file that starts after
# the write and returns before the 250 naming the ID is written; a body file
# also needs an fsync of its directory after the file was created.

SYSCALL_RE = re.compile(r"^(\d+)\s+(\d+\.\d+) (?:<\.\.\. )?(\w+)(.*?)(?:<(\d+\.\d+)>)?$")
FD_PATH_RE = re.compile(r"^\(?\d+<([^>]*)>")
SYNCS = ("fsync", "fdatasync")
WRITES = ("write", "pwrite64", "pwritev", "pwritev2", "writev")


class Trace:
    """Syscalls of interest from `strace -f -ttt -T -y`."""

    def __init__(self, path):
        self.syncs = []    # (start, end, path)
        self.writes = []   # (start, end, path, text)
        self.opens = []    # (time, path)  files created with O_CREAT
        self.replies = {}  # qid -> time the 250 was written
        pending = {}
        for ln in open(path, errors="replace"):
            m = SYSCALL_RE.match(ln.rstrip("\n"))
            if not m:
                continue
            pid, ts, name, rest, dur = m.groups()
            ts = float(ts)
            if "unfinished" in rest:
                pending[(pid, name)] = (ts, rest.split("<unfinished")[0])
                continue
            start = ts
            if "resumed>" in rest:
                start, head = pending.pop((pid, name), (ts, ""))
                rest = head + rest.split("resumed>", 1)[1]
                end = ts
            else:
                end = ts + float(dur or 0)
            self._add(name, start, end, rest)

    def _add(self, name, start, end, rest):
        fd = FD_PATH_RE.match(rest)
        path = fd.group(1) if fd else ""
        ok = re.search(r"\) = (\d+)", rest)
        if name in SYNCS:
            if ok and ok.group(1) == "0":
                self.syncs.append((start, end, path))
        elif name in ("openat", "open") and "O_CREAT" in rest and ok:
            self.opens.append((end, rest.split('"')[1] if '"' in rest else ""))
        elif name in WRITES + ("sendto", "sendmsg"):
            q = re.search(r"250 2\.0\.0 [^\"]*queued as ([A-Za-z0-9._-]+)", rest)
            if q:
                self.replies.setdefault(q.group(1).rstrip("."), start)
            elif name in WRITES and ok:
                self.writes.append((start, end, path, rest))

    def synced(self, path_pred, after, before):
        """An fsync/fdatasync of a matching file that started at or after
        `after` and returned at or before `before`."""
        return any(path_pred(p) and s >= after and e <= before
                   for s, e, p in self.syncs)

    def problems(self, qid, spool):
        """What is missing for `qid`'s durability before its 250 (empty: none)."""
        t250 = self.replies[qid]
        bad = []
        wal = [w for w in self.writes
               if w[2].startswith(spool) and w[2].endswith("-wal") and qid in w[3]
               and w[1] <= t250]
        if not wal:
            bad.append("no WAL write carrying the id before the 250")
        # the first write is the message's own commit; later ones may be a
        # delivery result of the same message committed (lazily) just
        # before smtp-in gets to write the 250.  The writer is one thread,
        # so the first WAL fsync after that write ends that commit.
        elif not self.synced(lambda p: p.startswith(spool) and p.endswith("-wal"),
                             min(w[1] for w in wal), t250):
            bad.append("no WAL fsync after its first WAL write and before the 250")
        body = [w for w in self.writes if w[2].endswith("/" + qid) and w[1] <= t250]
        if body:
            if not self.synced(lambda p: p.endswith("/" + qid),
                               max(w[1] for w in body), t250):
                bad.append("body file not synced after its last write")
            made = [t for t, p in self.opens if p.endswith("/" + qid)]
            bodydir = body[0][2].rsplit("/", 1)[0]
            if not made or not self.synced(lambda p: p == bodydir, min(made), t250):
                bad.append("body directory not fsynced after the file was created")
        return bad


def _durability_problems(todoku, tmp_world, env=None):
    """Send 12 messages (every fourth too big to be kept inline) to a daemon
    under strace; return {qid: [what is missing]} for the ids whose 250 was
    not preceded by their own fsyncs, and how many were kept as body files."""
    trace = tmp_world / ("strace%d.out" % len(list(tmp_world.glob("strace*"))))
    d = todoku(env=env, wrapper=["strace", "-f", "-qq", "-ttt", "-T", "-y", "-s", "8192",
                                 "-e", "trace=fsync,fdatasync,write,writev,pwrite64,"
                                 "pwritev,pwritev2,sendto,sendmsg,openat,open",
                                 "-o", str(trace)])
    ids = []
    c = d.smtp()
    c.ehlo()
    for i in range(12):
        assert c.cmd("MAIL FROM:<a@x.test>").code == 250
        assert c.cmd("RCPT TO:<someone@localhost>").code == 250
        assert c.cmd("DATA").code == 354
        body = b"Subject: durable %d\r\n\r\n" % i + (b"z" * 70 + b"\r\n") * (3000 if i % 4 == 0 else 5)
        c.send(body + b".\r\n")
        r = c.read_reply()
        assert r.code == 250, r
        ids.append(queue_id(r.text))
    c.quit()
    d.wait_delivered("someone", 12)
    d.stop()
    tr = Trace(trace)
    spool = str(d.spool)
    assert set(ids) <= set(tr.replies), ("250 replies not found in the trace", ids, tr.replies)
    files = [q for q in ids if any(w[2].endswith("/" + q) for w in tr.writes)]
    return {q: p for q in ids for p in [tr.problems(q, spool)] if p}, files


def test_fsync_returns_before_250(todoku, tmp_world):
    bad, files = _durability_problems(todoku, tmp_world)
    assert not bad, "queue ids answered 250 before their own data was synced: %r" % bad
    # the big messages took the body-file path, so that path was checked too
    assert len(files) == 3, files


NOOP_SYNC_C = b"""
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
"""


def test_fsync_probe_catches_a_noop_fsync(todoku, tmp_world):
    """The probe above has teeth: with fsync/fdatasync made no-ops by an
    LD_PRELOAD shim, it must report every 250 as unsynced."""
    src = tmp_world / "noop_sync.c"
    lib = tmp_world / "noop_sync.so"
    src.write_bytes(NOOP_SYNC_C)
    import subprocess
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)], check=True)
    os.chmod(lib, 0o755)
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    env = {"LD_PRELOAD": str(lib), "ASAN_OPTIONS": asan + ":verify_asan_link_order=0"}
    bad, _ = _durability_problems(todoku, tmp_world, env=env)
    assert len(bad) == 12, "probe missed no-op fsyncs: only %r flagged" % sorted(bad)
