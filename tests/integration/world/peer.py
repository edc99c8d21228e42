"""A scripted SMTP peer (threaded, raw sockets) that records everything.

    peer = smtp_peer(greeting="220 peer.test ESMTP", greeting_delay=0,
                     replies={"RCPT": ["450 4.2.1 busy", "250 2.1.5 ok"]},
                     data_reply="250 2.0.0 queued")

Script keys (all optional):
  greeting        str | list[str] (multi-line) | None (never greet)
  greeting_delay  seconds before the greeting
  ehlo            list of extension keywords for the EHLO reply
  replies         {"VERB": reply | [reply, reply, ...]}: a list is consumed one
                  per command over the peer's lifetime, its last entry repeats.
                  A reply is "250 ok", a list of lines for a multi-line reply
                  ("250-a", "250 b"), or an action: "drop" (close at once),
                  "hang" (never answer).
  data_reply      reply (or list, consumed per message) after end of data;
                  "drop" closes instead of answering.
  drop_mid_data   close the connection after this many octets of DATA
  stall_mid_data  in the first DATA only: after this many octets stop
                  reading and never answer; keep the connection open until
                  the client closes it (later DATAs are served normally)
  on_command      callable(session, line) -> reply | None: overrides all
  tls             (certfile, keyfile): offer STARTTLS with this certificate
                  (PEM, chain in certfile); after the handshake the session
                  has .tls = True and .sni (the name the client asked for)
  implicit_tls    True (with tls set): TLS from the first byte, like an
                  smtps (port 465) server: the handshake comes before the
                  greeting and STARTTLS is not offered. A client that does
                  not start TLS gets nothing: the session records
                  "<TLS handshake failed: ...>" and the first octets it sent
                  (.plain_bytes)
Recorded: peer.sessions (each with .commands [str], .messages), peer.messages
(every completed message: dict(mail_from, rcpts, data (bytes, CRLF, un-
stuffed), helo, session)), peer.connections, peer.active (SMTP sessions open
now: a connection counts until it sent QUIT or closed), peer.max_active
(most open at once), peer.connect_times (monotonic).
addr may be an IPv6 address ("::1"): the peer then listens on IPv6. A given
addr (rather than a fresh one from alloc_addr) may be shared with other test
processes (::1 is): the peer waits for it with net.hold_fixed and lets go
in stop().
"""
import os
import socket
import ssl
import threading
import time

from .net import alloc_addr, hold_fixed


class Session:
    def __init__(self, peer_addr):
        self.peer_addr = peer_addr
        self.commands = []
        self.messages = []
        self.helo = None
        self.closed_by = None
        self.tls = False
        self.sni = None
        self.plain_bytes = b""
        self.counted = True     # in peer.active until QUIT or close


