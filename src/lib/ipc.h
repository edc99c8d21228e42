/*
 * ipc — typed, length-prefixed messages between todoku's processes.
 *
 * Each message is a fixed header (payload length, type, flags, 64-bit
 * id naming the session/message/delivery it concerns) followed by the
 * payload, built with ipc_put_* and read back with ipc_get_* in the same
 * fixed order (OpenSMTPD's mproc discipline). Reading past the end or
 * leaving bytes unread is a bug in the sender: ipc_end() panics.
 *
 * A message may carry one file descriptor (SCM_RIGHTS); it travels with
 * the first byte of its message, so the receiver pairs them in order.
 *
 * Bounded: a payload is at most IPC_MAX_PAYLOAD; the outgoing queue of
 * one endpoint at most IPC_MAX_QUEUED bytes, past which ipc_send fails
 * (the caller treats the peer as stuck). Callbacks run on the libevent
 * base given at creation; the close callback runs once on EOF or error,
 * after which the endpoint must be freed by its owner.
 */
#ifndef TODOKU_LIB_IPC_H
#define TODOKU_LIB_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define IPC_MAX_PAYLOAD (256 * 1024)
#define IPC_MAX_QUEUED (64 * 1024 * 1024)

struct event_base;
struct ipc;

struct ipc_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint64_t id;
};

struct ipc_in {
	const unsigned char *p;
	size_t len;
	size_t off;
	int err;
	uint16_t type;
};

struct ipc_out {
	struct buf b;
};

typedef void ipc_msg_cb(struct ipc *ipc, const struct ipc_hdr *hdr,
			struct ipc_in *in, int fd, void *arg);
typedef void ipc_close_cb(struct ipc *ipc, void *arg);

struct ipc *ipc_new(struct event_base *base, int fd, ipc_msg_cb *on_msg,
		    ipc_close_cb *on_close, void *arg);
void ipc_free(struct ipc *ipc);
int ipc_fd(const struct ipc *ipc);
size_t ipc_queued(const struct ipc *ipc);

/* Send a message; out may be NULL for an empty payload; fd -1 for none.
 * The fd is duplicated by the kernel on send; the caller keeps its own. */
int ipc_send(struct ipc *ipc, uint16_t type, uint64_t id, int fd,
	     const struct ipc_out *out);
/*
 * Queue a message without writing it: it goes out, in order, with the
 * next ipc_send() or ipc_uncork() on this endpoint (or ipc_flush()).
 * For a message the peer needs only together with a later one: the
 * caller must be sure a later one follows.
 */
int ipc_send_later(struct ipc *ipc, uint16_t type, uint64_t id,
		   const struct ipc_out *out);
/* Between ipc_cork() and its ipc_uncork() (they nest) sends only queue;
 * the last uncork writes them together, several messages per system
 * call (a later message alone stays queued). Writes are gathered like
 * that whenever messages are queued. */
void ipc_cork(struct ipc *ipc);
void ipc_uncork(struct ipc *ipc);
/* Blocking flush of everything queued (shutdown paths). */
int ipc_flush(struct ipc *ipc);

void ipc_out_init(struct ipc_out *o);
void ipc_out_free(struct ipc_out *o);
void ipc_put_u8(struct ipc_out *o, uint8_t v);
void ipc_put_u32(struct ipc_out *o, uint32_t v);
void ipc_put_u64(struct ipc_out *o, uint64_t v);
void ipc_put_i64(struct ipc_out *o, int64_t v);
/* NULL is sent as "" */
void ipc_put_str(struct ipc_out *o, const char *s);
void ipc_put_data(struct ipc_out *o, const void *p, size_t n);

uint8_t ipc_get_u8(struct ipc_in *in);
uint32_t ipc_get_u32(struct ipc_in *in);
uint64_t ipc_get_u64(struct ipc_in *in);
int64_t ipc_get_i64(struct ipc_in *in);
/* pointer into the message, NUL-terminated, valid during the callback */
const char *ipc_get_str(struct ipc_in *in);
const void *ipc_get_data(struct ipc_in *in, size_t *n);
/* panics if the message was malformed or not read entirely */
void ipc_end(struct ipc_in *in);

#endif
