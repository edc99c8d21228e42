"""A raw, socket-level SMTP client for tests.

It sends exactly the bytes it is given (no dot-stuffing, no line-end fixing
unless asked) and parses replies, including multi-line ones, so tests can
probe pipelining, smuggling, over-long lines, NUL bytes and so on.
"""
import re
import socket
import time

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


class SMTPClosed(Exception):
    """The server closed the connection (EOF) before a full reply."""


class Reply:
    def __init__(self, code, lines, raw):
        self.code = code            # int, e.g. 250
        self.lines = lines          # text of each line, without "250-"/"250 "
        self.raw = raw              # the bytes as received

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enh(self):
        """Enhanced status code of the first line ("2.1.0") or None."""
        m = ENH_RE.match(self.lines[0]) if self.lines else None
        return "%s.%s.%s" % m.groups() if m else None

    def all_enh(self):
        """Enhanced status code of every line (None where absent)."""
        out = []
        for ln in self.lines:
            m = ENH_RE.match(ln)
            out.append("%s.%s.%s" % m.groups() if m else None)
        return out

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)

    def __str__(self):
        return self.raw.decode("utf-8", "replace")


class SMTPClient:
    def __init__(self, host, port, timeout=10.0, source=None, read_greeting=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.timeout = timeout
        self._buf = b""
        self.transcript = []        # [("C"|"S", bytes)]
        self.greeting = self.read_reply() if read_greeting else None

    # -- low level -------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data))
        self.sock.sendall(data)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line within %.1fs; got %r"
                                     % (timeout, self._buf))
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SMTPClosed("connection closed; partial %r" % self._buf)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line + b"\n"

    def read_reply(self, timeout=None):
        """Read one (possibly multi-line) reply."""
        timeout = self.timeout if timeout is None else timeout
        lines, raw, code = [], b"", None
        while True:
            ln = self._readline(timeout)
            raw += ln
            s = ln.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(s) < 3 or not s[:3].isdigit():
                raise ValueError("malformed reply line %r" % ln)
            c = int(s[:3])
            if code is not None and c != code:
                raise ValueError("reply code changed within multi-line reply: %r" % raw)
            code = c
            sep = s[3:4]
            lines.append(s[4:])
            if sep != "-":
                break
        self.transcript.append(("S", raw))
        return Reply(code, lines, raw)

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF appended if missing) and read the reply."""
        if isinstance(line, str):
            line = line.encode()
        if not line.endswith(b"\r\n"):
            line += b"\r\n"
        self.send(line)
        return self.read_reply(timeout)

    def closed(self, timeout=2.0):
        """True if the server closes the connection within timeout (any
        unread bytes are discarded)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self._buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def quit(self):
        try:
            r = self.cmd("QUIT", timeout=5)
        except (OSError, SMTPClosed, ValueError):
            r = None
        self.close()
        return r

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- conveniences ------------------------------------------------------
    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        self.extensions = {}
        for ln in r.lines[1:]:
            parts = ln.split()
            if parts:
                self.extensions[parts[0].upper()] = parts[1:]
        return r

    def data_bytes(self, payload):
        """Send a message body (already CRLF, already dot-stuffed as the
        caller wishes) followed by CRLF.CRLF; return the final reply."""
        if isinstance(payload, str):
            payload = payload.encode()
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self.send(payload + b".\r\n")
        return self.read_reply()

    def sendmail(self, sender, rcpts, message, mail_params=""):
        """One full transaction with per-step checks. `message` is text or
        bytes with any line ends; it is normalised to CRLF and dot-stuffed.
        Returns the reply to end-of-data. Raises AssertionError on any
        unexpected intermediate reply."""
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + mail_params) if mail_params else ""))
        assert r.code == 250, r
        for rc in ([rcpts] if isinstance(rcpts, str) else rcpts):
            r = self.cmd("RCPT TO:<%s>" % rc)
            assert r.code == 250, (rc, r)
        r = self.cmd("DATA")
        assert r.code == 354, r
        return self.data_bytes(to_crlf_stuffed(message))


def to_crlf_stuffed(message):
    if isinstance(message, str):
        message = message.encode()
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for ln in lines:
        if ln.startswith(b"."):
            ln = b"." + ln
        out.append(ln + b"\r\n")
    return b"".join(out)


def make_message(subject="test", body="hello\n", sender="a@x.test",
                 to="someone@localhost", msgid=None, extra_headers=()):
    """A small RFC 5322 message as bytes with LF line ends."""
    import email.utils
    hdr = [
        "From: <%s>" % sender,
        "To: <%s>" % to,
        "Subject: %s" % subject,
        "Date: %s" % email.utils.formatdate(),
        "Message-ID: <%s>" % (msgid or email.utils.make_msgid().strip("<>")),
    ]
    hdr.extend(extra_headers)
    b = body if isinstance(body, bytes) else body.encode()
    return ("\n".join(hdr) + "\n\n").encode() + b
