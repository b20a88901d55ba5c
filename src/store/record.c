/*
 * record: the columns of `requests` and the two forms of a record outside
 * SQLite, the journal line and log's JSON, both driven by one column table.
 */
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"

#include "halton/xmalloc.h"
#include "store-int.h"

#define COL(n, t)                                                              \
	{                                                                      \
#n, sizeof(#n) - 1, t, offsetof(struct usage_record, n)        \
	}

/* The columns of `requests`, in table order (migration 1). */
const struct store_col store_cols[] = {
    COL(uuid, SCOL_UUID),
    COL(started_at, SCOL_I64),
    COL(ended_at, SCOL_I64),
    COL(ttfb_ms, SCOL_I64N),
    COL(duration_ms, SCOL_I64N),
    COL(provider, SCOL_TEXT),
    COL(kind, SCOL_TEXT),
    COL(host, SCOL_TEXT),
    COL(method, SCOL_TEXT),
    COL(path, SCOL_TEXT),
    COL(status, SCOL_STATUS),
    COL(stream, SCOL_TRI),
    COL(request_model, SCOL_TEXT),
    COL(model, SCOL_TEXT),
    COL(input_tokens, SCOL_I64N),
    COL(output_tokens, SCOL_I64N),
    COL(cache_creation_input_tokens, SCOL_I64N),
    COL(cache_creation_5m_tokens, SCOL_I64N),
    COL(cache_creation_1h_tokens, SCOL_I64N),
    COL(cache_read_input_tokens, SCOL_I64N),
    COL(reasoning_tokens, SCOL_I64N),
    COL(web_search_requests, SCOL_I64N),
    COL(stop_reason, SCOL_TEXT),
    COL(request_id, SCOL_TEXT),
    COL(error, SCOL_TEXT),
    COL(service_tier, SCOL_TEXT),
    COL(client, SCOL_TEXT),
    COL(client_version, SCOL_TEXT),
    COL(user_agent, SCOL_TEXT),
    COL(tag, SCOL_TEXT),
    COL(pid, SCOL_I64N),
    COL(process, SCOL_TEXT),
    COL(cwd, SCOL_TEXT),
    COL(project, SCOL_TEXT),
    COL(key_fp, SCOL_TEXT),
    COL(session_id, SCOL_TEXT),
    COL(bytes_up, SCOL_I64),
    COL(bytes_down, SCOL_I64),
    COL(provider_cost_usd, SCOL_REALN),
    COL(usage_json, SCOL_JSONTEXT),
};
const size_t store_ncols = sizeof(store_cols) / sizeof(store_cols[0]);

#define FIELD(r, c, T) ((T *)(void *)((char *)(r) + (c)->off))
#define CFIELD(r, c, T)                                                        \
	((const T *)(const void *)((const char *)(r) + (c)->off))

/* The column lists are made once, whichever thread asks first (the
 * store's writer, the daemon's loop, the dashboard's build thread). */
static char col_list[2048], col_list_usage[2048];
static pthread_once_t col_lists_once = PTHREAD_ONCE_INIT;

static void
col_lists_make(void)
{
	static const char *const used[] = {"started_at", "provider", "kind",
	    "request_model", "model", "input_tokens", "output_tokens",
	    "cache_creation_input_tokens", "cache_creation_5m_tokens",
	    "cache_creation_1h_tokens", "cache_read_input_tokens",
	    "service_tier", "client", "tag", "project", "key_fp", "session_id",
	    "provider_cost_usd"};
	char *list = col_list_usage;
	size_t i, j, len = 0;

	for (i = 0; i < store_ncols; i++)
		len += (size_t)snprintf(col_list + len, sizeof(col_list) - len,
		    "%s%s", i > 0 ? ", " : "", store_cols[i].name);
	len = 0;
	for (i = 0; i < store_ncols; i++) {
		for (j = 0; j < sizeof(used) / sizeof(used[0]); j++)
			if (strcmp(store_cols[i].name, used[j]) == 0)
				break;
		len += (size_t)snprintf(list + len,
		    sizeof(col_list_usage) - len, "%s%s", i > 0 ? ", " : "",
		    j < sizeof(used) / sizeof(used[0]) ? store_cols[i].name
		                                       : "NULL");
	}
}

const char *
store_col_list(void)
{
	pthread_once(&col_lists_once, col_lists_make);
	return col_list;
}

const char *
store_col_list_usage(void)
{
	pthread_once(&col_lists_once, col_lists_make);
	return col_list_usage;
}

