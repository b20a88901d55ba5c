#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "halton/ca.h"
#include "halton/intercept.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

/* Every test gets its own HOME under the harness's temporary directory. */
static char home[1024], state[1200], cadir[1200], roots[1200];

static X509 *
make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn,
    int is_ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x,
	    issuer != NULL ? X509_get_subject_name(issuer)
	                   : X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
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
	X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256());
	return x;
}

static char *
cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

/* A roots file of n freshly made self-signed certificates. */
static void
write_fake_roots(const char *path, int n)
{
	struct strbuf sb;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x;
	char cn[32], *pem;
	int i;

	strbuf_init(&sb);
	for (i = 0; i < n; i++) {
		snprintf(cn, sizeof(cn), "Fake Root %d", i);
		x = make_cert(k, NULL, NULL, cn, 1);
		pem = cert_pem(x);
		strbuf_addf(&sb, "# %s\n%s", cn, pem);
		free(pem);
		X509_free(x);
	}
	CHECK_INT(harness_write_file(path, sb.data, sb.len), 0);
	strbuf_free(&sb);
	EVP_PKEY_free(k);
}

static void
setup_home(const char *name)
{
	snprintf(home, sizeof(home), "%s/%s", harness_tmpdir(), name);
	snprintf(state, sizeof(state), "%s/.halton-meter", home);
	snprintf(cadir, sizeof(cadir), "%s/.mitmproxy", home);
	snprintf(roots, sizeof(roots), "%s/roots.pem", home);
	setenv("HOME", home, 1);
	setenv("HALTON_METER_HOME", state, 1);
	setenv("HALTON_METER_SYSTEM_ROOTS", roots, 1);
	unsetenv("HALTON_METER_SYSROOT");
	write_fake_roots(roots, 3);
}

static struct ca *
load(int constrained, int *created)
{
	struct ca_options opt = {0};
	struct ca *ca = NULL;
	char *cause = NULL;

	opt.name_constraints = constrained;
	CHECK_INT(ca_load_or_create(&ca, &opt, created, &cause), 0);
	if (cause != NULL)
		fprintf(stderr, "  cause: %s\n", cause);
	free(cause);
	return ca;
}

static int
file_mode(const char *dir, const char *name)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static char *
read_in(const char *dir, const char *name, size_t *len)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return harness_read_file(path, len);
}

static int
count_pem_certs(const char *data)
{
	BIO *b = BIO_new_mem_buf(data, -1);
	X509 *x;
	int n = 0;

	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		n++;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(b);
	return n;
}

/* Verifies leaf against ca (as the only trust anchor); returns the
 * X509_V_ result. */
static int
verify_leaf(X509 *cacert, X509 *leaf, const char *host)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	X509_STORE_add_cert(store, cacert);
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	if (host != NULL)
		X509_VERIFY_PARAM_set1_host(
		    X509_STORE_CTX_get0_param(ctx), host, 0);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK
	                                : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

static long long
span_seconds(const ASN1_TIME *a, const ASN1_TIME *b)
{
	int days, secs;

	if (ASN1_TIME_diff(&days, &secs, a, b) != 1)
		return -1;
	return (long long)days * 86400 + secs;
}

static void
test_create_files_and_modes(void)
{
	struct ca *ca;
	int created = -1;
	char *keyfile, *certfile, *cerfile, *capem, *bundle;
	size_t len;

	setup_home("create");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	CHECK_INT(created, 1);
	CHECK_INT(file_mode(home, ".mitmproxy"), 0700);
	CHECK_INT(file_mode(home, ".halton-meter"), 0700);
	CHECK_INT(file_mode(cadir, "mitmproxy-ca.pem"), 0600);
	CHECK_INT(file_mode(cadir, "mitmproxy-ca-cert.pem"), 0644);
	CHECK_INT(file_mode(cadir, "mitmproxy-ca-cert.cer"), 0644);
	CHECK_INT(file_mode(state, "ca.pem"), 0644);
	CHECK_INT(file_mode(state, "bundle.pem"), 0644);

	keyfile = read_in(cadir, "mitmproxy-ca.pem", &len);
	certfile = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	cerfile = read_in(cadir, "mitmproxy-ca-cert.cer", NULL);
	capem = read_in(state, "ca.pem", NULL);
	bundle = read_in(state, "bundle.pem", NULL);
	CHECK(keyfile != NULL && certfile != NULL && cerfile != NULL &&
	    capem != NULL && bundle != NULL);
	if (keyfile != NULL && certfile != NULL && cerfile != NULL &&
	    capem != NULL && bundle != NULL) {
		CHECK(strstr(keyfile, "-----BEGIN PRIVATE KEY-----") != NULL);
		CHECK(strstr(keyfile, certfile) != NULL);
		CHECK_STR(cerfile, certfile);
		CHECK_STR(capem, certfile);
		CHECK(strstr(certfile, "PRIVATE") == NULL);
		CHECK_INT(count_pem_certs(certfile), 1);
		/* 3 fake roots, then the CA at the end. */
		CHECK_INT(count_pem_certs(bundle), 4);
		CHECK(str_has_suffix(bundle, certfile));
	}
	free(keyfile);
	free(certfile);
	free(cerfile);
	free(capem);
	free(bundle);
	ca_free(ca);
}

