"""`todoku queue list|show --json` against a live daemon."""
from world import make_message, queue_id, to_crlf_stuffed

STATES = {"queued", "delivered", "deferred", "bounced"}


def _send(d, rcpts, subject):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("sender@x.test", rcpts, make_message(sender="sender@x.test",
                                                       subject=subject))
    c.quit()
    assert r.code == 250, r
    qid = queue_id(r.text)
    assert qid, r
    return qid, r


def _check_recipient(rc):
    for k in ("address", "state", "attempts", "next_attempt"):
        assert k in rc, (k, rc)
    assert rc["state"] in STATES, rc
    assert isinstance(rc["attempts"], int) and rc["attempts"] >= 0, rc


def test_queue_list_and_show(todoku, faulty_dns):
    faulty_dns.default = "servfail"   # remote recipients stay queued/deferred
    d = todoku(dns_servers=[faulty_dns.addr])
    qid, _ = _send(d, ["x@example.org", "y@example.net"], "held")
    q = d.cli("queue", "list", "--json")
    assert isinstance(q, list)
    (m,) = [m for m in q if m["id"] == qid]
    for k in ("id", "sender", "arrival", "size", "recipients"):
        assert k in m, (k, m)
    assert m["sender"] == "sender@x.test"
    assert isinstance(m["size"], int) and m["size"] > 0
    assert m["arrival"] not in (None, "", 0)
    assert sorted(r["address"] for r in m["recipients"]) == ["x@example.org", "y@example.net"]
    for rc in m["recipients"]:
        _check_recipient(rc)
        assert rc["state"] in ("queued", "deferred"), rc

    s = d.cli("queue", "show", qid, "--json")
    assert isinstance(s, dict)
    assert s["id"] == qid and s["sender"] == "sender@x.test" and s["size"] == m["size"]
    assert sorted(r["address"] for r in s["recipients"]) == ["x@example.org", "y@example.net"]
    for rc in s["recipients"]:
        _check_recipient(rc)
        assert isinstance(rc["history"], list), rc
        for h in rc["history"]:
            for k in ("time", "result", "where", "reply"):
                assert k in h, (k, h)


def test_queue_show_unknown_id_fails(daemon):
    assert isinstance(daemon.cli("queue", "list", "--json"), list)
    r = daemon.cli_run("queue", "show", "NOSUCHID0000", "--json")
    assert r.returncode != 0
    assert b"NOSUCHID0000" in r.stderr + r.stdout, r


def test_delivered_message_is_not_pending(daemon):
    qid, _ = _send(daemon, ["someone@localhost"], "local")
    daemon.wait_delivered("someone", 1)
    daemon.wait_queue_settled()
    for m in daemon.cli("queue", "list", "--json"):
        if m["id"] == qid:
            assert all(r["state"] == "delivered" for r in m["recipients"]), m