class Gauge:
    """Sessions open at once over several peers (e.g. the two MX hosts of
    one destination): pass the same Gauge to each as gauge=."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def enter(self):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self):
        with self._lock:
            self.active -= 1


class SMTPPeer:
    def __init__(self, port=2525, addr=None, greeting="220 peer.test ESMTP scripted",
                 greeting_delay=0.0, ehlo=("PIPELINING", "8BITMIME", "SIZE 10485760",
                                           "ENHANCEDSTATUSCODES"),
                 replies=None, data_reply="250 2.0.0 Ok: queued", drop_mid_data=None,
                 stall_mid_data=None, on_command=None, hostname="peer.test", tls=None,
                 implicit_tls=False, gauge=None):
        self.addr = addr or alloc_addr(ports=(port,))
        self.gauge = gauge
        self.port = port
        self.greeting = greeting
        self.greeting_delay = greeting_delay
        self.ehlo = list(ehlo)
        self.replies = {k.upper(): _seq(v) for k, v in (replies or {}).items()}
        self.data_reply = _seq(data_reply)
        self.drop_mid_data = drop_mid_data
        self.stall_mid_data = stall_mid_data
        self.stalled = 0
        self._stall_taken = False
        self.on_command = on_command
        self.hostname = hostname
        self._tls_ctx = None
        self.implicit_tls = bool(implicit_tls)
        assert tls is not None or not implicit_tls, "implicit_tls needs tls"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            ctx.sni_callback = self._on_sni
            self._tls_ctx = ctx
            self._sni_seen = threading.local()
        self.sessions = []
        self.messages = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.connect_times = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        fam = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self._fixed = hold_fixed(addr, port) if addr else None
        self._sock = socket.socket(fam, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((self.addr, port))
        except OSError:
            self._sock.close()
            self._let_go()
            raise
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._conns = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    # -- script helpers ---------------------------------------------------
    def _next(self, lst):
        with self._lock:
            return lst.pop(0) if len(lst) > 1 else lst[0]

    def _reply_for(self, verb):
        lst = self.replies.get(verb)
        return self._next(lst) if lst else None

    def _take_stall(self):
        with self._lock:
            if self.stall_mid_data is None or self._stall_taken:
                return False
            self._stall_taken = True
            return True

    def _on_sni(self, sslobj, name, ctx):
        self._sni_seen.name = name

    def _starttls(self, c, s):
        """Handshake on c; the TLS socket, or None when it failed."""
        self._sni_seen.name = None
        try:
            t = self._tls_ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError) as e:
            s.sni = self._sni_seen.name
            with self._lock:
                s.commands.append("<TLS handshake failed: %s>" % e)
            return None
        s.tls = True
        s.sni = self._sni_seen.name
        with self._lock:
            s.commands.append("<TLS %s>" % t.version())
        return t

    def _implicit_handshake(self, c, s):
        """smtps: TLS before anything else; None when the client did not
        start TLS (its first octets are kept in s.plain_bytes)."""
        c.settimeout(5)      # a plaintext client waits for a greeting
        try:
            head = c.recv(5, socket.MSG_PEEK)
        except OSError:
            head = b""
        c.settimeout(30)
        if not head or head[0] != 0x16:      # not a TLS handshake record
            c.settimeout(2)
            try:
                s.plain_bytes = c.recv(4096)
            except OSError:
                pass
            with self._lock:
                s.commands.append("<TLS handshake failed: plaintext %r>" % s.plain_bytes[:40])
            s.closed_by = "tls"
            return None
        t = self._starttls(c, s)
        if t is None:
            s.closed_by = "tls"
        return t

    # -- server -------------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, a = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                self.connect_times.append(time.monotonic())
                if self.gauge is not None:
                    self.gauge.enter()
                self._conns.append(c)
            threading.Thread(target=self._serve, args=(c, a), daemon=True).start()

    def _serve(self, c, a):
        s = Session(a)
        with self._lock:
            self.sessions.append(s)
        c.settimeout(30)
        try:
            if self.implicit_tls:
                t = self._implicit_handshake(c, s)
                if t is None:
                    return
                c = t
            f = _Reader(c)
            if self.greeting_delay:
                if self._stop.wait(self.greeting_delay):
                    return
            if self.greeting is None:
                while not self._stop.wait(0.2):
                    if f.peek_eof():
                        return
                return
            _send(c, self.greeting)
            mail_from, rcpts = None, []
            while not self._stop.is_set():
                line = f.readline()
                if line is None:
                    s.closed_by = "client"
                    return
                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                with self._lock:
                    s.commands.append(text)
                verb = text.split(" ", 1)[0].upper()
                r = self.on_command(s, text) if self.on_command else None
                if r is None:
                    r = self._reply_for(verb)
                if r is None:
                    r = self._default(verb, text, s)
                if r == "drop":
                    s.closed_by = "peer"
                    return
                if r == "hang":
                    self._stop.wait(60)
                    return
                if verb in ("EHLO", "HELO"):
                    s.helo = text[5:].strip()
                    mail_from, rcpts = None, []
                elif verb == "MAIL" and _code(r) == 250:
                    mail_from, rcpts = _path(text), []
                elif verb == "RCPT" and _code(r) == 250:
                    rcpts.append(_path(text))
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                if verb == "QUIT":
                    # the session is over once QUIT is read: the client
                    # may connect again as soon as it has the 221
                    self._leave(s)
                _send(c, r)
                if verb == "QUIT":
                    return
                if verb == "STARTTLS" and _code(r) == 220 and self._tls_ctx and not s.tls:
                    t = self._starttls(c, s)
                    if t is None:
                        s.closed_by = "tls"
                        return
                    c = t
                    f = _Reader(c)
                    mail_from, rcpts = None, []
                    continue
                if verb == "DATA" and _code(r) == 354 and self._take_stall():
                    f.read_data(self.stall_mid_data)
                    with self._cond:
                        s.commands.append("<stalled in data after %d octets>"
                                          % self.stall_mid_data)
                        self.stalled += 1
                        self._cond.notify_all()
                    while not self._stop.wait(0.2):
                        if f.peek_eof():
                            s.closed_by = "client"
                            return
                    return
                if verb == "DATA" and _code(r) == 354:
                    data = f.read_data(self.drop_mid_data)
                    if data is None:
                        s.closed_by = "peer" if self.drop_mid_data is not None else "client"
                        return
                    dr = self._next(self.data_reply)
                    if dr == "drop":
                        s.closed_by = "peer"
                        with self._cond:
                            s.commands.append("<data %d octets, dropped>" % len(data))
                            self._cond.notify_all()
                        return
                    msg = dict(mail_from=mail_from, rcpts=list(rcpts), data=data,
                               helo=s.helo, session=s, reply=dr)
                    with self._cond:
                        s.messages.append(msg)
                        if _code(dr) == 250:
                            self.messages.append(msg)
                        self._cond.notify_all()
                    _send(c, dr)
                    mail_from, rcpts = None, []
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass
            self._leave(s)

    def _leave(self, s):
        with self._cond:
            if s.counted:
                s.counted = False
                self.active -= 1
                if self.gauge is not None:
                    self.gauge.leave()
            self._cond.notify_all()

    def _default(self, verb, text, s=None):
        if verb == "STARTTLS" and self._tls_ctx is not None and not self.implicit_tls:
            return "220 2.0.0 Ready to start TLS"
        if verb == "EHLO":
            lines = [self.hostname] + self.ehlo
            if self._tls_ctx is not None and not (s and s.tls) and not self.implicit_tls:
                lines.append("STARTTLS")
            return ["250-" + x for x in lines[:-1]] + ["250 " + lines[-1]]
        return {
            "HELO": "250 %s" % self.hostname,
            "MAIL": "250 2.1.0 Ok",
            "RCPT": "250 2.1.5 Ok",
            "DATA": "354 End data with <CR><LF>.<CR><LF>",
            "RSET": "250 2.0.0 Ok",
            "NOOP": "250 2.0.0 Ok",
            "QUIT": "221 2.0.0 Bye",
        }.get(verb, "502 5.5.2 Error: command not recognized")

    # -- test API ------------------------------------------------------------
    def wait_messages(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("peer %s:%d got %d message(s), wanted %d; sessions: %r"
                                         % (self.addr, self.port, len(self.messages), n,
                                            [x.commands for x in self.sessions]))
                self._cond.wait(left)
            return list(self.messages)

    def wait_stalled(self, timeout=30.0):
        """Wait until a DATA has been stalled (see stall_mid_data)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.stalled:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("peer %s:%d never stalled a DATA; sessions: %r"
                                         % (self.addr, self.port,
                                            [x.commands for x in self.sessions]))
                self._cond.wait(left)

    def all_commands(self):
        with self._lock:
            return [cmd for s in self.sessions for cmd in s.commands]

    def transcript(self):
        with self._lock:
            return "\n".join("session %d from %s:\n  " % (i, s.peer_addr) + "\n  ".join(s.commands)
                             for i, s in enumerate(self.sessions))

    def stop(self):
        self._stop.set()
        self._sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(2)
        self._let_go()

    def _let_go(self):
        if self._fixed is not None:
            os.close(self._fixed)
            self._fixed = None