/* The list of permitted DNS subtrees as "a,b,c". */
static void
nc_permitted(NAME_CONSTRAINTS *nc, char *buf, size_t len)
{
	GENERAL_SUBTREE *st;
	int i;

	buf[0] = '\0';
	for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
		st = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i);
		CHECK_INT(st->base->type, GEN_DNS);
		if (st->base->type != GEN_DNS)
			continue;
		if (buf[0] != '\0')
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, (const char *)st->base->d.dNSName->data,
		    len - strlen(buf) - 1);
	}
}

static void
test_ca_certificate_parsed_back(void)
{
	struct ca *ca;
	int created, crit, i;
	char *keyfile;
	BIO *b;
	EVP_PKEY *key;
	X509 *x;
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	NAME_CONSTRAINTS *nc;
	GENERAL_SUBTREE *st;
	char cn[128], o[128], permitted[1024];
	static const unsigned char zeros[32];

	setup_home("parse");
	ca = load(1, &created);
	keyfile = read_in(cadir, "mitmproxy-ca.pem", NULL);
	CHECK(ca != NULL && keyfile != NULL);
	if (ca == NULL || keyfile == NULL) {
		ca_free(ca);
		free(keyfile);
		return;
	}
	b = BIO_new_mem_buf(keyfile, -1);
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(keyfile, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	CHECK(key != NULL && x != NULL);
	if (key == NULL || x == NULL)
		goto out;

	/* ECDSA P-256, SHA-256, matching the loaded CA. */
	CHECK_INT(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	{
		char group[64];
		size_t glen;

		CHECK_INT(EVP_PKEY_get_utf8_string_param(
		              key, "group", group, sizeof(group), &glen),
		    1);
		CHECK_STR(group, "prime256v1");
	}
	CHECK_INT(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	CHECK_INT(X509_cmp(x, ca_cert(ca)), 0);
	CHECK_INT(EVP_PKEY_eq(key, ca_key(ca)), 1);

	/* Subject O=halton-meter, CN "halton-meter HOST DATE"; self-issued. */
	CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	          NID_organizationName, o, sizeof(o)) > 0);
	CHECK_STR(o, "halton-meter");
	CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	          NID_commonName, cn, sizeof(cn)) > 0);
	CHECK(str_has_prefix(cn, "halton-meter "));
	{
		char date[16];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		CHECK(str_has_suffix(cn, date));
	}
	CHECK(strlen(cn) <= 64);
	CHECK_INT(
	    X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)),
	    0);

	/* 10 years (+ 1 day back-dating). */
	CHECK_INT(span_seconds(X509_get0_notBefore(x), X509_get0_notAfter(x)),
	    (3650LL + 1) * 86400);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL);
	if (bc != NULL) {
		CHECK_INT(crit, 1);
		CHECK(bc->ca != 0);
		CHECK(bc->pathlen != NULL);
		if (bc->pathlen != NULL)
			CHECK_INT(ASN1_INTEGER_get(bc->pathlen), 0);
		BASIC_CONSTRAINTS_free(bc);
	}
	ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	CHECK(ku != NULL);
	if (ku != NULL) {
		CHECK_INT(crit, 1);
		CHECK_INT(
		    X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		ASN1_BIT_STRING_free(ku);
	}
	CHECK(X509_get0_subject_key_id(x) != NULL);

	nc = X509_get_ext_d2i(x, NID_name_constraints, &crit, NULL);
	CHECK(nc != NULL);
	if (nc != NULL) {
		CHECK_INT(crit, 1);
		nc_permitted(nc, permitted, sizeof(permitted));
		/* The intercept list reduced to the subtrees that cover it:
		 * the three exact googleapis.com names fold into the one
		 * that *-aiplatform needs. */
		CHECK_STR(permitted,
		    "api.anthropic.com,api.openai.com,googleapis.com,"
		    "amazonaws.com,openai.azure.com,openrouter.ai,"
		    "api.groq.com,api.deepseek.com,api.mistral.ai,api.x.ai,"
		    "api.together.xyz,api.fireworks.ai,"
		    "doctor.halton-meter.invalid");
		CHECK_INT(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
		for (i = 0; i < sk_GENERAL_SUBTREE_num(nc->excludedSubtrees);
		     i++) {
			st = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, i);
			CHECK_INT(st->base->type, GEN_IPADD);
			CHECK_INT(
			    st->base->d.iPAddress->length, i == 0 ? 8 : 32);
			CHECK_MEM(st->base->d.iPAddress->data, zeros,
			    (size_t)st->base->d.iPAddress->length);
		}
		NAME_CONSTRAINTS_free(nc);
	}
out:
	EVP_PKEY_free(key);
	X509_free(x);
	free(keyfile);
	ca_free(ca);
}

