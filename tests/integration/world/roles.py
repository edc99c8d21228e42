"""Helpers for tests that poke at todoku's role processes and its log.

role_pids(master_pid) -> {"queue": [pid], "local": [pid], "smtp-in": [pid, ...]}
wait_for(fn, timeout, what) -> first truthy value of fn(), or AssertionError
wait_log(daemon, regex, timeout, start=0) -> the re.Match in the log text
"""
import os
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
