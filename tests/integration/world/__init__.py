"""The todoku test world: a small internet on loopback (see ../README.md)."""
from .net import alloc_addr, wait_port  # noqa: F401
from .smtpclient import SMTPClient, Reply, SMTPClosed, make_message, to_crlf_stuffed  # noqa: F401
from .daemon import Todoku, todoku_bin, render_config  # noqa: F401
from .dns import KnotDNS, FaultyDNS  # noqa: F401
from .peer import SMTPPeer  # noqa: F401
from .postfix import Postfix  # noqa: F401
from .swaks import swaks  # noqa: F401
from .mailfile import queue_id, split as split_message, header  # noqa: F401
from .tlscerts import TestCA, self_signed  # noqa: F401
