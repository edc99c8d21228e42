/*
 * smtp_out — the smtp-out role: outbound SMTP connections.
 *
 * Unprivileged, no spool access. The queue hands it jobs (O_DELIVER:
 * one message, the recipients of one domain,
 * the ordered address list from the lookup role, a read-only body fd);
 * it tries the addresses in order within this one attempt — connection
 * refused, timeout, no greeting, a 4xx/5xx greeting, a failed EHLO or
 * TLS handshake move on to the next address — and drives the pure
 * protocol engine (mail/smtp_client) over its own byte layer: plain
 * sockets or OpenSSL with explicit WANT_READ/WANT_WRITE. STARTTLS is
 * one sequence: flush, discard every buffered plaintext byte, handshake,
 * EHLO again. The answer (O_RESULT) has one outcome per recipient with
 * the verbatim reply and the command it answered, plus the attempt
 * record: each address tried with its outcome, TLS version and cipher,
 * the dialogue with AUTH redacted.
 *
 * TLS policy per job: tls (none|may|must) and verify (none|ca). SNI is
 * the target's host; verify = ca sets SSL_VERIFY_PEER with the job's CA
 * store (one SSL_CTX per store, made on first use, dropped on reload)
 * and SSL_set1_host on the target's host (an IP literal: its address),
 * so a bad certificate fails the handshake: next address, and when no
 * address passed, the job is deferred 4.7.5 quoting OpenSSL's error.
 *
 * Connections (DESIGN §7 "Destinations and scheduling"). A connection
 * carries jobs one after another (engine max_msgs; every transaction
 * after the first starts with RSET, and is sent only after RSET got
 * 250), at most [delivery] connection-max-messages messages and
 * connection-max-age seconds. The queue decides which jobs share a connection:
 * jobs with the same session id go, in order, over the connection of that
 * session. When a connection runs out of jobs it stays open, idle, for
 * [delivery] connection-idle-time (closed at once if the server speaks
 * or closes) for the next job of its session: the queue keeps the
 * session, and its slot under the destination's limit, until O_CLOSED
 * says the connection is gone (closed, or taken by another session). An idle
 * connection with the same cache key (address, port, source address, HELO, TLS
 * policy, verify policy, CA store and (verify = ca) host name, SASL identity)
 * is taken by the first job of a new session when it is
 * to the address that attempt would try first anyway (not dead in the health
 * memory; not an IPv6 address while IPv4 ones exist, where the IPv6
 * plan decides); other attempts connect afresh, so every attempt of
 * the retry schedule meets the address order and health memory anew.
 * The IPv4 retry after an IPv6 policy refusal takes over the session:
 * the session's waiting jobs move to a new IPv4 connection that opens
 * once the IPv6 one has said QUIT and closed (job_v4_retry). A reused
 * connection that turns out unusable (closed, RSET refused) costs
 * nothing: the job reconnects from its first address. A connection that fails
 * in a transaction (421, timeout, lost) returns the jobs behind it untried.
 *
 * IPv6 (DESIGN §7): recipients refused with 4.7.x/5.7.x over IPv6 are
 * retried once over the job's IPv4 addresses on another connection in
 * the same attempt; the result says so and quotes the IPv6 reply. The
 * process keeps an IPv6 family health memory (mail/v6health): after
 * network-level connect failures at [delivery] ipv6-suspend-after
 * distinct IPv6 addresses, IPv4 addresses go first for ipv6-suspend-for,
 * then one attempt probes; its memory only (per process, lost on
 * restart). Each session binds the source address and says the HELO
 * name of its address family (source-ipv4/helo, source-ipv6/helo-ipv6).
 *
 * Time: an attempt starts no new address after [delivery]
 * max-attempt-time; its jobs are deferred 4.4.1 "attempt time limit
 * reached after N of M addresses ..." (verdict SMTPO_V_FAILED, so the
 * queue records the attempt instead of handing it back).
 *
 * IPC fields appended to the end of the payloads listed in proto.h:
 *   O_DELIVER  ... u64 session (0: none; else jobs with the same value
 *              share one connection, in the order sent)
 *   O_RESULT   ... u8 verdict (SMTPO_V_*: how the connection went, for
 *              the destination's concurrency), u8 IPv4 retry (1: a
 *              4.7.x/5.7.x over IPv6 was retried over IPv4: make the
 *              destination IPv4-first), str that IPv6 reply verbatim,
 *              data one octet per recipient in O_DELIVER order: 1 when
 *              it was delivered to a server that offered DSN (that
 *              server reports NOTIFY=SUCCESS; otherwise we say
 *              "relayed", RFC 3461 §6.2.1).
 *              A recipient result of SMTPC_PENDING (only with verdict
 *              SMTPO_V_UNTRIED) means "not attempted": no attempt to
 *              record, dispatch again.
 *              Then the typed attempt record of the job's connections
 *              (mail/attrec: addresses with outcome and TLS, dialogue).
 */
#ifndef TODOKU_SMTP_OUT_H
#define TODOKU_SMTP_OUT_H

#define SMTPO_TARGETS_MAX 64
#define SMTPO_READ 16384
#define SMTPO_BODY_CHUNK 65536

/* O_RESULT verdict: the connection as the destination's health sees it */
#define SMTPO_V_NONE 0
#define SMTPO_V_OK 1	      /* a session that worked */
#define SMTPO_V_CONN_FAILED 2 /* no address gave a usable session */
#define SMTPO_V_FAILED                                                         \
	3 /* connection failure in the transaction (421, timeout, lost,        \
	     TLS), or max-attempt-time reached: recorded, not reparked */
#define SMTPO_V_UNTRIED 4 /* not attempted (connection ended first) */

#endif
