"""Disk full: the spool on a 3 MB tmpfs.

- With the automatic min-free (2 x max-message-size + 64M, far above
  3 MB) new mail is refused with 452 4.3.1 and nothing is delivered.
- With min-free = 1K, a message that does not fit any more gets a 4xx
  (never 250), the daemon keeps running, and once space is freed new mail
  is accepted and every message that got 250 is delivered.
"""
import os
import signal
import subprocess

import pytest

from world import make_message, queue_id, to_crlf_stuffed
from world.roles import role_pids, wait_for


@pytest.fixture
def spoolfs(tmp_world, todoku_user):
    """A 3 MB tmpfs owned by todoku, for [server] spool. Requested before
    `todoku` so it is unmounted after the daemons are stopped."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full tests mount a tmpfs and must run as root")
    mnt = tmp_world / "spoolfs"
    mnt.mkdir(mode=0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    try:
        uid, gid = todoku_user
        os.chown(mnt, uid, gid)
        yield mnt
    finally:
        r = subprocess.run(["umount", str(mnt)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def _free(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _attempt(d, subject, body_size, rcpt="someone@localhost"):
    """One transaction; returns ("accepted", qid) or ("refused", reply)
    where reply is the first non-2xx/3xx reply of the transaction."""
    c = d.smtp()
    try:
        c.ehlo()
        r = c.cmd("MAIL FROM:<disk@x.test>")
        if r.code != 250:
            return "refused", r
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        if r.code != 250:
            return "refused", r
        r = c.cmd("DATA")
        if r.code != 354:
            return "refused", r
        body = ("%s\n" % ("x" * 75)) * (body_size // 76 + 1)
        msg = make_message(subject=subject, sender="disk@x.test", to=rcpt, body=body)
        r = c.data_bytes(to_crlf_stuffed(msg))
        if r.code == 250:
            return "accepted", queue_id(r.text)
        return "refused", r
    finally:
        c.quit()


def _subjects(msgs):
    import re
    out = []
    for m in msgs:
        mm = re.search(rb"(?m)^Subject: (.*?)\r?$", m)
        out.append(mm.group(1).decode() if mm else None)
    return out


def test_default_min_free_refuses_mail(spoolfs, todoku):
    d = todoku(overrides={"server": {"spool": str(spoolfs)}})
    assert _free(spoolfs) < 66 * 1024 * 1024
    for i in range(3):
        kind, r = _attempt(d, "refused %d" % i, 1000)
        assert kind == "refused", "message accepted with %d octets free on the spool" \
            % _free(spoolfs)
        assert r.code == 452 and r.enh == "4.3.1", r
    assert d.running()
    d.wait_queue_settled(10)
    assert d.cli("queue", "list", "--json") == []
    assert d.maildir("someone") == []
    d.stop()


@pytest.mark.parametrize("free_kb,msg_kb", [
    (500, 150),   # a few fit, then the spool database cannot grow (commit fails)
    (100, 400),   # the body file cannot be written (write fails inside DATA)
], ids=["fills-up", "too-big-for-space"])
def test_full_spool_then_freed(spoolfs, todoku, free_kb, msg_kb):
    d = _fill_and_free(spoolfs, todoku, free_kb, msg_kb)
    assert d.running()
    d.stop()


@pytest.mark.parametrize("free_kb,msg_kb", [(500, 150), (100, 400)],
                         ids=["fills-up", "too-big-for-space"])
def test_refused_message_leaves_no_body_file(spoolfs, todoku, free_kb, msg_kb):
    """The body file of a message that got a 4xx is removed at once (not
    only at the next start): on a full disk, leftovers make it worse."""
    d = _fill_and_free(spoolfs, todoku, free_kb, msg_kb)
    body = spoolfs / "body"
    left = sorted(os.listdir(body)) if body.exists() else []
    assert left == [], "body files of no queued message: %r" % left
    d.stop()


def _fill_and_free(spoolfs, todoku, free_kb, msg_kb):
    d = todoku(overrides={
        "server": {"spool": str(spoolfs)},
        "smtp": {"max-message-size": "1M"},
        "queue": {"min-free": "1K", "inline-body-max": "16K"},
    })
    # one message through a healthy spool
    kind, qid = _attempt(d, "healthy", 2000)
    assert kind == "accepted", qid
    d.wait_delivered("someone", 1)

    # local is stopped: what gets accepted now stays in the spool
    local = role_pids(d.master_pid)["local"][0]
    accepted = ["healthy"]
    filler = spoolfs / "filler"
    os.kill(local, signal.SIGSTOP)
    try:
        left = _free(spoolfs) - free_kb * 1024
        assert left > 0
        with open(filler, "wb") as f:
            f.write(b"\0" * left)
        assert d.running()
        refused = None
        for i in range(20):     # 20 messages are more than the free space
            subject = "fill %d" % i
            kind, r = _attempt(d, subject, msg_kb * 1024)
            if kind == "accepted":
                accepted.append(subject)
                continue
            refused = r
            break
        assert refused is not None, "no message refused; %d octets free" % _free(spoolfs)
        assert (refused.code, refused.enh) in ((452, "4.3.1"), (451, "4.3.0")), refused
        if msg_kb < free_kb:
            assert len(accepted) >= 2, "nothing accepted before the spool was full"
        # still refused while full, and the daemon is still running
        kind, r = _attempt(d, "still full", msg_kb * 1024)
        assert kind == "refused", r
        assert r.code // 100 == 4, r
        assert d.running(), d.log_text()[-3000:]
        # free the space
        filler.unlink()
    finally:
        if filler.exists():
            filler.unlink()
        os.kill(local, signal.SIGCONT)

    # new mail is accepted again (queue may be restarting: retry briefly)
    def again():
        kind, r = _attempt(d, "after free", 2000)
        if kind == "accepted":
            return True
        assert r.code // 100 == 4, r
        return False
    wait_for(again, 15, "a message accepted after freeing the spool", interval=0.3)
    accepted.append("after free")
    msgs = d.wait_delivered("someone", len(accepted), timeout=30)
    got = _subjects(msgs)
    for s in accepted:
        assert s in got, (s, got)
    d.wait_queue_settled(30)
    wait_for(lambda: d.cli("queue", "list", "--json") == [], 15, "queue empty")
    assert d.running()
    return d
