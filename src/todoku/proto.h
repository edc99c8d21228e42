/*
 * proto — the IPC message types between todoku's roles.
 *
 * Every message is sent with lib/ipc.h; the payload fields listed here
 * are put and got in exactly this order. The header id names what the
 * message is about (a transaction of a smtp-in session, a delivery).
 *
 * master -> any role
 *   M_PEER       fd = socketpair end to another role; u8 peer role,
 *                u32 peer instance
 *   M_LISTEN     (smtp-in) fd = listening socket; str listener name
 *   M_RELOAD     data: the configuration file's bytes as validated by
 *                master (empty: re-read the file); tables are re-read
 *   M_SHUTDOWN   finish: 421 to clients, flush, exit 0
 *
 * smtp-in -> queue (id = transaction id, unique per smtp-in process)
 *   Q_OPEN       str client addr, str client name, str helo, str proto,
 *                str sender, u8 body 8bit, u8 smtputf8, u8 ret, str envid,
 *                u32 nrcpt, nrcpt x (str rcpt, str orcpt, u32 notify,
 *                str orig: the address the client gave when smtp-in
 *                replaced it, i.e. the SRS address of a reversed bounce;
 *                "" otherwise)
 *   Q_PREPEND    data: trace header(s) to store before the body; each
 *                one goes above the ones sent before it (our Received
 *                travels with the transaction's next message)
 *   Q_CHUNK      data: up to CHUNK_MAX bytes of message (CRLF, unstuffed)
 *   Q_DMARC      i64 time, str x each dmarc_rep_fields entry in table
 *                order (mail/dmarc_report.h), u32 ndkim x (str domain,
 *                str selector, str result): the DMARC aggregate report
 *                row of this message, sent just before Q_END (stored in
 *                its commit) or before the Q_ABORT of a message refused
 *                by DMARC p=reject (the row is then stored alone)
 *   Q_END        (empty) message complete: commit, then Q_RESULT
 *   Q_ABORT      (empty) drop the transaction
 *
 * queue -> smtp-in
 *   Q_OPEN_OK    str queue id, u32 credit (chunks smtp-in may send)
 *   Q_CREDIT     u32 more chunks (one per chunk stored, sent once the
 *                messages of one read are handled; none for chunks
 *                whose Q_END came in the same read)
 *   Q_RESULT     u32 code, str enhanced status, str text (final reply)
 *
 * queue -> local (id = delivery id)
 *   L_DELIVER    fd = body (read-only, from offset 0), str queue id,
 *                u64 arrival, str recipient, str Maildir path,
 *                str prefix headers
 * queue -> lookup (id = route request)
 *   R_ROUTE      str domain (or relay host), u8 host mode (1: [route]
 *                smarthost, no MX), u8 ip policy (mx.h), u32 nself,
 *                nself x str (our own host names). The result lists
 *                every address (at most MX_ADDR_MAX): smtp-out cuts it
 *                at [delivery] max-addresses after its own ordering.
 * lookup -> queue
 *   R_ROUTE_RESULT u8 action (mx_action), str status, str explanation,
 *                str warnings (MX loop by name or address, null MX
 *                beside others, ...; "; "-joined),
 *                u32 n, n x (u8 family 4|6, data 16-byte address,
 *                str MX host, u32 preference), then the DNS answers of
 *                the attempt record (mail/attrec.h attrec_put_dns):
 *                u8 implicit MX, u32 answers left out, u32 n x (str
 *                qname, str qtype, str result, str rcode, u8 dnssec,
 *                str why, u32 records left out, u32 nrr x (u32 ttl,
 *                u32 preference (-1: none), str data))
 *
 * smtp-in (or any peer) -> lookup (id = the asker's query id)
 *   D_QUERY      str name, u32 type
 * lookup -> asker
 *   D_ANSWER     u32 libunbound rcode (0 ok), u8 DNSSEC (0 insecure,
 *                1 bogus, 2 secure), data answer packet (wire format)
 *
 * smtp-in -> keys (id = transaction)
 *   K_SIGN       str signing domain, data 32-byte hash (a DKIM header
 *                hash; for an ARC seal two in turn with the key of
 *                srs-domain: the AMS hash, then the ARC-Seal hash)
 * keys -> smtp-in
 *   K_SIG        u8 ok, data signature, str error
 *
 * queue -> smtp-out (id = job)
 *   O_DELIVER    fd = body; str queue id, str domain, str sender,
 *                u64 size, u8 8bit, u8 smtputf8, u8 ret, str envid,
 *                u32 port, u8 tls (conf_tls), u8 implicit TLS,
 *                u8 verify (conf_verify), str CA file or directory, str helo,
 *                str helo over IPv6, str auth user, str auth password, str
 * source IPv4, str source IPv6, data prepend headers, u32 nrcpt x (u64 rcpt id,
 * str address, u32 notify, str orcpt), u32 ntargets x (u8 family, data address,
 * str host), u64 session (0: none; jobs with the same session share one
 * connection, in order) smtp-out -> queue O_RESULT     str where (last host
 * [address]:port), u32 n x (u64
 * rcpt id, u8 result (smtpc_result), str status, str reply verbatim, str
 * command answered), u8 verdict (SMTPO_V_*: 1 ok, 2 no address gave a session,
 * 3 connection failure in the transaction or max-attempt-time reached, 4
 * untried), u8 IPv4 retry (1: make
 *                the destination IPv4-first), str the IPv6 reply
 *                verbatim, data one octet per recipient (1: delivered to
 *                a server that offered DSN). A recipient result of 0 (PENDING)
 * means "not attempted, dispatch again". See smtp_out.h.
 *                Last, the connection facts of the attempt record
 *                (mail/attrec.h attrec_put_conn): u8 IPv6 plan (0
 *                usual, 1 IPv4 first, 2 probe), u8 time limit reached,
 *                u32 addresses tried, u32 of how many, u32 n x str
 *                address failed recently (ordered last), u32
 *                max-addresses (0: the list was not cut), u32 of how
 *                many, u32 cut addresses not listed, u32 n x str
 *                address cut, u32 addresses
 *                left out, u32 n x (str host, str address, u32 port, u8
 *                family, str outcome, opt detail, tls, u8 flags (1
 *                failed recently, 2 IPv4 retry), u32 message number on
 *                the connection (0 none)), u32 turns left
 *                out, u32 n x (opt command, opt reply, u8 cut, u32 address
 *                index (-1 pending, -2 none)); opt is
 *                u8 present + str; tls is u8 state, u8 verified, opt
 *                version, cipher, policy, verify, name, error
 *
 * smtp-out -> queue (id = the queue's session)
 *   O_CLOSED     u64 the last job (O_DELIVER id) given to the connection
 *                of that session. Sent when the connection that carried
 *                the session is closed, or is taken over by another
 *                session: from then on the session holds no connection
 *                at the next hop (unless a job sent after that last one
 *                opened a new one), so its slot under the destination's
 *                concurrency limit is free.
 *
 * local -> queue
 *   L_RESULT     u8 result (maildir_result), str enhanced status,
 *                str where ("maildir PATH"), str reason
 */
