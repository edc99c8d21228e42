"""Helpers to read delivered messages."""
import re

QUEUED_RE = re.compile(r"queued as (\S+)")


def queue_id(reply_text):
    """The queue id in '250 2.0.0 Ok: queued as ID', or None."""
    m = QUEUED_RE.search(reply_text)
    return m.group(1).rstrip(".)") if m else None


def split(msg):
    """bytes -> (list of (name, value) with folded lines joined, body)."""
    head, sep, body = msg.partition(b"\n\n")
    fields = []
    for ln in head.split(b"\n"):
        if ln[:1] in (b" ", b"\t") and fields:
            name, val = fields[-1]
            fields[-1] = (name, val + " " + ln.strip().decode("utf-8", "replace"))
        else:
            name, _, val = ln.partition(b":")
            fields.append((name.decode("utf-8", "replace"), val.strip().decode("utf-8", "replace")))
    return fields, body


def header(msg, name):
    """All values of header `name` (case-insensitive), unfolded."""
    return [v for n, v in split(msg)[0] if n.lower() == name.lower()]