static void
test_config_patterns_constrain(void)
{
	struct strlist extra = {0};
	struct intercept_list *list;
	struct ca_options opt = {0};
	struct ca *ca = NULL;
	NAME_CONSTRAINTS *nc;
	char *cause = NULL, permitted[1024];
	int created = 0;

	setup_home("patterns");
	strlist_add(&extra, "*.llm.example.net");
	strlist_add(&extra, "llm.example.com");
	list = intercept_list_new(&extra);
	opt.intercept = list;
	opt.name_constraints = 1;
	CHECK_INT(ca_load_or_create(&ca, &opt, &created, &cause), 0);
	free(cause);
	if (ca != NULL) {
		nc = X509_get_ext_d2i(
		    ca_cert(ca), NID_name_constraints, NULL, NULL);
		CHECK(nc != NULL);
		if (nc != NULL) {
			nc_permitted(nc, permitted, sizeof(permitted));
			CHECK(str_has_suffix(permitted,
			    ",llm.example.net,llm.example.com,"
			    "doctor.halton-meter.invalid"));
			NAME_CONSTRAINTS_free(nc);
		}
		CHECK_INT(ca_permits(ca, "a.llm.example.net"), 1);
		CHECK_INT(ca_permits(ca, "llm.example.com"), 1);
		CHECK_INT(ca_permits(ca, "x.llm.example.com"), 1);
		CHECK_INT(ca_permits(ca, "example.com"), 0);
	}
	ca_free(ca);
	intercept_list_free(list);
	strlist_free(&extra);
}

/* A pattern added after the CA was made is outside its constraints: the CA
 * is kept as it is and ca_permits says no (the proxy then tunnels). */
static void
test_existing_ca_new_pattern(void)
{
	struct strlist extra = {0};
	struct intercept_list *list;
	struct ca_options opt = {0};
	struct ca *first, *ca = NULL;
	char *cause = NULL;
	int created = -1;

	setup_home("newpattern");
	first = load(1, &created);
	CHECK_INT(created, 1);
	strlist_add(&extra, "llm.example.com");
	list = intercept_list_new(&extra);
	opt.intercept = list;
	opt.name_constraints = 1;
	CHECK_INT(ca_load_or_create(&ca, &opt, &created, &cause), 0);
	CHECK_INT(created, 0);
	if (ca != NULL && first != NULL) {
		CHECK_INT(X509_cmp(ca_cert(ca), ca_cert(first)), 0);
		CHECK_INT(ca_permits(ca, "llm.example.com"), 0);
		CHECK_INT(ca_permits(ca, "api.anthropic.com"), 1);
	}
	free(cause);
	ca_free(ca);
	ca_free(first);
	intercept_list_free(list);
	strlist_free(&extra);
}

static void
test_second_load_reuses(void)
{
	struct ca *a, *b;
	int created = -1;
	char *k1, *k2, *c1, *c2, *p1, *p2, *bn1, *bn2;
	struct stat st1, st2;
	char path[4200];

	setup_home("reuse");
	a = load(1, &created);
	CHECK_INT(created, 1);
	k1 = read_in(cadir, "mitmproxy-ca.pem", NULL);
	c1 = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	p1 = read_in(state, "ca.pem", NULL);
	bn1 = read_in(state, "bundle.pem", NULL);
	snprintf(path, sizeof(path), "%s/mitmproxy-ca.pem", cadir);
	CHECK_INT(stat(path, &st1), 0);

	b = load(1, &created);
	CHECK_INT(created, 0);
	k2 = read_in(cadir, "mitmproxy-ca.pem", NULL);
	c2 = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	p2 = read_in(state, "ca.pem", NULL);
	bn2 = read_in(state, "bundle.pem", NULL);
	CHECK_INT(stat(path, &st2), 0);
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL) {
		CHECK_INT(EVP_PKEY_eq(ca_key(a), ca_key(b)), 1);
		CHECK_INT(X509_cmp(ca_cert(a), ca_cert(b)), 0);
	}
	CHECK(k1 != NULL && k2 != NULL && c1 != NULL && c2 != NULL);
	if (k1 != NULL && k2 != NULL && c1 != NULL && c2 != NULL &&
	    p1 != NULL && p2 != NULL && bn1 != NULL && bn2 != NULL) {
		CHECK_STR(k2, k1);
		CHECK_STR(c2, c1);
		CHECK_STR(p2, p1);
		CHECK_STR(bn2, bn1);
	}
	CHECK_INT(st1.st_ino, st2.st_ino); /* the key file was not replaced */
	free(k1);
	free(k2);
	free(c1);
	free(c2);
	free(p1);
	free(p2);
	free(bn1);
	free(bn2);
	ca_free(a);
	ca_free(b);
}