int
store_col_bind(sqlite3_stmt *st, const struct usage_record *r)
{
	const struct store_col *c;
	int64_t v;
	double d;
	int i, iv, rc = SQLITE_OK;
	const char *s;

	for (i = 0; i < (int)store_ncols && rc == SQLITE_OK; i++) {
		c = &store_cols[i];
		switch (c->type) {
		case SCOL_UUID:
			rc = sqlite3_bind_text(
			    st, i + 1, r->uuid, -1, SQLITE_STATIC);
			break;
		case SCOL_I64:
			rc = sqlite3_bind_int64(
			    st, i + 1, *CFIELD(r, c, int64_t));
			break;
		case SCOL_I64N:
			v = *CFIELD(r, c, int64_t);
			rc = v < 0 ? sqlite3_bind_null(st, i + 1)
			           : sqlite3_bind_int64(st, i + 1, v);
			break;
		case SCOL_STATUS:
			iv = *CFIELD(r, c, int);
			rc = iv == 0 ? sqlite3_bind_null(st, i + 1)
			             : sqlite3_bind_int(st, i + 1, iv);
			break;
		case SCOL_TRI:
			iv = *CFIELD(r, c, int);
			rc = iv < 0 ? sqlite3_bind_null(st, i + 1)
			            : sqlite3_bind_int(st, i + 1, iv != 0);
			break;
		case SCOL_TEXT:
		case SCOL_JSONTEXT:
			s = *CFIELD(r, c, char *);
			rc = s == NULL ? sqlite3_bind_null(st, i + 1)
			               : sqlite3_bind_text(
			                     st, i + 1, s, -1, SQLITE_STATIC);
			break;
		case SCOL_REALN:
			d = *CFIELD(r, c, double);
			rc = d < 0 || isnan(d)
			    ? sqlite3_bind_null(st, i + 1)
			    : sqlite3_bind_double(st, i + 1, d);
			break;
		}
	}
	return rc;
}

void
store_col_read(sqlite3_stmt *st, int first, struct usage_record *r)
{
	const struct store_col *c;
	const unsigned char *s;
	size_t i;
	int col, null;

	for (i = 0; i < store_ncols; i++) {
		c = &store_cols[i];
		col = first + (int)i;
		null = sqlite3_column_type(st, col) == SQLITE_NULL;
		switch (c->type) {
		case SCOL_UUID:
			s = sqlite3_column_text(st, col);
			snprintf(r->uuid, sizeof(r->uuid), "%s",
			    s != NULL ? (const char *)s : "");
			break;
		case SCOL_I64:
			*FIELD(r, c, int64_t) = sqlite3_column_int64(st, col);
			break;
		case SCOL_I64N:
			*FIELD(r, c, int64_t) =
			    null ? -1 : sqlite3_column_int64(st, col);
			break;
		case SCOL_STATUS:
			*FIELD(r, c, int) =
			    null ? 0 : sqlite3_column_int(st, col);
			break;
		case SCOL_TRI:
			*FIELD(r, c, int) =
			    null ? -1 : sqlite3_column_int(st, col) != 0;
			break;
		case SCOL_TEXT:
		case SCOL_JSONTEXT:
			s = sqlite3_column_text(st, col);
			usage_set_str(
			    FIELD(r, c, char *), null ? NULL : (const char *)s);
			break;
		case SCOL_REALN:
			*FIELD(r, c, double) =
			    null ? -1 : sqlite3_column_double(st, col);
			break;
		}
	}
}

void
store_record_copy(struct usage_record *dst, const struct usage_record *src)
{
	const struct store_col *c;
	size_t i;

	*dst = *src;
	for (i = 0; i < store_ncols; i++) {
		c = &store_cols[i];
		if (c->type == SCOL_TEXT || c->type == SCOL_JSONTEXT) {
			const char *s = *CFIELD(src, c, char *);

			*FIELD(dst, c, char *) = s != NULL ? xstrdup(s) : NULL;
		}
	}
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Appends str as a JSON string.  Runs of plain printable ASCII (the usual
 * content) are copied in one piece; controls are escaped and invalid UTF-8
 * becomes U+FFFD.
 */
void
store_json_str(struct strbuf *sb, const char *str)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)str;
	size_t n = strlen(str), len;
	char *o, *start;

	/* Written in place: at most 6 bytes out per byte in, plus quotes. */
	start = o = strbuf_reserve(sb, 6 * n + 2);
	*o++ = '"';
	while (n > 0) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			*o++ = (char)*p++;
			n--;
			continue;
		}
		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p;
		} else if (*p == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (*p == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else if (*p == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			memcpy(o, "\\u00", 4);
			o[4] = hexd[*p >> 4];
			o[5] = hexd[*p & 0xf];
			o += 6;
		} else if ((len = utf8_len(p, n)) == 0) {
			memcpy(o, "\\ufffd", 6);
			o += 6;
		} else {
			memcpy(o, p, len);
			o += len;
			p += len;
			n -= len;
			continue;
		}
		p++;
		n--;
	}
	*o++ = '"';
	strbuf_setlen(sb, sb->len + (size_t)(o - start));
}

