/*
 * ca: the local certificate authority, the trust bundle and the per-host
 * leaf certificates.
 *
 * Name constraints.  RFC 5280 dNSName constraints match whole labels from
 * the right ("example.com" permits example.com and any name below it), so a
 * pattern whose wildcard is not a whole leading label cannot be expressed
 * exactly.  Each intercept pattern becomes the suffix to the right of its
 * last label holding a '*':
 *   api.anthropic.com                 -> api.anthropic.com (exact)
 *   *.openai.azure.com                -> openai.azure.com
 *   *-aiplatform.googleapis.com       -> googleapis.com
 *   bedrock-runtime.*.amazonaws.com   -> amazonaws.com
 * This is the narrowest subtree that still covers every name the pattern
 * matches: listing today's Vertex AI or Bedrock regions would be narrower
 * but would break interception the day a region is added.  Subtrees covered
 * by another one are dropped, and INTERCEPT_DOCTOR_HOST is always permitted.
 * All IPv4 and IPv6 addresses are excluded (0.0.0.0/0, ::/0).
 *
 * The leaf cache is a hash table (chained) plus a doubly linked LRU list, so
 * a lookup, an insertion and an eviction are O(1).  Not thread-safe: the
 * daemon mints from its one event loop.
 */
/* EVP_PKEY_get1_EC_KEY: see leaf_pubkey_fast(). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "halton/ca.h"
#include "halton/intercept.h"
#include "halton/log.h"
#include "halton/paths.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define CA_KEY_FILE       "mitmproxy-ca.pem"
#define CA_CERT_FILE      "mitmproxy-ca-cert.pem"
#define CA_CER_FILE       "mitmproxy-ca-cert.cer"
#define CA_STATE_CERT     "ca.pem"
#define CA_STATE_BUNDLE   "bundle.pem"
#define CA_VALID_DAYS     3650
#define CA_LEAF_DAYS      397
#define CA_LEAF_BACKDATE  86400
#define CA_LEAF_CACHE_MAX 1024
#define CA_LEAF_BUCKETS   2048 /* a power of two */
#define CA_LEAF_MIN_LEFT                                                       \
	86400 /* re-mint a cached leaf this close to expiry                    \
	       */
#define CA_MAX_HOST 253
#define CA_MAX_CN   64

struct leaf {
	char *host; /* normalised: lower case, no trailing dot */
	X509 *cert;
	time_t not_after;
	struct leaf *hnext; /* hash chain */
	struct leaf *prev;  /* LRU list, most recent first */
	struct leaf *next;
};

struct ca {
	X509 *cert;
	EVP_PKEY *key;
	char *cert_pem; /* the CA certificate, PEM */
	char *ca_dir;
	char *state_dir;
	time_t not_after;

	/* The CA's name constraints, decoded at the first ca_permits (one
	 * decode per connection was ~90K instructions); NULL if none. */
	NAME_CONSTRAINTS *nc;
	int nc_done;

	/* Made at the first leaf (ca_mint_prepare), NULL until then. */
	EVP_PKEY *leaf_key;
	EVP_PKEY *leaf_pub; /* the same public key, fast to encode */
	X509_EXTENSION *ext_bc;
	X509_EXTENSION *ext_ku;
	X509_EXTENSION *ext_eku;
	X509_EXTENSION *ext_aki; /* NULL if the CA has no SKI */

	struct leaf *buckets[CA_LEAF_BUCKETS];
	struct leaf *lru_head;
	struct leaf *lru_tail;
	size_t nleaves;
};

/* The system roots files, most likely first.  macOS puts its own first. */
static const char *const ca_roots_candidates[] = {
#if defined(__APPLE__)
    "/etc/ssl/cert.pem",
#endif
    "/etc/ssl/certs/ca-certificates.crt",               /* Debian, Ubuntu */
    "/etc/pki/tls/certs/ca-bundle.crt",                 /* Fedora, RHEL */
    "/etc/ca-certificates/extracted/tls-ca-bundle.pem", /* Arch */
    "/etc/ssl/ca-bundle.pem",                           /* SUSE */
#if !defined(__APPLE__)
    "/etc/ssl/cert.pem", /* Alpine, BSDs, macOS */
#endif
    NULL,
};

/* The first OpenSSL error as text (the queue is cleared). */
static const char *
ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* Refuses to prompt for a passphrase: an encrypted key is an error. */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

static char *
x509_to_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b == NULL)
		return NULL;
	if (PEM_write_bio_X509(b, x) == 1 &&
	    (n = BIO_get_mem_data(b, &data)) > 0)
		out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

/* Seconds from now until an ASN1 time (negative if it is past). */
static long long
asn1_time_from_now(const ASN1_TIME *t)
{
	int days, secs;

	if (ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
		return 0;
	return (long long)days * 86400 + secs;
}

/* Sets a certificate's serial to 128 random bits, positive and without a
 * leading zero byte (so it encodes to exactly 16 bytes). */
static int
random_serial(X509 *x)
{
	unsigned char buf[16];

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return -1;
	buf[0] &= 0x7f;
	if (buf[0] == 0)
		buf[0] = 0x01;
	return ASN1_STRING_set(X509_get_serialNumber(x), buf, sizeof(buf)) == 1
	    ? 0
	    : -1;
}

static const EVP_MD *
sign_digest(EVP_PKEY *key)
{
	int id = EVP_PKEY_get_base_id(key);

	if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448)
		return NULL;
	return EVP_sha256();
}