/* A mitmproxy-style CA: RSA key as PKCS#1 ("BEGIN RSA PRIVATE KEY")
 * followed by the certificate, plus the companion files. */
static void
test_existing_rsa_mitmproxy_ca_untouched(void)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	X509 *x = make_cert(rsa, NULL, NULL, "mitmproxy", 1), *leaf;
	BIO *b = BIO_new(BIO_s_mem());
	struct ca *ca;
	char path[4200], *data, *pem, *k2, *c2, *r2, *cause = NULL;
	long n;
	int created = -1;
	size_t klen;

	setup_home("rsa");
	PEM_write_bio_PrivateKey_traditional(b, rsa, NULL, NULL, 0, NULL, NULL);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	pem = cert_pem(x);
	CHECK(strstr(data, "-----BEGIN RSA PRIVATE KEY-----") != NULL);
	snprintf(path, sizeof(path), "%s/mitmproxy-ca.pem", cadir);
	CHECK_INT(harness_write_file(path, data, (size_t)n), 0);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/mitmproxy-ca-cert.pem", cadir);
	CHECK_INT(harness_write_file(path, pem, strlen(pem)), 0);
	/* A companion with other bytes stays as it is, too. */
	snprintf(path, sizeof(path), "%s/mitmproxy-ca-cert.cer", cadir);
	CHECK_INT(harness_write_file(path, "mitmproxy's own\n", 16), 0);

	ca = load(1, &created);
	CHECK(ca != NULL);
	CHECK_INT(created, 0);
	k2 = read_in(cadir, "mitmproxy-ca.pem", &klen);
	c2 = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	r2 = read_in(cadir, "mitmproxy-ca-cert.cer", NULL);
	CHECK(k2 != NULL && klen == (size_t)n && memcmp(k2, data, klen) == 0);
	CHECK_STR(c2, pem);
	CHECK_STR(r2, "mitmproxy's own\n");
	CHECK_INT(file_mode(cadir, "mitmproxy-ca.pem"), 0600);
	if (ca != NULL) {
		char *capem = read_in(state, "ca.pem", NULL);

		CHECK_STR(capem, pem);
		free(capem);
		CHECK_INT(X509_cmp(ca_cert(ca), x), 0);
		CHECK_INT(EVP_PKEY_eq(ca_key(ca), rsa), 1);
		/* An unconstrained (mitmproxy) CA signs anything. */
		CHECK_INT(ca_permits(ca, "www.example.com"), 1);
		leaf = ca_leaf(ca, "api.anthropic.com", &cause);
		CHECK(leaf != NULL);
		if (leaf != NULL) {
			CHECK_INT(verify_leaf(x, leaf, "api.anthropic.com"),
			    X509_V_OK);
			CHECK_INT(X509_get_signature_nid(leaf),
			    NID_sha256WithRSAEncryption);
		}
		free(cause);
	}
	free(k2);
	free(c2);
	free(r2);
	free(pem);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(rsa);
	ca_free(ca);
}

static void
test_broken_key_never_overwritten(void)
{
	struct ca_options opt = {0};
	struct ca *ca = NULL;
	char path[4200], *cause = NULL, *after;
	int created = -1;
	const char *junk = "-----BEGIN PRIVATE KEY-----\nnot base64\n"
	                   "-----END PRIVATE KEY-----\n";

	setup_home("broken");
	snprintf(path, sizeof(path), "%s/mitmproxy-ca.pem", cadir);
	CHECK_INT(harness_write_file(path, junk, strlen(junk)), 0);
	opt.name_constraints = 1;
	CHECK_INT(ca_load_or_create(&ca, &opt, &created, &cause), -1);
	CHECK(ca == NULL);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	CHECK_INT(created, 0);
	after = harness_read_file(path, NULL);
	CHECK_STR(after, junk);
	free(after);
	free(cause);
}

