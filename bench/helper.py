#!/usr/bin/python3
"""Small helpers for bench/run.sh (standard library only).

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
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
