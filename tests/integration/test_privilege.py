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
