#!/usr/bin/python3
"""Small helpers for bench/run.sh and bench/outbound.sh (standard library only).

  helper.py fsync-latency DIR [COUNT]      -> "median_ms p99_ms max_ms"
  helper.py wait-port HOST PORT TIMEOUT    -> exit 0 once a TCP connect works
  helper.py count DIR                      -> number of files in DIR
  helper.py wait-count DIR N TIMEOUT       -> waits until DIR holds >= N files,
                                              prints the wall-clock time (epoch
                                              seconds) it first saw N; exit 1 on
                                              timeout (prints the count reached)
  helper.py wait-empty TIMEOUT DIR...      -> waits until the directory trees
                                              hold no regular files; prints the
                                              time; exit 1 on timeout
  helper.py sink-count FILE                -> messages smtp-sink -c has counted
                                              (the last "mesg=N" in its output)
  helper.py wait-sink FILE N TIMEOUT       -> waits until smtp-sink has counted
                                              >= N messages, prints the time it
                                              first saw N; exit 1 on timeout
                                              (prints the count reached)
  helper.py watch-sink FILE N TIMEOUT      -> for a run: prints "ready" once
                                              polling, "atend COUNT" when sent
                                              SIGUSR1 (the client finished),
                                              "done TIME" when smtp-sink has
                                              counted >= N (or "timeout COUNT");
                                              started before the client, so no
                                              interpreter start-up is timed
  helper.py session-cpu SID                -> "user_s system_s" used so far by the
                                              processes of session SID, including
                                              children they reaped (utime+stime+
                                              cutime+cstime; the fallback when no
                                              cgroup can be made)
  helper.py smtp-latency HOST PORT N LEN [RAW]
                                           -> one SMTP connection, N messages of
                                              LEN payload bytes (MAIL, RCPT,
                                              DATA each, no pipelining); per
                                              message the time from writing the
                                              final "\r\n.\r\n" to reading the
                                              complete 250 reply; prints
                                              "median_ms p99_ms max_ms"; every
                                              sample to RAW if given; exit 1 on
                                              any unexpected reply
"""
import os
import socket
import statistics
import sys
import time


def fsync_latency(d, count=200):
    path = os.path.join(d, "fdatasync-probe.%d" % os.getpid())
    block = b"x" * 4096
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(count):
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1000.0)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print("%.3f %.3f %.3f" % (statistics.median(lat), p99, lat[-1]))


