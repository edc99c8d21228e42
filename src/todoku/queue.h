/*
 * queue — the queue role: owns the spool, receives messages streamed by
 * smtp-in, makes them durable (group commit), schedules deliveries to the
 * local role, records every attempt, generates bounces, and answers the
 * control socket (`todoku queue ...`).
 *
 * Receiving: Q_OPEN allocates a queue id (refused with 452 4.3.1 below
 * [queue] min-free), Q_CHUNK bytes go to the spool under credit-based
 * flow control (CHUNK_WINDOW chunks in flight), Q_END commits and only
 * then answers 250. Recipients are expanded through the aliases table
 * here, once, and stored as final recipients with their original.
 *
 * Scheduling: every undelivered recipient is in memory with its next
 * attempt time (loaded from the spool at start, so everything committed
 * before a crash is delivered), indexed by recipient id, by message and
 * in a next-attempt heap, so an event costs the same however long the
 * deferred backlog. The pure scheduler (mail/schedule) decides over the
 * due recipients after every event, and at its wake-up time (checked by
 * a one-second tick), what starts: at most QUEUE_MAX_INFLIGHT attempts at
 * once, round-robin across domains, then new outbound sessions
 * round-robin across destinations under their limits. Retry delays
 * follow [queue] retry (the last interval repeats, the last retry falls
 * on the deadline); past give-up-after a recipient bounces.
 * Bounces never go to the null sender.
 */
#ifndef TODOKU_QUEUE_H
#define TODOKU_QUEUE_H

#define QUEUE_MAX_INFLIGHT 64
#define QUEUE_CTL_TIMEOUT_S 30
#define QUEUE_MAX_CRASHES 3

/*
 * Outbound destinations (DESIGN §7; see "remote delivery" in queue.c).
 * Their limits are [delivery] keys (destination-concurrency,
 * destination-concurrency-max, dead-after, max-sessions,
 * connection-max-messages, connection-max-age, ipv4-first-for); these
 * are the fixed ones.
 */
#define DEST_SESSION_DEPTH 4   /* jobs queued on a session before another */
#define DEST_REPARK_MAX 3      /* connection failures a job waits out */
#define DEST_FORGET_AFTER 3600 /* idle destinations are forgotten */

#endif
