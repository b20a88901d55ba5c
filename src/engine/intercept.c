/*
 * intercept: the list of host patterns whose TLS the daemon terminates.
 *
 * A pattern is matched label by label, so a '*' can never swallow a dot:
 *   "api.openai.com"                exact name
 *   "*.openai.azure.com"            one or more labels, then the suffix
 *   "*-aiplatform.googleapis.com"   the '*' matches one or more characters
 *                                   inside the first label
 *   "bedrock-runtime.*.amazonaws.com"  a label that is exactly '*' (not the
 *                                   first) matches exactly one label
 * Hosts and patterns are compared ASCII case-insensitively and a trailing dot
 * on either is ignored.  A host that is not a syntactically valid DNS name
 * (empty label, a byte outside [A-Za-z0-9_-], too long) matches nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/intercept.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define INTERCEPT_MAX_NAME  253
#define INTERCEPT_MAX_LABEL 63

const char *const intercept_builtin[] = {
    "api.anthropic.com",
    "api.openai.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "*-aiplatform.googleapis.com",
    "cloudcode-pa.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
    "*.openai.azure.com",
    "openrouter.ai",
    "api.groq.com",
    "api.deepseek.com",
    "api.mistral.ai",
    "api.x.ai",
    "api.together.xyz",
    "api.fireworks.ai",
    NULL,
};

struct intercept_list {
	char **patterns; /* lower case, no trailing dot */
	size_t n;
};

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
host_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* The length of name without one trailing dot, or 0 if name is not a
 * well-formed DNS name (or pattern, when stars is set). */
static size_t
name_len(const char *name, int stars)
{
	size_t len = strlen(name), i, label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > INTERCEPT_MAX_NAME)
		return 0;
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!host_char((unsigned char)name[i]) &&
		    !(stars && name[i] == '*'))
			return 0;
		if (++label > INTERCEPT_MAX_LABEL)
			return 0;
	}
	return label == 0 ? 0 : len;
}

/* Whether the label h[0..hn) matches the pattern label p[0..pn), where p may
 * hold one '*' standing for one or more characters. */
static int
label_match(const char *p, size_t pn, const char *h, size_t hn)
{
	const char *star = memchr(p, '*', pn);
	size_t pre, post, i;

	if (star == NULL) {
		if (pn != hn)
			return 0;
		for (i = 0; i < pn; i++)
			if (lower((unsigned char)p[i]) !=
			    lower((unsigned char)h[i]))
				return 0;
		return 1;
	}
	pre = (size_t)(star - p);
	post = pn - pre - 1;
	if (memchr(star + 1, '*', post) != NULL)
		return 0; /* one star per label */
	if (hn < pre + post + 1)
		return 0;
	return label_match(p, pre, h, pre) &&
	    label_match(star + 1, post, h + hn - post, post);
}

/* Splits s[0..n) at dots into at most max (start, length) pairs; returns
 * the number of labels, or 0 if there are more than max. */
static size_t
split_labels(
    const char *s, size_t n, const char **start, size_t *len, size_t max)
{
	size_t count = 0, i, from = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (count == max)
			return 0;
		start[count] = s + from;
		len[count] = i - from;
		count++;
		from = i + 1;
	}
	return count;
}

int
intercept_pattern_match(const char *pattern, const char *host)
{
	const char *pl[128], *hl[128];
	size_t pn[128], hn[128], np, nh, plen, hlen, i, skip;

	if (pattern == NULL || host == NULL)
		return 0;
	if ((plen = name_len(pattern, 1)) == 0 ||
	    (hlen = name_len(host, 0)) == 0)
		return 0;
	np = split_labels(pattern, plen, pl, pn, 128);
	nh = split_labels(host, hlen, hl, hn, 128);
	if (np == 0 || nh == 0)
		return 0;

	/* "*.suffix": one or more whole labels before the suffix. */
	if (np >= 2 && pn[0] == 1 && pl[0][0] == '*') {
		if (nh < np)
			return 0;
		skip = nh - (np - 1);
		for (i = 1; i < np; i++)
			if (!label_match(pl[i], pn[i], hl[skip + i - 1],
			        hn[skip + i - 1]))
				return 0;
		return 1;
	}
	if (np != nh)
		return 0;
	for (i = 0; i < np; i++)
		if (!label_match(pl[i], pn[i], hl[i], hn[i]))
			return 0;
	return 1;
}

static void
list_add(struct intercept_list *l, const char *pattern)
{
	size_t len = strlen(pattern), i;
	char *p;

	if (len > 0 && pattern[len - 1] == '.')
		len--;
	p = xstrndup(pattern, len);
	str_lower(p);
	for (i = 0; i < l->n; i++) {
		if (strcmp(l->patterns[i], p) == 0) {
			free(p);
			return;
		}
	}
	l->patterns = xreallocarray(l->patterns, l->n + 1, sizeof(char *));
	l->patterns[l->n++] = p;
}

struct intercept_list *
intercept_list_new(const struct strlist *extra)
{
	struct intercept_list *l = xcalloc(1, sizeof(*l));
	size_t i;

	for (i = 0; intercept_builtin[i] != NULL; i++)
		list_add(l, intercept_builtin[i]);
	if (extra != NULL)
		for (i = 0; i < extra->n; i++)
			if (name_len(extra->v[i], 1) != 0)
				list_add(l, extra->v[i]);
	return l;
}

void
intercept_list_free(struct intercept_list *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		free(l->patterns[i]);
	free(l->patterns);
	free(l);
}

int
intercept_list_match(const struct intercept_list *l, const char *host)
{
	size_t i;

	if (l == NULL || host == NULL)
		return 0;
	for (i = 0; i < l->n; i++)
		if (intercept_pattern_match(l->patterns[i], host))
			return 1;
	return 0;
}

size_t
intercept_list_count(const struct intercept_list *l)
{
	return l == NULL ? 0 : l->n;
}

const char *
intercept_list_at(const struct intercept_list *l, size_t i)
{
	return l == NULL || i >= l->n ? NULL : l->patterns[i];
}
