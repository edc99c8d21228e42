/* ipc — see ipc.h. */
#include "lib/ipc.h"

#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/util.h"

#define IPC_F_FD 0x1
#define IPC_MAX_FDS 64
#define IPC_GATHER 16 /* messages per sendmsg() */

struct ipc_qmsg {
	struct ipc_qmsg *next;
	size_t len;
	size_t off;
	int fd;
	unsigned char data[];
};

struct ipc {
	int fd;
	struct event *rev;
	struct event *wev;
	struct buf in;
	int fds[IPC_MAX_FDS];
	size_t nfds;
	struct ipc_qmsg *head, *tail;
	size_t queued;
	ipc_msg_cb *on_msg;
	ipc_close_cb *on_close;
	void *arg;
	int closed;
	int corked;    /* ipc_cork depth: sends only queue */
	int cork_sent; /* ipc_send while corked: uncork writes */
	int in_dispatch;
	int free_pending;
};

static void ipc_on_read(evutil_socket_t fd, short what, void *arg);
static void ipc_on_write(evutil_socket_t fd, short what, void *arg);

struct ipc *
ipc_new(struct event_base *base, int fd, ipc_msg_cb *on_msg,
	ipc_close_cb *on_close, void *arg)
{
	struct ipc *ipc = xcalloc(1, sizeof(*ipc));

	fd_nonblock(fd);
	fd_cloexec(fd);
	ipc->fd = fd;
	ipc->on_msg = on_msg;
	ipc->on_close = on_close;
	ipc->arg = arg;
	buf_init(&ipc->in, 2 * (IPC_MAX_PAYLOAD + sizeof(struct ipc_hdr)));
	ipc->rev = event_new(base, fd, EV_READ | EV_PERSIST, ipc_on_read, ipc);
	ipc->wev = event_new(base, fd, EV_WRITE, ipc_on_write, ipc);
	event_add(ipc->rev, NULL);
	return ipc;
}

static void
ipc_release(struct ipc *ipc)
{
	struct ipc_qmsg *m, *n;

	event_free(ipc->rev);
	event_free(ipc->wev);
	for (m = ipc->head; m; m = n) {
		n = m->next;
		if (m->fd >= 0)
			close(m->fd);
		xfree(m);
	}
	for (size_t i = 0; i < ipc->nfds; i++)
		close(ipc->fds[i]);
	buf_free(&ipc->in);
	close(ipc->fd);
	xfree(ipc);
}

void
ipc_free(struct ipc *ipc)
{
	if (ipc == NULL)
		return;
	if (ipc->in_dispatch) {
		ipc->free_pending = 1;
		event_del(ipc->rev);
		event_del(ipc->wev);
		return;
	}
	ipc_release(ipc);
}

int
ipc_fd(const struct ipc *ipc)
{
	return ipc->fd;
}

size_t
ipc_queued(const struct ipc *ipc)
{
	return ipc->queued;
}

static void
ipc_fail(struct ipc *ipc)
{
	if (ipc->closed)
		return;
	ipc->closed = 1;
	event_del(ipc->rev);
	event_del(ipc->wev);
	if (ipc->on_close)
		ipc->on_close(ipc, ipc->arg);
}

/*
 * Write what is queued: messages without a descriptor go out gathered,
 * up to IPC_GATHER of them per sendmsg(); a message with one goes first
 * in its own call, its fd riding on its first byte.
 */
static int
ipc_write_some(struct ipc *ipc)
{
	while (ipc->head) {
		struct ipc_qmsg *m = ipc->head;
		struct iovec iov[IPC_GATHER];
		size_t niov = 0;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} cm;
		struct msghdr mh = {.msg_iov = iov};
		ssize_t w;

		iov[niov++] = (struct iovec){m->data + m->off, m->len - m->off};
		if (m->off == 0 && m->fd >= 0) {
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.b;
			mh.msg_controllen = sizeof(cm.b);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
		} else {
			for (struct ipc_qmsg *n = m->next;
			     n && n->fd < 0 && niov < IPC_GATHER; n = n->next)
				iov[niov++] = (struct iovec){n->data, n->len};
		}
		mh.msg_iovlen = niov;
		w = sendmsg(ipc->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		if (m->off == 0 && m->fd >= 0) {
			close(m->fd);
			m->fd = -1;
		}
		ipc->queued -= (size_t)w;
		/* retire what was written whole; a partial one stays first */
		while (w > 0) {
			size_t left = m->len - m->off;
			if ((size_t)w < left) {
				m->off += (size_t)w;
				break;
			}
			w -= (ssize_t)left;
			ipc->head = m->next;
			if (ipc->head == NULL)
				ipc->tail = NULL;
			xfree(m);
			m = ipc->head;
		}
	}
	return 0;
}