static int
add_ext_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int rc;

	if ((ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value)) == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/* Whether host is an IPv4 or IPv6 literal; if so and out is not NULL, its
 * bytes go to out (16 bytes) and *outlen. */
static int
ip_literal(const char *host, unsigned char *out, int *outlen)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, host, buf) == 1) {
		if (out != NULL) {
			memcpy(out, buf, 4);
			*outlen = 4;
		}
		return 1;
	}
	if (inet_pton(AF_INET6, host, buf) == 1) {
		if (out != NULL) {
			memcpy(out, buf, 16);
			*outlen = 16;
		}
		return 1;
	}
	return 0;
}

/* A malloc'd normalised host name (lower case, no trailing dot, no IPv6
 * brackets), or NULL if host is not a DNS name or an IP literal. */
static char *
host_normalise(const char *host)
{
	size_t len = strlen(host), i, label = 0;
	char *h;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		h = xstrndup(host + 1, len - 2);
		if (!ip_literal(h, NULL, NULL)) {
			free(h);
			return NULL;
		}
		return h;
	}
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > CA_MAX_HOST)
		return NULL;
	h = xstrndup(host, len);
	if (strchr(h, ':') != NULL) {
		if (ip_literal(h, NULL, NULL))
			return h;
		free(h);
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if (h[i] == '.') {
			if (label == 0)
				goto bad;
			label = 0;
			continue;
		}
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		        (h[i] >= 'A' && h[i] <= 'Z') ||
		        (h[i] >= '0' && h[i] <= '9') || h[i] == '-' ||
		        h[i] == '_'))
			goto bad;
		if (++label > 63)
			goto bad;
	}
	if (label == 0)
		goto bad;
	str_lower(h);
	return h;
bad:
	free(h);
	return NULL;
}

/* A copy of key's public half that X509_set_pubkey encodes quickly, or NULL.
 * OpenSSL 3.0 encodes a provider key through the generic encoder machinery,
 * about 0.3 ms per certificate (more than the signature); a legacy EC_KEY
 * goes through the old, direct encoder in about 10 us. */
