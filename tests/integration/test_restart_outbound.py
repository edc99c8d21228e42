"""Outbound roles that die are restarted and nothing is lost (issue 3,
"kill -9 during outbound DATA"; DESIGN §7 role restarts).

smtp-out killed while the peer holds the message's DATA: the recipient
returns to the queue marked "may be delivered twice" and a later attempt
delivers it (a duplicate is allowed, a loss is not). lookup killed while
an MX query is pending: the delivery completes once the new lookup role
asks again.
"""
import json
import os
import re
import signal

from world import make_message, queue_id
from world.roles import pid_gone, role_pids, tcp_owners, wait_for, wait_log

SENDER = "sender@x.test"


def _role(d, name):
    return wait_for(lambda: role_pids(d.master_pid).get(name), 10,
                    "a %s process" % name)[0]


def _kill(d, name, pid):
    """SIGKILL exactly this role process (a child of this daemon's master)."""
    assert pid in role_pids(d.master_pid).get(name, []), (name, pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid_gone(pid), 5, "%s[%d] gone" % (name, pid))


def _new_pid(d, name, before):
    """A process of role `name` that is not one of `before` (the pids the
    role had before one was killed)."""
    return wait_for(lambda: [p for p in role_pids(d.master_pid).get(name, []) if p not in before],
                    15, "a new %s process" % name)[0]


BODY = "".join("line %03d %s\n" % (i, "x" * 60) for i in range(40))   # ~2.7 KB


def _send(d, rcpt, subject, body=BODY):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject=subject, body=body,
                                                 sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    qid = queue_id(r.text)
    assert qid, r
    return qid


def _show(d, qid):
    r = d.cli_run("queue", "show", qid, "--json")
    if r.returncode != 0:
        assert b"no such message" in r.stderr + r.stdout, r
        return None
    return json.loads(r.stdout)


def _wait_peer(peer, rcpt, timeout=30):
    def probe():
        return [m for m in list(peer.messages) if rcpt in m["rcpts"]]
    return wait_for(probe, timeout, "a message for %s at the peer" % rcpt)


def test_smtp_out_killed_during_data_redelivers(todoku, dns, smtp_peer):
    # the first DATA stalls after 500 octets (the message is ~3 KB): the
    # peer has part of the body and never answers; later DATAs are accepted
    peer = smtp_peer(port=25, stall_mid_data=500)
    dns.zone("far.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    # the retry (5 s) leaves a window in which the deferral is visible
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "5s"}})
    rcpt = "user@far.test"
    qid = _send(d, rcpt, "killed in data")
    peer.wait_stalled()
    assert peer.messages == []
    # the smtp-out process holding that connection (there is one per CPU)
    out = wait_for(lambda: tcp_owners(role_pids(d.master_pid).get("smtp-out", []),
                                      peer.addr, 25), 10, "the smtp-out with the connection")
    assert len(out) == 1, out
    out = out[0]
    mark = len(d.log_text())
    before = set(role_pids(d.master_pid)["smtp-out"])
    _kill(d, "smtp-out", out)

    def deferred_or_gone():
        s = _show(d, qid)
        if s is None:
            return "gone"
        rc = [x for x in s["recipients"] if x["address"] == rcpt][0]
        return rc if rc["state"] == "deferred" else None
    rc = wait_for(deferred_or_gone, 10, "recipient deferred after the smtp-out kill")
    assert rc != "gone", "delivered before the deferral was seen: %s" % peer.transcript()
    h = rc["history"][-1]
    assert h["result"] == "deferred", rc
    assert "may be delivered twice" in h["reply"], rc
    wait_log(d, r"%s.*may be delivered twice" % qid, start=mark)
    # the master restarted smtp-out, and a later attempt delivers
    new = _new_pid(d, "smtp-out", before)
    assert new != out
    wait_log(d, r"restart\w*\s+smtp-out\b|smtp-out\b.*restart", start=mark)
    msgs = _wait_peer(peer, rcpt)
    assert b"Subject: killed in data" in msgs[0]["data"]
    data = msgs[0]["data"]
    for i in range(40):           # the whole body, once
        assert data.count(b"line %03d " % i) == 1, data
    assert len(peer.sessions) >= 2, peer.transcript()
    wait_for(lambda: _show(d, qid) is None, 15, "%s removed from the queue" % qid)
    assert d.maildir("someone") == []      # no bounce to anyone local
    assert d.running()


def _mx_queries(fdns, domain):
    return sum(1 for q in list(fdns.queries) if q[1] == domain + "." and q[2] == "MX")


