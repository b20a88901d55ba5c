/*
 * tls: the two SSL_CTX kinds of the daemon.
 *
 * The server side (towards the client) presents a leaf minted by ca for the
 * SNI name, or for the CONNECT host given with tls_server_set_host when the
 * client sends no SNI.  The client side (towards the upstream) verifies the
 * way a browser does and remembers what went wrong (the ServerHello version,
 * alerts) in the SSL's ex_data, so tls_client_failure can name the cause
 * even after libevent has drained OpenSSL's error queue.
 *
 * The client side's system roots (about 140 certificates, close to 1 MiB of
 * heap once parsed) are loaded into its store at the first verification, not
 * when the context is made: an idle daemon, or one that only tunnels, never
 * needs them.  tls_client_ctx_new still checks at once that the file is
 * readable and holds a PEM certificate, so a wrong path fails at start.
 *
 * Both sides: TLS 1.2 or newer; TLS 1.2 suites limited to ECDHE with
 * AES-GCM or ChaCha20-Poly1305 (the "A" grade of Durumeric et al.); TLS 1.3
 * suites are all AEAD; no compression, no renegotiation; ALPN http/1.1.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "halton/ca.h"
#include "halton/log.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
#define TLS13_SUITES                                                           \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_ALPN_HTTP11 "http/1.1"
#define TLS_SESS_MAX    64

/* What the daemon keeps per SSL (both sides). */
struct tls_conn {
	char *host; /* the fallback (server) or verified (client) name */
	int server_version; /* ServerHello legacy_version, 0 = none seen */
	int alert_received; /* fatal alert description, -1 = none */
	int alert_sent;
	const char *roots_error; /* the system roots could not be loaded */
};

/* Per client SSL_CTX: the last session per upstream host, for resumption. */
struct tls_sess_cache {
	struct {
		char *host;
		SSL_SESSION *sess;
	} e[TLS_SESS_MAX];
	size_t next;
};

/* Per client SSL_CTX: the system roots file, loaded at the first
 * verification (tls_verify_cb). */
struct tls_roots {
	pthread_mutex_t lock;
	char *path;
	int state;   /* 0 = not loaded yet, 1 = loaded, -1 = failed */
	char *error; /* why it failed; set once, then constant */
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_ssl_idx = -1;       /* SSL: struct tls_conn */
static int tls_ctx_ca_idx = -1;    /* server SSL_CTX: struct ca */
static int tls_ctx_sess_idx = -1;  /* client SSL_CTX: struct tls_sess_cache */
static int tls_ctx_roots_idx = -1; /* client SSL_CTX: struct tls_roots */

static void
tls_conn_free_cb(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_conn *c = ptr;

	if (c == NULL)
		return;
	free(c->host);
	free(c);
}

static void
tls_sess_cache_free_cb(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_sess_cache *sc = ptr;
	size_t i;

	if (sc == NULL)
		return;
	for (i = 0; i < TLS_SESS_MAX; i++) {
		free(sc->e[i].host);
		SSL_SESSION_free(sc->e[i].sess);
	}
	free(sc);
}

static void
tls_roots_free_cb(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_roots *r = ptr;

	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->path);
	free(r->error);
	free(r);
}

static void
tls_init_once(void)
{
	tls_ssl_idx =
	    SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_conn_free_cb);
	tls_ctx_ca_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_ctx_sess_idx = SSL_CTX_get_ex_new_index(
	    0, NULL, NULL, NULL, tls_sess_cache_free_cb);
	tls_ctx_roots_idx =
	    SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_roots_free_cb);
}

static int
tls_init(char **cause)
{
	pthread_once(&tls_once, tls_init_once);
	if (tls_ssl_idx < 0 || tls_ctx_ca_idx < 0 || tls_ctx_sess_idx < 0 ||
	    tls_ctx_roots_idx < 0) {
		*cause = xstrdup("cannot allocate OpenSSL ex_data indexes");
		return -1;
	}
	return 0;
}

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

