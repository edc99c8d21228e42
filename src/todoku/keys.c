/*
 * keys — the keys role: DKIM private keys, and nothing else.
 *
 * DESIGN §7: the only process that holds signing keys has no network
 * and parses nothing from outside. It loads the [dkim "DOMAIN"] key
 * files at start and on reload, and answers K_SIGN (domain, 32-byte
 * hash) with K_SIG (the signature made by dkim_sign_hash). A domain
 * without a usable key gets an error answer, never a crash.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "mail/conf.h"
#include "mail/dkim_sign.h"
#include "todoku/proto.h"
#include "todoku/role.h"

#define KEYS_MAX 64
#define KEYS_FILE_MAX (64 * 1024)

struct keyent {
	char *domain;
	enum dkim_alg alg;
	EVP_PKEY *pkey;
};

struct keys {
	struct role_env *env;
	struct ipc *master;
	struct keyent k[KEYS_MAX];
	size_t n;
};

static EVP_PKEY *
keys_read(const char *path, enum dkim_alg alg)
{
	struct buf pem;
	char tmp[4096];
	ssize_t r;
	EVP_PKEY *k = NULL;
	const char *err = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		log_err("dkim key %s: %s", path, strerror(errno));
		return NULL;
	}
	/* master refuses to start with such a key; this catches a reload */
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		log_err("dkim key %s: can be read by other users; not loaded "
			"(chmod 600 it)",
			path);
		close(fd);
		return NULL;
	}
	buf_init(&pem, KEYS_FILE_MAX);
	while ((r = read(fd, tmp, sizeof(tmp))) > 0)
		if (buf_add(&pem, tmp, (size_t)r) < 0)
			break;
	close(fd);
	if (pem.len > 0)
		k = dkim_key_load_pem(pem.data, pem.len);
	explicit_bzero(pem.data ? pem.data : tmp, pem.data ? pem.len : 0);
	buf_free(&pem);
	if (k == NULL) {
		log_err("dkim key %s: not a PEM private key", path);
		return NULL;
	}
	if (dkim_key_check(k, alg, &err) < 0) {
		log_err("dkim key %s: %s", path, err);
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

static void
keys_clear(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		xfree(ks->k[i].domain);
		EVP_PKEY_free(ks->k[i].pkey);
	}
	ks->n = 0;
}

static void
keys_load(struct keys *ks)
{
	const struct conf *c = ks->env->conf;

	keys_clear(ks);
	for (size_t i = 0; i < c->ndkim && ks->n < KEYS_MAX; i++) {
		enum dkim_alg alg = c->dkim[i].algorithm
					? DKIM_ALG_ED25519_SHA256
					: DKIM_ALG_RSA_SHA256;
		EVP_PKEY *k = keys_read(c->dkim[i].key_file, alg);
		if (k == NULL)
			continue;
		ks->k[ks->n].domain = xstrdup(c->dkim[i].domain);
		ks->k[ks->n].alg = alg;
		ks->k[ks->n].pkey = k;
		ks->n++;
		log_info("dkim: signing key for %s loaded", c->dkim[i].domain);
	}
}

static void
keys_on_sign(struct keys *ks, struct ipc *ipc, const struct ipc_hdr *h,
	     struct ipc_in *in)
{
	const char *domain = ipc_get_str(in);
	size_t hlen;
	const void *hash = ipc_get_data(in, &hlen);
	uint8_t sig[DKIM_SIG_MAX];
	size_t siglen = sizeof(sig);
	struct ipc_out o;
	const char *err = "no signing key for this domain";

	ipc_end(in);
	ipc_out_init(&o);
	for (size_t i = 0; i < ks->n; i++) {
		if (strcasecmp(ks->k[i].domain, domain) != 0)
			continue;
		if (hlen == 32 && dkim_sign_hash(ks->k[i].pkey, ks->k[i].alg,
						 hash, sig, &siglen) == 0) {
			ipc_put_u8(&o, 1);
			ipc_put_data(&o, sig, siglen);
			ipc_put_str(&o, "");
			ipc_send(ipc, K_SIG, h->id, -1, &o);
			ipc_out_free(&o);
			return;
		}
		err = "signing failed";
	}
	ipc_put_u8(&o, 0);
	ipc_put_data(&o, "", 0);
	ipc_put_str(&o, err);
	ipc_send(ipc, K_SIG, h->id, -1, &o);
	ipc_out_free(&o);
}

static void
keys_peer_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
	      int fd, void *arg)
{
	if (fd >= 0)
		close(fd);
	if (h->type != K_SIGN)
		log_panic("keys: unexpected message %u", h->type);
	keys_on_sign(arg, ipc, h, in);
}

static void
keys_peer_close(struct ipc *ipc, void *arg)
{
	ipc_free(ipc);
}

static void
keys_master_msg(struct ipc *ipc, const struct ipc_hdr *h, struct ipc_in *in,
		int fd, void *arg)
{
	struct keys *ks = arg;

	switch (h->type) {
	case M_PEER:
		ipc_get_u8(in);
		ipc_get_u32(in);
		ipc_end(in);
		ipc_new(ks->env->base, fd, keys_peer_msg, keys_peer_close, ks);
		return;
	case M_RELOAD: {
		struct conf *nc = role_reload_conf(ks->env, in);
		if (nc != NULL) {
			conf_free(ks->env->conf);
			ks->env->conf = nc;
			log_set_level(nc->log_level);
			keys_load(ks);
		}
		break;
	}
	case M_SHUTDOWN:
		ipc_end(in);
		keys_clear(ks);
		exit(0);
	default:
		log_panic("keys: unexpected master message %u", h->type);
	}
	if (fd >= 0)
		close(fd);
}

static void
keys_master_close(struct ipc *ipc, void *arg)
{
	keys_clear(arg);
	exit(0);
}

int
keys_main(struct role_env *env)
{
	static struct keys ks;

	ks.env = env;
	keys_load(&ks);
	ks.master = ipc_new(env->base, ROLE_MASTER_FD, keys_master_msg,
			    keys_master_close, &ks);
	event_base_dispatch(env->base);
	return 0;
}
