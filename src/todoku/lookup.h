/*
 * lookup — the lookup role: DNS through libunbound and the routing
 * decision for outbound mail. It holds no secrets and no spool; it
 * parses attacker-written DNS answers with the pure dns_msg parser and
 * decides with the pure mx module.
 *
 * One libunbound context created with ub_ctx_create_event() on this
 * role's libevent base (no forked helper). [dns] resolver = forward:
 * [dns] servers are forwarders (tests point them at their own
 * authoritative server); without them, /etc/resolv.conf. resolver =
 * recursive: from the root (root-hints). dnssec = validate: a trust
 * anchor file; bogus answers are temporary failures, and the validator's
 * verdict is a DNS fact. libunbound's cache respects TTLs and retries
 * truncated UDP answers over TCP.
 *
 * R_ROUTE (from queue): domain, IP family policy, max addresses, our own
 * names -> MX lookup -> A/AAAA of every MX host in parallel -> R_ROUTE_
 * RESULT: deliver to an ordered address list, defer (4.4.3: never a
 * fallback to the domain's A record on a temporary MX failure) or bounce
 * (NXDOMAIN 5.1.2, null MX 5.1.10, MX loop 5.4.6, no address 5.4.4),
 * with a one-line explanation and the DNS facts used, for the attempt
 * record. An MX host is ourselves by name (the names queue sends) or by
 * address: one of our [listen] addresses, or of our interfaces when a
 * listener is a wildcard (read at start and at reload).
 */
#ifndef TODOKU_LOOKUP_H
#define TODOKU_LOOKUP_H

#define LOOKUP_ADDRS_PER_HOST 16
#define LOOKUP_MAX_REQUESTS 4096
#define LOOKUP_SELF_MAX 256 /* own addresses per family */

#endif