/* The SSL's tls_conn, created on first use. */
static struct tls_conn *
tls_conn_get(SSL *ssl)
{
	struct tls_conn *c = SSL_get_ex_data(ssl, tls_ssl_idx);

	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		c->alert_received = -1;
		c->alert_sent = -1;
		if (SSL_set_ex_data(ssl, tls_ssl_idx, c) != 1) {
			free(c);
			return NULL;
		}
	}
	return c;
}

/* A malloc'd copy of host without IPv6 brackets or a trailing dot. */
static char *
host_plain(const char *host)
{
	size_t len = strlen(host);

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
		return xstrndup(host + 1, len - 2);
	if (len > 1 && host[len - 1] == '.')
		len--;
	return xstrndup(host, len);
}

static int
is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

static int
tls_common_setup(SSL_CTX *ctx, char **cause)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		return -1;
	}
	SSL_CTX_set_options(
	    ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_clear_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT);
	/* Idle keep-alive connections give their 16 KiB+ record buffers
	 * back (the bench: 116 -> 65 KiB per held connection). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

/*
 * Server side.
 */

/* The CA of a server context (tls_server_ctx_new), or NULL with *cause. */
static struct ca *
tls_server_ca(SSL *ssl, char **cause)
{
	struct ca *ca =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_ca_idx);

	*cause = NULL;
	if (ca == NULL)
		*cause = xstrdup("not a server context of tls_server_ctx_new");
	return ca;
}

/*
 * Presents the leaf for host on ssl, once per full handshake (from
 * tls_cert_cb).  The certificate goes in before the key: SSL_use_certificate
 * on an SSL that already has a key copies the key's parameters into the
 * (cached, shared) leaf's public key and checks the pair, and
 * SSL_use_PrivateKey checks it again; in this order the pair is checked
 * once.
 */
static int
tls_server_use_leaf(SSL *ssl, const char *host, char **cause)
{
	struct ca *ca;
	X509 *leaf;

	if ((ca = tls_server_ca(ssl, cause)) == NULL ||
	    (leaf = ca_leaf(ca, host, cause)) == NULL)
		return -1;
	if (SSL_use_certificate(ssl, leaf) != 1 ||
	    SSL_use_PrivateKey(ssl, ca_leaf_key(ca)) != 1) {
		*cause = xasprintf(
		    "cannot use the certificate for %s: %s", host, ssl_error());
		return -1;
	}
	return 0;
}

/*
 * Checks that there is a leaf for the SNI name (minting it if need be), so
 * that a name we cannot serve ends the handshake with unrecognized_name;
 * tls_cert_cb presents it.  On a resumption the leaf is not presented at
 * all, so it is only looked up here (a cache hit).
 */