/* A double that reads back exactly. */
static void
json_double(struct strbuf *sb, double d)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, sizeof(buf), "%.17g", d);
	strbuf_adds(sb, buf);
}

/*
 * Appends the record as one JSON object, keys in column order.  The journal
 * form (flags 0) keeps usage_json a string so the line always parses; the
 * log form embeds it as an object when it is valid JSON, and adds cost_usd.
 */
void
store_record_json(const struct usage_record *r, int flags, struct strbuf *sb)
{
	store_record_json_cost(r, flags, -1, sb);
}

void
store_record_json_cost(
    const struct usage_record *r, int flags, double cost, struct strbuf *sb)
{
	const struct store_col *c;
	const char *s;
	cJSON *usage;
	char *printed, *o;
	int64_t v;
	double d;
	size_t i;
	int iv;

	strbuf_addc(sb, '{');
	for (i = 0; i < store_ncols; i++) {
		c = &store_cols[i];
		o = strbuf_reserve(sb, c->namelen + 4);
		if (i > 0)
			*o++ = ',';
		*o++ = '"';
		memcpy(o, c->name, c->namelen);
		o += c->namelen;
		*o++ = '"';
		*o++ = ':';
		strbuf_setlen(sb, (size_t)(o - sb->data));
		switch (c->type) {
		case SCOL_UUID:
			store_json_str(sb, r->uuid);
			break;
		case SCOL_I64:
			strbuf_add_i64(sb, *CFIELD(r, c, int64_t));
			break;
		case SCOL_I64N:
			v = *CFIELD(r, c, int64_t);
			if (v < 0)
				strbuf_adds(sb, "null");
			else
				strbuf_add_i64(sb, v);
			break;
		case SCOL_STATUS:
			iv = *CFIELD(r, c, int);
			if (iv == 0)
				strbuf_adds(sb, "null");
			else
				strbuf_add_i64(sb, iv);
			break;
		case SCOL_TRI:
			iv = *CFIELD(r, c, int);
			strbuf_adds(sb,
			    iv < 0   ? "null"
			        : iv ? "true"
			             : "false");
			break;
		case SCOL_TEXT:
			s = *CFIELD(r, c, char *);
			if (s == NULL)
				strbuf_adds(sb, "null");
			else
				store_json_str(sb, s);
			break;
		case SCOL_JSONTEXT:
			s = *CFIELD(r, c, char *);
			if (s == NULL) {
				strbuf_adds(sb, "null");
				break;
			}
			usage =
			    (flags & STORE_JSON_LOG) ? cJSON_Parse(s) : NULL;
			if (usage != NULL &&
			    (printed = cJSON_PrintUnformatted(usage)) != NULL) {
				strbuf_adds(sb, printed);
				cJSON_free(printed);
			} else
				store_json_str(sb, s);
			cJSON_Delete(usage);
			break;
		case SCOL_REALN:
			d = *CFIELD(r, c, double);
			if (d < 0 || isnan(d) || isinf(d))
				strbuf_adds(sb, "null");
			else
				json_double(sb, d);
			break;
		}
	}
	if (flags & STORE_JSON_LOG) {
		strbuf_adds(sb, ",\"cost_usd\":");
		if (cost < 0 || isnan(cost) || isinf(cost))
			strbuf_adds(sb, "null");
		else
			json_double(sb, cost);
	}
	strbuf_addc(sb, '}');
}

static const struct store_col *
col_find(const char *name)
{
	size_t i;

	for (i = 0; i < store_ncols; i++)
		if (strcmp(store_cols[i].name, name) == 0)
			return &store_cols[i];
	return NULL;
}

/* An integer JSON value (exact up to 2^53, far beyond any count here). */
static int
json_int(const cJSON *v, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (d != floor(d) || d < -9007199254740992.0 || d > 9007199254740992.0)
		return -1;
	*out = (int64_t)d;
	return 0;
}

int
store_record_from_json(
    struct usage_record *r, const char *text, size_t len, char **cause)
{
	const struct store_col *c;
	cJSON *root, *v;
	char *printed;
	int64_t iv;
	int rc = -1;

