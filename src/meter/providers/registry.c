/*
 * registry: the const provider table and the helpers every provider shares
 * (dotted JSON lookups, error types, raw usage bookkeeping).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/* Most specific first: the OpenAI-compatible hosts before plain OpenAI. */
/* clang-format off */
const struct provider *const provider_registry[] = {
	&provider_anthropic,
	&provider_deepseek_anthropic,
	&provider_bedrock,
	&provider_gemini_openai,
	&provider_gemini,
	&provider_openrouter,
	&provider_groq,
	&provider_deepseek,
	&provider_mistral,
	&provider_xai,
	&provider_azure,
	&provider_together,
	&provider_fireworks,
	&provider_openai,
	NULL
};
/* clang-format on */

const struct provider *
provider_find(const char *host, const char *path)
{
	char buf[2048];
	const char *q;
	size_t n;
	int i;

	if (host == NULL || path == NULL)
		return NULL;
	if ((q = strchr(path, '?')) != NULL) {
		n = (size_t)(q - path);
		if (n >= sizeof(buf))
			return NULL;
		memcpy(buf, path, n);
		buf[n] = '\0';
		path = buf;
	}
	for (i = 0; provider_registry[i] != NULL; i++)
		if (provider_registry[i]->match(host, path))
			return provider_registry[i];
	return NULL;
}

void
provider_state_init(struct provider_state *st)
{
	memset(st, 0, sizeof(*st));
}

void
provider_state_clear(struct provider_state *st)
{
	cJSON_Delete(st->usage_raw);
	st->usage_raw = NULL;
}

int
provider_host_is(const char *host, const char *name)
{
	size_t hl, nl;

	if (host == NULL)
		return 0;
	hl = strlen(host);
	nl = strlen(name);
	if (hl == nl)
		return str_casecmp(host, name) == 0;
	if (hl > nl && host[hl - nl - 1] == '.')
		return str_casecmp(host + hl - nl, name) == 0;
	return 0;
}

/* Walks a dotted path; members only (no array indexes). */
static const cJSON *
json_walk(const cJSON *obj, const char *path)
{
	char key[128];
	const char *dot;
	size_t n;

	while (obj != NULL && cJSON_IsObject(obj)) {
		dot = strchr(path, '.');
		n = dot != NULL ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
		if (dot == NULL)
			return obj;
		path = dot + 1;
	}
	return NULL;
}

int64_t
provider_json_int(const cJSON *obj, const char *path)
{
	const cJSON *v = json_walk(obj, path);
	double d;

	if (v == NULL || !cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= 0) || d > 9.0e15)
		return -1;
	return (int64_t)floor(d);
}

const char *
provider_json_str(const cJSON *obj, const char *path)
{
	const cJSON *v = json_walk(obj, path);

	if (v == NULL || !cJSON_IsString(v) || v->valuestring == NULL ||
	    v->valuestring[0] == '\0')
		return NULL;
	return v->valuestring;
}

const cJSON *
provider_json_obj(const cJSON *obj, const char *path)
{
	const cJSON *v = json_walk(obj, path);

	return v != NULL && cJSON_IsObject(v) ? v : NULL;
}

void
provider_set_count(int64_t *field, int64_t v)
{
	if (v >= 0)
		*field = v;
}

void
provider_keep_usage(struct provider_state *st, const cJSON *usage, int merge)
{
	const cJSON *m;
	cJSON *copy;

	if (usage == NULL || !cJSON_IsObject(usage))
		return;
	st->usage_seen = 1;
	if (!merge || st->usage_raw == NULL) {
		cJSON_Delete(st->usage_raw);
		st->usage_raw = cJSON_Duplicate(usage, 1);
		return;
	}
	cJSON_ArrayForEach(m, usage)
	{
		if (cJSON_IsNull(m) || m->string == NULL)
			continue;
		if ((copy = cJSON_Duplicate(m, 1)) == NULL)
			continue;
		if (cJSON_GetObjectItemCaseSensitive(
		        st->usage_raw, m->string) != NULL)
			cJSON_ReplaceItemInObjectCaseSensitive(
			    st->usage_raw, m->string, copy);
		else
			cJSON_AddItemToObject(st->usage_raw, m->string, copy);
	}
}