static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct ca *ca;
	char *cause;

	if (name == NULL || *name == '\0')
		return SSL_TLSEXT_ERR_OK;
	if ((ca = tls_server_ca(ssl, &cause)) == NULL ||
	    ca_leaf(ca, name, &cause) == NULL) {
		log_warnx("TLS: SNI '%.80s': %s", name, cause);
		free(cause);
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Runs after the SNI callback when a certificate is about to be chosen (a
 * full handshake; not on a resumption): presents the leaf for the SNI name,
 * else for the fallback host of tls_server_set_host.  Without either there
 * is no certificate and the handshake fails.  1 = go on, 0 = abort.
 */
static int
tls_cert_cb(SSL *ssl, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct tls_conn *c;
	char *cause;

	if (name == NULL || *name == '\0') {
		c = SSL_get_ex_data(ssl, tls_ssl_idx);
		if (c == NULL || c->host == NULL)
			return 1;
		name = c->host;
	}
	if (tls_server_use_leaf(ssl, name, &cause) == -1) {
		log_warnx("TLS: host '%.80s': %s", name, cause);
		free(cause);
		return 0;
	}
	return 1;
}

/* Selects http/1.1 if the client offers it; otherwise no ALPN at all. */
static int
tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const size_t want = strlen(TLS_ALPN_HTTP11);
	unsigned int i = 0, n;

	while (i < inlen) {
		n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (n == want &&
		    memcmp(in + i + 1, TLS_ALPN_HTTP11, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

SSL_CTX *
tls_server_ctx_new(struct ca *ca, char **cause)
{
	SSL_CTX *ctx;

	*cause = NULL;
	if (tls_init(cause) == -1)
		return NULL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		return NULL;
	}
	if (tls_common_setup(ctx, cause) == -1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_ex_data(ctx, tls_ctx_ca_idx, ca) != 1) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb);
	SSL_CTX_set_cert_cb(ctx, tls_cert_cb, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, NULL);
	/*
	 * One TLS 1.3 ticket per full handshake instead of OpenSSL's two:
	 * each costs a session encoding, an encryption and a MAC, and a
	 * client resumes with one (HTTP clients keep one per host).
	 */
	SSL_CTX_set_num_tickets(ctx, 1);
	/*
	 * The leaf alone is the chain: the client trusts our CA as a root.
	 * Without this OpenSSL tries to build a chain from the context's
	 * (empty) store at every handshake.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_server_set_host(SSL *ssl, const char *host)
{
	struct tls_conn *c;

	if (host == NULL || (c = tls_conn_get(ssl)) == NULL)
		return -1;
	free(c->host);
	c->host = host_plain(host);
	return 0;
}

/*
 * Client side.
 */

/* Records the ServerHello version and fatal alerts of a client SSL. */
static void
tls_msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	const unsigned char *p = buf;
	struct tls_conn *c;

	if (content_type != SSL3_RT_HANDSHAKE && content_type != SSL3_RT_ALERT)
		return;
	if ((c = tls_conn_get(ssl)) == NULL)
		return;
	if (content_type == SSL3_RT_HANDSHAKE) {
		if (!write_p && len >= 6 && p[0] == SSL3_MT_SERVER_HELLO &&
		    c->server_version == 0)
			c->server_version = p[4] << 8 | p[5];
		return;
	}
	if (len < 2 || p[0] != SSL3_AL_FATAL)
		return;
	if (write_p && c->alert_sent == -1)
		c->alert_sent = p[1];
	else if (!write_p && c->alert_received == -1)
		c->alert_received = p[1];
}

/* Keeps a copy of the newest session of each upstream host.  A copy, because
 * OpenSSL marks the SSL's own session unresumable when the SSL is freed
 * without a TLS shutdown, which is how bufferevents end. */
static int
tls_new_session_cb(SSL *ssl, SSL_SESSION *orig)
{
	struct tls_sess_cache *sc =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_sess_idx);
	struct tls_conn *c = SSL_get_ex_data(ssl, tls_ssl_idx);
	SSL_SESSION *sess;
	size_t i, slot;

	if (sc == NULL || c == NULL || c->host == NULL ||
	    !SSL_SESSION_is_resumable(orig) ||
	    (sess = SSL_SESSION_dup(orig)) == NULL)
		return 0;
	slot = TLS_SESS_MAX;
	for (i = 0; i < TLS_SESS_MAX; i++)
		if (sc->e[i].host != NULL &&
		    strcmp(sc->e[i].host, c->host) == 0)
			slot = i;
	if (slot == TLS_SESS_MAX) {
		slot = sc->next;
		sc->next = (sc->next + 1) % TLS_SESS_MAX;
		free(sc->e[slot].host);
		sc->e[slot].host = xstrdup(c->host);
	}
	SSL_SESSION_free(sc->e[slot].sess);
	sc->e[slot].sess = sess;
	return 0;
}

/* Loads path (PEM certificates) into store, as SSL_CTX_load_verify_file
 * does.  0, or -1 with a cause naming what and path. */
static int
load_ca_file(
    X509_STORE *store, const char *path, const char *what, char **cause)
{
	if (access(path, R_OK) == -1) {
		*cause = xasprintf(
		    "cannot read %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (X509_STORE_load_file(store, path) != 1) {
		*cause =
		    xasprintf("cannot load %s %s: %s", what, path, ssl_error());
		return -1;
	}
	return 0;
}

/* What loading path as a CA file would refuse at once, found without parsing
 * it: a file that cannot be read or holds no PEM certificate header.  The
 * certificates themselves are parsed when they are loaded. */
static int
roots_check(const char *path, char **cause)
{
	char *data;
	size_t len;
	int n;

	if ((data = file_read(path, &len)) == NULL) {
		*cause = xasprintf("cannot read the system roots %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = ca_pem_certs(data, len, 1);
	free(data);
	if (n == 0) {
		*cause = xasprintf(
		    "cannot load the system roots %s: no PEM certificate",
		    path);
		return -1;
	}
	return 0;
}

/* Loads the system roots into store the first time it is called; later
 * calls return what the first one did.  0, or -1 with r->error set. */
static int
roots_load(struct tls_roots *r, X509_STORE *store)
{
	int rc;

	pthread_mutex_lock(&r->lock);
	if (r->state == 0) {
		if (X509_STORE_load_file(store, r->path) == 1) {
			r->state = 1;
		} else {
			r->state = -1;
			r->error = xasprintf("cannot load the system roots "
			                     "%s: %s",
			    r->path, ssl_error());
			log_warnx("TLS: %s", r->error);
		}
		ERR_clear_error();
	}
	rc = r->state == 1 ? 0 : -1;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Verifies an upstream's chain, loading the system roots first if this is
 * the context's first verification.  If they cannot be loaded the chain
 * fails to verify, and tls_client_failure names the cause. */
static int
tls_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	struct tls_roots *r = arg;
	struct tls_conn *c;
	SSL *ssl;

	if (roots_load(r, X509_STORE_CTX_get0_store(xs)) == -1) {
		ssl = X509_STORE_CTX_get_ex_data(
		    xs, SSL_get_ex_data_X509_STORE_CTX_idx());
		if (ssl != NULL && (c = tls_conn_get(ssl)) != NULL)
			c->roots_error = r->error;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	return X509_verify_cert(xs);
}

SSL_CTX *
tls_client_ctx_new(
    const char *system_roots, const struct strlist *extra, char **cause)
{
	static const unsigned char alpn[] = "\x08" TLS_ALPN_HTTP11;
	struct tls_sess_cache *sc;
	struct tls_roots *rt;
	SSL_CTX *ctx;
	char *roots = ca_system_roots_path(system_roots);
	size_t i;

	*cause = NULL;
	if (tls_init(cause) == -1) {
		free(roots);
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		free(roots);
		return NULL;
	}
	if (tls_common_setup(ctx, cause) == -1)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (roots_check(roots, cause) == -1)
		goto fail;
	rt = xcalloc(1, sizeof(*rt));
	pthread_mutex_init(&rt->lock, NULL);
	rt->path = roots;
	roots = NULL;
	if (SSL_CTX_set_ex_data(ctx, tls_ctx_roots_idx, rt) != 1) {
		tls_roots_free_cb(NULL, rt, NULL, 0, 0, NULL);
		*cause = xasprintf("TLS setup: %s", ssl_error());
		goto fail;
	}
	SSL_CTX_set_cert_verify_callback(ctx, tls_verify_cb, rt);
	for (i = 0; extra != NULL && i < extra->n; i++)
		if (load_ca_file(SSL_CTX_get_cert_store(ctx), extra->v[i],
		        "the upstream CA file", cause) == -1)
			goto fail;
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		goto fail;
	}
	sc = xcalloc(1, sizeof(*sc));
	if (SSL_CTX_set_ex_data(ctx, tls_ctx_sess_idx, sc) != 1) {
		free(sc);
		*cause = xasprintf("TLS setup: %s", ssl_error());
		goto fail;
	}
	SSL_CTX_set_session_cache_mode(
	    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session_cb);
	SSL_CTX_set_msg_callback(ctx, tls_msg_cb);
	free(roots);
	return ctx;
fail:
	free(roots);
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_client_check(
    const char *system_roots, const struct strlist *extra, char **cause)
{
	X509_STORE *store;
	char *roots = ca_system_roots_path(system_roots);
	size_t i;
	int rc;

	*cause = NULL;
	rc = roots_check(roots, cause);
	free(roots);
	if (rc == -1 || extra == NULL || extra->n == 0)
		return rc;
	/* The same loader as tls_client_ctx_new, into a store thrown away:
	 * the files are small, and what it refuses the context would. */
	if ((store = X509_STORE_new()) == NULL) {
		*cause = xasprintf("TLS setup: %s", ssl_error());
		return -1;
	}
	for (i = 0; rc == 0 && i < extra->n; i++)
		rc = load_ca_file(
		    store, extra->v[i], "the upstream CA file", cause);
	X509_STORE_free(store);
	return rc;
}

/* Offers sess for resumption on ssl, as a copy: OpenSSL marks the session
 * of a TLS 1.3 client unresumable once its handshake completes (tickets
 * are meant for one use), and the cached one, given to every new
 * connection to the host until the next ticket replaces it, would then be
 * refused to them all: each would make a full handshake, with a copy of
 * the upstream's chain parsed and verified per connection. */
static void
tls_resume(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION *copy;

	if (!SSL_SESSION_is_resumable(sess) ||
	    (copy = SSL_SESSION_dup(sess)) == NULL)
		return;
	SSL_set_session(ssl, copy);
	SSL_SESSION_free(copy);
}

int
tls_client_set_host(SSL *ssl, const char *host)
{
	struct tls_sess_cache *sc;
	struct tls_conn *c;
	char *h;
	size_t i;

	if (host == NULL || *host == '\0' || (c = tls_conn_get(ssl)) == NULL)
		return -1;
	h = host_plain(host);
	if (is_ip_literal(h)) {
		/* RFC 6066: no SNI for addresses; match an iPAddress SAN. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h) != 1)
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(ssl, h) != 1 ||
		    SSL_set1_host(ssl, h) != 1)
			goto fail;
		SSL_set_hostflags(ssl,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
		        X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	}
	free(c->host);
	c->host = h;
	sc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_sess_idx);
	for (i = 0; sc != NULL && i < TLS_SESS_MAX; i++)
		if (sc->e[i].host != NULL && strcmp(sc->e[i].host, h) == 0 &&
		    sc->e[i].sess != NULL)
			tls_resume(ssl, sc->e[i].sess);
	return 0;
fail:
	ERR_clear_error();
	free(h);
	return -1;
}

/* The DNS names of a certificate ("a, b, c"; the CN if it has none). */
static void
cert_names(X509 *x, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	struct strbuf sb;
	int i, n;

	strbuf_init(&sb);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
	for (i = 0; i < n && i < 8; i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS && g->type != GEN_IPADD)
			continue;
		if (sb.len > 0)
			strbuf_adds(&sb, ", ");
		if (g->type == GEN_DNS)
			strbuf_add(&sb, g->d.dNSName->data,
			    (size_t)g->d.dNSName->length);
		else if (g->d.iPAddress->length == 4)
			strbuf_addf(&sb, "%d.%d.%d.%d", g->d.iPAddress->data[0],
			    g->d.iPAddress->data[1], g->d.iPAddress->data[2],
			    g->d.iPAddress->data[3]);
		else
			strbuf_adds(&sb, "an IPv6 address");
	}
	if (n > 8)
		strbuf_adds(&sb, ", ...");
	GENERAL_NAMES_free(gens);
	if (sb.len == 0) {
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		        NID_commonName, cn, sizeof(cn)) > 0)
			strbuf_addf(&sb, "CN %s", cn);
		else
			strbuf_adds(&sb, "no name");
	}
	snprintf(buf, len, "%s", sb.data);
	strbuf_free(&sb);
}

static const char *
version_name(int v)
{
	switch (v) {
	case SSL3_VERSION:
		return "SSL 3.0";
	case TLS1_VERSION:
		return "TLS 1.0";
	case TLS1_1_VERSION:
		return "TLS 1.1";
	default:
		return "an old protocol";
	}
}

const char *
tls_client_failure(SSL *ssl, char *buf, size_t len)
{
	struct tls_conn *c = SSL_get_ex_data(ssl, tls_ssl_idx);
	STACK_OF(X509) * chain;
	X509 *peer = NULL;
	unsigned long e;
	long v = SSL_get_verify_result(ssl);
	char names[512];
	int reason;

	if (v != X509_V_OK && c != NULL && c->roots_error != NULL) {
		snprintf(buf, len, "%s", c->roots_error);
		return buf;
	}
	if (v != X509_V_OK) {
		switch (v) {
		case X509_V_ERR_CERT_HAS_EXPIRED:
			snprintf(buf, len, "certificate has expired");
			break;
		case X509_V_ERR_CERT_NOT_YET_VALID:
			snprintf(buf, len, "certificate is not yet valid");
			break;
		case X509_V_ERR_HOSTNAME_MISMATCH:
		case X509_V_ERR_IP_ADDRESS_MISMATCH:
			chain = SSL_get_peer_cert_chain(ssl);
			if (chain != NULL && sk_X509_num(chain) > 0)
				peer = sk_X509_value(chain, 0);
			if (peer != NULL)
				cert_names(peer, names, sizeof(names));
			else
				snprintf(names, sizeof(names), "another name");
			snprintf(buf, len,
			    "hostname mismatch (certificate is for %s)", names);
			break;
		case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
			snprintf(buf, len, "self-signed certificate");
			break;
		case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
			snprintf(buf, len,
			    "self-signed certificate in the "
			    "chain (unknown root CA)");
			break;
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
		case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
			snprintf(buf, len,
			    "unable to get local issuer "
			    "certificate (unknown CA)");
			break;
		case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
			snprintf(buf, len,
			    "unable to verify the first "
			    "certificate (incomplete chain)");
			break;
		case X509_V_ERR_CERT_REVOKED:
			snprintf(buf, len, "certificate has been revoked");
			break;
		default:
			snprintf(buf, len, "certificate verify failed: %s",
			    X509_verify_cert_error_string(v));
			break;
		}
		return buf;
	}
	if (c != NULL && c->server_version != 0 &&
	    c->server_version < TLS1_2_VERSION) {
		snprintf(buf, len,
		    "protocol version too old (server offers "
		    "only %s)",
		    version_name(c->server_version));
		return buf;
	}
	if (c != NULL && c->alert_received != -1) {
		switch (c->alert_received) {
		case SSL_AD_PROTOCOL_VERSION:
			snprintf(buf, len,
			    "protocol version too old (server "
			    "does not offer TLS 1.2 or 1.3)");
			break;
		case SSL_AD_HANDSHAKE_FAILURE:
			snprintf(buf, len,
			    "handshake failure (no cipher "
			    "suite in common with the server)");
			break;
		case SSL_AD_NO_APPLICATION_PROTOCOL:
			snprintf(buf, len, "server refuses ALPN http/1.1");
			break;
		default:
			snprintf(buf, len, "server sent TLS alert: %s",
			    SSL_alert_desc_string_long(c->alert_received));
			break;
		}
		return buf;
	}
	if ((e = ERR_peek_error()) != 0) {
		reason = ERR_GET_REASON(e);
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    reason == SSL_R_WRONG_VERSION_NUMBER)
			snprintf(buf, len,
			    "not a TLS server (wrong version "
			    "number)");
		else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    (reason == SSL_R_UNSUPPORTED_PROTOCOL ||
		        reason == SSL_R_VERSION_TOO_LOW))
			snprintf(buf, len,
			    "protocol version too old (server "
			    "does not offer TLS 1.2 or 1.3)");
		else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			snprintf(buf, len,
			    "connection closed during the TLS "
			    "handshake");
		else
			snprintf(buf, len, "TLS handshake failed: %s",
			    ERR_reason_error_string(e) != NULL
			        ? ERR_reason_error_string(e)
			        : "unknown error");
		return buf;
	}
	if (c != NULL && c->alert_sent != -1) {
		snprintf(buf, len, "TLS handshake failed (sent alert: %s)",
		    SSL_alert_desc_string_long(c->alert_sent));
		return buf;
	}
	snprintf(buf, len, "TLS handshake failed (connection closed)");
	return buf;
}