static EVP_PKEY *
leaf_pubkey_fast(EVP_PKEY *key)
{
#if !defined(OPENSSL_NO_DEPRECATED_3_0)
	EC_KEY *ec;
	EVP_PKEY *pub;

	if ((ec = EVP_PKEY_get1_EC_KEY(key)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if ((pub = EVP_PKEY_new()) == NULL ||
	    EVP_PKEY_assign_EC_KEY(pub, ec) != 1) {
		EVP_PKEY_free(pub);
		EC_KEY_free(ec);
		ERR_clear_error();
		return NULL;
	}
	if (EVP_PKEY_eq(pub, key) != 1) {
		EVP_PKEY_free(pub);
		ERR_clear_error();
		return NULL;
	}
	return pub;
#else
	(void)key;
	return NULL;
#endif
}

/*
 * Name constraints.
 */

/* The DNS subtree that covers every name pattern matches (see the top of
 * this file), malloc'd, or NULL if the pattern has no literal suffix. */
static char *
pattern_subtree(const char *pattern)
{
	const char *p, *last_star = strrchr(pattern, '*'), *s;
	size_t len;
	char *out;

	if (last_star == NULL)
		s = pattern;
	else if ((p = strchr(last_star, '.')) == NULL)
		return NULL;
	else
		s = p + 1;
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0)
		return NULL;
	out = xstrndup(s, len);
	str_lower(out);
	return out;
}

/* Whether the dNSName subtree base covers name (RFC 5280 4.2.1.10). */
static int
subtree_covers(const char *base, const char *name)
{
	size_t bl = strlen(base), nl = strlen(name);

	if (bl == 0)
		return 1;
	if (nl < bl)
		return 0;
	if (str_casecmp(name + nl - bl, base) != 0)
		return 0;
	return nl == bl || base[0] == '.' || name[nl - bl - 1] == '.';
}

/* The permitted DNS subtrees for list (plus the doctor host), without
 * duplicates or subtrees covered by another. */
static void
permitted_subtrees(const struct intercept_list *list, struct strlist *out)
{
	struct strlist all = {0};
	size_t i, j;
	char *s;
	int covered;

	for (i = 0; i < intercept_list_count(list); i++) {
		if ((s = pattern_subtree(intercept_list_at(list, i))) == NULL) {
			log_warnx("intercept pattern '%s' has no literal "
			          "suffix; the CA does not cover it",
			    intercept_list_at(list, i));
			continue;
		}
		if (!strlist_contains(&all, s))
			strlist_add(&all, s);
		free(s);
	}
	if (!strlist_contains(&all, INTERCEPT_DOCTOR_HOST))
		strlist_add(&all, INTERCEPT_DOCTOR_HOST);
	for (i = 0; i < all.n; i++) {
		covered = 0;
		for (j = 0; j < all.n && !covered; j++)
			if (j != i && subtree_covers(all.v[j], all.v[i]))
				covered = 1;
		if (!covered)
			strlist_add(out, all.v[i]);
	}
	strlist_free(&all);
}

static GENERAL_SUBTREE *
subtree_new(int type, const void *data, int len)
{
	GENERAL_SUBTREE *st = GENERAL_SUBTREE_new();
	ASN1_STRING *s;

	if (st == NULL)
		return NULL;
	if (type == GEN_DNS)
		s = ASN1_IA5STRING_new();
	else
		s = ASN1_OCTET_STRING_new();
	if (s == NULL || ASN1_STRING_set(s, data, len) != 1) {
		ASN1_STRING_free(s);
		GENERAL_SUBTREE_free(st);
		return NULL;
	}
	GENERAL_NAME_set0_value(st->base, type, s);
	return st;
}

static int
add_name_constraints(X509 *x, const struct intercept_list *list)
{
	static const unsigned char zeros[32];
	NAME_CONSTRAINTS *nc = NAME_CONSTRAINTS_new();
	struct strlist permit = {0};
	GENERAL_SUBTREE *st;
	size_t i;
	int rc = -1;

	if (nc == NULL)
		goto out;
	nc->permittedSubtrees = sk_GENERAL_SUBTREE_new_null();
	nc->excludedSubtrees = sk_GENERAL_SUBTREE_new_null();
	if (nc->permittedSubtrees == NULL || nc->excludedSubtrees == NULL)
		goto out;
	permitted_subtrees(list, &permit);
	for (i = 0; i < permit.n; i++) {
		st =
		    subtree_new(GEN_DNS, permit.v[i], (int)strlen(permit.v[i]));
		if (st == NULL ||
		    sk_GENERAL_SUBTREE_push(nc->permittedSubtrees, st) == 0) {
			GENERAL_SUBTREE_free(st);
			goto out;
		}
	}
	/* 0.0.0.0/0 (address + mask) and ::/0. */
	if ((st = subtree_new(GEN_IPADD, zeros, 8)) == NULL ||
	    sk_GENERAL_SUBTREE_push(nc->excludedSubtrees, st) == 0) {
		GENERAL_SUBTREE_free(st);
		goto out;
	}
	if ((st = subtree_new(GEN_IPADD, zeros, 32)) == NULL ||
	    sk_GENERAL_SUBTREE_push(nc->excludedSubtrees, st) == 0) {
		GENERAL_SUBTREE_free(st);
		goto out;
	}
	if (X509_add1_ext_i2d(
	        x, NID_name_constraints, nc, 1, X509V3_ADD_DEFAULT) != 1)
		goto out;
	rc = 0;
out:
	NAME_CONSTRAINTS_free(nc);
	strlist_free(&permit);
	return rc;
}

int
ca_permits(const struct ca *ca, const char *host)
{
	NAME_CONSTRAINTS *nc;
	GENERAL_SUBTREE *st;
	const ASN1_IA5STRING *dns;
	char *h, *base;
	int i, crit, ok = 1, has_dns = 0, permitted = 0;

	if ((h = host_normalise(host)) == NULL)
		return 0;
	if (!ca->nc_done) {
		((struct ca *)ca)->nc = X509_get_ext_d2i(
		    ca->cert, NID_name_constraints, &crit, NULL);
		((struct ca *)ca)->nc_done = 1;
	}
	if ((nc = ca->nc) == NULL) {
		free(h);
		return 1;
	}
	if (ip_literal(h, NULL, NULL)) {
		/* Our CAs exclude every address; be strict for others. */
		ok = sk_GENERAL_SUBTREE_num(nc->excludedSubtrees) == 0 &&
		    sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) == 0;
		goto out;
	}
	for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->excludedSubtrees); i++) {
		st = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, i);
		if (st->base->type != GEN_DNS)
			continue;
		dns = st->base->d.dNSName;
		base = xstrndup((const char *)dns->data, (size_t)dns->length);
		if (subtree_covers(base, h))
			ok = 0;
		free(base);
	}
	for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
		st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);
		if (st->base->type != GEN_DNS)
			continue;
		has_dns = 1;
		dns = st->base->d.dNSName;
		base = xstrndup((const char *)dns->data, (size_t)dns->length);
		if (subtree_covers(base, h))
			permitted = 1;
		free(base);
	}
	if (has_dns && !permitted)
		ok = 0;
out:
	free(h);
	return ok;
}

/*
 * The CA itself.
 */

static void
ca_name_cn(char *buf, size_t len)
{
	char host[256], date[32];
	struct tm tm;
	time_t now = time(NULL);

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	/* The host is cut so the CN stays within 64 characters. */
	snprintf(buf, len, "halton-meter %.*s %s",
	    (int)(CA_MAX_CN - strlen("halton-meter  ") - strlen(date)), host,
	    date);
}