def wait_port(host, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return 0
        except OSError:
            time.sleep(0.05)
    return 1


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def wait_count(d, n, timeout):
    deadline = time.monotonic() + timeout
    while True:
        c = count_files(d)
        if c >= n:
            print("%.6f" % time.time())
            return 0
        if time.monotonic() > deadline:
            print(c)
            return 1
        time.sleep(0.01)


def tree_files(dirs):
    n = 0
    for top in dirs:
        for _root, _dirs, files in os.walk(top):
            n += len(files)
    return n


def wait_empty(timeout, dirs):
    deadline = time.monotonic() + timeout
    while True:
        if tree_files(dirs) == 0:
            print("%.6f" % time.time())
            return 0
        if time.monotonic() > deadline:
            print(tree_files(dirs))
            return 1
        time.sleep(0.01)


def sink_count(path):
    """smtp-sink -c rewrites one status line per event, separated by CR:
    "sess=N quit=N mesg=N"; the last complete mesg= is the count."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except FileNotFoundError:
        return 0
    for rec in reversed(tail.split(b"\r")[:-1]):
        for field in rec.split():
            if field.startswith(b"mesg="):
                return int(field[5:])
    return 0


def wait_sink(path, n, timeout):
    deadline = time.monotonic() + timeout
    while True:
        c = sink_count(path)
        if c >= n:
            print("%.6f" % time.time())
            return 0
        if time.monotonic() > deadline:
            print(c)
            return 1
        time.sleep(0.01)


def watch_sink(path, n, timeout):
    import signal

    def atend(_sig, _frame):
        print("atend %d" % sink_count(path), flush=True)

    signal.signal(signal.SIGUSR1, atend)
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while True:
        c = sink_count(path)
        if c >= n:
            print("done %.6f" % time.time(), flush=True)
            return 0
        if time.monotonic() > deadline:
            print("timeout %d" % c, flush=True)
            return 1
        time.sleep(0.005)


def session_cpu(sid):
    hz = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid, "rb") as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(b")") + 2:].split()
        if int(f[3]) != sid:
            continue
        user += int(f[11]) + int(f[13])
        system += int(f[12]) + int(f[14])
    print("%.3f %.3f" % (user / hz, system / hz))


def percentiles(lat):
    lat = sorted(lat)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    return statistics.median(lat), p99, lat[-1]


class SmtpError(Exception):
    pass


def read_reply(f):
    """Read one (possibly multi-line) reply; return (code, text)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise SmtpError("connection closed")
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    return int(lines[-1][:3]), " / ".join(lines)


def smtp_latency(host, port, n, length, raw=None):
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")

    def cmd(line, want):
        sock.sendall(line.encode() + b"\r\n")
        code, text = read_reply(f)
        if code != want:
            raise SmtpError("%s -> %s" % (line, text))

    code, text = read_reply(f)
    if code != 220:
        raise SmtpError("banner " + text)
    cmd("EHLO latency.bench.test", 250)
    # payload: LEN bytes of 76-character lines, like a 4 KiB text message
    line = b"x" * 76 + b"\r\n"
    payload = (line * (length // len(line) + 1))[:length]
    payload = payload.rstrip(b"\r\n") if payload.endswith(b"\n") else payload
    lat = []
    for i in range(n):
        cmd("MAIL FROM:<a@bench.test>", 250)
        cmd("RCPT TO:<sink@bench.test>", 250)
        cmd("DATA", 354)
        head = ("From: <a@bench.test>\r\nTo: <sink@bench.test>\r\n"
                "Subject: latency %d\r\nMessage-ID: <lat%d.%d@bench.test>\r\n"
                "\r\n" % (i, os.getpid(), i)).encode()
        sock.sendall(head + payload)
        t0 = time.perf_counter()
        sock.sendall(b"\r\n.\r\n")
        code, text = read_reply(f)
        t1 = time.perf_counter()
        if code != 250:
            raise SmtpError("end of data, message %d -> %s" % (i, text))
        lat.append((t1 - t0) * 1000.0)
    cmd("QUIT", 221)
    sock.close()
    if raw:
        with open(raw, "w") as out:
            out.write("".join("%.3f\n" % x for x in lat))
    print("%.3f %.3f %.3f" % percentiles(lat))
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "fsync-latency":
        fsync_latency(argv[2], int(argv[3]) if len(argv) > 3 else 200)
        return 0
    if cmd == "wait-port":
        return wait_port(argv[2], int(argv[3]), float(argv[4]))
    if cmd == "count":
        print(count_files(argv[2]))
        return 0
    if cmd == "wait-count":
        return wait_count(argv[2], int(argv[3]), float(argv[4]))
    if cmd == "wait-empty":
        return wait_empty(float(argv[2]), argv[3:])
    if cmd == "sink-count":
        print(sink_count(argv[2]))
        return 0
    if cmd == "wait-sink":
        return wait_sink(argv[2], int(argv[3]), float(argv[4]))
    if cmd == "watch-sink":
        return watch_sink(argv[2], int(argv[3]), float(argv[4]))
    if cmd == "session-cpu":
        session_cpu(int(argv[2]))
        return 0
    if cmd == "smtp-latency":
        try:
            return smtp_latency(argv[2], int(argv[3]), int(argv[4]), int(argv[5]),
                                argv[6] if len(argv) > 6 else None)
        except (OSError, SmtpError, ValueError) as e:
            sys.stderr.write("smtp-latency: %s\n" % e)
            return 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
