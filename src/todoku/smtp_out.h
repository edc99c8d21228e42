/*
 * smtp_out — the smtp-out role: outbound SMTP connections.
 *
 * Unprivileged, no spool access. The queue hands it one job at a time
 * per connection (O_DELIVER: one message, the recipients of one domain,
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
 * Certificates are not verified yet ([delivery] tls = may|must only
 * decide whether TLS is used; verify = ca, DANE and MTA-STS come later).
 */
#ifndef TODOKU_SMTP_OUT_H
#define TODOKU_SMTP_OUT_H

#define SMTPO_TRACE_MAX (64 * 1024)
#define SMTPO_TARGETS_MAX 64
#define SMTPO_READ 16384
#define SMTPO_BODY_CHUNK 65536

#endif
