/*
 * json — see json.h.
 */
#include "lib/json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n octets), 0 when the
 * octets there are not one (RFC 3629 §4 table: no overlongs, no
 * surrogates, nothing past U+10FFFF). */
size_t
json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
json_escape(struct buf *b, const char *s, size_t n, size_t max, int *cut)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	int r = buf_addc(b, '"');

	if (cut)
		*cut = 0;
	while (i < n && r == 0) {
		size_t len = json_utf8_len(p + i, n - i);
		unsigned char c = p[i];

		if (i + (len ? len : 1) > max) {
			if (cut)
				*cut = 1;
			break;
		}
		if (len == 0)
			r = buf_adds(b, "\\ufffd");
		else if (c == '"' || c == '\\')
			r = buf_addf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			r = buf_addf(b, "\\u%04x", c);
		else
			r = buf_add(b, p + i, len);
		i += len ? len : 1;
	}
	return r ? r : buf_addc(b, '"');
}

void
json_init(struct json *j, struct buf *b)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
	j->first[0] = 1;
}

/* Comma and key before a value at the current level. */
static void
json_member(struct json *j, const char *key)
{
	if (j->err)
		return;
	if (!j->first[j->depth] && buf_adds(j->b, ", ") < 0)
		j->err = -1;
	j->first[j->depth] = 0;
	if (key && !j->err &&
	    (json_escape(j->b, key, strlen(key), (size_t)-1, NULL) < 0 ||
	     buf_adds(j->b, ": ") < 0))
		j->err = -1;
}

static void
json_put(struct json *j, const char *s)
{
	if (!j->err && buf_adds(j->b, s) < 0)
		j->err = -1;
}

static void
json_open(struct json *j, const char *key, const char *bracket)
{
	json_member(j, key);
	if (j->depth >= JSON_DEPTH_MAX)
		j->err = -1;
	json_put(j, bracket);
	if (!j->err)
		j->first[++j->depth] = 1;
}

static void
json_close(struct json *j, const char *bracket)
{
	if (j->depth == 0)
		j->err = -1;
	json_put(j, bracket);
	if (!j->err)
		j->depth--;
}

void
json_obj_open(struct json *j, const char *key)
{
	json_open(j, key, "{");
}

void
json_obj_close(struct json *j)
{
	json_close(j, "}");
}

void
json_arr_open(struct json *j, const char *key)
{
	json_open(j, key, "[");
}

void
json_arr_close(struct json *j)
{
	json_close(j, "]");
}

int
json_strn_m(struct json *j, const char *key, const char *s, size_t max)
{
	int cut = 0;

	json_member(j, key);
	if (s == NULL)
		json_put(j, "null");
	else if (!j->err && json_escape(j->b, s, strlen(s), max, &cut) < 0)
		j->err = -1;
	return cut;
}

void
json_str_m(struct json *j, const char *key, const char *s)
{
	json_strn_m(j, key, s, (size_t)-1);
}

void
json_int_m(struct json *j, const char *key, long long v)
{
	json_member(j, key);
	if (!j->err && buf_addf(j->b, "%lld", v) < 0)
		j->err = -1;
}

void
json_bool_m(struct json *j, const char *key, int v)
{
	json_member(j, key);
	json_put(j, v ? "true" : "false");
}

void
json_null_m(struct json *j, const char *key)
{
	json_member(j, key);
	json_put(j, "null");
}

void
json_raw_m(struct json *j, const char *key, const char *raw)
{
	json_member(j, key);
	json_put(j, raw && *raw ? raw : "null");
}

int
json_end(struct json *j)
{
	return j->err || j->depth != 0 ? -1 : 0;
}