	*cause = NULL;
	if ((root = cJSON_ParseWithLength(text, len)) == NULL ||
	    !cJSON_IsObject(root)) {
		*cause = xstrdup("not a JSON object");
		goto out;
	}
	cJSON_ArrayForEach(v, root)
	{
		if (v->string == NULL || (c = col_find(v->string)) == NULL) {
			if (v->string != NULL &&
			    strcmp(v->string, "cost_usd") == 0)
				continue;
			*cause = xasprintf("unknown key \"%s\"",
			    v->string != NULL ? v->string : "");
			goto out;
		}
		switch (c->type) {
		case SCOL_UUID:
			if (!cJSON_IsString(v) ||
			    strlen(v->valuestring) != USAGE_UUID_LEN)
				goto bad;
			memcpy(r->uuid, v->valuestring, USAGE_UUID_LEN + 1);
			break;
		case SCOL_I64:
		case SCOL_I64N:
			if (cJSON_IsNull(v) && c->type == SCOL_I64N)
				iv = -1;
			else if (json_int(v, &iv) == -1)
				goto bad;
			*FIELD(r, c, int64_t) = iv;
			break;
		case SCOL_STATUS:
			if (cJSON_IsNull(v))
				iv = 0;
			else if (json_int(v, &iv) == -1 || iv < 0 || iv > 999)
				goto bad;
			*FIELD(r, c, int) = (int)iv;
			break;
		case SCOL_TRI:
			if (cJSON_IsNull(v))
				*FIELD(r, c, int) = -1;
			else if (cJSON_IsBool(v))
				*FIELD(r, c, int) = cJSON_IsTrue(v);
			else
				goto bad;
			break;
		case SCOL_TEXT:
			if (cJSON_IsNull(v))
				usage_set_str(FIELD(r, c, char *), NULL);
			else if (cJSON_IsString(v))
				usage_set_str(
				    FIELD(r, c, char *), v->valuestring);
			else
				goto bad;
			break;
		case SCOL_JSONTEXT:
			if (cJSON_IsNull(v))
				usage_set_str(FIELD(r, c, char *), NULL);
			else if (cJSON_IsString(v))
				usage_set_str(
				    FIELD(r, c, char *), v->valuestring);
			else {
				printed = cJSON_PrintUnformatted(v);
				usage_set_str(FIELD(r, c, char *), printed);
				cJSON_free(printed);
			}
			break;
		case SCOL_REALN:
			if (cJSON_IsNull(v))
				*FIELD(r, c, double) = -1;
			else if (cJSON_IsNumber(v))
				*FIELD(r, c, double) = v->valuedouble;
			else
				goto bad;
			break;
		}
		continue;
	bad:
		*cause = xasprintf("bad value for \"%s\"", c->name);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

void
store_ratelimit_json(const struct ratelimit_snapshot *s, struct strbuf *sb)
{
	strbuf_adds(sb, "{\"provider\":");
	if (s->provider != NULL)
		store_json_str(sb, s->provider);
	else
		strbuf_adds(sb, "null");
	strbuf_adds(sb, ",\"key_fp\":");
	if (s->key_fp != NULL)
		store_json_str(sb, s->key_fp);
	else
		strbuf_adds(sb, "null");
	strbuf_addf(sb,
	    ",\"observed_at\":%lld,\"headers\":", (long long)s->observed_at);
	if (s->headers_json != NULL)
		store_json_str(sb, s->headers_json);
	else
		strbuf_adds(sb, "null");
	strbuf_addc(sb, '}');
}

int
store_ratelimit_from_json(
    struct ratelimit_snapshot *s, const char *text, size_t len, char **cause)
{
	cJSON *root, *v;
	char *printed;
	int64_t at;
	int rc = -1;

	*cause = NULL;
	memset(s, 0, sizeof(*s));
	if ((root = cJSON_ParseWithLength(text, len)) == NULL ||
	    !cJSON_IsObject(root)) {
		*cause = xstrdup("not a JSON object");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "provider");
	if (!cJSON_IsString(v)) {
		*cause = xstrdup("no provider");
		goto out;
	}
	s->provider = xstrdup(v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(root, "key_fp");
	if (cJSON_IsString(v))
		s->key_fp = xstrdup(v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(root, "observed_at");
	if (json_int(v, &at) == -1) {
		*cause = xstrdup("bad observed_at");
		goto out;
	}
	s->observed_at = at;
	v = cJSON_GetObjectItemCaseSensitive(root, "headers");
	if (cJSON_IsString(v))
		s->headers_json = xstrdup(v->valuestring);
	else if (cJSON_IsObject(v)) {
		printed = cJSON_PrintUnformatted(v);
		s->headers_json = xstrdup(printed);
		cJSON_free(printed);
	} else {
		*cause = xstrdup("bad headers");
		goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		ratelimit_snapshot_free(s);
	cJSON_Delete(root);
	return rc;
}