const char *
provider_error_type(const cJSON *obj, char *buf, size_t len)
{
	const cJSON *err, *code;
	const char *s;

	if (obj == NULL || !cJSON_IsObject(obj))
		return NULL;
	err = cJSON_GetObjectItemCaseSensitive(obj, "error");
	if (err == NULL || !cJSON_IsObject(err)) {
		/* OpenAI Responses error event, flat shape. */
		if ((s = provider_json_str(obj, "type")) != NULL &&
		    strcmp(s, "error") == 0) {
			if ((s = provider_json_str(obj, "code")) != NULL)
				return s;
			return "error";
		}
		return NULL;
	}
	if ((s = provider_json_str(err, "type")) != NULL)
		return s;
	if ((s = provider_json_str(err, "status")) != NULL)
		return s;
	if ((s = provider_json_str(err, "code")) != NULL)
		return s;
	code = cJSON_GetObjectItemCaseSensitive(err, "code");
	if (code != NULL && cJSON_IsNumber(code)) {
		snprintf(buf, len, "http_%d", code->valueint);
		return buf;
	}
	return "error";
}

void
provider_set_error(struct provider_state *st, const char *err)
{
	if (err == NULL)
		return;
	st->error_seen = 1;
	if (st->rec->error == NULL)
		usage_set_str(&st->rec->error, err);
}

void
provider_request_common(struct provider_state *st, const cJSON *body)
{
	const cJSON *v;
	const char *s;

	if (body == NULL || !cJSON_IsObject(body))
		return;
	if ((s = provider_json_str(body, "model")) != NULL)
		usage_set_str(&st->rec->request_model, s);
	v = cJSON_GetObjectItemCaseSensitive(body, "stream");
	if (v != NULL && cJSON_IsBool(v))
		st->rec->stream = cJSON_IsTrue(v) ? 1 : 0;
	v = json_walk(body, "stream_options.include_usage");
	if (v != NULL && cJSON_IsTrue(v))
		st->include_usage = 1;
}

/* The first occurrence of needle (n bytes) in data[0..len), or NULL. */
static const char *
bytes_find(const char *data, size_t len, const char *needle, size_t n)
{
	const char *p, *end = data + len, *last;
	size_t k = 0, i;

	if (n == 0)
		return data;
	if (len < n)
		return NULL;
	/* memchr for a byte of the needle that is rare in JSON text: an
	 * upper-case letter, else '_', else the first byte. */
	for (i = 0; i < n; i++)
		if (needle[i] >= 'A' && needle[i] <= 'Z')
			break;
	if (i == n)
		for (i = 0; i < n && needle[i] != '_'; i++)
			;
	if (i < n)
		k = i;
	p = data + k;
	last = end - (n - k); /* the anchor's last possible place */
	while (p <= last &&
	    (p = memchr(p, needle[k], (size_t)(last - p) + 1)) != NULL) {
		if (memcmp(p - k, needle, n) == 0)
			return p - k;
		p++;
	}
	return NULL;
}

int
provider_bytes_has(const char *data, size_t len, const char *needle)
{
	return bytes_find(data, len, needle, strlen(needle)) != NULL;
}

const char *
provider_json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/*
 * Looks at every "key" in the raw JSON: one followed by a colon is a
 * member, and its value must be null or the plain string cur.  A "key"
 * not followed by a colon is a string value, not a member: ignored.
 */
int
provider_raw_key_is(
    const char *data, size_t len, const char *key, const char *cur)
{
	const char *p = data, *end = data + len, *hit, *q, *v;
	char needle[64];
	size_t klen = strlen(key), curlen;

	if (klen + 2 >= sizeof(needle))
		return 0;
	needle[0] = '"';
	memcpy(needle + 1, key, klen);
	needle[klen + 1] = '"';
	klen += 2;
	while ((hit = bytes_find(p, (size_t)(end - p), needle, klen)) != NULL) {
		p = hit + klen;
		q = provider_json_ws(p, end);
		if (q == end || *q != ':')
			continue;
		v = provider_json_ws(q + 1, end);
		if ((size_t)(end - v) >= 4 && memcmp(v, "null", 4) == 0)
			continue;
		if (cur == NULL || v == end || *v != '"')
			return 0;
		curlen = strlen(cur);
		if ((size_t)(end - v) < curlen + 2 ||
		    memcmp(v + 1, cur, curlen) != 0 || v[curlen + 1] != '"' ||
		    memchr(cur, '\\', curlen) != NULL ||
		    memchr(cur, '"', curlen) != NULL)
			return 0;
		p = v + curlen + 2;
	}
	return 1;
}