def test_lookup_killed_during_mx_query_delivery_completes(todoku, faulty_dns, smtp_peer):
    peer = smtp_peer(port=25)
    domain = "slow.test"
    faulty_dns.rule(domain, "MX", "timeout")             # the query stays pending
    d = todoku(dns_servers=[faulty_dns.addr], overrides={"queue": {"retry": "2s"}})
    rcpt = "user@%s" % domain
    qid = _send(d, rcpt, "lookup killed")
    wait_for(lambda: _mx_queries(faulty_dns, domain), 15, "the MX query of %s" % domain)
    lookup = _role(d, "lookup")
    mark = len(d.log_text())
    asked = _mx_queries(faulty_dns, domain)
    assert lookup in role_pids(d.master_pid).get("lookup", [])
    os.kill(lookup, signal.SIGKILL)
    # from now on the DNS answers: only a lookup role that asks again
    # (the restarted one) can see it, the killed one never did
    faulty_dns.rule(domain, "MX", "answer", ["%s. 300 MX 10 mx.%s." % (domain, domain)])
    faulty_dns.rule("mx." + domain, "A", "answer", ["mx.%s. 300 A %s" % (domain, peer.addr)])
    faulty_dns.rule("mx." + domain, "AAAA", "nodata")
    wait_for(lambda: pid_gone(lookup), 5, "lookup[%d] gone" % lookup)
    new = _new_pid(d, "lookup", {lookup})
    assert new != lookup
    wait_log(d, r"restart\w*\s+lookup\b|lookup\b.*restart", start=mark)
    msgs = _wait_peer(peer, rcpt, timeout=40)
    assert b"Subject: lookup killed" in msgs[0]["data"]
    assert _mx_queries(faulty_dns, domain) > asked, faulty_dns.queries
    wait_for(lambda: _show(d, qid) is None, 15, "%s removed from the queue" % qid)
    assert d.maildir("someone") == []
    assert d.running()


def test_smtp_out_processes_share_the_work_and_one_death_costs_only_its_own(
        todoku, dns, smtp_peer):
    """[delivery] processes = 2: sessions of different destinations run in
    both smtp-out processes (DESIGN §7: N processes), and killing one of
    them returns only the jobs it held ("may be delivered twice"); the
    other process's deliveries complete untouched."""
    peer = smtp_peer(port=25, greeting_delay=3.0)
    domains = ["d%d.test" % i for i in range(6)]
    for dom in domains:
        dns.zone(dom, ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"delivery": {"processes": "2"},
                                                  "queue": {"retry": "2s"}})
    outs = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(
        role_pids(d.master_pid).get("smtp-out", [])), 10, "two smtp-out processes")
    # both have reached the queue role (it spreads destinations over the
    # smtp-out processes it is connected to)
    wait_for(lambda: len(set(re.findall(r"smtp-out\[(\d+)\] connected", d.log_text()))) == 2,
             10, "queue connected to both smtp-out processes")
    qids = {dom: _send(d, "user@" + dom, "to " + dom) for dom in domains}
    wait_for(lambda: peer.connections >= len(domains), 10, "a connection per destination")
    held = {pid: tcp_owners([pid], peer.addr, 25) for pid in outs}
    assert all(held.values()), "not every smtp-out process holds a session: %r" % held
    victim, survivor = outs
    mark = len(d.log_text())
    _kill(d, "smtp-out", victim)
    for dom in domains:
        _wait_peer(peer, "user@" + dom, timeout=30)
    # only the killed process's jobs were returned as possibly duplicated
    log = d.log_text()[mark:]
    lost = [q for q in qids.values() if re.search(re.escape(q) + ".*may be delivered twice", log)]
    assert lost, log
    assert len(lost) < len(qids), (lost, qids)
    for dom, qid in qids.items():
        wait_for(lambda: _show(d, qid) is None, 15, "%s removed from the queue" % qid)
    assert d.running()


def test_restarted_queue_never_reuses_the_old_queues_sessions(todoku, dns, smtp_peer):
    """A restarted queue numbers its outbound sessions from 1 again;
    smtp-out's idle connections still carried the old queue's numbers.
    A job of the new queue's session 1, for another destination, must not
    go over the old session 1's idle connection to the first one."""
    p1 = smtp_peer(port=25)
    p2 = smtp_peer(port=25)
    dns.zone("one.test", ["@ MX 10 mx", "mx A %s" % p1.addr])
    dns.zone("two.test", ["@ MX 10 mx", "mx A %s" % p2.addr])
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        # one smtp-out holds both destinations' connections; the idle
        # connection outlives the queue's restart
        "delivery": {"processes": "1", "connection-idle-time": "60s"}})
    _send(d, "a@one.test", "first")
    _wait_peer(p1, "a@one.test")
    assert p1.active == 1  # idle, kept for the next message
    queue = _role(d, "queue")
    _kill(d, "queue", queue)
    _new_pid(d, "queue", {queue})
    _send(d, "b@two.test", "second")
    got = _wait_peer(p2, "b@two.test")
    assert b"Subject: second" in got[0]["data"]
    assert not [m for m in p1.messages if "b@two.test" in m["rcpts"]], p1.transcript()