static void
test_leaf_for_api_anthropic(void)
{
	struct ca *ca;
	X509 *leaf, *again;
	GENERAL_NAMES *gens;
	GENERAL_NAME *g;
	EXTENDED_KEY_USAGE *eku;
	AUTHORITY_KEYID *akid;
	BASIC_CONSTRAINTS *bc;
	const ASN1_INTEGER *serial;
	char *cause = NULL;
	int created, crit;
	long long back;

	setup_home("leaf");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	/* The leaf key is made by the first leaf, not by loading. */
	CHECK(ca_leaf_key(ca) == NULL);
	leaf = ca_leaf(ca, "api.anthropic.com", &cause);
	CHECK(leaf != NULL);
	CHECK(cause == NULL);
	if (leaf == NULL)
		goto out;
	CHECK_INT(
	    verify_leaf(ca_cert(ca), leaf, "api.anthropic.com"), X509_V_OK);
	CHECK_INT(verify_leaf(ca_cert(ca), leaf, "api.openai.com"),
	    X509_V_ERR_HOSTNAME_MISMATCH);
	CHECK_INT(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	CHECK_INT(EVP_PKEY_eq(X509_get0_pubkey(leaf), ca_leaf_key(ca)), 1);
	CHECK_INT(EVP_PKEY_eq(X509_get0_pubkey(leaf), ca_key(ca)), 0);

	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	CHECK(gens != NULL && sk_GENERAL_NAME_num(gens) == 1);
	if (gens != NULL && sk_GENERAL_NAME_num(gens) == 1) {
		g = sk_GENERAL_NAME_value(gens, 0);
		CHECK_INT(g->type, GEN_DNS);
		CHECK_STR(
		    (const char *)g->d.dNSName->data, "api.anthropic.com");
	}
	GENERAL_NAMES_free(gens);

	eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	CHECK(eku != NULL && sk_ASN1_OBJECT_num(eku) == 1);
	if (eku != NULL && sk_ASN1_OBJECT_num(eku) == 1)
		CHECK_INT(
		    OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
	EXTENDED_KEY_USAGE_free(eku);

	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL && bc->ca == 0);
	BASIC_CONSTRAINTS_free(bc);

	akid = X509_get_ext_d2i(leaf, NID_authority_key_identifier, NULL, NULL);
	CHECK(akid != NULL && akid->keyid != NULL);
	if (akid != NULL && akid->keyid != NULL)
		CHECK_INT(ASN1_OCTET_STRING_cmp(akid->keyid,
		              X509_get0_subject_key_id(ca_cert(ca))),
		    0);
	AUTHORITY_KEYID_free(akid);
	/* No SKI on the leaf, so none can equal the CA's. */
	CHECK(X509_get0_subject_key_id(leaf) == NULL);

	/* Validity: from a day back, at most 397 days. */
	CHECK(span_seconds(X509_get0_notBefore(leaf),
	          X509_get0_notAfter(leaf)) <= 397LL * 86400);
	CHECK(span_seconds(X509_get0_notBefore(leaf),
	          X509_get0_notAfter(leaf)) >= 396LL * 86400);
	back = span_seconds(X509_get0_notBefore(leaf), NULL);
	CHECK(back >= 86400 - 5 && back <= 86400 + 5);

	/* Serial: 128 random bits, positive. */
	serial = X509_get0_serialNumber(leaf);
	CHECK_INT(serial->type, V_ASN1_INTEGER);
	CHECK_INT(serial->length, 16);

	/* Case and a trailing dot name the same cached leaf. */
	again = ca_leaf(ca, "API.Anthropic.COM.", &cause);
	CHECK(again == leaf);
	CHECK_INT(ca_leaf_cache_count(ca), 1);
out:
	free(cause);
	ca_free(ca);
}

static void
test_name_constraints_enforced(void)
{
	struct ca *ca;
	X509 *leaf;
	char *cause = NULL;
	int created;
	static const char *const inside[] = {
	    "api.anthropic.com",
	    "us-central1-aiplatform.googleapis.com",
	    "bedrock-runtime.eu-west-1.amazonaws.com",
	    "myres.openai.azure.com",
	    "doctor.halton-meter.invalid",
	    NULL,
	};
	size_t i;

	setup_home("nc");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	for (i = 0; inside[i] != NULL; i++) {
		leaf = ca_leaf(ca, inside[i], &cause);
		CHECK(leaf != NULL);
		if (leaf != NULL)
			CHECK_INT(verify_leaf(ca_cert(ca), leaf, inside[i]),
			    X509_V_OK);
		CHECK_INT(ca_permits(ca, inside[i]), 1);
	}
	/* The constraint is real: OpenSSL refuses a leaf outside it. */
	leaf = ca_leaf(ca, "www.example.com", &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL)
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, "www.example.com"),
		    X509_V_ERR_PERMITTED_VIOLATION);
	CHECK_INT(ca_permits(ca, "www.example.com"), 0);
	leaf = ca_leaf(ca, "api.anthropic.com.attacker.net", &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL)
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, NULL),
		    X509_V_ERR_PERMITTED_VIOLATION);
	CHECK_INT(ca_permits(ca, "evilapi.anthropic.com"), 0);
	/* Addresses are excluded. */
	leaf = ca_leaf(ca, "127.0.0.1", &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL)
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, NULL),
		    X509_V_ERR_EXCLUDED_VIOLATION);
	leaf = ca_leaf(ca, "[::1]", &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL)
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, NULL),
		    X509_V_ERR_EXCLUDED_VIOLATION);
	CHECK_INT(ca_permits(ca, "127.0.0.1"), 0);
	free(cause);
	ca_free(ca);
}