static void
ipc_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct ipc *ipc = arg;

	if (ipc_write_some(ipc) < 0) {
		ipc_fail(ipc);
		return;
	}
	if (ipc->head)
		event_add(ipc->wev, NULL);
}

/* Write what is queued now; the rest when the socket takes more. */
static void
ipc_push(struct ipc *ipc)
{
	if (ipc_write_some(ipc) < 0) {
		/* report asynchronously through the read path */
		event_active(ipc->rev, EV_READ, 0);
		return;
	}
	if (ipc->head)
		event_add(ipc->wev, NULL);
}

static int
ipc_enqueue(struct ipc *ipc, uint16_t type, uint64_t id, int fd,
	    const struct ipc_out *out, int later)
{
	size_t plen = out ? out->b.len : 0;
	struct ipc_hdr h = {(uint32_t)plen, type, 0, id};
	struct ipc_qmsg *m;

	if (ipc->closed)
		return -1;
	if (plen > IPC_MAX_PAYLOAD)
		log_panic("ipc: message type %u too large (%zu)", type, plen);
	if (ipc->queued + plen + sizeof(h) > IPC_MAX_QUEUED)
		return -1;
	m = xmalloc(sizeof(*m) + sizeof(h) + plen);
	m->next = NULL;
	m->len = sizeof(h) + plen;
	m->off = 0;
	m->fd = -1;
	if (fd >= 0) {
		m->fd = dup(fd);
		if (m->fd < 0) {
			xfree(m);
			return -1;
		}
		h.flags |= IPC_F_FD;
	}
	memcpy(m->data, &h, sizeof(h));
	if (plen)
		memcpy(m->data + sizeof(h), out->b.data, plen);
	if (ipc->tail)
		ipc->tail->next = m;
	else
		ipc->head = m;
	ipc->tail = m;
	ipc->queued += m->len;
	if (later)
		return 0;
	if (ipc->corked) {
		ipc->cork_sent = 1;
		return 0;
	}
	ipc_push(ipc);
	return 0;
}

int
ipc_send(struct ipc *ipc, uint16_t type, uint64_t id, int fd,
	 const struct ipc_out *out)
{
	return ipc_enqueue(ipc, type, id, fd, out, 0);
}

int
ipc_send_later(struct ipc *ipc, uint16_t type, uint64_t id,
	       const struct ipc_out *out)
{
	return ipc_enqueue(ipc, type, id, -1, out, 1);
}

void
ipc_cork(struct ipc *ipc)
{
	ipc->corked++;
}

void
ipc_uncork(struct ipc *ipc)
{
	if (ipc->corked == 0 || --ipc->corked > 0 || !ipc->cork_sent)
		return;
	ipc->cork_sent = 0;
	if (ipc->head && !ipc->closed)
		ipc_push(ipc);
}

int
ipc_flush(struct ipc *ipc)
{
	int fl;

	fl = 0;
	while (ipc->head && !ipc->closed) {
		if (ipc_write_some(ipc) < 0)
			return -1;
		if (ipc->head && ++fl > 0)
			usleep(1000);
		if (fl > 5000)
			return -1;
	}
	return 0;
}

static int
ipc_read_some(struct ipc *ipc)
{
	char tmp[65536];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct iovec iov = {tmp, sizeof(tmp)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	size_t room = ipc->in.max - ipc->in.len;
	ssize_t r;

	if (room < iov.iov_len)
		iov.iov_len = room;
	if (iov.iov_len == 0)
		return 1; /* buffer full: dispatch first */
	mh.msg_control = cm.b;
	mh.msg_controllen = sizeof(cm.b);
	r = recvmsg(ipc->fd, &mh, MSG_CMSG_CLOEXEC);
	if (r < 0)
		return (errno == EAGAIN || errno == EINTR) ? 1 : -1;
	if (r == 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
	     c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (ipc->nfds == IPC_MAX_FDS)
				log_panic("ipc: too many pending fds");
			ipc->fds[ipc->nfds++] = f;
		}
	}
	if (buf_add(&ipc->in, tmp, (size_t)r) < 0)
		log_panic("ipc: input buffer overflow");
	return 0;
}

