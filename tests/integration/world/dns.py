"""DNS for the test world.

KnotDNS: a real authoritative server (knotd) with zones written per test.
FaultyDNS: a scripted server (dnslib) that misbehaves per (name, type).
"""
import os
import pathlib
import socket
import struct
import subprocess
import threading
import time

from .net import alloc_addr


def _fqdn(name):
    return name if name.endswith(".") else name + "."


class KnotDNS:
    """knotd listening on <addr>:53 (UDP+TCP).

        dns.zone("example.test", ["@ MX 10 mx", "mx A 127.0.0.9"])

    Records are zone-file lines relative to the zone origin; SOA and NS are
    added unless given. Every call to zone() bumps the serial, reloads and
    waits until knotd serves the new serial.
    """

    def __init__(self, base, registry=None, port=53):
        self.dir = pathlib.Path(base) / "knot"
        for sub in ("", "run", "storage", "zones"):
            (self.dir / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
        self.port = port
        self.addr = alloc_addr(ports=(port,), udp_ports=(port,))
        self.conf = self.dir / "knot.conf"
        self.sock = self.dir / "run" / "knot.sock"
        self.log = self.dir / "knotd.log"
        self.zones = {}   # name -> serial
        self.signed = set()
        self.proc = None
        if registry is not None:
            registry.append(("knotd %s" % self.addr, self.log))
        self._write_conf()
        self.start()

    def _write_conf(self):
        lines = [
            "server:",
            "    rundir: \"%s\"" % (self.dir / "run"),
            "    listen: %s@%d" % (self.addr, self.port),
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "control:",
            "    listen: \"%s\"" % self.sock,
            "log:",
            "  - target: stderr",
            "    any: info",
            "database:",
            "    storage: \"%s\"" % (self.dir / "storage"),
            "template:",
            "  - id: default",
            "    storage: \"%s\"" % (self.dir / "zones"),
            "    file: \"%s.zone\"",
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: none",
            "    semantic-checks: off",
        ]
        if self.signed:
            # one combined key per zone (its DS goes into the parent)
            lines += ["policy:", "  - id: test", "    algorithm: ecdsap256sha256",
                      "    single-type-signing: on", "    nsec3: off"]
        if self.zones:
            lines.append("zone:")
            for z in self.zones:
                lines.append("  - domain: %s" % _fqdn(z))
                if z in self.signed:
                    lines += ["    dnssec-signing: on", "    dnssec-policy: test"]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["knotd", "-c", str(self.conf)], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("knotd exited: %s" % self.log.read_text())
            if self.sock.exists() and self._knotc("status", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("knotd did not start: %s" % self.log.read_text())

    def _knotc(self, *args, check=True):
        r = subprocess.run(["knotc", "-c", str(self.conf), "-s", str(self.sock)] + list(args),
                           capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise RuntimeError("knotc %s: %s %s" % (args, r.stdout, r.stderr))
        return r

    def zone(self, name, records, ttl=300, signed=False):
        """signed=True: knotd signs the zone (ECDSA P-256, one key);
        dnskeys(name) then gives its DNSKEY set for a DS or a trust anchor.
        The root zone is "."; give its SOA and NS yourself."""
        name = name.rstrip(".").lower()
        if signed:
            self.signed.add(name)
        serial = self.zones.get(name, 0) + 1
        self.zones[name] = serial
        body = ["$ORIGIN %s" % _fqdn(name), "$TTL %d" % ttl]
        has_soa = any(" SOA " in " %s " % r.upper() for r in records)
        has_ns = any(" NS " in " %s " % r.upper() for r in records if r.split()[0] == "@")
        if not has_soa:
            body.append("@ SOA ns.%s hostmaster.%s %d 3600 600 86400 60"
                        % (_fqdn(name), _fqdn(name), serial))
        if not has_ns:
            body.append("@ NS ns.%s" % _fqdn(name))
        body.extend(records)
        zf = self.dir / "zones" / ("%s.zone" % name)
        zf.write_text("\n".join(body) + "\n")
        self._write_conf()
        self._knotc("reload")
        if not has_soa:
            self._wait_serial(name, serial)
        return zf

    def dnskeys(self, name, timeout=10):
        """The DNSKEY RRset knotd serves for a signed zone (waits for it)."""
        import dns.message
        import dns.query
        import dns.rdatatype
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                q = dns.message.make_query(_fqdn(name), dns.rdatatype.DNSKEY,
                                           want_dnssec=True)
                a = dns.query.udp(q, self.addr, port=self.port, timeout=1)
                for rr in a.answer:
                    if rr.rdtype == dns.rdatatype.DNSKEY:
                        return rr
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("knotd did not sign %s: %s"
                           % (name, self.log.read_text()[-2000:]))

    def _wait_serial(self, name, serial, timeout=10):
        import dns.message
        import dns.query
        import dns.rdatatype
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                q = dns.message.make_query(_fqdn(name), dns.rdatatype.SOA)
                a = dns.query.udp(q, self.addr, port=self.port, timeout=1)
                for rr in a.answer:
                    for rd in rr:
                        if rd.serial >= serial:
                            return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError("knotd did not load %s serial %d: %s"
                           % (name, serial, self.log.read_text()[-2000:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self._knotc("stop", check=False)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


# ---------------------------------------------------------------------------
# Scripted DNS
# ---------------------------------------------------------------------------

class FaultyDNS:
    """A scripted DNS server on <addr>:53 (UDP, and TCP unless tcp=False).

    Rules per (name, type); type "ANY" matches every type:
        fdns.rule("a.test", "MX", "answer", ["a.test. 60 MX 10 mx.a.test."])
        fdns.rule("b.test", "MX", "servfail")
        fdns.rule("c.test", "MX", "timeout")          # never answers
        fdns.rule("d.test", "MX", "truncate")         # UDP TC=1, TCP answers
        fdns.rule("e.test", "MX", "truncate_notcp",   # UDP TC=1, TCP closes
                  records=[...])
        fdns.rule("f.test", "MX", "answer", huge)     # >512 octets: over UDP
                                                      # without EDNS -> TC=1
        fdns.rule("g.test", "MX", "malformed")        # garbage bytes
        fdns.rule("h.test", "MX", "nxdomain"|"nodata"|"refused")
    Unmatched queries get `default` ("nxdomain" unless changed).
    Every query is recorded in .queries as (proto, name, type).
    """

    def __init__(self, registry=None, tcp=True, port=53, default="nxdomain"):
        self.port = port
        self.addr = alloc_addr(ports=(port,), udp_ports=(port,))
        self.rules = {}
        self.default = default
        self.queries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.addr, port))
        self.udp.settimeout(0.2)
        self.tcp = None
        if tcp:
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((self.addr, port))
            self.tcp.listen(16)
            self.tcp.settimeout(0.2)
        self.threads = [threading.Thread(target=self._udp_loop, daemon=True)]
        if self.tcp:
            self.threads.append(threading.Thread(target=self._tcp_loop, daemon=True))
        for t in self.threads:
            t.start()

    def rule(self, name, qtype, action, records=None, rcode=None):
        with self._lock:
            self.rules[(_fqdn(name).lower(), qtype.upper())] = (action, records or [], rcode)

    def clear(self):
        with self._lock:
            self.rules.clear()
            self.queries.clear()

    def _lookup(self, qname, qtype):
        with self._lock:
            return (self.rules.get((qname, qtype)) or self.rules.get((qname, "ANY"))
                    or (self.default, [], None))

    def _respond(self, data, proto):
        """Return bytes to send, or None for no answer, or "close"."""
        try:
            return self._respond1(data, proto)
        except Exception as e:  # noqa: BLE001 - keep serving; record it
            with self._lock:
                self.queries.append((proto, "<error>", repr(e)))
            return None

    def _respond1(self, data, proto):
        from dnslib import DNSRecord, RR, RCODE, QTYPE
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return None
        qname = str(req.q.qname).lower()
        qtype = QTYPE.get(req.q.qtype, str(req.q.qtype))
        with self._lock:
            self.queries.append((proto, qname, qtype))
        action, records, rcode = self._lookup(qname, qtype)
        reply = req.reply()
        reply.header.ra = 1
        if action == "timeout":
            return None
        if action == "malformed":
            return data[:2] + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\xff\xfe\x03abc"
        if action == "truncate_notcp" and proto == "tcp":
            return "close"
        if action in ("truncate", "truncate_notcp") and proto == "udp":
            return self._truncated(req)
        if action == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        elif action == "refused":
            reply.header.rcode = RCODE.REFUSED
        elif action == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
        elif action == "nodata":
            pass
        elif action in ("answer", "truncate", "truncate_notcp"):
            for r in records:
                reply.add_answer(*RR.fromZone(r))
            if rcode is not None:
                reply.header.rcode = rcode
        packed = bytes(reply.pack())
        if proto == "udp":
            limit = 512
            for ar in req.ar:
                if QTYPE.get(ar.rtype) == "OPT":
                    limit = max(512, ar.rclass)
            if len(packed) > limit:
                return self._truncated(req)
        return packed

    @staticmethod
    def _truncated(req):
        r = req.reply()
        r.header.tc = 1
        r.header.ra = 1
        return bytes(r.pack())

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self._respond(data, "udp")
            if isinstance(out, bytes):
                try:
                    self.udp.sendto(out, peer)
                except OSError:
                    pass

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(c,), daemon=True).start()

    def _tcp_conn(self, c):
        c.settimeout(5)
        try:
            while True:
                hdr = self._recvn(c, 2)
                if not hdr:
                    return
                data = self._recvn(c, struct.unpack("!H", hdr)[0])
                if data is None:
                    return
                out = self._respond(data, "tcp")
                if out is None:
                    time.sleep(5)
                    return
                if out == "close":
                    return
                c.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def _recvn(c, n):
        buf = b""
        while len(buf) < n:
            chunk = c.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def stop(self):
        self._stop.set()
        for s in (self.udp, self.tcp):
            if s:
                s.close()
        for t in self.threads:
            t.join(2)
