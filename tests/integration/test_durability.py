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

SYSCALL_RE = re.compile(r"^(\d+)\s+(\d+\.\d+) (?:<\.\.\. )?(\w+)(.*?)(?:<(\d+\.\d+)>)?$")


def _parse_strace(path, spool):
    """-> (sync_exits [time], replies {qid: time_of_write})."""
    syncs, replies, pending = [], {}, {}
    spool = str(spool)
    for ln in open(path, errors="replace"):
        ln = ln.rstrip("\n")
        m = SYSCALL_RE.match(ln)
        if not m:
            continue
        pid, ts, name, rest, dur = m.groups()
        ts = float(ts)
        if "unfinished" in rest:
            pending[(pid, name)] = rest
            continue
        resumed = "resumed>" in rest
        if resumed:
            rest = pending.pop((pid, name), "") + rest
        end = ts if resumed else ts + float(dur or 0)
        if name in ("fsync", "fdatasync", "sync_file_range", "syncfs"):
            if " = 0" in rest and spool in rest:
                syncs.append(end)
        elif name in ("write", "writev", "sendto", "sendmsg", "send"):
            q = re.search(r"250 2\.0\.0 [^\"]*queued as ([A-Za-z0-9._-]+)", rest)
            if q:
                replies.setdefault(q.group(1).rstrip("."), ts)
    return syncs, replies


def _unsynced_replies(todoku, tmp_world, env=None):
    """Send 12 messages to a daemon under strace; return the queue ids whose
    250 was written with no spool fsync/fdatasync returning in between."""
    trace = tmp_world / ("strace%d.out" % len(list(tmp_world.glob("strace*"))))
    d = todoku(env=env, wrapper=["strace", "-f", "-qq", "-ttt", "-T", "-y", "-s", "256",
                                 "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,"
                                 "write,writev,sendto,sendmsg",
                                 "-o", str(trace)])
    sent = {}      # qid -> time the final dot was sent
    c = d.smtp()
    c.ehlo()
    for i in range(12):
        assert c.cmd("MAIL FROM:<a@x.test>").code == 250
        assert c.cmd("RCPT TO:<someone@localhost>").code == 250
        assert c.cmd("DATA").code == 354
        body = b"Subject: durable %d\r\n\r\n" % i + (b"z" * 70 + b"\r\n") * (3000 if i % 4 == 0 else 5)
        c.send(body)
        t = time.time()
        c.send(b".\r\n")
        r = c.read_reply()
        assert r.code == 250, r
        sent[queue_id(r.text)] = t
    c.quit()
    d.wait_delivered("someone", 12)
    d.stop()
    syncs, replies = _parse_strace(trace, d.spool)
    assert set(sent) <= set(replies), ("250 replies not found in the trace", sent, replies)
    return [qid for qid, t_dot in sent.items()
            if not [s for s in syncs if t_dot <= s <= replies[qid]]]


def test_fsync_returns_before_250(todoku, tmp_world):
    bad = _unsynced_replies(todoku, tmp_world)
    assert not bad, "no fsync/fdatasync on the spool returned between end of data " \
                    "and the 250 for %r" % bad


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
    bad = _unsynced_replies(todoku, tmp_world, env=env)
    assert len(bad) == 12, "probe missed no-op fsyncs: only %r flagged" % bad