/* Makes a new CA key and self-signed certificate. */
static int
ca_generate(const struct intercept_list *list, int constrained, EVP_PKEY **keyp,
    X509 **certp, char **cause)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	char cn[CA_MAX_CN + 1];
	int rc = -1;

	*keyp = NULL;
	*certp = NULL;
	if ((key = EVP_EC_gen("P-256")) == NULL)
		goto ssl_fail;
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    random_serial(x) == -1)
		goto ssl_fail;
	ca_name_cn(cn, sizeof(cn));
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	        (const unsigned char *)"halton-meter", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	        (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto ssl_fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -CA_LEAF_BACKDATE) ==
	        NULL ||
	    X509_gmtime_adj(
	        X509_getm_notAfter(x), (long)CA_VALID_DAYS * 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto ssl_fail;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext_conf(x, &ctx, NID_basic_constraints,
	        "critical,CA:TRUE,pathlen:0") == -1 ||
	    add_ext_conf(
	        x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") == -1 ||
	    add_ext_conf(x, &ctx, NID_subject_key_identifier, "hash") == -1)
		goto ssl_fail;
	if (constrained && add_name_constraints(x, list) == -1)
		goto ssl_fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto ssl_fail;
	*keyp = key;
	*certp = x;
	key = NULL;
	x = NULL;
	rc = 0;
	goto out;
ssl_fail:
	*cause = xasprintf("cannot create the CA: %s", ssl_error());
out:
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

/* Writes path with mode unless it exists: the data goes to a temporary file
 * that is then link(2)ed into place, which fails if another process made
 * path meanwhile.  Returns 0, 1 if path already existed, or -1 (errno). */
static int
file_create_exclusive(
    const char *path, const void *data, size_t len, mode_t mode)
{
	char *tmp = xasprintf("%s.new.%ld", path, (long)getpid());
	int rc = -1, saved;

	if (file_exists(path)) {
		rc = 1;
		goto out;
	}
	if (file_write_atomic(tmp, data, len, mode) == -1)
		goto out;
	if (link(tmp, path) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = 1;
	else if (!file_exists(path) && rename(tmp, path) == 0)
		rc = 0; /* a file system without hard links */
	saved = errno;
	unlink(tmp);
	errno = saved;
out:
	free(tmp);
	return rc;
}

/* Writes path (atomically) unless it already holds exactly data. */
static int
file_update(const char *path, const char *data, mode_t mode, char **cause)
{
	size_t len = strlen(data), have;
	char *old = file_read(path, &have);
	int same = old != NULL && have == len && memcmp(old, data, len) == 0;

	free(old);
	if (same)
		return 0;
	if (file_write_atomic(path, data, len, mode) == -1) {
		*cause =
		    xasprintf("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes path only if it does not exist. */
static int
file_create_missing(
    const char *path, const char *data, mode_t mode, char **cause)
{
	if (file_exists(path))
		return 0;
	if (file_write_atomic(path, data, strlen(data), mode) == -1) {
		*cause =
		    xasprintf("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
leaf_free(struct leaf *l)
{
	X509_free(l->cert);
	free(l->host);
	free(l);
}

void
ca_free(struct ca *ca)
{
	struct leaf *l, *next;

	if (ca == NULL)
		return;
	for (l = ca->lru_head; l != NULL; l = next) {
		next = l->next;
		leaf_free(l);
	}
	NAME_CONSTRAINTS_free(ca->nc);
	X509_EXTENSION_free(ca->ext_bc);
	X509_EXTENSION_free(ca->ext_ku);
	X509_EXTENSION_free(ca->ext_eku);
	X509_EXTENSION_free(ca->ext_aki);
	EVP_PKEY_free(ca->leaf_pub);
	EVP_PKEY_free(ca->leaf_key);
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->cert_pem);
	free(ca->ca_dir);
	free(ca->state_dir);
	free(ca);
}

/* Takes key and cert (on success and on failure) and checks them: a key
 * that does not match, a certificate that is not a CA are errors now, at
 * load time.  What minting needs is made at the first leaf. */
static struct ca *
ca_new(EVP_PKEY *key, X509 *cert, const char *where, char **cause)
{
	struct ca *ca = xcalloc(1, sizeof(*ca));
	long long left;

	ca->key = key;
	ca->cert = cert;
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		*cause = xasprintf("%s: the key does not match the "
		                   "certificate",
		    where);
		goto fail;
	}
	if (X509_check_ca(cert) == 0) {
		*cause = xasprintf("%s: the certificate is not a CA", where);
		goto fail;
	}
	if ((ca->cert_pem = x509_to_pem(cert)) == NULL)
		goto ssl_fail;
	left = asn1_time_from_now(X509_get0_notAfter(cert));
	ca->not_after = time(NULL) + (time_t)left;
	if (left <= 0)
		log_warnx("the CA certificate in %s has expired; remove it to "
		          "make a new one",
		    where);
	return ca;
ssl_fail:
	*cause = xasprintf("%s: %s", where, ssl_error());
fail:
	ca_free(ca);
	return NULL;
}

/* Makes what minting needs, once: the process's leaf key (one P-256 key
 * for every leaf) and the constant leaf extensions.  Not at load time: a
 * daemon that has not intercepted anything yet has no use for them (and
 * generating a key touches code and heap an idle daemon would keep).
 * Returns 0, or -1 with a cause. */
static int
ca_mint_prepare(struct ca *ca, char **cause)
{
	const ASN1_OCTET_STRING *ski;
	AUTHORITY_KEYID *akid = NULL;

	if (ca->leaf_key != NULL)
		return 0;
	ca->ext_bc = X509V3_EXT_conf_nid(
	    NULL, NULL, NID_basic_constraints, "critical,CA:FALSE");
	ca->ext_ku = X509V3_EXT_conf_nid(
	    NULL, NULL, NID_key_usage, "critical,digitalSignature");
	ca->ext_eku =
	    X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, "serverAuth");
	if (ca->ext_bc == NULL || ca->ext_ku == NULL || ca->ext_eku == NULL)
		goto fail;
	if ((ski = X509_get0_subject_key_id(ca->cert)) != NULL) {
		if ((akid = AUTHORITY_KEYID_new()) == NULL ||
		    (akid->keyid = ASN1_OCTET_STRING_dup(ski)) == NULL)
			goto fail;
		ca->ext_aki =
		    X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
		AUTHORITY_KEYID_free(akid);
		akid = NULL;
		if (ca->ext_aki == NULL)
			goto fail;
	}
	/* The key last: it is what says "prepared". */
	if ((ca->leaf_key = EVP_EC_gen("P-256")) == NULL)
		goto fail;
	ca->leaf_pub = leaf_pubkey_fast(ca->leaf_key);
	return 0;
fail:
	*cause = xasprintf("cannot make the leaf key: %s", ssl_error());
	AUTHORITY_KEYID_free(akid);
	X509_EXTENSION_free(ca->ext_bc);
	X509_EXTENSION_free(ca->ext_ku);
	X509_EXTENSION_free(ca->ext_eku);
	X509_EXTENSION_free(ca->ext_aki);
	ca->ext_bc = ca->ext_ku = ca->ext_eku = ca->ext_aki = NULL;
	return -1;
}

/* Reads the key and the first certificate of a mitmproxy-ca.pem. */
static struct ca *
ca_read(const char *path, char **cause)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIO *b = NULL;
	char *data;
	size_t len;

	if ((data = file_read(path, &len)) == NULL) {
		*cause = xasprintf("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL ||
	    (key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase_cb, NULL)) ==
	        NULL) {
		ERR_clear_error();
		*cause = xasprintf("%s: no usable private key (encrypted or "
		                   "malformed)",
		    path);
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL ||
	    (cert = PEM_read_bio_X509(b, NULL, no_passphrase_cb, NULL)) ==
	        NULL) {
		ERR_clear_error();
		*cause = xasprintf("%s: no certificate", path);
		goto out;
	}
out:
	BIO_free(b);
	explicit_zero(data, len);
	free(data);
	if (key == NULL || cert == NULL) {
		EVP_PKEY_free(key);
		X509_free(cert);
		return NULL;
	}
	return ca_new(key, cert, path, cause);
}

int
ca_load(struct ca **cap, const char *ca_dir, char **cause)
{
	char *dir = ca_dir != NULL ? xstrdup(ca_dir) : paths_ca_dir();
	char *path = xasprintf("%s/%s", dir, CA_KEY_FILE);
	struct ca *ca;

	*cap = NULL;
	*cause = NULL;
	if ((ca = ca_read(path, cause)) != NULL) {
		ca->ca_dir = dir;
		dir = NULL;
		*cap = ca;
	}
	free(dir);
	free(path);
	return *cap != NULL ? 0 : -1;
}

/* Generates a CA and writes it (key + certificate) to path unless a file is
 * there already.  Returns 0 (written), 1 (path existed: nothing written) or
 * -1 with a cause. */
static int
ca_write_new(const char *path, const struct ca_options *opt, char **cause)
{
	struct intercept_list *builtin = NULL;
	const struct intercept_list *list = opt->intercept;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIO *b = NULL;
	char *data;
	long n;
	int rc = -1;

	if (list == NULL)
		list = builtin = intercept_list_new(NULL);
	if (ca_generate(list, opt->name_constraints, &key, &cert, cause) == -1)
		goto out;
	if ((b = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(b, cert) != 1 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0) {
		*cause = xasprintf("cannot encode the CA: %s", ssl_error());
		goto out;
	}
	if ((rc = file_create_exclusive(path, data, (size_t)n, 0600)) == -1)
		*cause =
		    xasprintf("cannot write %s: %s", path, strerror(errno));
out:
	BIO_free(b);
	EVP_PKEY_free(key);
	X509_free(cert);
	intercept_list_free(builtin);
	return rc;
}

/* ca_write_new in a child process: generating, signing and encoding the key
 * fill OpenSSL's caches (key management, encoders, the DRBG) and touch
 * libcrypto code that a long-running daemon would keep (about 0.4 MiB at
 * its first start) for a one-off job.  The child reports "0", "1" or
 * "-cause" on a pipe.  If no child can be made, the work is done here. */
static int
ca_write_new_isolated(
    const char *path, const struct ca_options *opt, char **cause)
{
	char buf[1024];
	ssize_t n;
	size_t len = 0;
	pid_t pid;
	int p[2], rc;

	if (pipe(p) == -1)
		return ca_write_new(path, opt, cause);
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return ca_write_new(path, opt, cause);
	}
	if (pid == 0) {
		close(p[0]);
		rc = ca_write_new(path, opt, cause);
		if (rc == -1)
			snprintf(buf, sizeof(buf), "-%s", *cause);
		else
			snprintf(buf, sizeof(buf), "%d", rc);
		n = write(p[1], buf, strlen(buf));
		_exit(n >= 0 ? 0 : 1);
	}
	close(p[1]);
	while (len < sizeof(buf) - 1) {
		n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(p[0]);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	if (len > 1 && buf[0] == '-') {
		*cause = xstrdup(buf + 1);
		return -1;
	}
	if (len == 1 && (buf[0] == '0' || buf[0] == '1'))
		return buf[0] - '0';
	*cause = xasprintf("cannot create the CA in %s: the process making "
	                   "it failed",
	    path);
	return -1;
}

/* Creates a new CA in dir unless one appeared there; returns it loaded
 * (from the file, as a restart would). */
static struct ca *
ca_create(
    const char *dir, const struct ca_options *opt, int *created, char **cause)
{
	char *path = xasprintf("%s/%s", dir, CA_KEY_FILE);
	struct ca *ca = NULL;
	int rc;

	/* 1: another process made one first: use it, never replace it. */
	if ((rc = ca_write_new_isolated(path, opt, cause)) != -1 &&
	    (ca = ca_read(path, cause)) != NULL && rc == 0) {
		*created = 1;
		log_info("created a new CA in %s", path);
	}
	free(path);
	return ca;
}

/* Warns about what an existing CA cannot do: a key file others can read,
 * intercept patterns outside its name constraints (their hosts are then
 * tunnelled, see ca_permits). */
static void
ca_check_existing(
    const struct ca *ca, const char *path, const struct intercept_list *list)
{
	struct stat st;
	size_t i;
	char *sub;

	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("%s is readable by others (mode %03o); it holds the "
		          "CA private key",
		    path, (unsigned)(st.st_mode & 0777));
	for (i = 0; i < intercept_list_count(list); i++) {
		if ((sub = pattern_subtree(intercept_list_at(list, i))) == NULL)
			continue;
		if (!ca_permits(ca, sub))
			log_warnx(
			    "intercept pattern '%s' is outside the name "
			    "constraints of the CA in %s; those hosts are "
			    "tunnelled (remove the CA files to make a "
			    "new CA)",
			    intercept_list_at(list, i), path);
		free(sub);
	}
}

int
ca_load_or_create(
    struct ca **cap, const struct ca_options *opt, int *created, char **cause)
{
	char *dir, *sdir, *path = NULL, *bundle = NULL, *have = NULL;
	struct ca *ca = NULL;
	int rc = -1, nroots, dummy;

	*cap = NULL;
	*cause = NULL;
	if (created == NULL)
		created = &dummy;
	*created = 0;
	dir = opt->ca_dir != NULL ? xstrdup(opt->ca_dir) : paths_ca_dir();
	sdir = opt->state_dir != NULL ? xstrdup(opt->state_dir)
	                              : paths_state_dir();
	if (dir_create(dir, 0700) == -1) {
		*cause =
		    xasprintf("cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	if (dir_create(sdir, 0700) == -1) {
		*cause =
		    xasprintf("cannot create %s: %s", sdir, strerror(errno));
		goto out;
	}
	path = xasprintf("%s/%s", dir, CA_KEY_FILE);
	if (file_exists(path))
		ca = ca_read(path, cause);
	else
		ca = ca_create(dir, opt, created, cause);
	if (ca == NULL)
		goto out;
	if (!*created)
		ca_check_existing(ca, path, opt->intercept);
	ca->ca_dir = dir;
	ca->state_dir = sdir;
	dir = sdir = NULL;

	/* The certificate files: an existing CA's are left as they are, a
	 * new CA's replace any stale ones. */
	free(path);
	path = xasprintf("%s/%s", ca->ca_dir, CA_CERT_FILE);
	if ((*created ? file_update(path, ca->cert_pem, 0644, cause)
	              : file_create_missing(path, ca->cert_pem, 0644, cause)) ==
	    -1)
		goto out;
	free(path);
	path = xasprintf("%s/%s", ca->ca_dir, CA_CER_FILE);
	if ((*created ? file_update(path, ca->cert_pem, 0644, cause)
	              : file_create_missing(path, ca->cert_pem, 0644, cause)) ==
	    -1)
		goto out;
	free(path);
	path = xasprintf("%s/%s", ca->state_dir, CA_STATE_CERT);
	if (file_update(path, ca->cert_pem, 0644, cause) == -1)
		goto out;

	/* The bundle is (re)built when missing or not holding this CA. */
	bundle = xasprintf("%s/%s", ca->state_dir, CA_STATE_BUNDLE);
	have = file_read(bundle, NULL);
	if ((have == NULL || strstr(have, ca->cert_pem) == NULL) &&
	    ca_bundle_write(ca, bundle, opt->system_roots, &nroots, cause) ==
	        -1)
		goto out;
	*cap = ca;
	ca = NULL;
	rc = 0;
out:
	ca_free(ca);
	free(have);
	free(bundle);
	free(path);
	free(dir);
	free(sdir);
	return rc;
}

/*
 * The bundle.
 */

const char *
ca_system_roots_default(void)
{
	char *p;
	size_t i;
	int found;

	for (i = 0; ca_roots_candidates[i] != NULL; i++) {
		p = paths_sys(ca_roots_candidates[i]);
		found = file_exists(p);
		free(p);
		if (found)
			return ca_roots_candidates[i];
	}
	return ca_roots_candidates[0];
}

char *
ca_system_roots_path(const char *override)
{
	const char *env = getenv("HALTON_METER_SYSTEM_ROOTS");

	if (override != NULL && *override != '\0')
		return xstrdup(override);
	if (env != NULL && *env != '\0')
		return xstrdup(env);
	return paths_sys(ca_system_roots_default());
}

/* Whether the line at p (up to end) is a PEM certificate header that
 * PEM_read_X509 reads: "-----BEGIN CERTIFICATE-----" or the old
 * "-----BEGIN X509 CERTIFICATE-----" (with trusted, also the "TRUSTED
 * CERTIFICATE" that X509_STORE_load_file reads), then optional blanks up to
 * the end of the line. */
static int
is_cert_header(const char *p, const char *end, int trusted)
{
	static const char *const hdr[] = {
	    "-----BEGIN CERTIFICATE-----",
	    "-----BEGIN X509 CERTIFICATE-----",
	    "-----BEGIN TRUSTED CERTIFICATE-----",
	};
	size_t i, nhdr = trusted ? 3 : 2, n = 0;

	for (i = 0; i < nhdr; i++) {
		n = strlen(hdr[i]);
		if ((size_t)(end - p) >= n && memcmp(p, hdr[i], n) == 0)
			break;
	}
	if (i == nhdr)
		return 0;
	for (p += n; p < end && *p != '\n'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return 0;
	return 1;
}

/* The number of PEM certificate headers in data[0..len), counted on the
 * text: the bundle copies the roots file as it is, and parsing its ~140
 * certificates only to count them cost the daemon's first start heap and
 * libcrypto pages it kept (the roots are parsed when an upstream handshake
 * needs them, see tls.c). */
int
ca_pem_certs(const char *data, size_t len, int trusted)
{
	const char *p = data, *end = data + len, *nl;
	int n = 0;

	while (p < end) {
		if (*p == '-' && is_cert_header(p, end, trusted))
			n++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p = nl + 1;
	}
	return n;
}

int
ca_bundle_write(struct ca *ca, const char *bundle_path, const char *roots_path,
    int *nroots, char **cause)
{
	char *roots = ca_system_roots_path(roots_path), *path, *data = NULL;
	struct strbuf sb;
	size_t len;
	int n, rc = -1;

	*cause = NULL;
	if (nroots != NULL)
		*nroots = 0;
	if (bundle_path != NULL)
		path = xstrdup(bundle_path);
	else if (ca->state_dir != NULL)
		path = xasprintf("%s/%s", ca->state_dir, CA_STATE_BUNDLE);
	else
		path = paths_state_file(CA_STATE_BUNDLE);
	strbuf_init(&sb);
	if ((data = file_read(roots, &len)) == NULL) {
		*cause = xasprintf("cannot read the system roots %s: %s (set "
		                   "HALTON_METER_SYSTEM_ROOTS)",
		    roots, strerror(errno));
		goto out;
	}
	if ((n = ca_pem_certs(data, len, 0)) == 0) {
		*cause = xasprintf("%s holds no PEM certificate", roots);
		goto out;
	}
	strbuf_add(&sb, data, len);
	if (len > 0 && data[len - 1] != '\n')
		strbuf_addc(&sb, '\n');
	strbuf_adds(&sb, "\n# halton-meter local CA\n");
	strbuf_adds(&sb, ca->cert_pem);
	if (file_write_atomic(path, sb.data, sb.len, 0644) == -1) {
		*cause =
		    xasprintf("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if (nroots != NULL)
		*nroots = n;
	rc = 0;
out:
	strbuf_free(&sb);
	free(data);
	free(roots);
	free(path);
	return rc;
}

X509 *
ca_cert(const struct ca *ca)
{
	return ca->cert;
}

EVP_PKEY *
ca_key(const struct ca *ca)
{
	return ca->key;
}

EVP_PKEY *
ca_leaf_key(const struct ca *ca)
{
	return ca->leaf_key;
}

size_t
ca_leaf_cache_count(const struct ca *ca)
{
	return ca->nleaves;
}

/*
 * Leaves.
 */

static size_t
host_hash(const char *h)
{
	uint32_t x = 2166136261u;

	while (*h != '\0') {
		x ^= (unsigned char)*h++;
		x *= 16777619u;
	}
	return x & (CA_LEAF_BUCKETS - 1);
}

/* Signs a leaf for a normalised host. */
static X509 *
leaf_mint(struct ca *ca, const char *host, time_t *not_after, char **cause)
{
	X509 *x = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gen = NULL;
	ASN1_STRING *s = NULL;
	unsigned char ip[16];
	time_t now = time(NULL), nb = now - CA_LEAF_BACKDATE, na;
	int iplen = 0, is_ip = ip_literal(host, ip, &iplen), crit;

	na = nb + (time_t)CA_LEAF_DAYS * 86400;
	if (na > ca->not_after)
		na = ca->not_after;
	if (na <= now) {
		*cause = xstrdup("the CA certificate has expired");
		return NULL;
	}
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    random_serial(x) == -1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    X509_set_pubkey(
	        x, ca->leaf_pub != NULL ? ca->leaf_pub : ca->leaf_key) != 1)
		goto fail;
	/* CN only when it fits; the SAN is then critical (RFC 5280). */
	crit = strlen(host) > CA_MAX_CN;
	if (!crit &&
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	        MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0) != 1)
		goto fail;
	if ((gens = GENERAL_NAMES_new()) == NULL ||
	    (gen = GENERAL_NAME_new()) == NULL)
		goto fail;
	if (is_ip) {
		if ((s = ASN1_OCTET_STRING_new()) == NULL ||
		    ASN1_STRING_set(s, ip, iplen) != 1)
			goto fail;
		GENERAL_NAME_set0_value(gen, GEN_IPADD, s);
	} else {
		if ((s = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(s, host, (int)strlen(host)) != 1)
			goto fail;
		GENERAL_NAME_set0_value(gen, GEN_DNS, s);
	}
	s = NULL;
	if (sk_GENERAL_NAME_push(gens, gen) == 0)
		goto fail;
	gen = NULL;
	if (X509_add1_ext_i2d(
	        x, NID_subject_alt_name, gens, crit, X509V3_ADD_DEFAULT) != 1 ||
	    X509_add_ext(x, ca->ext_bc, -1) != 1 ||
	    X509_add_ext(x, ca->ext_ku, -1) != 1 ||
	    X509_add_ext(x, ca->ext_eku, -1) != 1 ||
	    (ca->ext_aki != NULL && X509_add_ext(x, ca->ext_aki, -1) != 1))
		goto fail;
	if (X509_sign(x, ca->key, sign_digest(ca->key)) <= 0)
		goto fail;
	GENERAL_NAMES_free(gens);
	*not_after = na;
	return x;
fail:
	*cause = xasprintf(
	    "cannot mint a certificate for %s: %s", host, ssl_error());
	ASN1_STRING_free(s);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	return NULL;
}

static void
lru_unlink(struct ca *ca, struct leaf *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		ca->lru_head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		ca->lru_tail = l->prev;
	l->prev = l->next = NULL;
}

static void
lru_push_front(struct ca *ca, struct leaf *l)
{
	l->prev = NULL;
	l->next = ca->lru_head;
	if (ca->lru_head != NULL)
		ca->lru_head->prev = l;
	ca->lru_head = l;
	if (ca->lru_tail == NULL)
		ca->lru_tail = l;
}

static void
cache_remove(struct ca *ca, struct leaf *l)
{
	struct leaf **pp = &ca->buckets[host_hash(l->host)];

	while (*pp != NULL && *pp != l)
		pp = &(*pp)->hnext;
	if (*pp == l)
		*pp = l->hnext;
	lru_unlink(ca, l);
	ca->nleaves--;
	leaf_free(l);
}

X509 *
ca_leaf(struct ca *ca, const char *host, char **cause)
{
	struct leaf *l;
	char *h;
	size_t b;
	X509 *x;
	time_t na;

	*cause = NULL;
	if (host == NULL || (h = host_normalise(host)) == NULL) {
		*cause = xasprintf(
		    "'%s' is not a host name", host != NULL ? host : "(null)");
		return NULL;
	}
	b = host_hash(h);
	for (l = ca->buckets[b]; l != NULL; l = l->hnext) {
		if (strcmp(l->host, h) != 0)
			continue;
		if (l->not_after - time(NULL) > CA_LEAF_MIN_LEFT ||
		    l->not_after == ca->not_after) {
			lru_unlink(ca, l);
			lru_push_front(ca, l);
			free(h);
			return l->cert;
		}
		cache_remove(ca, l); /* about to expire: mint again */
		break;
	}
	if (ca_mint_prepare(ca, cause) == -1 ||
	    (x = leaf_mint(ca, h, &na, cause)) == NULL) {
		free(h);
		return NULL;
	}
	while (ca->nleaves >= CA_LEAF_CACHE_MAX && ca->lru_tail != NULL)
		cache_remove(ca, ca->lru_tail);
	l = xcalloc(1, sizeof(*l));
	l->host = h;
	l->cert = x;
	l->not_after = na;
	l->hnext = ca->buckets[b];
	ca->buckets[b] = l;
	lru_push_front(ca, l);
	ca->nleaves++;
	return x;
}
