"""A private Postfix instance as an interoperability peer.

Own config_directory, queue_directory and data_directory under the test
dir; listens on <addr>:25 (port configurable); relays everything to
`relayhost`. Inject with .sendmail(...) (the sendmail binary, -C DIR) or
by SMTP to .addr:.port. Logs go to DIR/maillog (postlogd).

master=[...] adds master.cf services ("name/type = entry", postconf -M).
resolv=[addr, ...] starts the instance in a private mount namespace whose
/etc/resolv.conf names only those servers (the test's knotd), so Postfix
and every program it spawns (a policy server) resolve through the test
DNS and nothing else; the host's resolv.conf is never touched.

Options:
  tls    (certfile, keyfile), or a callable addr -> (certfile, keyfile) (the
         listener address is chosen inside): smtpd offers STARTTLS
         (smtpd_tls_security_level = may) with that certificate.
  sasl   {"user": "password", ...}: SMTP AUTH through Cyrus SASL with a
         private sasldb (PLAIN, LOGIN; realm postfix.test), offered only
         after STARTTLS (smtpd_tls_auth_only = yes, unless `extra` says
         otherwise), and relaying only for authenticated clients
         (smtpd_relay_restrictions = permit_sasl_authenticated, reject;
         mynetworks is the instance's own address only).
"""
import os
import pathlib
import shutil
import subprocess
import time

from .net import alloc_addr, wait_port


class Postfix:
    def __init__(self, base, relayhost, name="postfix", port=25, extra=None, registry=None,
                 master=(), resolv=None, tls=None, sasl=None):
        self.dir = pathlib.Path(base) / name
        self.conf = self.dir / "etc"
        self.queue = self.dir / "queue"
        self.data = self.dir / "data"
        for d in (self.dir, self.conf, self.data):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.queue.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chown(self.data, _uid("postfix"), _gid("postfix"))
        self.port = port
        self.addr = alloc_addr(ports=(port,))
        self.maillog = self.dir / "maillog"
        self.maillog.touch()
        if registry is not None:
            registry.append(("postfix %s:%d" % (self.addr, port), self.maillog))
        src = pathlib.Path("/etc/postfix/master.cf")
        if not src.exists():
            src = pathlib.Path("/usr/share/postfix/master.cf.dist")
        shutil.copy(src, self.conf / "master.cf")
        (self.conf / "main.cf").write_text("")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "myhostname": "postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "postfix.test",
            "mydestination": "",
            # Postfix only accepts interface addresses here, and lo has just
            # 127.0.0.1; the listener's own address is set in master.cf.
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": relayhost,
            "smtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "append_dot_mydomain": "no",
            "biff": "no",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.dir),
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtputf8_enable": "no",
            "shlib_directory": _postconf_default("shlib_directory"),
        }
        if tls is not None:
            cert, key = tls(self.addr) if callable(tls) else tls
            settings.update({"smtpd_tls_security_level": "may",
                             "smtpd_tls_cert_file": str(cert),
                             "smtpd_tls_key_file": str(key),
                             "smtpd_tls_loglevel": "1"})
        if sasl is not None:
            settings.update(self._sasl(sasl))
        settings.update(extra or {})
        self.postconf(*["%s=%s" % kv for kv in settings.items()])
        # No chroot (the jail would lack resolv.conf etc.), and the SMTP
        # listener on our own port.
        self._run(["postconf", "-c", str(self.conf), "-F", "-e", "*/*/chroot = n"])
        self._run(["postconf", "-c", str(self.conf), "-MX", "smtp/inet"])
        self._run(["postconf", "-c", str(self.conf), "-M", "-e",
                   "%s:%d/inet = %s:%d inet n - n - - smtpd" % (self.addr, port, self.addr, port)])
        for entry in master:
            self._run(["postconf", "-c", str(self.conf), "-M", "-e", entry])
        self._run(["postfix", "-c", str(self.conf), "check"])
        start = ["postfix", "-c", str(self.conf), "start"]
        if resolv:
            rc = self.dir / "resolv.conf"
            rc.write_text("".join("nameserver %s\n" % a for a in resolv))
            rc.chmod(0o644)
            # the namespace lives as long as Postfix's master does
            start = ["unshare", "--mount", "--propagation", "private", "--",
                     "sh", "-c", 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"',
                     "sh", str(rc)] + start
        self._run(start)
        if not wait_port(self.addr, port, 15):
            raise RuntimeError("postfix did not listen on %s:%d; maillog:\n%s"
                               % (self.addr, port, self.maillog.read_text()))

    def _sasl(self, users):
        """A private Cyrus SASL config and sasldb; the main.cf settings."""
        # Debian's Postfix looks in $config_directory/sasl whatever
        # cyrus_sasl_config_path says: smtpd.conf goes there (and the
        # setting names it too, for a Postfix that honours it).
        d = self.conf / "sasl"
        d.mkdir(mode=0o755, exist_ok=True)
        (self.dir / "sasldb").mkdir(mode=0o755, exist_ok=True)
        db = self.dir / "sasldb" / "sasldb2"
        (d / "smtpd.conf").write_text(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            "sasldb_path: %s\nmech_list: PLAIN LOGIN\n" % db)
        for user, password in users.items():
            r = subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(db), "-u",
                                "postfix.test", user], input=password.encode(),
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError("saslpasswd2 failed: %r" % r.stderr)
        os.chown(db, _uid("postfix"), _gid("postfix"))
        os.chmod(db, 0o640)
        return {
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "cyrus",
            "smtpd_sasl_path": "smtpd",
            "cyrus_sasl_config_path": str(d),
            "smtpd_sasl_local_domain": "postfix.test",
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_tls_auth_only": "yes",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "mynetworks": "%s/32" % self.addr,
        }

    def _run(self, argv, **kw):
        env = dict(os.environ, MAIL_CONFIG=str(self.conf))
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, **kw)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s" % (argv, r.returncode, r.stdout, r.stderr))
        return r

    def postconf(self, *settings):
        return self._run(["postconf", "-c", str(self.conf), "-e"] + list(settings))

    def sendmail(self, sender, rcpts, message):
        if isinstance(message, str):
            message = message.encode()
        argv = ["/usr/sbin/sendmail", "-C", str(self.conf), "-f", sender, "--"] + list(rcpts)
        env = dict(os.environ, MAIL_CONFIG=str(self.conf))
        r = subprocess.run(argv, input=message, capture_output=True, env=env, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("postfix sendmail failed: %s" % r.stderr.decode(errors="replace"))

    def flush(self):
        self._run(["postqueue", "-c", str(self.conf), "-f"])

    def queue_list(self):
        return self._run(["postqueue", "-c", str(self.conf), "-p"]).stdout

    def log_text(self):
        return self.maillog.read_text(errors="replace")

    def stop(self):
        env = dict(os.environ, MAIL_CONFIG=str(self.conf))
        subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True,
                       env=env, timeout=30)
        pidf = self.queue / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid = int(pidf.read_text().split()[0])
                os.kill(pid, 0)
            except (FileNotFoundError, ValueError, ProcessLookupError, IndexError):
                return
            time.sleep(0.1)


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def _gid(name):
    import grp
    return grp.getgrnam(name).gr_gid


def _postconf_default(key):
    r = subprocess.run(["postconf", "-dh", key], capture_output=True, text=True)
    return r.stdout.strip()