static void
test_leaf_long_name(void)
{
	const char *host = "a1234567890123456789012345678901234567890."
	                   "b123456789012345678901234567890.openai.azure.com";
	GENERAL_NAMES *gens;
	struct ca *ca;
	X509 *leaf;
	char *cause = NULL;
	int created, crit = -1;

	setup_home("longname");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	CHECK(strlen(host) > 64);
	leaf = ca_leaf(ca, host, &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL) {
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, host), X509_V_OK);
		/* No CN (it would exceed 64), so the SAN is critical. */
		CHECK_INT(
		    X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
		gens =
		    X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
		CHECK(gens != NULL);
		CHECK_INT(crit, 1);
		GENERAL_NAMES_free(gens);
	}
	free(cause);
	ca_free(ca);
}

/* An expired CA is still loaded (never replaced), but mints nothing. */
static void
test_expired_ca(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = make_cert(key, NULL, NULL, "old", 1);
	BIO *b = BIO_new(BIO_s_mem());
	struct ca *ca;
	char path[4200], *data, *cause = NULL;
	long n;
	int created = -1;

	setup_home("expired");
	X509_gmtime_adj(X509_getm_notBefore(x), -86400L * 30);
	X509_gmtime_adj(X509_getm_notAfter(x), -86400L);
	X509_sign(x, key, EVP_sha256());
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	snprintf(path, sizeof(path), "%s/mitmproxy-ca.pem", cadir);
	CHECK_INT(harness_write_file(path, data, (size_t)n), 0);
	ca = load(1, &created);
	CHECK(ca != NULL);
	CHECK_INT(created, 0);
	if (ca != NULL) {
		CHECK(ca_leaf(ca, "api.anthropic.com", &cause) == NULL);
		CHECK_STR(cause, "the CA certificate has expired");
	}
	free(cause);
	ca_free(ca);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void
test_unconstrained_ca(void)
{
	struct ca *ca;
	X509 *leaf;
	char *cause = NULL;
	int created;

	setup_home("unconstrained");
	ca = load(0, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	CHECK(X509_get_ext_by_NID(ca_cert(ca), NID_name_constraints, -1) < 0);
	leaf = ca_leaf(ca, "www.example.com", &cause);
	CHECK(leaf != NULL);
	if (leaf != NULL)
		CHECK_INT(verify_leaf(ca_cert(ca), leaf, "www.example.com"),
		    X509_V_OK);
	CHECK_INT(ca_permits(ca, "www.example.com"), 1);
	free(cause);
	ca_free(ca);
}

static void
serial_copy(X509 *x, unsigned char *out)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);

	memset(out, 0, 16);
	memcpy(out, s->data, s->length > 16 ? 16 : (size_t)s->length);
}

static void
test_leaf_cache_lru(void)
{
	struct ca *ca;
	X509 *x, *h0 = NULL, *h1099 = NULL;
	unsigned char s0[16], s1[16], snew[16];
	char host[64], *cause = NULL;
	int created, i;

	setup_home("lru");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	for (i = 0; i < 1024; i++) {
		snprintf(host, sizeof(host), "h%d.example.com", i);
		x = ca_leaf(ca, host, &cause);
		CHECK(x != NULL);
		if (i == 0 && x != NULL)
			serial_copy(x, s0);
		if (i == 1 && x != NULL)
			serial_copy(x, s1);
	}
	CHECK_INT(ca_leaf_cache_count(ca), 1024);
	/* Touch h0: h1 becomes the least recently used. */
	h0 = ca_leaf(ca, "h0.example.com", &cause);
	CHECK(h0 != NULL);
	if (h0 != NULL) {
		serial_copy(h0, snew);
		CHECK_MEM(snew, s0, 16);
	}
	for (i = 1024; i < 1100; i++) {
		snprintf(host, sizeof(host), "h%d.example.com", i);
		x = ca_leaf(ca, host, &cause);
		CHECK(x != NULL);
		if (i == 1099)
			h1099 = x;
	}
	CHECK_INT(ca_leaf_cache_count(ca), 1024);
	/* A recent host comes back from the cache. */
	x = ca_leaf(ca, "h1099.example.com", &cause);
	CHECK(x == h1099);
	x = ca_leaf(ca, "h0.example.com", &cause);
	CHECK(x == h0);
	if (x != NULL) {
		serial_copy(x, snew);
		CHECK_MEM(snew, s0, 16);
	}
	CHECK_INT(ca_leaf_cache_count(ca), 1024);
	/* h1 was evicted: a fresh certificate with a new serial. */
	x = ca_leaf(ca, "h1.example.com", &cause);
	CHECK(x != NULL);
	if (x != NULL) {
		serial_copy(x, snew);
		CHECK(memcmp(snew, s1, 16) != 0);
	}
	CHECK_INT(ca_leaf_cache_count(ca), 1024);
	free(cause);
	ca_free(ca);
}

