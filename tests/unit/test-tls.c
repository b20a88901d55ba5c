/*
 * Real in-memory TLS handshakes (BIO pairs) between tls_server_ctx_new,
 * tls_client_ctx_new and, for upstream faults, plain OpenSSL servers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "halton/ca.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

struct fx {
	struct ca *ca;
	SSL_CTX *sctx;
	SSL_CTX *cctx; /* trusts the fake roots + the CA */
	SSL_CTX *nctx; /* trusts the fake roots only */
	char roots[1200];
	char capem[1200];
	char dir[1024];
};

static X509 *
make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn,
    const char *san, int is_ca, long from, long to)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char buf[300];

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x,
	    issuer != NULL ? X509_get_subject_name(issuer)
	                   : X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
	    is_ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext =
	    X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (san != NULL) {
		snprintf(buf, sizeof(buf), "DNS:%s", san);
		ext =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, buf);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256());
	return x;
}

static void
write_cert(const char *path, X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	CHECK_INT(harness_write_file(path, data, (size_t)n), 0);
	BIO_free(b);
}

static int
fx_init(struct fx *f, const char *name)
{
	struct ca_options opt = {0};
	struct strlist extra = {0};
	char *cause = NULL, home[1100];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *root =
	    make_cert(k, NULL, NULL, "Unrelated Root", NULL, 1, -60, 86400);
	int created;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/%s", harness_tmpdir(), name);
	snprintf(home, sizeof(home), "%s/home", f->dir);
	snprintf(f->roots, sizeof(f->roots), "%s/roots.pem", f->dir);
	write_cert(f->roots, root);
	X509_free(root);
	EVP_PKEY_free(k);
	setenv("HOME", home, 1);
	unsetenv("HALTON_METER_HOME");
	unsetenv("HALTON_METER_SYSROOT");
	setenv("HALTON_METER_SYSTEM_ROOTS", f->roots, 1);
	snprintf(f->capem, sizeof(f->capem), "%s/.halton-meter/ca.pem", home);

	opt.name_constraints = 1;
	if (ca_load_or_create(&f->ca, &opt, &created, &cause) == -1) {
		harness_fail(__FILE__, __LINE__, "ca: %s", cause);
		free(cause);
		return -1;
	}
	if ((f->sctx = tls_server_ctx_new(f->ca, &cause)) == NULL) {
		harness_fail(__FILE__, __LINE__, "server ctx: %s", cause);
		free(cause);
		return -1;
	}
	strlist_add(&extra, f->capem);
	f->cctx = tls_client_ctx_new(NULL, &extra, &cause);
	strlist_free(&extra);
	if (f->cctx == NULL) {
		harness_fail(__FILE__, __LINE__, "client ctx: %s", cause);
		free(cause);
		return -1;
	}
	if ((f->nctx = tls_client_ctx_new(f->roots, NULL, &cause)) == NULL) {
		harness_fail(__FILE__, __LINE__, "client ctx: %s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

static void
fx_free(struct fx *f)
{
	SSL_CTX_free(f->sctx);
	SSL_CTX_free(f->cctx);
	SSL_CTX_free(f->nctx);
	ca_free(f->ca);
}

/* Connects c and s through a BIO pair. */
static void
pair(SSL *c, SSL *s)
{
	BIO *bc, *bs;

	BIO_new_bio_pair(&bc, 0, &bs, 0);
	SSL_set_bio(c, bc, bc);
	SSL_set_bio(s, bs, bs);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
}

/* Runs both handshakes to the end: 0 if both finished, -1 if the client
 * failed, -2 if the server failed (first failure wins). */
static int
handshake(SSL *c, SSL *s)
{
	int i, r, e, done_c = 0, done_s = 0;

	for (i = 0; i < 100 && !(done_c && done_s); i++) {
		if (!done_c) {
			if ((r = SSL_do_handshake(c)) == 1)
				done_c = 1;
			else if ((e = SSL_get_error(c, r)) !=
			        SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				return -1;
		}
		if (!done_s) {
			if ((r = SSL_do_handshake(s)) == 1)
				done_s = 1;
			else if ((e = SSL_get_error(s, r)) !=
			        SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE) {
				/* Let the client read the server's alert. */
				while (!done_c && i++ < 100 &&
				    SSL_do_handshake(c) != 1 &&
				    SSL_get_error(c, -1) == SSL_ERROR_WANT_READ)
					;
				return -2;
			}
		}
	}
	return done_c && done_s ? 0 : -3;
}

static void
alpn_of(SSL *ssl, char *buf, size_t len)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	snprintf(buf, len, "%.*s", (int)n, p != NULL ? (const char *)p : "");
}

static int
peer_has_dns(SSL *ssl, const char *name)
{
	X509 *x = SSL_get0_peer_certificate(ssl);

	return x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1;
}

static void
test_handshake_sni(void)
{
	struct fx f;
	SSL *c, *s;
	char alpn[32], cause[256];

	if (fx_init(&f, "sni") == -1)
		goto out;
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	CHECK_INT(SSL_get_verify_result(c), X509_V_OK);
	CHECK_STR(SSL_get_servername(s, TLSEXT_NAMETYPE_host_name),
	    "api.anthropic.com");
	CHECK_INT(peer_has_dns(c, "api.anthropic.com"), 1);
	alpn_of(c, alpn, sizeof(alpn));
	CHECK_STR(alpn, "http/1.1");
	CHECK_INT(SSL_version(c), TLS1_3_VERSION);
	/* After success the "failure" text still makes sense. */
	CHECK(tls_client_failure(c, cause, sizeof(cause)) == cause);
	SSL_free(c);
	SSL_free(s);
	CHECK_INT(ca_leaf_cache_count(f.ca), 1);
out:
	fx_free(&f);
}

static void
test_tls12_suites(void)
{
	struct fx f;
	SSL *c, *s;
	const SSL_CIPHER *ciph;

	if (fx_init(&f, "tls12") == -1)
		goto out;
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	SSL_set_max_proto_version(c, TLS1_2_VERSION);
	CHECK_INT(tls_client_set_host(c, "api.openai.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	CHECK_INT(SSL_version(c), TLS1_2_VERSION);
	ciph = SSL_get_current_cipher(c);
	CHECK(ciph != NULL);
	if (ciph != NULL) {
		CHECK_INT(SSL_CIPHER_get_kx_nid(ciph), NID_kx_ecdhe);
		CHECK_INT(SSL_CIPHER_is_aead(ciph), 1);
		CHECK_INT(SSL_CIPHER_get_auth_nid(ciph), NID_auth_ecdsa);
	}
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

static void
test_ctx_settings(void)
{
	struct fx f;
	STACK_OF(SSL_CIPHER) * list;
	const SSL_CIPHER *ciph;
	SSL_CTX *ctxs[2];
	int i, j, n12;

	if (fx_init(&f, "settings") == -1)
		goto out;
	ctxs[0] = f.cctx;
	ctxs[1] = f.sctx;
	for (j = 0; j < 2; j++) {
		CHECK_INT(
		    SSL_CTX_get_min_proto_version(ctxs[j]), TLS1_2_VERSION);
		CHECK((SSL_CTX_get_options(ctxs[j]) & SSL_OP_NO_COMPRESSION) !=
		    0);
		CHECK((SSL_CTX_get_options(ctxs[j]) &
		          SSL_OP_NO_RENEGOTIATION) != 0);
		CHECK((SSL_CTX_get_options(ctxs[j]) &
		          SSL_OP_LEGACY_SERVER_CONNECT) == 0);
		list = SSL_CTX_get_ciphers(ctxs[j]);
		n12 = 0;
		for (i = 0; i < sk_SSL_CIPHER_num(list); i++) {
			ciph = sk_SSL_CIPHER_value(list, i);
			CHECK_INT(SSL_CIPHER_is_aead(ciph), 1);
			if (SSL_CIPHER_get_kx_nid(ciph) == NID_kx_any)
				continue; /* TLS 1.3 */
			n12++;
			CHECK_INT(SSL_CIPHER_get_kx_nid(ciph), NID_kx_ecdhe);
			CHECK(SSL_CIPHER_get_auth_nid(ciph) != NID_auth_null);
		}
		CHECK_INT(n12, 6);
	}
	CHECK_INT(SSL_CTX_get_verify_mode(f.cctx), SSL_VERIFY_PEER);
out:
	fx_free(&f);
}

static void
test_alpn_choices(void)
{
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	static const unsigned char h2[] = "\x02h2";
	struct fx f;
	SSL *c, *s;
	char alpn[32];

	if (fx_init(&f, "alpn") == -1)
		goto out;
	/* h2 offered first: the server still picks http/1.1. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	SSL_set_alpn_protos(c, both, sizeof(both) - 1);
	tls_client_set_host(c, "api.anthropic.com");
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	alpn_of(c, alpn, sizeof(alpn));
	CHECK_STR(alpn, "http/1.1");
	alpn_of(s, alpn, sizeof(alpn));
	CHECK_STR(alpn, "http/1.1");
	SSL_free(c);
	SSL_free(s);
	/* Only h2: no ALPN at all (the client may then speak HTTP/1.1). */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	SSL_set_alpn_protos(c, h2, sizeof(h2) - 1);
	tls_client_set_host(c, "api.anthropic.com");
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	alpn_of(c, alpn, sizeof(alpn));
	CHECK_STR(alpn, "");
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

static void
test_hostname_mismatch(void)
{
	struct fx f;
	SSL *c, *s;
	char cause[256];

	if (fx_init(&f, "mismatch") == -1)
		goto out;
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	/* Verify api.openai.com, but ask the server for another name. */
	CHECK_INT(tls_client_set_host(c, "api.openai.com"), 0);
	SSL_set_tlsext_host_name(c, "api.anthropic.com");
	pair(c, s);
	CHECK_INT(handshake(c, s), -1);
	CHECK_INT(SSL_get_verify_result(c), X509_V_ERR_HOSTNAME_MISMATCH);
	CHECK_STR(tls_client_failure(c, cause, sizeof(cause)),
	    "hostname mismatch (certificate is for api.anthropic.com)");
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

static void
test_unknown_ca(void)
{
	struct fx f;
	SSL *c, *s;
	char cause[256];

	if (fx_init(&f, "unknown") == -1)
		goto out;
	c = SSL_new(f.nctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), -1);
	CHECK_STR(tls_client_failure(c, cause, sizeof(cause)),
	    "unable to get local issuer certificate (unknown CA)");
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

static void
test_no_sni_fallback(void)
{
	struct fx f;
	SSL *c, *s;
	char cause[256];

	if (fx_init(&f, "nosni") == -1)
		goto out;
	/* No SNI from the client: the CONNECT host's leaf is used. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	SSL_set1_host(c, "api.anthropic.com");
	CHECK_INT(tls_server_set_host(s, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	CHECK(SSL_get_servername(s, TLSEXT_NAMETYPE_host_name) == NULL);
	CHECK_INT(SSL_get_verify_result(c), X509_V_OK);
	CHECK_INT(peer_has_dns(c, "api.anthropic.com"), 1);
	SSL_free(c);
	SSL_free(s);

	/* SNI overrides the fallback. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "api.openai.com"), 0);
	CHECK_INT(tls_server_set_host(s, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	CHECK_INT(peer_has_dns(c, "api.openai.com"), 1);
	SSL_free(c);
	SSL_free(s);

	/* Neither SNI nor a fallback: no certificate, no handshake. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	SSL_set1_host(c, "api.anthropic.com");
	pair(c, s);
	CHECK_INT(handshake(c, s), -2);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);

	/* An IP literal: no SNI is sent, the iPAddress leaf is excluded by
	 * the CA's constraints, so the client refuses it. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "127.0.0.1"), 0);
	CHECK_INT(tls_server_set_host(s, "127.0.0.1"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), -1);
	CHECK(SSL_get_servername(s, TLSEXT_NAMETYPE_host_name) == NULL);
	CHECK_INT(SSL_get_verify_result(c), X509_V_ERR_EXCLUDED_VIOLATION);
	CHECK_STR(tls_client_failure(c, cause, sizeof(cause)),
	    "certificate verify failed: excluded subtree violation");
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

/* A plain OpenSSL server presenting cert/key. */
static SSL_CTX *
plain_server(X509 *cert, EVP_PKEY *key, int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (max_version != 0) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(ctx, max_version);
		SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-SHA");
	}
	SSL_CTX_use_certificate(ctx, cert);
	SSL_CTX_use_PrivateKey(ctx, key);
	return ctx;
}

static void
upstream_fault(struct fx *f, SSL_CTX *sctx, const char *extra_ca,
    int client_max, const char *want)
{
	struct strlist extra = {0};
	SSL_CTX *cctx;
	SSL *c, *s;
	char cause[256], *err = NULL;

	if (extra_ca != NULL)
		strlist_add(&extra, extra_ca);
	cctx = tls_client_ctx_new(f->roots, &extra, &err);
	strlist_free(&extra);
	CHECK(cctx != NULL);
	if (cctx == NULL) {
		free(err);
		return;
	}
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	if (client_max != 0) {
		/* Offer a suite an old server can pick, so that it answers
		 * with a ServerHello instead of a handshake_failure alert. */
		SSL_set_max_proto_version(c, client_max);
		SSL_set_cipher_list(c, "ECDHE+AESGCM:ECDHE-ECDSA-AES128-SHA");
	}
	CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK(handshake(c, s) != 0);
	CHECK_STR(tls_client_failure(c, cause, sizeof(cause)), want);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
}

static void
test_upstream_faults(void)
{
	struct fx f;
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	X509 *ca = NULL, *self = NULL, *expired = NULL, *good = NULL;
	SSL_CTX *sctx;
	char capath[1200];

	if (fx_init(&f, "faults") == -1)
		goto out;
	ca = make_cert(cakey, NULL, NULL, "Upstream Test CA", NULL, 1, -86400,
	    86400L * 30);
	snprintf(capath, sizeof(capath), "%s/upstream-ca.pem", f.dir);
	write_cert(capath, ca);

	self = make_cert(key, NULL, NULL, "api.anthropic.com",
	    "api.anthropic.com", 0, -3600, 86400);
	sctx = plain_server(self, key, 0);
	upstream_fault(&f, sctx, NULL, 0, "self-signed certificate");
	SSL_CTX_free(sctx);

	expired = make_cert(key, ca, cakey, "api.anthropic.com",
	    "api.anthropic.com", 0, -86400L * 10, -86400);
	sctx = plain_server(expired, key, 0);
	upstream_fault(&f, sctx, capath, 0, "certificate has expired");
	SSL_CTX_free(sctx);

	/* A server that knows TLS 1.3's supported_versions refuses with an
	 * alert; an old one answers with its own version. */
	good = make_cert(key, ca, cakey, "api.anthropic.com",
	    "api.anthropic.com", 0, -3600, 86400);
	sctx = plain_server(good, key, TLS1_VERSION);
	upstream_fault(&f, sctx, capath, 0,
	    "protocol version too old (server does not offer TLS 1.2 or "
	    "1.3)");
	upstream_fault(&f, sctx, capath, TLS1_2_VERSION,
	    "protocol version too old (server offers only TLS 1.0)");
	SSL_CTX_free(sctx);
	sctx = plain_server(good, key, TLS1_1_VERSION);
	upstream_fault(&f, sctx, capath, TLS1_2_VERSION,
	    "protocol version too old (server offers only TLS 1.1)");
	SSL_CTX_free(sctx);

	/* The same certificate over TLS 1.2+ is fine. */
	sctx = plain_server(good, key, 0);
	{
		struct strlist extra = {0};
		char *err = NULL;
		SSL_CTX *cctx;
		SSL *c, *s;

		strlist_add(&extra, capath);
		cctx = tls_client_ctx_new(f.roots, &extra, &err);
		strlist_free(&extra);
		c = SSL_new(cctx);
		s = SSL_new(sctx);
		tls_client_set_host(c, "api.anthropic.com.");
		pair(c, s);
		CHECK_INT(handshake(c, s), 0);
		SSL_free(c);
		SSL_free(s);
		SSL_CTX_free(cctx);
		free(err);
	}
	SSL_CTX_free(sctx);
out:
	X509_free(ca);
	X509_free(self);
	X509_free(expired);
	X509_free(good);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	fx_free(&f);
}

static void
test_client_ctx_bad_files(void)
{
	struct strlist extra = {0};
	char *cause = NULL, path[1200];
	SSL_CTX *ctx;
	struct fx f;

	if (fx_init(&f, "badfiles") == -1)
		goto out;
	snprintf(path, sizeof(path), "%s/missing-ca.pem", f.dir);
	strlist_add(&extra, path);
	ctx = tls_client_ctx_new(f.roots, &extra, &cause);
	CHECK(ctx == NULL);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	free(cause);
	cause = NULL;
	ctx = tls_client_ctx_new(path, NULL, &cause);
	CHECK(ctx == NULL);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	free(cause);
	cause = NULL;
	/* A file that is not PEM. */
	CHECK_INT(harness_write_file(path, "junk\n", 5), 0);
	ctx = tls_client_ctx_new(f.roots, &extra, &cause);
	CHECK(ctx == NULL);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	free(cause);
	strlist_free(&extra);
out:
	fx_free(&f);
}

/* tls_client_check refuses what tls_client_ctx_new refuses, with the same
 * cause, and accepts what it accepts. */
static void
test_client_check(void)
{
	static const char *const bodies[] = {
	    NULL, /* missing */
	    "junk\n",
	    "-----BEGIN CERTIFICATE-----\nnot base64 !\n"
	    "-----END CERTIFICATE-----\n",
	};
	struct strlist extra = {0};
	char *c1 = NULL, *c2 = NULL, path[1200];
	SSL_CTX *ctx;
	struct fx f;
	size_t i;

	if (fx_init(&f, "check") == -1)
		goto out;
	snprintf(path, sizeof(path), "%s/upstream-ca.pem", f.dir);
	strlist_add(&extra, f.capem);
	strlist_add(&extra, path);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		unlink(path);
		if (bodies[i] != NULL)
			CHECK_INT(harness_write_file(
			              path, bodies[i], strlen(bodies[i])),
			    0);
		CHECK_INT(tls_client_check(f.roots, &extra, &c1), -1);
		ctx = tls_client_ctx_new(f.roots, &extra, &c2);
		CHECK(ctx == NULL);
		SSL_CTX_free(ctx);
		CHECK(c1 != NULL && strstr(c1, path) != NULL);
		if (c1 != NULL && c2 != NULL)
			CHECK_STR(c1, c2);
		free(c1);
		free(c2);
		c1 = c2 = NULL;
	}
	/* Good files; the system roots file is checked as well. */
	strlist_free(&extra);
	strlist_add(&extra, f.capem);
	CHECK_INT(tls_client_check(f.roots, &extra, &c1), 0);
	CHECK(c1 == NULL);
	CHECK_INT(tls_client_check(f.roots, NULL, &c1), 0);
	CHECK_INT(harness_write_file(path, "junk\n", 5), 0);
	CHECK_INT(tls_client_check(path, &extra, &c1), -1);
	CHECK(c1 != NULL && strstr(c1, "no PEM certificate") != NULL);
	free(c1);
out:
	strlist_free(&extra);
	fx_free(&f);
}

static void
test_session_resumption(void)
{
	struct fx f;
	SSL *c, *s;
	unsigned char buf[1];
	int i;

	if (fx_init(&f, "resume") == -1)
		goto out;
	for (i = 0; i < 2; i++) {
		c = SSL_new(f.cctx);
		s = SSL_new(f.sctx);
		CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
		pair(c, s);
		CHECK_INT(handshake(c, s), 0);
		CHECK_INT(SSL_session_reused(c), i);
		/* Let the client read the TLS 1.3 session tickets. */
		CHECK_INT(SSL_read(c, buf, 1), -1);
		CHECK_INT(SSL_get_error(c, -1), SSL_ERROR_WANT_READ);
		SSL_free(c);
		SSL_free(s);
	}
	/* Sessions are per host: another name does a full handshake. */
	c = SSL_new(f.cctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "api.openai.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), 0);
	CHECK_INT(SSL_session_reused(c), 0);
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

/* The cached session serves every connection that starts before the next
 * ticket replaces it: connections in flight together all resume, and one
 * that starts after another's handshake completed (its tickets not read
 * yet) does too.  OpenSSL marks a TLS 1.3 client's session unresumable
 * when its handshake completes; given out as such, the cached session
 * became useless to all of them (full handshakes, a chain parsed per
 * connection). */
static void
test_session_resumption_concurrent(void)
{
	struct fx f;
	SSL *c[4], *s[4];
	unsigned char buf[1];
	int i;

	if (fx_init(&f, "resume-concurrent") == -1)
		goto out;
	for (i = 0; i < 4; i++) {
		c[i] = SSL_new(f.cctx);
		s[i] = SSL_new(f.sctx);
	}
	/* A full handshake leaves a ticket in the cache. */
	CHECK_INT(tls_client_set_host(c[0], "api.anthropic.com"), 0);
	pair(c[0], s[0]);
	CHECK_INT(handshake(c[0], s[0]), 0);
	CHECK_INT(SSL_session_reused(c[0]), 0);
	CHECK_INT(SSL_read(c[0], buf, 1), -1);
	/* Two connections start with it; the first completes before the
	 * second, and before it reads its own tickets. */
	CHECK_INT(tls_client_set_host(c[1], "api.anthropic.com"), 0);
	CHECK_INT(tls_client_set_host(c[2], "api.anthropic.com"), 0);
	pair(c[1], s[1]);
	pair(c[2], s[2]);
	CHECK_INT(handshake(c[1], s[1]), 0);
	CHECK_INT(SSL_session_reused(c[1]), 1);
	CHECK_INT(handshake(c[2], s[2]), 0);
	CHECK_INT(SSL_session_reused(c[2]), 1);
	/* A third starts now, no new ticket read yet. */
	CHECK_INT(tls_client_set_host(c[3], "api.anthropic.com"), 0);
	pair(c[3], s[3]);
	CHECK_INT(handshake(c[3], s[3]), 0);
	CHECK_INT(SSL_session_reused(c[3]), 1);
	for (i = 0; i < 4; i++) {
		SSL_free(c[i]);
		SSL_free(s[i]);
	}
out:
	fx_free(&f);
}

static void
test_server_refuses_old_clients(void)
{
	struct fx f;
	SSL *c, *s;

	if (fx_init(&f, "oldclient") == -1)
		goto out;
	c = SSL_new(f.nctx);
	s = SSL_new(f.sctx);
	SSL_set_security_level(c, 0);
	SSL_set_min_proto_version(c, TLS1_VERSION);
	SSL_set_max_proto_version(c, TLS1_1_VERSION);
	SSL_set_cipher_list(c, "ALL:@SECLEVEL=0");
	SSL_set_verify(c, SSL_VERIFY_NONE, NULL);
	tls_client_set_host(c, "api.anthropic.com");
	pair(c, s);
	CHECK(handshake(c, s) != 0);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

/* The number of certificates in a client context's store. */
static int
store_certs(SSL_CTX *ctx)
{
	STACK_OF(X509_OBJECT) *objs =
	    X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	int i, n = 0;

	for (i = 0; i < sk_X509_OBJECT_num(objs); i++)
		if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) ==
		    X509_LU_X509)
			n++;
	return n;
}

/* The system roots are parsed at the first verification, not before; the
 * extra CA files at once. */
static void
test_system_roots_loaded_lazily(void)
{
	struct fx f;
	SSL *c, *s;
	int i;

	if (fx_init(&f, "lazyroots") == -1)
		goto out;
	CHECK_INT(store_certs(f.nctx), 0);
	CHECK_INT(store_certs(f.cctx), 1); /* the extra file: the CA */
	for (i = 0; i < 2; i++) {
		c = SSL_new(f.cctx);
		s = SSL_new(f.sctx);
		CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
		pair(c, s);
		CHECK_INT(handshake(c, s), 0);
		CHECK_INT(SSL_get_verify_result(c), X509_V_OK);
		/* The roots file (one certificate) was added once. */
		CHECK_INT(store_certs(f.cctx), 2);
		SSL_free(c);
		SSL_free(s);
	}
	/* A failed verification loads them too. */
	c = SSL_new(f.nctx);
	s = SSL_new(f.sctx);
	CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
	pair(c, s);
	CHECK_INT(handshake(c, s), -1);
	CHECK_INT(store_certs(f.nctx), 1);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
out:
	fx_free(&f);
}

/* A system roots file that is not PEM fails at once; one that looks like
 * PEM but does not parse fails every upstream handshake with that cause
 * (and the extra CA files do not replace it). */
static void
test_system_roots_bad(void)
{
	struct strlist extra = {0};
	const char *bad = "-----BEGIN CERTIFICATE-----\nnot base64 !\n"
	                  "-----END CERTIFICATE-----\n";
	char *cause = NULL, path[1200], why[512];
	SSL_CTX *ctx;
	struct fx f;
	SSL *c, *s;
	int i;

	if (fx_init(&f, "badroots") == -1)
		goto out;
	snprintf(path, sizeof(path), "%s/junk-roots.pem", f.dir);
	CHECK_INT(harness_write_file(path, "junk\n", 5), 0);
	ctx = tls_client_ctx_new(path, NULL, &cause);
	CHECK(ctx == NULL);
	CHECK(cause != NULL && strstr(cause, path) != NULL &&
	    strstr(cause, "no PEM certificate") != NULL);
	free(cause);
	cause = NULL;

	CHECK_INT(harness_write_file(path, bad, strlen(bad)), 0);
	strlist_add(&extra, f.capem);
	ctx = tls_client_ctx_new(path, &extra, &cause);
	strlist_free(&extra);
	CHECK(ctx != NULL && cause == NULL);
	if (ctx == NULL)
		goto out;
	for (i = 0; i < 2; i++) {
		c = SSL_new(ctx);
		s = SSL_new(f.sctx);
		CHECK_INT(tls_client_set_host(c, "api.anthropic.com"), 0);
		pair(c, s);
		CHECK_INT(handshake(c, s), -1);
		tls_client_failure(c, why, sizeof(why));
		CHECK(strstr(why, "cannot load the system roots") != NULL &&
		    strstr(why, path) != NULL);
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
	}
	SSL_CTX_free(ctx);
out:
	fx_free(&f);
}

static const struct test tests[] = {
    TEST(test_handshake_sni),
    TEST(test_tls12_suites),
    TEST(test_ctx_settings),
    TEST(test_alpn_choices),
    TEST(test_hostname_mismatch),
    TEST(test_unknown_ca),
    TEST(test_no_sni_fallback),
    TEST(test_upstream_faults),
    TEST(test_client_ctx_bad_files),
    TEST(test_session_resumption),
    TEST(test_session_resumption_concurrent),
    TEST(test_server_refuses_old_clients),
    TEST(test_system_roots_loaded_lazily),
    TEST(test_system_roots_bad),
    TEST(test_client_check),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