#ifndef TODOKU_PROTO_H
#define TODOKU_PROTO_H

enum role_id {
	ROLE_MASTER = 0,
	ROLE_QUEUE,
	ROLE_SMTP_IN,
	ROLE_LOCAL,
	ROLE_LOOKUP,
	ROLE_SMTP_OUT,
	ROLE_KEYS,
	ROLE_MAX,
};

enum proto_type {
	M_PEER = 1,
	M_LISTEN,
	M_RELOAD,
	M_SHUTDOWN,

	Q_OPEN = 100,
	Q_PREPEND,
	Q_CHUNK,
	Q_END,
	Q_ABORT,
	Q_OPEN_OK,
	Q_CREDIT,
	Q_RESULT,
	Q_DMARC,

	L_DELIVER = 200,
	L_RESULT,

	R_ROUTE = 300,
	R_ROUTE_RESULT,

	O_DELIVER = 400,
	O_RESULT,
	O_CLOSED,

	D_QUERY = 500,
	D_ANSWER,

	K_SIGN = 600,
	K_SIG,
};

/* Chunk size and window of the smtp-in -> queue body stream. */
#define CHUNK_MAX (64 * 1024)
#define CHUNK_WINDOW 4

/* The master channel is always this fd in a role process. */
#define ROLE_MASTER_FD 3

const char *role_name(enum role_id r);

#endif