static void
test_leaf_bad_host(void)
{
	struct ca *ca;
	char *cause = NULL;
	int created;

	setup_home("badhost");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	CHECK(ca_leaf(ca, "a b.example.com", &cause) == NULL);
	CHECK(cause != NULL);
	free(cause);
	cause = NULL;
	CHECK(ca_leaf(ca, "", &cause) == NULL);
	free(cause);
	cause = NULL;
	CHECK(ca_leaf(ca, "a..example.com", &cause) == NULL);
	free(cause);
	cause = NULL;
	CHECK(ca_leaf(ca, "x/y.example.com", &cause) == NULL);
	free(cause);
	CHECK_INT(ca_leaf_cache_count(ca), 0);
	ca_free(ca);
}

static void
test_bundle_roots(void)
{
	struct ca *ca;
	char *cause = NULL, *bundle, *pem, path[4200], missing[4200];
	int created, nroots = -1;

	setup_home("bundle");
	ca = load(1, &created);
	CHECK(ca != NULL);
	if (ca == NULL)
		return;
	/* A bigger roots file, written explicitly. */
	snprintf(path, sizeof(path), "%s/roots7.pem", home);
	write_fake_roots(path, 7);
	snprintf(missing, sizeof(missing), "%s/out/bundle.pem", home);
	CHECK_INT(ca_bundle_write(ca, NULL, path, &nroots, &cause), 0);
	CHECK_INT(nroots, 7);
	bundle = read_in(state, "bundle.pem", NULL);
	pem = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	CHECK(bundle != NULL && pem != NULL);
	if (bundle != NULL && pem != NULL) {
		CHECK_INT(count_pem_certs(bundle), 8);
		CHECK(str_has_suffix(bundle, pem));
	}
	free(bundle);
	free(pem);
	CHECK_INT(file_mode(state, "bundle.pem"), 0644);

	/* $HALTON_METER_SYSTEM_ROOTS (3 roots) when no path is given. */
	CHECK_INT(ca_bundle_write(ca, NULL, NULL, &nroots, &cause), 0);
	CHECK_INT(nroots, 3);

	/* A missing roots file is an error naming it; nothing written. */
	snprintf(path, sizeof(path), "%s/nope.pem", home);
	CHECK_INT(ca_bundle_write(ca, missing, path, &nroots, &cause), -1);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	free(cause);
	cause = NULL;
	/* A file without certificates too. */
	CHECK_INT(harness_write_file(path, "nothing\n", 8), 0);
	CHECK_INT(ca_bundle_write(ca, NULL, path, &nroots, &cause), -1);
	CHECK(cause != NULL && strstr(cause, path) != NULL);
	free(cause);
	ca_free(ca);
}

/* The bundle copies the roots file byte for byte and counts its
 * certificates on the text, as PEM_read_X509 would find them: CRLF lines
 * and the old "X509 CERTIFICATE" header count; other PEM blocks, "TRUSTED
 * CERTIFICATE" and a header not at the start of a line do not. */
