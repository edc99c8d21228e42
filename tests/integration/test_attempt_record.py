"""The structured attempt record (issue 3, "The attempt record";
docs/attempt-record.md): one delivery attempt through a real MX set-up
(knotd, scripted peers) and what `queue show ID --json` and the human
`queue show ID` say about it: DNS answers with preferences and TTLs,
every address with its outcome, TLS, each command with its reply, the
result and the next attempt time with its reason."""
import time
from datetime import datetime

from world import make_message, queue_id, self_signed
from world.net import alloc_addr

BUSY = "450 4.5.0 Mail system is Busy"


def _send(d, rcpts):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail("someone@localhost", rcpts,
                   make_message(subject="record", sender="someone@localhost",
                                to=", ".join(rcpts)))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _recipients(d, qid, want, timeout=40.0):
    """{address: recipient} once every address in want has a history."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = d.cli("queue", "show", qid, "--json")
        rc = {r["address"]: r for r in m["recipients"]}
        if all(rc.get(a) and rc[a]["history"] for a in want):
            return rc
        time.sleep(0.2)
    raise AssertionError("no attempt recorded for %s" % want)


def _t(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def test_record_of_an_attempt_across_four_mx_hosts(todoku, dns, smtp_peer, tmp_world):
    dead = alloc_addr(ports=(25,))  # nothing listens: connection refused
    silent = smtp_peer(port=25, greeting=None)
    busy_greeting = smtp_peer(port=25, greeting="421 4.3.2 mx3 is too busy")
    last = smtp_peer(port=25, tls=self_signed(tmp_world / "pki", "mx4.rec.test"),
                     replies={"RCPT": [BUSY]})
    dns.zone("rec.test", ["@ MX 10 mx1", "@ MX 20 mx2", "@ MX 30 mx3", "@ MX 40 mx4",
                          "mx1 A %s" % dead, "mx2 A %s" % silent.addr,
                          "mx3 A %s" % busy_greeting.addr, "mx4 A %s" % last.addr],
             ttl=321)
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        "delivery": {"timeout-greeting": "2s", "timeout-connect": "5s"}})
    qid = _send(d, ["friend@rec.test"])
    rc = _recipients(d, qid, ["friend@rec.test"])["friend@rec.test"]
    assert rc["state"] == "deferred", rc
    h = rc["history"][0]
    rec = h["record"]
    assert isinstance(rec, dict), h

    # route and time
    assert rec["route"] == {"kind": "mx", "via": "rec.test"}, rec
    assert rec["time"] == h["time"], rec

    # DNS: the MX answer with preferences and TTLs, each host's A answer
    (mx,) = [q for q in rec["dns"] if q["qtype"] == "MX"]
    assert (mx["qname"], mx["result"], mx["rcode"], mx["dnssec"]) == \
        ("rec.test", "answer", "NOERROR", "unchecked"), mx
    assert mx["ttl"] == 321 and mx["tcp"] is None, mx
    assert sorted((r["pref"], r["data"], r["ttl"]) for r in mx["records"]) == \
        [(10, "mx1.rec.test", 321), (20, "mx2.rec.test", 321),
         (30, "mx3.rec.test", 321), (40, "mx4.rec.test", 321)], mx
    a = {q["qname"]: q for q in rec["dns"] if q["qtype"] == "A"}
    for host, addr in (("mx1", dead), ("mx2", silent.addr),
                       ("mx3", busy_greeting.addr), ("mx4", last.addr)):
        q = a[host + ".rec.test"]
        assert q["result"] == "answer" and q["ttl"] == 321, q
        assert [(r["data"], r["ttl"]) for r in q["records"]] == [(addr, 321)], q
        assert "pref" not in q["records"][0], q

    # every address tried, in preference order, with its outcome
    got = [(x["host"], x["pref"], x["address"], x["port"], x["family"], x["outcome"])
           for x in rec["addresses"]]
    assert got == [
        ("mx1.rec.test", 10, dead, 25, 4, "refused"),
        ("mx2.rec.test", 20, silent.addr, 25, 4, "no-greeting"),
        ("mx3.rec.test", 30, busy_greeting.addr, 25, 4, "greeting-4xx"),
        ("mx4.rec.test", 40, last.addr, 25, 4, "ok"),
    ], rec["addresses"]
    assert "refused" in rec["addresses"][0]["detail"], rec["addresses"][0]
    assert "421 4.3.2 mx3 is too busy" in rec["addresses"][2]["detail"], rec
    assert [x["tls"] for x in rec["addresses"][:3]] == [None, None, None], rec
    # a first attempt: usual order, nothing failed recently, no time
    # limit, no IPv4 retry; the session carried its first message
    assert (rec["ipv6_plan"], rec["failed_recently"], rec["time_limit"]) == \
        ("usual", [], None), rec
    assert [(x["failed_recently"], x["ipv4_retry"], x["message"])
            for x in rec["addresses"]] == \
        [(False, False, None)] * 3 + [(False, False, 1)], rec["addresses"]

    # TLS on the address that gave a session: STARTTLS, not verified
    tls = rec["addresses"][3]["tls"]
    assert tls["result"] == "ok", tls
    assert tls["version"].startswith("TLSv1."), tls
    assert tls["cipher"], tls
    assert tls["verified"] is False, tls
    assert (tls["policy"], tls["verify"], tls["name"]) == ("may", "none", "mx4.rec.test"), tls
    assert last.sessions[0].tls, "the peer saw the handshake"

    # the dialogue: each reply with the command it answered
    pairs = [(t["command"], t["reply"]) for t in rec["dialogue"]]
    assert (None, "421 4.3.2 mx3 is too busy") in pairs, pairs
    greet = pairs.index((None, "220 peer.test ESMTP scripted"))
    cmds = [c for c, _ in pairs[greet + 1:]]
    assert cmds[0].startswith("EHLO ") and cmds[1] == "STARTTLS", cmds
    assert pairs[greet + 2][1].startswith("220"), pairs
    assert pairs[greet + 1][1].startswith("250-"), pairs
    assert "\r\n250" in pairs[greet + 1][1], "a multi-line reply is kept whole"
    (rcpt,) = [p for p in pairs if p[0] and p[0].startswith("RCPT TO:<friend@rec.test>")]
    assert rcpt[1] == BUSY, pairs
    (mail,) = [p for p in pairs if p[0] and p[0].startswith("MAIL FROM:<someone@localhost>")]
    assert mail[1].startswith("250"), pairs
    assert rec["truncated"] == {"dns": 0, "addresses": 0, "dialogue": 0}, rec
    # each turn names the address (index into addresses) it went to
    assert [t["address"] for t in rec["dialogue"]] == \
        [2] + [3] * (len(rec["dialogue"]) - 1), rec["dialogue"]

    # the result, and when and why the next attempt comes
    assert rec["result"] == {"result": "deferred", "status": "4.5.0", "reply": BUSY,
                             "command": "RCPT", "where": h["where"]}, rec
    assert rec["next_attempt"] == rc["next_attempt"], (rec, rc)
    wait = _t(rec["next_attempt"]) - _t(rec["time"])
    assert 3600 <= wait <= 3960 + 1, rec   # 1h plus at most 10% jitter
    assert rec["next_reason"].startswith("retry schedule step 1 of 1: "), rec

    # the human form says the same
    text = d.cli("queue", "show", qid)
    for want in ("route mx via rec.test",
                 "dns MX rec.test: answer (NOERROR, dnssec unchecked)",
                 "10 mx1.rec.test  ttl 321",
                 "dns A mx4.rec.test: answer",
                 "%s  ttl 321" % last.addr,
                 "address mx1.rec.test %s:25 (pref 10): refused" % dead,
                 "address mx2.rec.test %s:25 (pref 20): no-greeting" % silent.addr,
                 "address mx3.rec.test %s:25 (pref 30): greeting-4xx: service closing: "
                 "421 4.3.2 mx3 is too busy\n            < 421 4.3.2 mx3 is too busy\n"
                 % busy_greeting.addr,
                 "address mx4.rec.test %s:25 (pref 40): ok" % last.addr,
                 "certificate not verified (tls may, verify none)",
                 "> STARTTLS",
                 "> RCPT TO:<friend@rec.test>",
                 "< " + BUSY,
                 "next attempt %s: retry schedule step 1 of 1" % rec["next_attempt"]):
        assert want in text, (want, text)


def test_record_of_local_delivery_and_of_a_bounce(todoku, dns, smtp_peer):
    peer = smtp_peer(port=25, replies={"RCPT": [BUSY]})
    dns.zone("busy.test", ["@ MX 10 mx", "mx A %s" % peer.addr], ttl=600)
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    qid = _send(d, ["someone@localhost", "friend@busy.test", "x@nosuch.busy.test"])
    rc = _recipients(d, qid, ["someone@localhost", "friend@busy.test",
                              "x@nosuch.busy.test"])

    # local: a small record, route local, no DNS nor SMTP
    loc = rc["someone@localhost"]
    assert loc["state"] == "delivered", loc
    rec = loc["history"][0]["record"]
    assert rec["route"]["kind"] == "local", rec
    assert "someone" in rec["route"]["via"], rec
    assert (rec["dns"], rec["addresses"], rec["dialogue"]) == ([], [], []), rec
    assert rec["result"]["result"] == "delivered", rec
    assert (rec["next_attempt"], rec["next_reason"]) == (None, "delivered"), rec

    # NXDOMAIN: bounced, the answer recorded, no retry
    nx = rc["x@nosuch.busy.test"]
    assert nx["state"] == "bounced", nx
    rec = nx["history"][0]["record"]
    (q,) = rec["dns"]
    assert (q["qname"], q["qtype"], q["result"], q["rcode"], q["records"]) == \
        ("nosuch.busy.test", "MX", "nxdomain", "NXDOMAIN", []), q
    assert rec["addresses"] == [] and rec["result"]["status"] == "5.1.2", rec
    assert rec["next_attempt"] is None, rec
    assert rec["next_reason"] == "permanent failure: not retried", rec

    # the deferred one next to them
    rec = rc["friend@busy.test"]["history"][0]["record"]
    assert [(x["host"], x["pref"], x["outcome"]) for x in rec["addresses"]] == \
        [("mx.busy.test", 10, "ok")], rec
    assert rec["addresses"][0]["tls"] is None, "the peer offers no STARTTLS"
    assert rec["result"]["reply"] == BUSY and rec["next_attempt"], rec

    text = d.cli("queue", "show", qid)
    assert "route local via " in text, text
    assert "dns MX nosuch.busy.test: nxdomain (NXDOMAIN" in text, text
    assert "no next attempt: permanent failure: not retried" in text, text


def test_record_route_kinds_implicit_and_smarthost(todoku, dns, smtp_peer):
    """NODATA for MX: the record says implicit and shows the empty MX
    answer; a [route] smarthost: the relay as via, no MX preference; a
    route with tls = must to a relay without STARTTLS: tls-failed."""
    host = smtp_peer(port=25, replies={"RCPT": [BUSY]})
    relay = smtp_peer(port=2525, replies={"RCPT": [BUSY]})
    plain = smtp_peer(port=2525)
    dns.zone("bare.test", ["@ A %s" % host.addr], ttl=444)
    d = todoku(dns_servers=[dns.addr], overrides={
        "queue": {"retry": "1h"},
        'route "relayed.test"': {"via": "smtp://[%s]:2525" % relay.addr},
        'route "strict.test"': {"via": "smtp://[%s]:2525" % plain.addr,
                                "tls": "must"}})
    qid = _send(d, ["a@bare.test", "b@relayed.test", "c@strict.test"])
    rc = _recipients(d, qid, ["a@bare.test", "b@relayed.test", "c@strict.test"])

    rec = rc["a@bare.test"]["history"][0]["record"]
    assert rec["route"] == {"kind": "implicit", "via": "bare.test"}, rec
    (mx,) = [q for q in rec["dns"] if q["qtype"] == "MX"]
    assert (mx["result"], mx["rcode"], mx["records"], mx["ttl"]) == \
        ("nodata", "NOERROR", [], None), mx
    (a,) = [q for q in rec["dns"] if q["qtype"] == "A"]
    assert [(r["data"], r["ttl"]) for r in a["records"]] == [(host.addr, 444)], a
    assert [(x["host"], x["pref"], x["outcome"]) for x in rec["addresses"]] == \
        [("bare.test", 0, "ok")], rec

    rec = rc["b@relayed.test"]["history"][0]["record"]
    assert rec["route"] == {"kind": "smarthost", "via": "%s:2525" % relay.addr}, rec
    assert rec["dns"] == [], "an IP literal relay needs no DNS"
    assert [(x["address"], x["port"], x["pref"], x["outcome"])
            for x in rec["addresses"]] == [(relay.addr, 2525, None, "ok")], rec

    rec = rc["c@strict.test"]["history"][0]["record"]
    assert rec["route"]["kind"] == "smarthost", rec
    (x,) = rec["addresses"]
    assert (x["address"], x["outcome"]) == (plain.addr, "tls-failed"), rec
    assert "STARTTLS" in x["detail"], x
    assert rec["result"]["result"] == "deferred", rec
    assert plain.messages == []


def test_record_of_a_reused_connection(todoku, dns, smtp_peer):
    """More messages to one destination than it gets connections: later
    ones go over a connection that carried one before, and their record
    says which message on the connection each was."""
    peer = smtp_peer(port=25, greeting_delay=1.0, replies={"RCPT": [BUSY]})
    dns.zone("reuse.test", ["@ MX 10 mx", "mx A %s" % peer.addr])
    d = todoku(dns_servers=[dns.addr], overrides={"queue": {"retry": "1h"}})
    n = 12
    qids = [_send(d, ["u%d@reuse.test" % i]) for i in range(n)]
    recs = {}
    for i, qid in enumerate(qids):
        rc = _recipients(d, qid, ["u%d@reuse.test" % i])["u%d@reuse.test" % i]
        recs[qid] = rc["history"][0]["record"]
    assert peer.connections < n, peer.transcript()
    msgs = sorted(a["message"] for r in recs.values() for a in r["addresses"])
    assert all(r["addresses"][-1]["outcome"] == "ok" for r in recs.values()), recs
    # each connection's messages are numbered 1, 2, ... in the records
    per = sorted(len(s.messages) for s in peer.sessions)
    assert msgs == sorted(k for m in per for k in range(1, m + 1)), (msgs, per)
    qid = [q for q, r in recs.items() if r["addresses"][-1]["message"] == 2][0]
    assert "connection reused: message 2 on it" in d.cli("queue", "show", qid)
    first = [q for q, r in recs.items() if r["addresses"][-1]["message"] == 1][0]
    assert "connection reused" not in d.cli("queue", "show", first)
