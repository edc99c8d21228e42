"""Loopback address allocation.

Every server in the test world gets its own 127.A.B.C address so tests never
collide on ports. A is derived from the pid so that two test runs at the same
time (e.g. a normal and a sanitizer build under `make check`) use disjoint
ranges; every candidate is bind-checked before it is handed out.
"""
import itertools
import os
import socket
import threading

_lock = threading.Lock()
_A = 20 + (os.getpid() % 200)          # 127.<20..219>.B.C
_counter = itertools.count(1)


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
        for _ in range(5000):
            n = next(_counter)
            b, c = divmod(n, 250)
            addr = "127.%d.%d.%d" % (_A, b % 250, c + 2)
            if all(_free(addr, p, socket.SOCK_STREAM) for p in ports) and \
               all(_free(addr, p, socket.SOCK_DGRAM) for p in udp_ports):
                return addr
    raise RuntimeError("no free loopback address")


def wait_port(addr, port, timeout=10.0, proc=None):
    """Poll until a TCP connect to addr:port succeeds. Returns True/False.
    If proc (a Popen) exits meanwhile, returns False early."""
    import time
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
