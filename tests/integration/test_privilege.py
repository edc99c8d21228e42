"""Privilege separation (DESIGN §3, §7): started as root, every role
drops to its own unprivileged user — network roles, the spool owner, the
mail-store owner and the key holder are distinct uids — with
no_new_privs set; the spool belongs to the queue role's user and the
mailboxes to the local role's."""
import os
import pwd

from world.roles import role_pids, wait_for


def _status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1:]
    return None


def test_roles_run_as_distinct_users(todoku):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to start as root")
    d = todoku()
    want = {"smtp-in": "todoku", "smtp-out": "todoku", "lookup": "todoku",
            "queue": "todoku-queue", "local": "todoku-mail",
            "keys": "todoku-keys"}
    def settled():
        p = role_pids(d.master_pid)
        if not all(r in p for r in want):
            return None
        # a role starts as root and drops right after loading its config
        for role, user in want.items():
            for pid in p[role]:
                if int(_status(pid, "Uid")[0]) != pwd.getpwnam(user).pw_uid:
                    return None
        return p
    pids = wait_for(settled, 10, "every role on its own user")
    for role, user in want.items():
        uid = pwd.getpwnam(user).pw_uid
        for pid in pids[role]:
            real, eff, saved, fs = (int(x) for x in _status(pid, "Uid"))
            assert real == eff == saved == fs == uid, (role, pid, real)
            assert _status(pid, "NoNewPrivs") == ["1"], role
    assert os.stat(d.spool).st_uid == pwd.getpwnam("todoku-queue").pw_uid
    assert os.stat(d.mail / "localhost").st_uid == pwd.getpwnam("todoku-mail").pw_uid
    # and the master keeps root only to supervise
    assert int(_status(d.master_pid, "Uid")[1]) == 0


def test_started_as_a_normal_user_every_role_runs_as_that_user(todoku, todoku_user):
    """Issue 2: started by a normal user, todoku runs every role as that
    user (no privilege to drop, none to gain) and still receives and
    delivers."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to start the daemon as another user")
    pw = pwd.getpwnam("todoku")
    # the fixture gives the spool and mailboxes to todoku
    d = todoku(exec_wrapper=True,
               wrapper=["setpriv", "--reuid", "todoku", "--regid", "todoku",
                        "--init-groups"])
    want = ("master", "queue", "smtp-in", "local", "lookup", "smtp-out", "keys")

    def started():
        p = role_pids(d.master_pid)
        return p if all(r in p for r in want[1:]) else None
    pids = wait_for(started, 10, "every role started")
    pids["master"] = [d.master_pid]
    for role in want:
        for pid in pids[role]:
            real, eff, saved, fs = (int(x) for x in _status(pid, "Uid"))
            assert real == eff == saved == fs == pw.pw_uid, (role, pid, real, eff)
            rg, eg, sg, fg = (int(x) for x in _status(pid, "Gid"))
            assert rg == eg == sg == fg == pw.pw_gid, (role, pid, rg, eg)
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("normal@x.test", ["someone@localhost"],
                   b"Subject: as a normal user\r\n\r\nhello\r\n")
    assert r.code == 250, r
    c.quit()
    msgs = d.wait_delivered("someone", 1)
    assert b"Subject: as a normal user" in msgs[0]
    f = d.maildir_files("someone")[0]
    assert os.stat(f).st_uid == pw.pw_uid
    assert os.stat(d.spool).st_uid == pw.pw_uid
    d.wait_queue_settled(15)
