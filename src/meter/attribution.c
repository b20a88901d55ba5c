/*
 * attribution: the portable part (User-Agent table, tag, key fingerprint,
 * project).  The process lookup is in attribution-{linux,macos}.c.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "halton/attribution.h"
#include "halton/eventstream.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum ua_match {
	UA_PREFIX, /* the User-Agent starts with the token */
	UA_SUBSTR, /* the token appears anywhere (case-insensitive) */
	UA_EXACT
};

/*
 * Known clients, first match wins.  The version is what follows the token
 * up to white space, ';' or ')'.  Framework markers (LangChain) come before
 * the SDKs they wrap.
 */
static const struct ua_entry {
	const char *token;
	enum ua_match how;
	const char *client;
} ua_table[] = {
    {"claude-cli/", UA_PREFIX, "claude-code"},
    {"claude-code/", UA_PREFIX, "claude-code"},
    {"codex_cli_rs/", UA_PREFIX, "codex"},
    {"codex_exec/", UA_PREFIX, "codex"},
    {"codex-cli/", UA_PREFIX, "codex"},
    {"GeminiCLI/", UA_PREFIX, "gemini-cli"},
    {"gemini-cli/", UA_PREFIX, "gemini-cli"},
    {"Cursor/", UA_SUBSTR, "cursor"},
    {"Windsurf/", UA_SUBSTR, "windsurf"},
    {"langchain-", UA_SUBSTR, "langchain"},
    {"langchain/", UA_SUBSTR, "langchain"},
    {"Anthropic/Python ", UA_PREFIX, "anthropic-sdk-python"},
    {"Anthropic/JS ", UA_PREFIX, "anthropic-sdk-ts"},
    {"OpenAI/Python ", UA_PREFIX, "openai-sdk-python"},
    {"OpenAI/JS ", UA_PREFIX, "openai-sdk-ts"},
    {"AsyncOpenAI/Python ", UA_PREFIX, "openai-sdk-python"},
    {"google-genai-sdk/", UA_SUBSTR, "google-genai-sdk"},
    {"curl/", UA_PREFIX, "curl"},
    {"python-requests/", UA_PREFIX, "python-requests"},
    {"python-httpx/", UA_PREFIX, "httpx"},
    {"node-fetch/", UA_PREFIX, "node"},
    {"undici", UA_PREFIX, "node"},
    {"node", UA_EXACT, "node"},
    {"node/", UA_PREFIX, "node"},
};

/* Case-insensitive strstr for ASCII. */
static const char *
ci_strstr(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (str_ncasecmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

int
attribution_client(const char *ua, char **client, char **version)
{
	const struct ua_entry *e;
	const char *at, *v, *end;
	size_t i, n;

	*client = NULL;
	*version = NULL;
	if (ua == NULL)
		return -1;
	for (i = 0; i < sizeof(ua_table) / sizeof(ua_table[0]); i++) {
		e = &ua_table[i];
		n = strlen(e->token);
		at = NULL;
		switch (e->how) {
		case UA_PREFIX:
			if (strncmp(ua, e->token, n) == 0)
				at = ua;
			break;
		case UA_SUBSTR:
			at = ci_strstr(ua, e->token);
			break;
		case UA_EXACT:
			if (strcmp(ua, e->token) == 0)
				at = ua;
			break;
		}
		if (at == NULL)
			continue;
		*client = xstrdup(e->client);
		v = at + n;
		/* "langchain-anthropic/0.3.1": the version is after '/'. */
		if (e->token[n - 1] == '-') {
			while (*v != '\0' && *v != '/' && *v != ' ')
				v++;
			if (*v == '/')
				v++;
		}
		end = v;
		while (*end != '\0' && *end != ' ' && *end != ';' &&
		    *end != ')' && *end != '(' && end - v < 64)
			end++;
		if (end > v && isdigit((unsigned char)*v))
			*version = xstrndup(v, (size_t)(end - v));
		return 0;
	}
	return -1;
}

/*
 * SHA-256, fetched once: EVP_sha256() makes OpenSSL 3 look the
 * implementation up again at every digest (one per request).
 */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}
#endif

static const EVP_MD *
sha256_md(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_fetched != NULL)
		return sha256_fetched;
#endif
	return EVP_sha256();
}

/*
 * The last fingerprint made on this thread: a client sends the same key
 * with every request, and the digest (~2 us with OpenSSL 3's EVP) is then
 * made once.  The key stays in memory only, next to where the request head
 * had it; keys longer than the slot are digested every time.
 */
#define KEY_FP_CACHE_MAX 256
static _Thread_local struct {
	size_t len; /* 0 = empty */
	unsigned char cred[KEY_FP_CACHE_MAX];
	char fp[ATTRIBUTION_FP_LEN + 1];
} key_fp_last;

void
attribution_key_fp(const void *cred, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (len > 0 && len == key_fp_last.len &&
	    memcmp(cred, key_fp_last.cred, len) == 0) {
		memcpy(out, key_fp_last.fp, sizeof(key_fp_last.fp));
		return;
	}
	if (EVP_Digest(cred, len, md, &mdlen, sha256_md(), NULL) != 1 ||
	    mdlen < ATTRIBUTION_FP_LEN / 2) {
		memset(out, '0', ATTRIBUTION_FP_LEN);
		out[ATTRIBUTION_FP_LEN] = '\0';
		return;
	}
	hex_encode(md, ATTRIBUTION_FP_LEN / 2, out);
	explicit_zero(md, sizeof(md));
	if (len > 0 && len <= KEY_FP_CACHE_MAX) {
		memcpy(key_fp_last.cred, cred, len);
		key_fp_last.len = len;
		memcpy(key_fp_last.fp, out, sizeof(key_fp_last.fp));
	}
}

