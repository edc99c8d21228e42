"""Loopback address allocation, and serialised use of fixed addresses.

Every server in the test world gets its own 127.A.B.C address so tests never
collide on ports. Each test process (a plain pytest run, or each xdist
worker of a parallel one) claims a whole 127.A.0.0/16 for itself by holding
an exclusive flock on /tmp/todoku-tests-locks/net-A for as long as it lives
(the kernel drops the lock when the process exits, even on SIGKILL), so two
processes never hand out the same address, whatever their pids. Ranges
220..254 are tried first, from a pid-derived start, then 20..219 (where test
runs of older checkouts pick 20 + pid % 200 without a lock); every candidate
is still bind-checked before it is handed out.

A few tests need an address every process shares: ::1 (IPv6 loopback has
one address) on port 25, or the built-in configuration's 127.0.0.1:2525.
hold_fixed(addr, port) serialises them: it waits for an exclusive flock
named after the address and the port, and the caller closes the returned
fd when it is done with the address. A test inside a network namespace of
its own (test_ipv6_family.py) has a private ::1 and does not wait: a
thread outside the namespace the process started in gets /dev/null, and
so does an address of the process's own 127.A range.
"""
import errno
import fcntl
import itertools
import os
import socket
import threading
import time

LOCK_DIR = "/tmp/todoku-tests-locks"
_RANGES = list(range(220, 255)) + list(range(20, 220))

_lock = threading.Lock()
_A = None                 # our 127.A, claimed on first use
_A_fd = None              # the fd holding its flock (never closed)
_counter = itertools.count(1)
_HOME_NS = os.stat("/proc/self/ns/net").st_ino


def _lock_file(name):
    os.makedirs(LOCK_DIR, mode=0o755, exist_ok=True)
    return os.open(os.path.join(LOCK_DIR, name), os.O_RDWR | os.O_CREAT, 0o644)


def _try_flock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        return False


def _claim_range():
    """The 127.A of this process: the first A whose lock we can take."""
    global _A, _A_fd
    if _A is not None:
        return _A
    start = os.getpid() % 35          # spread the starts over 220..254
    for a in _RANGES[start:] + _RANGES[:start]:
        fd = _lock_file("net-%d" % a)
        if _try_flock(fd):
            _A, _A_fd = a, fd
            return a
        os.close(fd)
    raise RuntimeError("every 127.A range is held by another test process")


def _free(addr, port, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def alloc_addr(ports=(2525,), udp_ports=()):
    """Return a fresh 127.A.B.C on which every given TCP/UDP port is free."""
    with _lock:
        a = _claim_range()
        for _ in range(5000):
            n = next(_counter)
            b, c = divmod(n, 250)
            addr = "127.%d.%d.%d" % (a, b % 250, c + 2)
            if all(_free(addr, p, socket.SOCK_STREAM) for p in ports) and \
               all(_free(addr, p, socket.SOCK_DGRAM) for p in udp_ports):
                return addr
    raise RuntimeError("no free loopback address")


def hold_fixed(addr, port, timeout=300.0):
    """Wait until this process alone among test processes uses addr:port;
    return the fd to close when done."""
    if os.stat("/proc/thread-self/ns/net").st_ino != _HOME_NS:
        return os.open(os.devnull, os.O_RDONLY)     # a namespace of our own
    if _A is not None and addr.startswith("127.%d." % _A):
        return os.open(os.devnull, os.O_RDONLY)     # from our own range
    name = "fixed-%s-%d" % (addr.replace(":", "_").replace(".", "_"), port)
    fd = _lock_file(name)
    deadline = time.monotonic() + timeout
    while not _try_flock(fd):
        if time.monotonic() > deadline:
            os.close(fd)
            raise RuntimeError("%s port %d: another test process held it for %ds "
                               "(lock %s/%s)" % (addr, port, timeout, LOCK_DIR, name))
        time.sleep(0.1)
    return fd


def wait_port(addr, port, timeout=10.0, proc=None):
    """Poll until a TCP connect to addr:port succeeds. Returns True/False.
    If proc (a Popen) exits meanwhile, returns False early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.settimeout(0.5)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False
