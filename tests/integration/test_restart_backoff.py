"""Role restarts back off, and a message that keeps killing smtp-out is held
(DESIGN §7 "What the tests must prove": role restarts; architecture.md:
restarted at once, then after 1 s doubling to 60 s, reset after a minute
of health).

- smtp-out killed four times in a row: the master logs the delays 0, 1, 2
  and 4 s, in that order, and no new process starts before its delay has
  passed (log timestamps: a lower bound, never an upper one); once it stays
  up, mail flows through it.
- A relay that never answers DATA keeps the message on smtp-out's
  connection; smtp-out is killed while it waits, three times: the message
  is held with the reason and not tried again.
"""
import datetime
import os
import re
import signal
import time

from world import make_message, queue_id
from world.roles import pid_gone, role_pids, wait_for, wait_log

SENDER = "someone@localhost"


def _pid(d, name, not_=None):
    return wait_for(lambda: [p for p in role_pids(d.master_pid).get(name, [])
                             if p != not_], 15, "a %s process" % name)[0]


def _kill(d, name, pid):
    assert pid in role_pids(d.master_pid).get(name, []), (name, pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid_gone(pid), 5, "%s[%d] gone" % (name, pid))


def _send(d, rcpt, subject):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject=subject, sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _ts(line):
    stamp = line.split(" ", 1)[0].rstrip("Z")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def test_role_that_keeps_dying_is_restarted_with_growing_delays(todoku, smtp_peer):
    relay = smtp_peer(port=2525)
    d = todoku(overrides={"delivery": {"processes": "1"},
                          'route "*"': {"via": "smtp://[%s]:2525" % relay.addr}})
    pid = _pid(d, "smtp-out")
    mark = len(d.log_text())
    pids = [pid]
    for _ in range(4):
        _kill(d, "smtp-out", pid)
        pid = _pid(d, "smtp-out", not_=pid)
        pids.append(pid)
    log = d.log_text()[mark:]
    delays = [int(x) for x in re.findall(r"restarting smtp-out in (\d+) s", log)]
    assert delays == [0, 1, 2, 4], delays
    # each new process started no earlier than its delay after the death
    for old, new, delay in zip(pids, pids[1:], delays):
        died = re.search(r"^(\S+) .*smtp-out\[%d\] killed by signal 9" % old, log, re.M)
        started = re.search(r"^(\S+) .*started smtp-out\[%d\]" % new, log, re.M)
        assert died and started, (old, new, log[-3000:])
        gap = _ts(started.group(1)) - _ts(died.group(1))
        assert gap >= delay - 0.01, (old, new, delay, gap)
    # the others were left alone, and mail flows through the survivor
    assert role_pids(d.master_pid).get("queue") and role_pids(d.master_pid).get("lookup")
    _send(d, "friend@example.org", "after the restarts")
    msgs = relay.wait_messages(1, timeout=20)
    assert msgs[0]["rcpts"] == ["friend@example.org"]
    assert b"Subject: after the restarts" in msgs[0]["data"]
    assert role_pids(d.master_pid).get("smtp-out") == [pids[-1]]


def _entry(d, qid):
    for m in d.cli("queue", "list", "--json"):
        if m["id"] == qid:
            return m
    return None


def _datas(relay):
    return sum(1 for c in relay.all_commands() if c.upper() == "DATA")


def test_message_that_keeps_killing_smtp_out_is_held(todoku, smtp_peer):
    # the relay never answers DATA: the attempt sits on smtp-out's
    # connection until smtp-out dies
    relay = smtp_peer(port=2525, replies={"DATA": "hang"})
    d = todoku(overrides={"delivery": {"processes": "1"},
                          "queue": {"retry": "1s"},
                          'route "*"': {"via": "smtp://[%s]:2525" % relay.addr}})
    qid = _send(d, "friend@example.org", "poison")
    pid = _pid(d, "smtp-out")
    for round_ in range(3):
        mark = len(d.log_text())
        wait_for(lambda: _datas(relay) > round_, 20, "DATA of attempt %d" % (round_ + 1))
        _kill(d, "smtp-out", pid)
        wait_log(d, r"%s: .*may be delivered twice|%s: held" % (qid, qid), start=mark)
        pid = _pid(d, "smtp-out", not_=pid)
    m = wait_for(lambda: (lambda e: e if e and e["held"] else None)(_entry(d, qid)), 10,
                 "%s held" % qid)
    rc = m["recipients"][0]
    assert rc["state"] == "deferred", rc
    assert "held after 3 deliveries that crashed the smtp-out role" in rc["last_reply"], rc
    assert re.search(r"%s: held: held after 3 deliveries that crashed the smtp-out role"
                     % qid, d.log_text())
    # held: the new smtp-out is not handed the message again
    n = relay.connections
    time.sleep(3)
    assert relay.connections == n, relay.transcript()
    assert relay.messages == []
    assert d.maildir("someone") == [], "no bounce"