/* Trims white space of the n bytes at *p; returns the new length. */
static size_t
trim_span(const char **p, size_t n)
{
	while (n > 0 && (**p == ' ' || **p == '\t')) {
		(*p)++;
		n--;
	}
	while (n > 0 && ((*p)[n - 1] == ' ' || (*p)[n - 1] == '\t'))
		n--;
	return n;
}

int
attribution_request_key_fp(
    attribution_header_fn hdr, void *arg, const char *target, char *out)
{
	static const char *const plain[] = {
	    "x-api-key", "api-key", "x-goog-api-key"};
	const char *v, *c, *end;
	size_t i, n;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if ((v = hdr(arg, plain[i])) == NULL)
			continue;
		n = trim_span(&v, strlen(v));
		if (n == 0)
			continue;
		attribution_key_fp(v, n, out);
		return 0;
	}
	if ((v = hdr(arg, "authorization")) != NULL) {
		if (str_ncasecmp(v, "Bearer ", 7) == 0) {
			v += 7;
			n = trim_span(&v, strlen(v));
			if (n > 0) {
				attribution_key_fp(v, n, out);
				return 0;
			}
		} else if (str_ncasecmp(v, "AWS4-HMAC-SHA256 ", 17) == 0 &&
		    (c = strstr(v, "Credential=")) != NULL) {
			/* SigV4: the access key id identifies the key. */
			c += strlen("Credential=");
			end = c;
			while (*end != '\0' && *end != '/' && *end != ',')
				end++;
			if (end > c) {
				attribution_key_fp(c, (size_t)(end - c), out);
				return 0;
			}
		}
	}
	/* Gemini accepts ?key=... */
	if (target != NULL && (c = strchr(target, '?')) != NULL) {
		c++;
		while (*c != '\0') {
			end = c + strcspn(c, "&");
			if (end - c > 4 && strncmp(c, "key=", 4) == 0) {
				attribution_key_fp(
				    c + 4, (size_t)(end - c - 4), out);
				return 0;
			}
			c = *end == '&' ? end + 1 : end;
		}
	}
	return -1;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
attribution_tag(const char *pa)
{
	unsigned char *dec = NULL;
	char *tag = NULL;
	const char *b64;
	size_t n, i, o;
	long len;
	int hi, lo;

	if (pa == NULL)
		return NULL;
	while (*pa == ' ')
		pa++;
	if (str_ncasecmp(pa, "Basic ", 6) != 0)
		return NULL;
	b64 = pa + 6;
	n = trim_span(&b64, strlen(b64));
	if (n == 0 || n > 4096)
		return NULL;
	dec = xmalloc(3 * ((n + 3) / 4) + 1);
	if ((len = eventstream_base64_decode(b64, n, dec)) <= 0)
		goto out;
	dec[len] = '\0';
	/* user:password -> user, URL-decoded (what `run --tag` encodes). */
	tag = xmalloc((size_t)len + 1);
	for (i = 0, o = 0; i < (size_t)len && dec[i] != ':'; i++) {
		if (dec[i] == '%' && i + 2 < (size_t)len &&
		    (hi = hexval(dec[i + 1])) >= 0 &&
		    (lo = hexval(dec[i + 2])) >= 0) {
			tag[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			tag[o++] = (char)dec[i];
		}
	}
	tag[o] = '\0';
	/* A tag is a label, not a byte string: stop at a control byte. */
	for (i = 0; i < o; i++)
		if ((unsigned char)tag[i] < 0x20 || tag[i] == 0x7f) {
			tag[i] = '\0';
			break;
		}
	if (tag[0] == '\0') {
		free(tag);
		tag = NULL;
	}
out:
	if (dec != NULL) {
		/* The password half may be a secret. */
		explicit_zero(dec, 3 * ((n + 3) / 4) + 1);
		free(dec);
	}
	return tag;
}

static char *
basename_dup(const char *path)
{
	const char *s;
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	s = path + n;
	while (s > path && s[-1] != '/')
		s--;
	if (path + n == s)
		return xstrdup(n == 1 && path[0] == '/' ? "/" : "");
	return xstrndup(s, (size_t)(path + n - s));
}

char *
attribution_project(const char *dir)
{
	struct stat sb;
	char *p, *git, *slash;
	char *res = NULL;

	if (dir == NULL || dir[0] != '/')
		return NULL;
	p = xstrdup(dir);
	for (;;) {
		git = xasprintf("%s/.git", strcmp(p, "/") == 0 ? "" : p);
		if (stat(git, &sb) == 0) {
			free(git);
			res = basename_dup(p);
			break;
		}
		free(git);
		if (strcmp(p, "/") == 0)
			break;
		slash = strrchr(p, '/');
		if (slash == p)
			p[1] = '\0';
		else
			*slash = '\0';
	}
	free(p);
	if (res == NULL)
		res = basename_dup(dir);
	return res;
}

void
attribution_process_init(struct attribution_process *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
}

void
attribution_process_free(struct attribution_process *p)
{
	free(p->process);
	free(p->cwd);
	free(p->project);
	attribution_process_init(p);
}
