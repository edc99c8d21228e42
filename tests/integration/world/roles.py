"""Helpers for tests that poke at todoku's role processes and its log.

role_pids(master_pid) -> {"queue": [pid], "local": [pid], "smtp-in": [pid, ...]}
wait_for(fn, timeout, what) -> first truthy value of fn(), or AssertionError
wait_log(daemon, regex, timeout, start=0) -> the re.Match in the log text
tcp_owners(pids, addr, port) -> the pids among `pids` with a TCP connection to addr:port
"""
import os
import socket
import re
import time


def _ppid(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("PPid:"):
                    return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _state(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("State:"):
                    return ln.split()[1]
    except OSError:
        pass
    return None


def role_pids(master_pid):
    """Live (not zombie) children of the master, grouped by their --role."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if _ppid(pid) != master_pid or _state(pid) in (None, "Z", "X"):
            continue
        argv = _cmdline(pid)
        if "--role" in argv:
            i = argv.index("--role")
            if i + 1 < len(argv):
                out.setdefault(argv[i + 1], []).append(pid)
    for v in out.values():
        v.sort()
    return out


def _tcp_inodes(addr, port):
    """Socket inodes of TCP connections (any state) whose remote end is
    IPv4 addr:port, from /proc/net/tcp."""
    want = "%s:%04X" % (socket.inet_aton(addr)[::-1].hex().upper(), port)
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for ln in f:
            cols = ln.split()
            if cols[2] == want:
                found.add(cols[9])
    return found


def tcp_owners(pids, addr, port):
    """Which of `pids` hold a TCP connection to addr:port (IPv4)."""
    inodes = _tcp_inodes(addr, port)
    owners = []
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                owners.append(pid)
                break
    return owners


def pid_gone(pid):
    st = _state(pid)
    return st is None or st in ("Z", "X")


def wait_for(fn, timeout=10.0, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %.0fs" % (what, timeout))
        time.sleep(interval)


def wait_log(daemon, regex, timeout=10.0, start=0, flags=re.M):
    """Wait until the daemon's log (from character offset `start`) matches."""
    rx = re.compile(regex, flags)

    def probe():
        return rx.search(daemon.log_text(), start)
    return wait_for(probe, timeout, "log line /%s/" % regex)
