"""libunbound's cache in the lookup role honours TTLs: an MX answer with a
TTL of 1 s is asked again after it expired, so a changed MX is used."""
import time

from world import make_message, queue_id
from world.roles import wait_for

SENDER = "someone@localhost"


def _send(d, rcpt):
    c = d.smtp()
    c.ehlo()
    r = c.sendmail(SENDER, [rcpt], make_message(subject="ttl", body="hi\n",
                                                 sender=SENDER, to=rcpt))
    c.quit()
    assert r.code == 250, r
    return queue_id(r.text)


def _got(peer, n):
    return wait_for(lambda: len([m for m in peer.messages if m["rcpts"]]) >= n or None,
                    25, "%d message(s) at %s" % (n, peer.addr))


def test_changed_mx_used_after_ttl_expired(todoku, dns, smtp_peer):
    old, new = smtp_peer(port=25), smtp_peer(port=25)
    dns.zone("ttl.test", ["@ MX 10 mx1", "mx1 A %s" % old.addr,
                          "mx2 A %s" % new.addr], ttl=1)
    d = todoku(dns_servers=[dns.addr])
    _send(d, "user@ttl.test")
    _got(old, 1)
    dns.zone("ttl.test", ["@ MX 10 mx2", "mx1 A %s" % old.addr,
                          "mx2 A %s" % new.addr], ttl=1)
    time.sleep(2)   # the cached MX (TTL 1 s) has expired
    _send(d, "user@ttl.test")
    _got(new, 1)
    assert len([m for m in old.messages if m["rcpts"]]) == 1, old.transcript()