static int
ipc_dispatch_one(struct ipc *ipc)
{
	struct ipc_hdr h;
	struct ipc_in in;
	int fd = -1;

	if (ipc->in.len < sizeof(h))
		return 0;
	memcpy(&h, ipc->in.data, sizeof(h));
	if (h.len > IPC_MAX_PAYLOAD)
		log_panic("ipc: peer sent oversized message type %u", h.type);
	if (ipc->in.len < sizeof(h) + h.len)
		return 0;
	if (h.flags & IPC_F_FD) {
		if (ipc->nfds == 0)
			log_panic("ipc: message type %u lacks its fd", h.type);
		fd = ipc->fds[0];
		memmove(ipc->fds, ipc->fds + 1, (--ipc->nfds) * sizeof(int));
	}
	in.p = (const unsigned char *)ipc->in.data + sizeof(h);
	in.len = h.len;
	in.off = 0;
	in.err = 0;
	in.type = h.type;
	ipc->on_msg(ipc, &h, &in, fd, ipc->arg);
	buf_consume(&ipc->in, sizeof(h) + h.len);
	return 1;
}

static void
ipc_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc *ipc = arg;
	int r;

	if (ipc->closed)
		return;
	ipc->in_dispatch = 1;
	r = ipc_read_some(ipc);
	while (!ipc->free_pending && !ipc->closed && ipc_dispatch_one(ipc))
		;
	ipc->in_dispatch = 0;
	if (ipc->free_pending) {
		ipc_release(ipc);
		return;
	}
	if (r < 0)
		ipc_fail(ipc);
}

void
ipc_out_init(struct ipc_out *o)
{
	buf_init(&o->b, IPC_MAX_PAYLOAD);
}

void
ipc_out_free(struct ipc_out *o)
{
	buf_free(&o->b);
}

static void
ipc_put(struct ipc_out *o, const void *p, size_t n)
{
	if (buf_add(&o->b, p, n) < 0)
		log_panic("ipc: message exceeds %d bytes", IPC_MAX_PAYLOAD);
}

void
ipc_put_u8(struct ipc_out *o, uint8_t v)
{
	ipc_put(o, &v, 1);
}

void
ipc_put_u32(struct ipc_out *o, uint32_t v)
{
	ipc_put(o, &v, sizeof(v));
}

void
ipc_put_u64(struct ipc_out *o, uint64_t v)
{
	ipc_put(o, &v, sizeof(v));
}

void
ipc_put_i64(struct ipc_out *o, int64_t v)
{
	ipc_put(o, &v, sizeof(v));
}

void
ipc_put_data(struct ipc_out *o, const void *p, size_t n)
{
	ipc_put_u32(o, (uint32_t)n);
	ipc_put(o, p, n);
}

void
ipc_put_str(struct ipc_out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	ipc_put_u32(o, (uint32_t)n);
	ipc_put(o, s ? s : "", n);
	ipc_put(o, "", 1);
}

static const void *
ipc_get(struct ipc_in *in, size_t n)
{
	const void *p;

	if (in->err || n > in->len - in->off) {
		in->err = 1;
		return NULL;
	}
	p = in->p + in->off;
	in->off += n;
	return p;
}

uint8_t
ipc_get_u8(struct ipc_in *in)
{
	const uint8_t *p = ipc_get(in, 1);
	return p ? *p : 0;
}

uint32_t
ipc_get_u32(struct ipc_in *in)
{
	uint32_t v = 0;
	const void *p = ipc_get(in, sizeof(v));

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t
ipc_get_u64(struct ipc_in *in)
{
	uint64_t v = 0;
	const void *p = ipc_get(in, sizeof(v));

	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

int64_t
ipc_get_i64(struct ipc_in *in)
{
	return (int64_t)ipc_get_u64(in);
}

const void *
ipc_get_data(struct ipc_in *in, size_t *n)
{
	uint32_t len = ipc_get_u32(in);
	const void *p = ipc_get(in, len);

	*n = p ? len : 0;
	return p ? p : "";
}

const char *
ipc_get_str(struct ipc_in *in)
{
	uint32_t len = ipc_get_u32(in);
	const char *p = ipc_get(in, (size_t)len + 1);

	if (p == NULL || p[len] != '\0' || memchr(p, '\0', len) != NULL) {
		in->err = 1;
		return "";
	}
	return p;
}

void
ipc_end(struct ipc_in *in)
{
	if (in->err)
		log_panic("ipc: malformed message type %u", in->type);
	if (in->off != in->len)
		log_panic("ipc: %zu bytes left in message type %u",
			  in->len - in->off, in->type);
}