static void
test_bundle_counts_text(void)
{
	struct strbuf sb;
	struct ca *ca;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = make_cert(k, NULL, NULL, "Counted Root", 1);
	BIO *b = BIO_new(BIO_s_mem());
	char *cause = NULL, *pem = cert_pem(x), *crlf, *old, *bundle, *key;
	char path[4200], *capem;
	const char *body, *q;
	size_t len;
	int created, nroots = -1;
	long n;

	setup_home("bundletext");
	ca = load(1, &created);
	CHECK(ca != NULL && pem != NULL && k != NULL && b != NULL);
	if (ca == NULL || pem == NULL || k == NULL || b == NULL)
		goto out;
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &key);
	/* The same certificate with CRLF line ends, and with the old header. */
	strbuf_init(&sb);
	for (q = pem; *q != '\0'; q++) {
		if (*q == '\n')
			strbuf_addc(&sb, '\r');
		strbuf_addc(&sb, *q);
	}
	crlf = xstrdup(sb.data);
	strbuf_free(&sb);
	body = strchr(pem, '\n') + 1;
	len = strlen(body) - strlen("-----END CERTIFICATE-----\n");
	old = xasprintf("-----BEGIN X509 CERTIFICATE-----  \n%.*s"
	                "-----END X509 CERTIFICATE-----\n",
	    (int)len, body);
	strbuf_init(&sb);
	strbuf_addf(&sb, "# one\n%s\n%s# a key\n", pem, crlf);
	strbuf_add(&sb, key, (size_t)n);
	strbuf_addf(&sb, "%s # -----BEGIN CERTIFICATE-----\n", old);
	strbuf_addf(&sb,
	    "-----BEGIN TRUSTED CERTIFICATE-----\n%.*s"
	    "-----END TRUSTED CERTIFICATE-----\n",
	    (int)len, body);
	strbuf_adds(&sb, pem); /* no newline at the end */
	sb.data[--sb.len] = '\0';
	snprintf(path, sizeof(path), "%s/roots-mixed.pem", home);
	CHECK_INT(harness_write_file(path, sb.data, sb.len), 0);
	CHECK_INT(ca_bundle_write(ca, NULL, path, &nroots, &cause), 0);
	CHECK_INT(nroots, 4);
	/* What OpenSSL's parser finds in the same text. */
	CHECK_INT(count_pem_certs(sb.data), 4);
	bundle = read_in(state, "bundle.pem", NULL);
	capem = read_in(cadir, "mitmproxy-ca-cert.pem", NULL);
	CHECK(bundle != NULL && capem != NULL);
	if (bundle != NULL && capem != NULL) {
		/* Copied as it is, a newline added, then the CA. */
		strbuf_adds(&sb, "\n\n# halton-meter local CA\n");
		strbuf_adds(&sb, capem);
		CHECK_STR(bundle, sb.data);
	}
	free(bundle);
	free(capem);
	strbuf_free(&sb);
	free(crlf);
	free(old);
out:
	free(cause);
	free(pem);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	ca_free(ca);
}

static void
test_system_roots_default(void)
{
	char root[1200], path[1400], *p;

	setup_home("sysroot");
	snprintf(root, sizeof(root), "%s/sysroot", home);
	setenv("HALTON_METER_SYSROOT", root, 1);
	snprintf(path, sizeof(path), "%s/etc/ssl/ca-bundle.pem", root);
	CHECK_INT(harness_write_file(path, "x", 1), 0);
	CHECK_STR(ca_system_roots_default(), "/etc/ssl/ca-bundle.pem");
	snprintf(
	    path, sizeof(path), "%s/etc/pki/tls/certs/ca-bundle.crt", root);
	CHECK_INT(harness_write_file(path, "x", 1), 0);
	CHECK_STR(
	    ca_system_roots_default(), "/etc/pki/tls/certs/ca-bundle.crt");
	snprintf(
	    path, sizeof(path), "%s/etc/ssl/certs/ca-certificates.crt", root);
	CHECK_INT(harness_write_file(path, "x", 1), 0);
#if !defined(__APPLE__)
	CHECK_STR(
	    ca_system_roots_default(), "/etc/ssl/certs/ca-certificates.crt");
#endif
	/* The path used: override, else the variable, else sysroot+default. */
	p = ca_system_roots_path("/x/roots.pem");
	CHECK_STR(p, "/x/roots.pem");
	free(p);
	p = ca_system_roots_path(NULL);
	CHECK_STR(p, roots);
	free(p);
	unsetenv("HALTON_METER_SYSTEM_ROOTS");
	p = ca_system_roots_path(NULL);
	CHECK_STR(p, path);
	free(p);
	unsetenv("HALTON_METER_SYSROOT");
}

static void
test_ca_load_only(void)
{
	struct ca *ca = NULL;
	char *cause = NULL;
	int created;

	setup_home("loadonly");
	CHECK_INT(ca_load(&ca, cadir, &cause), -1);
	CHECK(cause != NULL && strstr(cause, "mitmproxy-ca.pem") != NULL);
	free(cause);
	cause = NULL;
	CHECK_INT(file_exists(cadir), 0); /* nothing was written */
	ca_free(load(1, &created));
	CHECK_INT(ca_load(&ca, NULL, &cause), 0);
	CHECK(ca != NULL);
	free(cause);
	ca_free(ca);
}

static const struct test tests[] = {
    TEST(test_create_files_and_modes),
    TEST(test_ca_certificate_parsed_back),
    TEST(test_config_patterns_constrain),
    TEST(test_existing_ca_new_pattern),
    TEST(test_second_load_reuses),
    TEST(test_existing_rsa_mitmproxy_ca_untouched),
    TEST(test_broken_key_never_overwritten),
    TEST(test_leaf_for_api_anthropic),
    TEST(test_name_constraints_enforced),
    TEST(test_leaf_long_name),
    TEST(test_expired_ca),
    TEST(test_unconstrained_ca),
    TEST(test_leaf_cache_lru),
    TEST(test_leaf_bad_host),
    TEST(test_bundle_roots),
    TEST(test_bundle_counts_text),
    TEST(test_system_roots_default),
    TEST(test_ca_load_only),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