def _seq(v):
    """A reply spec -> a list of replies (consumed in order, last repeats)."""
    if isinstance(v, str) or _is_multiline(v):
        return [v]
    return list(v)


def _is_multiline(v):
    return isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) for x in v) \
        and len(v[0]) > 3 and v[0][3] == "-"


def _code(r):
    line = r[0] if isinstance(r, list) else r
    try:
        return int(line[:3])
    except (ValueError, TypeError):
        return 0


def _send(c, r):
    if isinstance(r, list):
        data = "".join(x + "\r\n" for x in r)
    else:
        data = r + "\r\n"
    c.sendall(data.encode())


def _path(text):
    i, j = text.find("<"), text.find(">")
    return text[i + 1:j] if 0 <= i < j else text.split(":", 1)[-1].strip()


class _Reader:
    def __init__(self, c):
        self.c = c
        self.buf = b""

    def _fill(self):
        chunk = self.c.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def peek_eof(self):
        self.c.settimeout(0.01)
        try:
            chunk = self.c.recv(65536)
            if not chunk:
                return True
            self.buf += chunk
        except socket.timeout:
            pass
        finally:
            self.c.settimeout(30)
        return False

    def readline(self):
        while b"\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def read_data(self, drop_after=None):
        """Read until CRLF.CRLF; return the un-stuffed message bytes."""
        total = 0
        lines = []
        while True:
            if drop_after is not None and total + len(self.buf) >= drop_after:
                return None
            while b"\r\n" not in self.buf:
                if drop_after is not None and total + len(self.buf) >= drop_after:
                    return None
                if not self._fill():
                    return None
            line, self.buf = self.buf.split(b"\r\n", 1)
            total += len(line) + 2
            if line == b".":
                return b"".join(x + b"\r\n" for x in lines)
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)
