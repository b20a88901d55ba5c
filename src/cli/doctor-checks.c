/*
 * doctor-checks: the layers `halton-meter doctor` walks, one function per
 * check, listed in doctor_checks[] in the order they print.
 *
 * A check reads; it never changes the machine.  What `--fix` may repair
 * (the bundle, certifi patches, the daemon) is only noted in struct doctor
 * and applied by doctor_apply_fixes().
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cJSON.h"
#include "halton/ca.h"
#include "halton/certifi.h"
#include "halton/doctor.h"
#include "halton/exec.h"
#include "halton/healthz.h"
#include "halton/intercept.h"
#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/rcfile.h"
#include "halton/store.h"
#include "halton/xmalloc.h"

#define DOCTOR_HOST    INTERCEPT_DOCTOR_HOST
#define MAX_ANSWER     65536
#define LOG_TAIL_BYTES 65536

extern char **environ;

/* ------------------------------------------------------------ results */

const char *
doctor_status_name(enum doctor_status s)
{
	switch (s) {
	case DOCTOR_OK:
		return "ok";
	case DOCTOR_WARN:
		return "warning";
	case DOCTOR_FAIL:
		return "failure";
	}
	return "?";
}

static struct doctor_result *
add_va(struct doctor *d, enum doctor_status s, const char *layer,
    const char *fix, const char *fmt, va_list ap)
{
	struct doctor_result *r;
	struct strbuf sb;
	va_list cp;
	int n;

	d->v = xreallocarray(d->v, d->n + 1, sizeof(*d->v));
	r = &d->v[d->n++];
	memset(r, 0, sizeof(*r));
	r->status = s;
	r->layer = layer;
	strbuf_init(&sb);
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n > 0) {
		char *buf = xmalloc((size_t)n + 1);

		vsnprintf(buf, (size_t)n + 1, fmt, ap);
		strbuf_add(&sb, buf, (size_t)n);
		free(buf);
	}
	r->detail = strbuf_detach(&sb, NULL);
	if (s != DOCTOR_OK && fix != NULL)
		r->fix = xstrdup(fix);
	return r;
}

void
doctor_add(struct doctor *d, enum doctor_status s, const char *layer,
    const char *fix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)add_va(d, s, layer, fix, fmt, ap);
	va_end(ap);
}

/* The same, returning the result (to mark it top or add notes). */
static struct doctor_result *add_r(struct doctor *d, enum doctor_status s,
    const char *layer, const char *fix, const char *fmt, ...) LOG_PRINTF(5, 6);

static struct doctor_result *
add_r(struct doctor *d, enum doctor_status s, const char *layer,
    const char *fix, const char *fmt, ...)
{
	struct doctor_result *r;
	va_list ap;

	va_start(ap, fmt);
	r = add_va(d, s, layer, fix, fmt, ap);
	va_end(ap);
	return r;
}

const struct doctor_result *
doctor_first_failure(const struct doctor *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].status == DOCTOR_FAIL && d->v[i].top)
			return &d->v[i];
	for (i = 0; i < d->n; i++)
		if (d->v[i].status == DOCTOR_FAIL)
			return &d->v[i];
	return NULL;
}

/* ------------------------------------------------------------ helpers */

/* path with the home directory shown as "~", written into buf (which is
 * returned). */
static const char *
tilde(const struct doctor *d, const char *path, char *buf, size_t len)
{
	size_t h = strlen(d->home);

	if (path != NULL && h > 1 && strncmp(path, d->home, h) == 0 &&
	    path[h] == '/') {
		snprintf(buf, len, "~%s", path + h);
		return buf;
	}
	snprintf(buf, len, "%s", path != NULL ? path : "(none)");
	return buf;
}

/* Runs a read-only command with the doctor's timeout.  0 if it exited 0;
 * r must be released either way. */
static int
query(const char *const *argv, struct exec_result *r)
{
	return exec_run(argv, DOCTOR_CMD_TIMEOUT_MS, 0, r);
}

/* The first line of s (without the newline), malloc'd. */
static char *
first_line(const char *s)
{
	size_t n;

	if (s == NULL)
		return xstrdup("");
	while (*s == '\n' || *s == '\r')
		s++;
	n = strcspn(s, "\r\n");
	return xstrndup(s, n);
}

/* The last non-empty line of s, malloc'd. */
static char *
last_line(const char *s)
{
	const char *end, *b;

	if (s == NULL)
		return xstrdup("");
	end = s + strlen(s);
	while (
	    end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	b = end;
	while (b > s && b[-1] != '\n')
		b--;
	return xstrndup(b, (size_t)(end - b));
}

/* Reads every certificate of a PEM file: *count gets how many, *has_ca
 * whether one of them is ca.  -1 if the file cannot be opened. */
static int
pem_scan(const char *path, X509 *ca, int *count, int *has_ca)
{
	BIO *b;
	X509 *x;

	*count = 0;
	*has_ca = 0;
	if ((b = BIO_new_file(path, "r")) == NULL) {
		ERR_clear_error();
		return -1;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		(*count)++;
		if (ca != NULL && X509_cmp(x, ca) == 0)
			*has_ca = 1;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(b);
	return 0;
}

static X509 *
pem_first_cert(const char *path)
{
	BIO *b;
	X509 *x;

	if ((b = BIO_new_file(path, "r")) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	ERR_clear_error();
	BIO_free(b);
	return x;
}

static time_t
mtime_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mtime : 0;
}

/* host:port of a proxy URL ("http://[user@]host:port[/]"), malloc'd, or
 * NULL when it is not an http URL. */
static char *
proxy_hostport(const char *url)
{
	const char *p = url, *at, *end;

	if (url == NULL)
		return NULL;
	if (str_has_prefix(p, "http://"))
		p += 7;
	else if (strstr(p, "://") != NULL)
		return NULL;
	end = p + strcspn(p, "/");
	for (at = p; at < end; at++)
		if (*at == '@')
			p = at + 1;
	return xstrndup(p, (size_t)(end - p));
}

/* Whether a proxy URL points at the meter's listen address. */
static int
proxy_is_ours(const struct doctor *d, const char *url)
{
	char *hp = proxy_hostport(url), *want;
	int ok;

	if (hp == NULL)
		return 0;
	want = proxy_hostport(envvars_get(&d->env, "HTTPS_PROXY"));
	ok = want != NULL && str_casecmp(hp, want) == 0;
	free(hp);
	free(want);
	return ok;
}

/* The value of name in an environment array. */
static const char *
env_lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp != NULL && *envp != NULL; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* A connected blocking TCP socket to host:port whose reads and writes
 * time out after DOCTOR_NET_TIMEOUT_MS; -1 with err filled. */
static int
tcp_connect(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL, *a;
	struct pollfd pfd;
	struct timeval tv;
	char ps[16];
	socklen_t sl;
	int fd = -1, rc, e = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(ps, sizeof(ps), "%d", port);
	if ((rc = getaddrinfo(host, ps, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (a = ai; a != NULL; a = a->ai_next) {
		if ((fd = socket(a->ai_family, SOCK_STREAM, 0)) == -1)
			continue;
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			e = 0;
		else if (errno != EINPROGRESS)
			e = errno;
		else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, DOCTOR_NET_TIMEOUT_MS) <= 0)
				e = ETIMEDOUT;
			else {
				sl = sizeof(e);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
				        &sl) == -1)
					e = errno;
			}
		}
		if (e == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd == -1) {
		snprintf(err, errlen, "%s", strerror(e != 0 ? e : EIO));
		return -1;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tv.tv_sec = DOCTOR_NET_TIMEOUT_MS / 1000;
	tv.tv_usec = (DOCTOR_NET_TIMEOUT_MS % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int
write_all(int fd, const char *s, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, s, n)) <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ------------------------------------------------------------- daemon */

void
doctor_probe(struct doctor *d)
{
	struct healthz h;
	char *cause = NULL;

	if (d->probed)
		return;
	d->probed = 1;
	if (healthz_probe(d->cfg.listen_host, d->cfg.listen_port,
	        DOCTOR_NET_TIMEOUT_MS, &h, &cause) == -1) {
		snprintf(d->health_error, sizeof(d->health_error), "%s", cause);
		free(cause);
		return;
	}
	d->answering = 1;
	if (!h.is_json) {
		snprintf(d->health_error, sizeof(d->health_error),
		    "the answer to /healthz is not halton-meter's JSON");
		return;
	}
	if (h.has_version) {
		d->is_meter = 1;
		d->health_version = xstrdup(h.version);
	} else
		snprintf(d->health_error, sizeof(d->health_error),
		    "the answer to /healthz carries no version");
	d->health_pid = h.pid;
	d->health_uptime = h.uptime_s;
	d->health_exchanges = h.exchanges;
}

static int
daemon_ok(struct doctor *d)
{
	doctor_probe(d);
	return d->answering && d->is_meter &&
	    strcmp(d->health_version, HALTON_VERSION) == 0;
}

/* ---------------------------------------------------------- round-trip */

/*
 * One TLS round-trip through the proxy: CONNECT DOCTOR_HOST:443, a TLS
 * handshake verified against cafile alone (hostname checked), GET / and
 * the daemon's status JSON back.  0, or -1 with why filled.
 */
static int
roundtrip(struct doctor *d, const char *cafile, char *why, size_t len)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct strbuf sb;
	char req[256], buf[4096], *cause = NULL;
	int fd, rc = -1, n;
	size_t got = 0;

	strbuf_init(&sb);
	if ((fd = tcp_connect(d->cfg.listen_host, d->cfg.listen_port, req,
	         sizeof(req))) == -1) {
		snprintf(why, len, "cannot connect to the proxy %s:%d: %.200s",
		    d->cfg.listen_host, d->cfg.listen_port, req);
		goto out;
	}
	snprintf(req, sizeof(req),
	    "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", DOCTOR_HOST,
	    DOCTOR_HOST);
	if (write_all(fd, req, strlen(req)) == -1) {
		snprintf(why, len, "writing CONNECT: %s", strerror(errno));
		goto out;
	}
	/* Byte by byte: the TLS handshake follows the head at once. */
	while (got < sizeof(buf) - 1) {
		if (read(fd, buf + got, 1) != 1)
			break;
		got++;
		if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	buf[got] = '\0';
	if (!str_has_prefix(buf, "HTTP/1.1 200") &&
	    !str_has_prefix(buf, "HTTP/1.0 200")) {
		char *l = first_line(buf);

		snprintf(why, len, "CONNECT %s:443 answered '%s'", DOCTOR_HOST,
		    got == 0 ? "nothing" : l);
		free(l);
		goto out;
	}
	if ((ctx = tls_client_ctx_new(cafile, NULL, &cause)) == NULL) {
		snprintf(why, len, "%s", cause);
		goto out;
	}
	if ((ssl = SSL_new(ctx)) == NULL ||
	    tls_client_set_host(ssl, DOCTOR_HOST) == -1 ||
	    SSL_set_fd(ssl, fd) != 1) {
		snprintf(why, len, "TLS setup failed");
		goto out;
	}
	if (SSL_connect(ssl) != 1) {
		char fb[256];

		snprintf(why, len, "TLS handshake: %s",
		    tls_client_failure(ssl, fb, sizeof(fb)));
		goto out;
	}
	snprintf(req, sizeof(req),
	    "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	    DOCTOR_HOST);
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0) {
		snprintf(why, len, "TLS write failed");
		goto out;
	}
	while (sb.len < MAX_ANSWER &&
	    (n = SSL_read(ssl, buf, (int)sizeof(buf))) > 0)
		strbuf_add(&sb, buf, (size_t)n);
	if (sb.len == 0 || strstr(sb.data, "\"intercepted\":true") == NULL) {
		snprintf(why, len,
		    "the doctor host did not answer with the "
		    "daemon's status");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	if (ssl != NULL)
		SSL_free(ssl);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	free(cause);
	strbuf_free(&sb);
	return rc;
}

/* ------------------------------------------------------------- checks */

/* install: the version, the config (file:line on error), the platform and
 * the mode init recorded in the manifest. */
static void
check_install(struct doctor *d)
{
	char t[512];

	if (d->config_cause != NULL) {
		char *fix = xasprintf("correct that line of %s, then: "
		                      "halton-meter config --check",
		    d->config_path);

		doctor_add(d, DOCTOR_FAIL, "install", fix,
		    "halton-meter %s; the config does not parse: %s",
		    HALTON_VERSION, d->config_cause);
		free(fix);
	}
	if (d->platform == NULL) {
		doctor_add(d, DOCTOR_FAIL, "install",
		    "unset HALTON_METER_PLATFORM", "%s", d->platform_cause);
		return;
	}
	if (d->manifest_cause != NULL) {
		doctor_add(d, DOCTOR_FAIL, "install", d->init_cmd,
		    "halton-meter %s; the manifest is unreadable: %s",
		    HALTON_VERSION, d->manifest_cause);
		return;
	}
	if (!d->manifest_found) {
		doctor_add(d, DOCTOR_WARN, "install", "halton-meter init",
		    "halton-meter %s (%s); init has not run here (no %s)",
		    HALTON_VERSION, d->platform->name,
		    tilde(d, d->state_dir, t, sizeof(t)));
		return;
	}
	if (d->config_cause == NULL)
		doctor_add(d, DOCTOR_OK, "install", NULL,
		    "halton-meter %s (%s), mode %s, config %s", HALTON_VERSION,
		    d->platform->name, d->mode,
		    d->cfg.path != NULL ? tilde(d, d->cfg.path, t, sizeof(t))
		                        : "(defaults)");
}

/* A host the pattern matches, to ask the name constraints about it. */
static char *
pattern_sample(const char *pat)
{
	struct strbuf sb;
	const char *p;

	strbuf_init(&sb);
	for (p = pat; *p != '\0'; p++) {
		if (*p == '*')
			strbuf_adds(&sb, "x");
		else
			strbuf_addc(&sb, *p);
	}
	return strbuf_detach(&sb, NULL);
}

static void
asn1_date(const ASN1_TIME *at, char *buf, size_t len)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(at, &tm) != 1)
		snprintf(buf, len, "(unknown date)");
	else
		strftime(buf, len, "%Y-%m-%d", &tm);
}

/* CA: the key file exists and loads, the key matches the certificate, it
 * is valid now and for DOCTOR_CA_WARN_DAYS more, the key is 0600 and the
 * state dir 0700, the name constraints permit every intercept pattern and
 * the doctor host, and ca.pem is the same certificate. */
static void
check_ca(struct doctor *d)
{
	char t[512], t2[512], date[32], *fixnew, *fix;
	struct intercept_list *il;
	struct strbuf miss;
	struct stat st;
	X509 *cert, *copy;
	EVP_PKEY *key;
	time_t soon;
	size_t i;
	int bad = 0, n, constrained;
	void *nc;

	fixnew =
	    xasprintf("mv %s %s.old && %s", tilde(d, d->ca_dir, t, sizeof(t)),
	        tilde(d, d->ca_dir, t2, sizeof(t2)), d->init_cmd);
	if (!file_exists(d->ca_key_file)) {
		doctor_add(d, DOCTOR_FAIL, "CA", d->init_cmd,
		    "no CA: %s is missing",
		    tilde(d, d->ca_key_file, t, sizeof(t)));
		goto out;
	}
	if (d->ca == NULL) {
		doctor_add(d, DOCTOR_FAIL, "CA", fixnew, "%s", d->ca_cause);
		goto out;
	}
	cert = ca_cert(d->ca);
	key = ca_key(d->ca);
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		doctor_add(d, DOCTOR_FAIL, "CA", fixnew,
		    "the key in %s does not match its certificate",
		    tilde(d, d->ca_key_file, t, sizeof(t)));
		bad++;
	}
	asn1_date(X509_get0_notAfter(cert), date, sizeof(date));
	soon = time(NULL) + (time_t)DOCTOR_CA_WARN_DAYS * 86400;
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		doctor_add(d, DOCTOR_FAIL, "CA", fixnew,
		    "the CA expired on %s: every client rejects the "
		    "meter's certificates",
		    date);
		bad++;
	} else if (X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0) {
		doctor_add(d, DOCTOR_WARN, "CA", fixnew,
		    "the CA expires on %s (in less than %d days)", date,
		    DOCTOR_CA_WARN_DAYS);
		bad++;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		doctor_add(d, DOCTOR_FAIL, "CA", fixnew,
		    "the CA is not valid yet (is the clock right?)");
		bad++;
	}
	if (stat(d->ca_key_file, &st) == 0 && (st.st_mode & 077) != 0) {
		fix = xasprintf(
		    "chmod 600 %s", tilde(d, d->ca_key_file, t, sizeof(t)));
		doctor_add(d, DOCTOR_WARN, "CA", fix,
		    "%s (the CA key) has mode %04o; it must be 0600",
		    tilde(d, d->ca_key_file, t, sizeof(t)),
		    (unsigned)(st.st_mode & 07777));
		free(fix);
		bad++;
	}
	if (stat(d->state_dir, &st) == 0 && (st.st_mode & 077) != 0) {
		fix = xasprintf(
		    "chmod 700 %s", tilde(d, d->state_dir, t, sizeof(t)));
		doctor_add(d, DOCTOR_WARN, "CA", fix,
		    "%s has mode %04o; it must be 0700",
		    tilde(d, d->state_dir, t, sizeof(t)),
		    (unsigned)(st.st_mode & 07777));
		free(fix);
		bad++;
	}
	nc = X509_get_ext_d2i(cert, NID_name_constraints, NULL, NULL);
	constrained = nc != NULL;
	if (nc != NULL)
		NAME_CONSTRAINTS_free(nc);
	ERR_clear_error();
	strbuf_init(&miss);
	il = intercept_list_new(&d->cfg.intercept);
	n = (int)intercept_list_count(il);
	for (i = 0; i <= intercept_list_count(il); i++) {
		const char *pat = i < intercept_list_count(il)
		    ? intercept_list_at(il, i)
		    : DOCTOR_HOST;
		char *sample = pattern_sample(pat);

		if (!ca_permits(d->ca, sample))
			strbuf_addf(
			    &miss, "%s%s", miss.len > 0 ? ", " : "", pat);
		free(sample);
	}
	intercept_list_free(il);
	if (miss.len > 0) {
		doctor_add(d, DOCTOR_FAIL, "CA", fixnew,
		    "the CA's name constraints do not cover %s (those "
		    "hosts are tunnelled, not metered); a new CA covers "
		    "the config's intercept list",
		    miss.data);
		bad++;
	}
	strbuf_free(&miss);
	if ((copy = pem_first_cert(d->ca_pem)) == NULL ||
	    X509_cmp(copy, cert) != 0) {
		fix = xasprintf("cp %s/mitmproxy-ca-cert.pem %s",
		    tilde(d, d->ca_dir, t, sizeof(t)),
		    tilde(d, d->ca_pem, t2, sizeof(t2)));
		doctor_add(d, DOCTOR_FAIL, "CA", fix,
		    copy == NULL ? "%s is missing or unreadable "
		                   "(NODE_EXTRA_CA_CERTS points at it)"
		                 : "%s is not the CA of mitmproxy-ca.pem "
		                   "(Node trusts another CA)",
		    tilde(d, d->ca_pem, t2, sizeof(t2)));
		free(fix);
		bad++;
	}
	X509_free(copy);
	if (bad == 0)
		doctor_add(d, DOCTOR_OK, "CA", NULL,
		    "%s: key matches, valid until %s, %s",
		    tilde(d, d->ca_key_file, t, sizeof(t)), date,
		    constrained ? (n > 0 ? "name-constrained to the "
		                           "intercepted hosts"
		                         : "name-constrained")
		                : "unconstrained");
out:
	free(fixnew);
}

/* bundle: bundle.pem holds the current CA and at least one system root,
 * is not older than the CA, and not older than the system roots file.
 * Any failure asks --fix to rebuild it. */
static void
check_bundle(struct doctor *d)
{
	char t[512], *roots;
	int count, has_ca, nroots, bad = 0;
	const char *fix = "halton-meter doctor --fix";

	tilde(d, d->bundle, t, sizeof(t));
	if (d->ca == NULL) {
		doctor_add(d, DOCTOR_WARN, "bundle", d->init_cmd,
		    "%s: not checked (no CA)", t);
		return;
	}
	if (pem_scan(d->bundle, ca_cert(d->ca), &count, &has_ca) == -1) {
		doctor_add(d, DOCTOR_FAIL, "bundle", fix,
		    "%s is missing (SSL_CERT_FILE and the other CA "
		    "variables point at it)",
		    t);
		d->want_bundle = 1;
		return;
	}
	nroots = count - has_ca;
	if (!has_ca) {
		doctor_add(d, DOCTOR_FAIL, "bundle", fix,
		    "%s does not contain the current CA (Python, curl and "
		    "git reject the meter's certificates)",
		    t);
		bad++;
	}
	if (nroots == 0) {
		doctor_add(d, DOCTOR_FAIL, "bundle", fix,
		    "%s holds no system roots: every connection that does "
		    "not go through the meter fails",
		    t);
		bad++;
	}
	if (has_ca && mtime_of(d->bundle) < mtime_of(d->ca_key_file)) {
		doctor_add(d, DOCTOR_FAIL, "bundle", fix,
		    "%s is older than the CA", t);
		bad++;
	}
	roots = ca_system_roots_path(NULL);
	/* A newer roots file only matters when its roots differ from the
	 * bundle's: `init --full` on Linux puts the CA itself into the
	 * system bundle, which touches it without adding a root. */
	if (bad == 0 && mtime_of(roots) > mtime_of(d->bundle)) {
		int rcount = 0, rhas = 0;

		if (pem_scan(roots, d->ca != NULL ? ca_cert(d->ca) : NULL,
		        &rcount, &rhas) == 0 &&
		    rcount - rhas != nroots) {
			doctor_add(d, DOCTOR_WARN, "bundle", fix,
			    "%s changed after %s was written (%d system "
			    "roots now, %d in the bundle)",
			    roots, t, rcount - rhas, nroots);
			bad++;
		}
	}
	if (bad > 0)
		d->want_bundle = 1;
	else
		doctor_add(d, DOCTOR_OK, "bundle", NULL,
		    "%s: the CA + %d system roots (from %s)", t, nroots, roots);
	free(roots);
}

static char *
venvs_dir(const struct doctor *d)
{
	const char *ph = getenv("PIPX_HOME");

	if (ph != NULL && ph[0] == '/')
		return xasprintf("%s/venvs", ph);
	return xasprintf("%s/%s", d->home, d->platform->pipx_venvs);
}

/* Whether the certifi bundle at path holds a block with the current CA:
 * 1 current, 0 no block, 2 a block with another CA, -1 unreadable. */
static int
certifi_state(const struct doctor *d, const char *path)
{
	size_t len, start, stop;
	char *text, *blk;
	int rc;

	if ((text = file_read(path, &len)) == NULL)
		return -1;
	if (rcfile_block_find(
	        text, len, &rcfile_certifi_markers, &start, &stop) != 1)
		rc = 0;
	else {
		blk = xstrndup(text + start, stop - start);
		rc = d->ca_text != NULL && strstr(blk, d->ca_text) != NULL ? 1
		                                                           : 2;
		free(blk);
	}
	free(text);
	return rc;
}

static void
certifi_one(struct doctor *d, const char *python, const char *path)
{
	cJSON *e = manifest_find(d->m, "certifi", path);
	char t[512], *fix;
	int st = certifi_state(d, path);

	tilde(d, path, t, sizeof(t));
	if (st == 1) {
		doctor_add(d, DOCTOR_OK, "certifi", NULL,
		    "%s: %s holds the current CA", python, t);
		return;
	}
	if (e == NULL) {
		fix = strcmp(python, "python3") == 0
		    ? xasprintf("%s", d->init_cmd)
		    : xasprintf("%s --python %s", d->init_cmd, python);
		doctor_add(d, DOCTOR_WARN, "certifi", fix,
		    "%s: %s is not patched (SDKs that call certifi.where() "
		    "reject the meter)",
		    python, t);
		free(fix);
		return;
	}
	if (st == -1) {
		doctor_add(d, DOCTOR_WARN, "certifi", d->init_cmd,
		    "%s: %s (patched by init) no longer exists", python, t);
		return;
	}
	if (!strlist_contains(&d->want_certifi, path))
		strlist_add(&d->want_certifi, path);
	doctor_add(d, DOCTOR_FAIL, "certifi", "halton-meter doctor --fix",
	    st == 0 ? "%s: %s was replaced by an upgrade (the halton-meter "
	              "block is gone: pip upgraded certifi)"
	            : "%s: %s holds an old CA",
	    python, t);
}

/* certifi: every bundle the interpreters report (found as init finds
 * them, plus the --python ones of the manifest), then the bundles the
 * manifest lists that no interpreter reports any more.  A failure only
 * for bundles init patched; others are warnings. */
static void
check_certifi(struct doctor *d)
{
	struct certifi_list l;
	const char **py;
	size_t i, n = 0, np = 0, cnt = manifest_count(d->m);
	char *venvs, t[512];
	struct strlist seen;

	if (d->platform == NULL)
		return;
	memset(&seen, 0, sizeof(seen));
	py = xcalloc(cnt + 1, sizeof(*py));
	for (i = 0; i < cnt; i++) {
		cJSON *e = manifest_at(d->m, i);
		const char *k = manifest_str(e, "kind");
		const char *p = manifest_str(e, "python");

		if (k != NULL && strcmp(k, "certifi") == 0 && p != NULL &&
		    p[0] == '/')
			py[np++] = p;
	}
	venvs = venvs_dir(d);
	certifi_discover(&l, py, np, venvs, 0);
	for (i = 0; i < l.n; i++) {
		struct certifi_target *c = &l.v[i];

		if (c->path != NULL)
			strlist_add(&seen, c->path);
		if (c->skip != NULL) {
			doctor_add(d, DOCTOR_OK, "certifi", NULL,
			    "%s: %s skipped: %s", c->python,
			    c->path != NULL ? tilde(d, c->path, t, sizeof(t))
			                    : "",
			    c->skip);
			n++;
			continue;
		}
		certifi_one(d, c->python, c->path);
		n++;
	}
	/* Bundles init patched that no interpreter reports any more. */
	for (i = 0; i < cnt; i++) {
		cJSON *e = manifest_at(d->m, i);
		const char *k = manifest_str(e, "kind");
		const char *key = manifest_str(e, "key");
		const char *p = manifest_str(e, "python");

		if (k == NULL || strcmp(k, "certifi") != 0 || key == NULL ||
		    strlist_contains(&seen, key))
			continue;
		certifi_one(d, p != NULL ? p : "python", key);
		n++;
	}
	if (n == 0)
		doctor_add(d, DOCTOR_OK, "certifi", NULL,
		    "no Python interpreter with certifi found");
	certifi_list_free(&l);
	strlist_free(&seen);
	free(venvs);
	free(py);
}

/* Shells rc blocks and the per-platform session variables. */
/* The rc blocks init wrote are still there; launchctl (darwin) or the
 * environment.d file (linux) holds the current values. */
static void
check_env_files(struct doctor *d)
{
	size_t i, cnt = manifest_count(d->m);
	char t[512];

	for (i = 0; i < cnt; i++) {
		cJSON *e = manifest_at(d->m, i);
		const char *k = manifest_str(e, "kind");
		const char *path = manifest_str(e, "key");
		size_t len, a, b;
		char *text;
		int found;

		if (k == NULL || strcmp(k, "rc") != 0 || path == NULL)
			continue;
		text = file_read(path, &len);
		found = text != NULL &&
		    rcfile_block_find(
		        text, len, &rcfile_shell_markers, &a, &b) == 1;
		free(text);
		if (!found)
			doctor_add(d, DOCTOR_FAIL, "env", d->init_cmd,
			    "the halton-meter block is gone from %s (new %s "
			    "shells do not get the variables)",
			    tilde(d, path, t, sizeof(t)),
			    manifest_str(e, "shell") != NULL
			        ? manifest_str(e, "shell")
			        : "");
	}
	if (strcmp(d->platform->name, "darwin") == 0) {
		struct strbuf miss;

		strbuf_init(&miss);
		for (i = 0; i < d->env.n; i++) {
			const char *argv[] = {
			    "launchctl", "getenv", d->env.v[i].name, NULL};
			struct exec_result r;
			char *v;

			(void)query(argv, &r);
			v = first_line(r.out);
			if (strcmp(v, d->env.v[i].value) != 0) {
				if (miss.len == 0) {
					const char *set[] = {"launchctl",
					    "setenv", d->env.v[i].name,
					    d->env.v[i].value, NULL};
					char *q = exec_quote_argv(set);

					doctor_add(d, DOCTOR_FAIL, "env", q,
					    "launchctl getenv %s is %s%s%s "
					    "(apps started from the Dock do "
					    "not get it)",
					    d->env.v[i].name,
					    v[0] == '\0' ? "empty" : "'",
					    v[0] == '\0' ? "" : v,
					    v[0] == '\0' ? "" : "'");
					free(q);
				}
				strbuf_addf(&miss, "%s ", d->env.v[i].name);
			}
			free(v);
			exec_result_free(&r);
		}
		if (miss.len == 0)
			doctor_add(d, DOCTOR_OK, "env", NULL,
			    "launchctl holds the %zu variables for new apps",
			    d->env.n);
		strbuf_free(&miss);
	} else {
		const char *x = getenv("XDG_CONFIG_HOME");
		char *path = x != NULL && x[0] == '/'
		    ? xasprintf("%s/%s", x, PLATFORM_LINUX_ENVD)
		    : xasprintf("%s/.config/%s", d->home, PLATFORM_LINUX_ENVD);
		char *body = envvars_format(&d->env, ENVVARS_ENVIRONMENT_D);
		char *text = file_read(path, NULL);

		if (text == NULL || strstr(text, body) == NULL)
			doctor_add(d, DOCTOR_FAIL, "env", d->init_cmd,
			    "%s %s (apps of the next session do not get "
			    "the variables)",
			    tilde(d, path, t, sizeof(t)),
			    text == NULL ? "is missing"
			                 : "does not hold the current values");
		else
			doctor_add(d, DOCTOR_OK, "env", NULL,
			    "%s holds the %zu variables",
			    tilde(d, path, t, sizeof(t)), d->env.n);
		free(text);
		free(body);
		free(path);
	}
}

/* env: each variable of the set in this process (missing: a warning in
 * env-only mode, a failure in --apps/--full; pointing elsewhere: a
 * failure), then the rc blocks and the session variables. */
static void
check_env(struct doctor *d)
{
	enum doctor_status missing_st =
	    d->level >= MANIFEST_APPS ? DOCTOR_FAIL : DOCTOR_WARN;
	struct strbuf miss;
	size_t i;
	int bad = 0;

	strbuf_init(&miss);
	for (i = 0; i < d->env.n; i++) {
		const char *name = d->env.v[i].name;
		const char *want = d->env.v[i].value;
		const char *have = getenv(name);
		char *fix;

		if (have == NULL || have[0] == '\0') {
			strbuf_addf(
			    &miss, "%s%s", miss.len > 0 ? ", " : "", name);
			continue;
		}
		if (strcmp(have, want) == 0)
			continue;
		fix = xasprintf("export %s='%s'  # and remove what sets "
		                "it in your shell's startup files",
		    name, want);
		if (strstr(name, "PROXY") != NULL &&
		    strcmp(name, "NO_PROXY") != 0 &&
		    strcmp(name, "no_proxy") != 0) {
			if (!proxy_is_ours(d, have)) {
				doctor_add(d, DOCTOR_FAIL, "env", fix,
				    "%s=%s points elsewhere, not at the "
				    "meter (%s)",
				    name, have, want);
				bad++;
			}
		} else if (strcmp(name, "NODE_EXTRA_CA_CERTS") == 0 ||
		    strstr(name, "CA") != NULL ||
		    strcmp(name, "SSL_CERT_FILE") == 0) {
			int count, has_ca;

			if (!file_exists(have)) {
				doctor_add(d, DOCTOR_FAIL, "env", fix,
				    "%s=%s: no such file", name, have);
				bad++;
			} else if (d->ca != NULL &&
			    (pem_scan(have, ca_cert(d->ca), &count, &has_ca) ==
			            -1 ||
			        !has_ca)) {
				doctor_add(d, DOCTOR_FAIL, "env", fix,
				    "%s=%s does not contain the CA", name,
				    have);
				bad++;
			} else {
				doctor_add(d, DOCTOR_WARN, "env", fix,
				    "%s=%s, not %s", name, have, want);
				bad++;
			}
		} else {
			doctor_add(d, DOCTOR_WARN, "env", fix, "%s=%s, not %s",
			    name, have, want);
			bad++;
		}
		free(fix);
	}
	if (miss.len > 0) {
		doctor_add(d, missing_st, "env",
		    d->level >= MANIFEST_APPS
		        ? "open a new terminal (or: eval \"$(halton-meter "
		          "env)\")"
		        : "halton-meter run -- COMMAND (or: eval "
		          "\"$(halton-meter env)\")",
		    "not in this shell: %s", miss.data);
		bad++;
	}
	strbuf_free(&miss);
	if (bad == 0)
		doctor_add(d, DOCTOR_OK, "env", NULL,
		    "this shell has the %zu variables", d->env.n);
	if (d->level >= MANIFEST_APPS && d->platform != NULL)
		check_env_files(d);
}

static void
check_trust_darwin(struct doctor *d)
{
	const char *argv[] = {"security", "verify-cert", "-l", "-L", "-R",
	    "offline", "-p", "ssl", "-c", d->ca_pem, NULL};
	const char *add[] = {"security", "add-trusted-cert", "-d", "-r",
	    "trustRoot", "-k", "/Library/Keychains/System.keychain", d->ca_pem,
	    NULL};
	struct exec_result r;
	char *q, *fix, *why;

	if (query(argv, &r) == 0)
		doctor_add(d, DOCTOR_OK, "trust", NULL,
		    "the System keychain trusts the CA (security "
		    "verify-cert)");
	else {
		q = exec_quote_argv(add);
		fix = xasprintf("sudo %s", q);
		why = last_line(
		    r.out != NULL && r.out[0] != '\0' ? r.out : r.err);
		doctor_add(d, DOCTOR_FAIL, "trust", fix,
		    "macOS does not trust the CA (%s): Safari, Go and "
		    "apps using the keychain reject the meter",
		    why);
		free(why);
		free(fix);
		free(q);
	}
	exec_result_free(&r);
}

static void
check_trust_linux(struct doctor *d)
{
	size_t i, cnt = manifest_count(d->m);
	char t[512];
	int n = 0;

	for (i = 0; i < cnt; i++) {
		cJSON *e = manifest_at(d->m, i);
		const char *k = manifest_str(e, "kind");
		const char *key = manifest_str(e, "key");

		if (k == NULL || key == NULL)
			continue;
		if (strcmp(k, "anchor") == 0) {
			const char *m = manifest_str(e, "method");
			X509 *x;
			int ok;

			n++;
			if (m != NULL && strcmp(m, "trust") == 0) {
				doctor_add(d, DOCTOR_OK, "trust", NULL,
				    "the CA is a p11-kit anchor");
				continue;
			}
			x = pem_first_cert(key);
			ok = x != NULL && d->ca != NULL &&
			    X509_cmp(x, ca_cert(d->ca)) == 0;
			X509_free(x);
			if (ok) {
				/* The anchor only counts once the distro tool
				 * has rebuilt the bundle OpenSSL reads. */
				int fedora = strstr(key, "ca-trust") != NULL;
				char *sysb = paths_sys(fedora
				        ? "/etc/pki/tls/certs/ca-bundle.crt"
				        : "/etc/ssl/certs/ca-certificates.crt");
				int cnt2 = 0, has = 0;

				if (pem_scan(sysb, ca_cert(d->ca), &cnt2,
				        &has) == 0 &&
				    has)
					doctor_add(d, DOCTOR_OK, "trust", NULL,
					    "the CA is in the system bundle "
					    "(%s, %d certificates)",
					    sysb, cnt2);
				else
					doctor_add(d, DOCTOR_FAIL, "trust",
					    fedora
					        ? "sudo update-ca-trust "
					          "extract"
					        : "sudo update-ca-certificates",
					    "the anchor %s is there but the "
					    "system bundle %s does not hold "
					    "the CA (the trust store was not "
					    "rebuilt)",
					    key, sysb);
				free(sysb);
			} else {
				char *fix = xasprintf(
				    "sudo install -m 0644 %s %s && sudo %s",
				    tilde(d, d->ca_pem, t, sizeof(t)), key,
				    strstr(key, "ca-trust") != NULL
				        ? "update-ca-trust extract"
				        : "update-ca-certificates");

				doctor_add(d, DOCTOR_FAIL, "trust", fix,
				    "%s %s", key,
				    file_exists(key) ? "is not the current CA"
				                     : "is missing");
				free(fix);
			}
		} else if (strcmp(k, "nss") == 0) {
			const char *nick = manifest_str(e, "nickname");
			const char *argv[] = {"certutil", "-V", "-d", key, "-u",
			    "L", "-n", nick != NULL ? nick : PLATFORM_CA_NAME,
			    NULL};
			struct exec_result r;

			n++;
			if (query(argv, &r) == 0)
				doctor_add(d, DOCTOR_OK, "trust", NULL,
				    "NSS %s trusts the CA", key);
			else {
				const char *a[] = {"certutil", "-A", "-d", key,
				    "-t", "C,,", "-n",
				    nick != NULL ? nick : PLATFORM_CA_NAME,
				    "-i", d->ca_pem, NULL};
				char *q = exec_quote_argv(a);

				doctor_add(d, DOCTOR_FAIL, "trust", q,
				    "NSS %s does not hold the CA", key);
				free(q);
			}
			exec_result_free(&r);
		} else if (strcmp(k, "java") == 0) {
			const char *kt = manifest_str(e, "keytool");
			const char *alias = manifest_str(e, "alias");
			const char *argv[] = {kt != NULL ? kt : "keytool",
			    "-list", "-keystore", key, "-storepass", "changeit",
			    "-alias", alias != NULL ? alias : PLATFORM_CA_ALIAS,
			    NULL};
			struct exec_result r;

			n++;
			if (query(argv, &r) == 0)
				doctor_add(d, DOCTOR_OK, "trust", NULL,
				    "Java %s trusts the CA", key);
			else
				doctor_add(d, DOCTOR_FAIL, "trust", d->init_cmd,
				    "Java %s does not hold the CA", key);
			exec_result_free(&r);
		}
	}
	if (n == 0)
		doctor_add(d, DOCTOR_WARN, "trust", d->init_cmd,
		    "init --full installed the CA in no system store");
}

/* trust (--full only): the macOS keychain verdict, or the Linux anchor,
 * NSS and Java entries the manifest lists. */
static void
check_trust(struct doctor *d)
{
	if (d->level < MANIFEST_FULL || d->platform == NULL)
		return;
	if (strcmp(d->platform->name, "darwin") == 0)
		check_trust_darwin(d);
	else
		check_trust_linux(d);
}

struct sysproxy {
	int known;
	int enabled;
	char host[256];
	char port[16];
};

/* macOS: what `scutil --proxy` says about HTTPS. */
static void
sysproxy_darwin(struct sysproxy *sp)
{
	const char *argv[] = {"scutil", "--proxy", NULL};
	struct exec_result r;
	char *line, *next, *v;

	memset(sp, 0, sizeof(*sp));
	if (query(argv, &r) == 0 && r.out != NULL) {
		sp->known = 1;
		for (line = r.out; line != NULL; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if ((v = strchr(line, ':')) == NULL)
				continue;
			*v++ = '\0';
			str_trim(line);
			v = str_trim(v);
			if (strcmp(line, "HTTPSEnable") == 0)
				sp->enabled = strcmp(v, "1") == 0;
			else if (strcmp(line, "HTTPSProxy") == 0)
				snprintf(sp->host, sizeof(sp->host), "%s", v);
			else if (strcmp(line, "HTTPSPort") == 0)
				snprintf(sp->port, sizeof(sp->port), "%s", v);
		}
	}
	exec_result_free(&r);
}

static char *
gsettings_get(const char *schema, const char *key)
{
	const char *argv[] = {"gsettings", "get", schema, key, NULL};
	struct exec_result r;
	char *v = NULL;

	if (query(argv, &r) == 0)
		v = first_line(r.out);
	exec_result_free(&r);
	return v;
}

/* Linux: GNOME's proxy, when gsettings answers. */
static void
sysproxy_gnome(struct sysproxy *sp)
{
	char *mode, *host = NULL, *port = NULL;

	memset(sp, 0, sizeof(*sp));
	if (!exec_in_path("gsettings") ||
	    (mode = gsettings_get("org.gnome.system.proxy", "mode")) == NULL)
		return;
	sp->known = 1;
	sp->enabled = strcmp(mode, "'manual'") == 0;
	host = gsettings_get("org.gnome.system.proxy.https", "host");
	port = gsettings_get("org.gnome.system.proxy.https", "port");
	if (host != NULL) {
		size_t n = strlen(host);

		if (n >= 2 && host[0] == '\'' && host[n - 1] == '\'')
			snprintf(sp->host, sizeof(sp->host), "%.*s",
			    (int)(n - 2), host + 1);
		else
			snprintf(sp->host, sizeof(sp->host), "%s", host);
	}
	if (port != NULL)
		snprintf(sp->port, sizeof(sp->port), "%s", port);
	free(mode);
	free(host);
	free(port);
}

/* system proxy: the danger case (the system HTTPS proxy is the meter but
 * no meter answers) in every mode where it can be read, marked top; in
 * --full also whether the proxy is the meter at all. */
static void
check_sysproxy(struct doctor *d)
{
	struct sysproxy sp;
	char port[16], *fix;
	int darwin, ours;
	size_t i, cnt = manifest_count(d->m);
	const char *svc = NULL;

	if (d->platform == NULL)
		return;
	darwin = strcmp(d->platform->name, "darwin") == 0;
	/* Outside --full, only the danger case is looked for. */
	if (d->level < MANIFEST_FULL && !(darwin && exec_in_path("scutil")))
		return;
	if (darwin)
		sysproxy_darwin(&sp);
	else
		sysproxy_gnome(&sp);
	snprintf(port, sizeof(port), "%d", d->cfg.listen_port);
	ours = sp.enabled && strcmp(sp.host, d->cfg.listen_host) == 0 &&
	    strcmp(sp.port, port) == 0;
	if (ours && !daemon_ok(d)) {
		struct doctor_result *r;

		r = add_r(d, DOCTOR_FAIL, "system proxy", d->restart_cmd,
		    "DANGER: the system HTTPS proxy is %s:%s but no meter "
		    "answers there: every app that uses the system proxy "
		    "is broken",
		    sp.host, sp.port);
		r->top = 1;
		d->want_daemon = 1;
		return;
	}
	if (d->level < MANIFEST_FULL)
		return;
	for (i = 0; i < cnt; i++) {
		cJSON *e = manifest_at(d->m, i);
		const char *k = manifest_str(e, "kind");

		if (k != NULL && strcmp(k, "network_proxy") == 0) {
			svc = manifest_str(e, "key");
			break;
		}
	}
	if (!sp.known) {
		if (darwin)
			doctor_add(d, DOCTOR_WARN, "system proxy", NULL,
			    "`scutil --proxy` did not answer");
		return;
	}
	if (ours) {
		doctor_add(d, DOCTOR_OK, "system proxy", NULL,
		    "HTTPS proxy %s:%s is on", sp.host, sp.port);
		return;
	}
	if (darwin)
		fix = xasprintf("networksetup -setsecurewebproxy '%s' %s %s "
		                "&& networksetup -setsecurewebproxystate "
		                "'%s' on",
		    svc != NULL ? svc : "Wi-Fi", d->cfg.listen_host, port,
		    svc != NULL ? svc : "Wi-Fi");
	else
		fix = xasprintf("gsettings set org.gnome.system.proxy.https "
		                "host %s && gsettings set "
		                "org.gnome.system.proxy.https port %s && "
		                "gsettings set org.gnome.system.proxy mode "
		                "manual",
		    d->cfg.listen_host, port);
	doctor_add(d, DOCTOR_FAIL, "system proxy", fix,
	    "the system HTTPS proxy is %s%s%s%s, not %s:%s (apps that use "
	    "the system proxy are not metered)",
	    sp.enabled ? "" : "off", sp.enabled ? sp.host : "",
	    sp.enabled ? ":" : "", sp.enabled ? sp.port : "",
	    d->cfg.listen_host, port);
	free(fix);
}

/* The last error or warning lines of the daemon's logs, or NULL. */
static char *
log_tail(struct doctor *d)
{
	static const char *const names[] = {
	    "daemon.log", "daemon.stderr.log", NULL};
	struct strbuf sb;
	char *lines[3] = {NULL, NULL, NULL};
	size_t i, k;

	for (i = 0; names[i] != NULL; i++) {
		char *path = xasprintf("%s/%s", d->state_dir, names[i]);
		char *text, *line, *next, *from;
		size_t len;

		text = file_read(path, &len);
		free(path);
		if (text == NULL)
			continue;
		from =
		    len > LOG_TAIL_BYTES ? text + len - LOG_TAIL_BYTES : text;
		for (line = from; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if (strstr(line, " error: ") == NULL &&
			    strstr(line, " warn: ") == NULL)
				continue;
			free(lines[0]);
			lines[0] = lines[1];
			lines[1] = lines[2];
			lines[2] = xstrdup(line);
		}
		free(text);
	}
	strbuf_init(&sb);
	for (k = 0; k < 3; k++) {
		if (lines[k] != NULL)
			strbuf_addf(
			    &sb, "%s%s", sb.len > 0 ? "\n" : "", lines[k]);
		free(lines[k]);
	}
	if (sb.len == 0) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

/* The LaunchAgent or systemd user unit init installed is loaded. */
static void
check_service(struct doctor *d)
{
	struct exec_result r;
	char t[512];

	if (strcmp(d->platform->name, "darwin") == 0) {
		char *target;

		if (manifest_find(
		        d->m, "launch_agent", PLATFORM_DARWIN_LABEL) == NULL) {
			doctor_add(d, DOCTOR_WARN, "daemon", d->init_cmd,
			    "no LaunchAgent: the meter does not start at "
			    "login");
			return;
		}
		target = xasprintf(
		    "gui/%ld/%s", (long)getuid(), PLATFORM_DARWIN_LABEL);
		{
			const char *argv[] = {
			    "launchctl", "print", target, NULL};

			if (query(argv, &r) == 0)
				doctor_add(d, DOCTOR_OK, "daemon", NULL,
				    "LaunchAgent %s is loaded",
				    PLATFORM_DARWIN_LABEL);
			else {
				char *fix = xasprintf(
				    "launchctl bootstrap gui/%ld "
				    "%s/" PLATFORM_DARWIN_AGENTS "/%s.plist",
				    (long)getuid(),
				    tilde(d, d->home, t, sizeof(t)),
				    PLATFORM_DARWIN_LABEL);

				doctor_add(d, DOCTOR_FAIL, "daemon", fix,
				    "LaunchAgent %s is not loaded (check "
				    "System Settings > General > Login "
				    "Items)",
				    PLATFORM_DARWIN_LABEL);
				free(fix);
			}
			exec_result_free(&r);
		}
		free(target);
		return;
	}
	if (manifest_find(d->m, "systemd_unit", PLATFORM_LINUX_UNIT) == NULL) {
		doctor_add(d, DOCTOR_WARN, "daemon",
		    "start it by hand: halton-meter daemon",
		    "no systemd user service (no user manager answered "
		    "when init ran): the meter does not start at login");
		return;
	}
	{
		const char *argv[] = {"systemctl", "--user", "is-active",
		    PLATFORM_LINUX_UNIT, NULL};
		char *w;

		(void)query(argv, &r);
		w = first_line(r.out);
		if (strcmp(w, "active") == 0)
			doctor_add(d, DOCTOR_OK, "daemon", NULL,
			    "systemd user service %s is active",
			    PLATFORM_LINUX_UNIT);
		else
			doctor_add(d, DOCTOR_FAIL, "daemon",
			    "systemctl --user enable "
			    "--now " PLATFORM_LINUX_UNIT,
			    "systemd user service %s is %s",
			    PLATFORM_LINUX_UNIT,
			    w[0] != '\0' ? w : "not answering");
		free(w);
		exec_result_free(&r);
	}
}

/* daemon: /healthz at the configured address answers with this version
 * (else the log's last errors are attached), then the service. */
static void
check_daemon(struct doctor *d)
{
	struct doctor_result *r = NULL;
	char *pidfile, *text, *fix;
	long pid = -1;
	int alive = 0;

	doctor_probe(d);
	pidfile = xasprintf("%s/daemon.pid", d->state_dir);
	if ((text = file_read(pidfile, NULL)) != NULL) {
		pid = strtol(text, NULL, 10);
		alive = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
	}
	free(text);
	free(pidfile);
	if (daemon_ok(d))
		doctor_add(d, DOCTOR_OK, "daemon", NULL,
		    "pid %ld answers at %s:%d, version %s, up %lds, %ld "
		    "exchanges",
		    d->health_pid, d->cfg.listen_host, d->cfg.listen_port,
		    d->health_version, d->health_uptime, d->health_exchanges);
	else if (d->answering && d->is_meter) {
		fix = d->level >= MANIFEST_APPS
		    ? xstrdup(d->restart_cmd)
		    : xasprintf(
		          "kill %ld && halton-meter daemon", d->health_pid);
		r = add_r(d, DOCTOR_FAIL, "daemon", fix,
		    "another version answers at %s:%d: %s (pid %ld), this "
		    "is %s; an old daemon still runs",
		    d->cfg.listen_host, d->cfg.listen_port, d->health_version,
		    d->health_pid, HALTON_VERSION);
		free(fix);
		d->want_daemon = 1;
	} else if (d->answering)
		r = add_r(d, DOCTOR_FAIL, "daemon",
		    "stop the program that listens there, or set `listen` "
		    "in the config",
		    "something else answers at %s:%d (%s)", d->cfg.listen_host,
		    d->cfg.listen_port, d->health_error);
	else {
		r = add_r(d, DOCTOR_FAIL, "daemon", d->restart_cmd,
		    "no daemon answers at %s:%d (%s)%s", d->cfg.listen_host,
		    d->cfg.listen_port, d->health_error,
		    alive ? "; the pid file's process is alive but does "
		            "not answer"
		          : "");
		d->want_daemon = 1;
	}
	if (r != NULL)
		r->notes = log_tail(d);
	if (d->level >= MANIFEST_APPS && d->platform != NULL)
		check_service(d);
}

/* round-trip: the TLS round-trip through the proxy, verified against the
 * bundle and against ca.pem alone; which one fails names the layer. */
static void
check_roundtrip(struct doctor *d)
{
	char why1[512], why2[512], t[512], t2[512];
	int b, c;

	if (!d->answering || !d->is_meter) {
		doctor_add(d, DOCTOR_FAIL, "round-trip", d->restart_cmd,
		    "not run: no meter answers at %s:%d", d->cfg.listen_host,
		    d->cfg.listen_port);
		return;
	}
	b = roundtrip(d, d->bundle, why1, sizeof(why1));
	c = roundtrip(d, d->ca_pem, why2, sizeof(why2));
	tilde(d, d->bundle, t, sizeof(t));
	tilde(d, d->ca_pem, t2, sizeof(t2));
	if (b == 0 && c == 0) {
		doctor_add(d, DOCTOR_OK, "round-trip", NULL,
		    "CONNECT %s:443 through %s:%d, TLS verified against %s "
		    "and against %s",
		    DOCTOR_HOST, d->cfg.listen_host, d->cfg.listen_port, t, t2);
		return;
	}
	if (b != 0 && c != 0 && strstr(why1, "TLS") != NULL &&
	    strstr(why2, "TLS") != NULL) {
		d->want_daemon = 1;
		doctor_add(d, DOCTOR_FAIL, "round-trip", d->restart_cmd,
		    "the daemon's certificate verifies neither against %s "
		    "(%s) nor against %s (%s): the daemon uses another CA "
		    "(restart it)",
		    t, why1, t2, why2);
		return;
	}
	if (b != 0 && c != 0) {
		doctor_add(
		    d, DOCTOR_FAIL, "round-trip", d->restart_cmd, "%s", why1);
		return;
	}
	if (b != 0) {
		d->want_bundle = 1;
		doctor_add(d, DOCTOR_FAIL, "round-trip",
		    "halton-meter doctor --fix",
		    "verified against %s alone, but not against %s: %s", t2, t,
		    why1);
	} else
		doctor_add(d, DOCTOR_FAIL, "round-trip", d->init_cmd,
		    "verified against %s, but not against %s alone: %s", t, t2,
		    why2);
}

/* ------------------------------------------------------------ clients */

struct client {
	const char *name;
	const char *ca_var; /* the CA variable this client reads */
	const char *const *argv;
};

static const char python_code[] =
    "import sys, urllib.request\n"
    "try:\n"
    "    r = urllib.request.urlopen('https://" DOCTOR_HOST "/', "
    "timeout=3)\n"
    "    b = r.read()\n"
    "except Exception as e:\n"
    "    sys.stderr.write('%s\\n' % e)\n"
    "    sys.exit(1)\n"
    "sys.exit(0 if b'\"intercepted\":true' in b else 2)\n";

static const char node_code[] =
    "const http = require('http'), tls = require('tls');\n"
    "const H = '" DOCTOR_HOST "';\n"
    "const p = process.env.HTTPS_PROXY || process.env.https_proxy;\n"
    "if (!p) { console.error('HTTPS_PROXY is not set'); process.exit(3); }\n"
    "const u = new URL(p);\n"
    "const q = http.request({host: u.hostname.replace(/^\\[|\\]$/g, ''),\n"
    "  port: u.port || 80, method: 'CONNECT', path: H + ':443',\n"
    "  headers: {host: H + ':443'}, timeout: 3000});\n"
    "q.on('connect', (res, sock) => {\n"
    "  if (res.statusCode !== 200) {\n"
    "    console.error('CONNECT answered ' + res.statusCode);\n"
    "    process.exit(4);\n"
    "  }\n"
    "  const s = tls.connect({socket: sock, servername: H}, () => {\n"
    "    s.write('GET / HTTP/1.1\\r\\nHost: ' + H +\n"
    "      '\\r\\nConnection: close\\r\\n\\r\\n');\n"
    "  });\n"
    "  let b = '';\n"
    "  s.on('data', (x) => { b += x; });\n"
    "  s.on('end', () => process.exit(b.includes('\"intercepted\":true') "
    "? 0 : 5));\n"
    "  s.on('error', (e) => { console.error(e.message); process.exit(1); "
    "});\n"
    "});\n"
    "q.on('timeout', () => { console.error('timed out'); process.exit(2); "
    "});\n"
    "q.on('error', (e) => { console.error(e.message); process.exit(2); "
    "});\n"
    "q.end();\n";

static const char *const python_argv[] = {"python3", "-c", python_code, NULL};
static const char *const node_argv[] = {"node", "-e", node_code, NULL};
static const char *const curl_argv[] = {"curl", "-sS", "-o", "/dev/null", "-w",
    "%{http_code}", "--max-time", "3", "https://" DOCTOR_HOST "/", NULL};

static const struct client clients[] = {
    {"python3", "SSL_CERT_FILE", python_argv},
    {"node", "NODE_EXTRA_CA_CERTS", node_argv},
    {"curl", "CURL_CA_BUNDLE", curl_argv},
};

/* Which variable of envp is wrong for a client reading ca_var, or NULL
 * when they all look right (malloc'd); *name gets the variable. */
static char *
wrong_variable(
    struct doctor *d, char **envp, const char *ca_var, const char **name)
{
	const char *px = env_lookup(envp, "HTTPS_PROXY");
	const char *lpx = env_lookup(envp, "https_proxy");
	const char *ca = env_lookup(envp, ca_var);
	int count, has_ca;

	*name = "HTTPS_PROXY";
	if ((px == NULL || *px == '\0') && (lpx == NULL || *lpx == '\0'))
		return xstrdup("HTTPS_PROXY is not set");
	if (px != NULL && *px != '\0' && !proxy_is_ours(d, px))
		return xasprintf(
		    "HTTPS_PROXY=%s does not point at the meter", px);
	*name = "https_proxy";
	if (lpx != NULL && *lpx != '\0' && !proxy_is_ours(d, lpx))
		return xasprintf(
		    "https_proxy=%s does not point at the meter", lpx);
	*name = ca_var;
	if (ca == NULL || *ca == '\0')
		return xasprintf("%s is not set", ca_var);
	if (!file_exists(ca))
		return xasprintf("%s=%s: no such file", ca_var, ca);
	if (d->ca != NULL &&
	    (pem_scan(ca, ca_cert(d->ca), &count, &has_ca) == -1 || !has_ca))
		return xasprintf("%s=%s does not contain the CA", ca_var, ca);
	*name = NULL;
	return NULL;
}

/* "v20.20.2" -> major 20, minor 20; -1 if unreadable. */
static int
node_version(int *major, int *minor, char *buf, size_t len)
{
	const char *argv[] = {"node", "--version", NULL};
	struct exec_result r;
	char *v;
	int rc = -1;

	if (query(argv, &r) == 0) {
		v = first_line(r.out);
		snprintf(buf, len, "%s", v);
		if (sscanf(v[0] == 'v' ? v + 1 : v, "%d.%d", major, minor) == 2)
			rc = 0;
		free(v);
	}
	exec_result_free(&r);
	return rc;
}

/* clients: python3, node and curl (those in PATH) each make the
 * round-trip with the environment they would get; a failure names the
 * variable that is wrong.  Old Node versions are a warning. */
static void
check_clients(struct doctor *d)
{
	char **envp, **built = NULL;
	size_t i;
	int any = 0;

	if (!daemon_ok(d)) {
		doctor_add(d, DOCTOR_FAIL, "clients", d->restart_cmd,
		    "not run: no meter of this version answers at %s:%d",
		    d->cfg.listen_host, d->cfg.listen_port);
		return;
	}
	if (d->level >= MANIFEST_APPS)
		envp = environ;
	else
		envp = built = envvars_environ(&d->env, environ);
	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		const struct client *c = &clients[i];
		struct exec_result r;
		char *why, *line, *fix;
		int rc;

		if (!exec_in_path(c->name))
			continue;
		any = 1;
		rc = exec_run_env(
		    c->argv, envp, DOCTOR_CLIENT_TIMEOUT_MS, 0, &r);
		if (rc == 0 && strcmp(c->name, "curl") == 0 &&
		    (r.out == NULL || strcmp(r.out, "200") != 0))
			rc = -1;
		if (rc == 0)
			doctor_add(d, DOCTOR_OK, "clients", NULL,
			    "%s: round-trip through the meter verified "
			    "(%s, HTTPS_PROXY)",
			    c->name, c->ca_var);
		else {
			const char *var, *want;

			why = wrong_variable(d, envp, c->ca_var, &var);
			line = r.timed_out ? xstrdup("timed out")
			                   : last_line(r.err);
			if (line[0] == '\0') {
				free(line);
				line = xasprintf("exit %d", r.status);
			}
			want = var != NULL ? envvars_get(&d->env, var) : NULL;
			if (d->level < MANIFEST_APPS)
				fix = xasprintf(
				    "halton-meter run -- %s", c->name);
			else if (want != NULL)
				fix =
				    xasprintf("export %s='%s'  (or open a new "
				              "terminal)",
				        var, want);
			else
				fix = xstrdup("halton-meter doctor --fix");
			doctor_add(d, DOCTOR_FAIL, "clients", fix,
			    "%s: the round-trip fails%s%s (%s)", c->name,
			    why != NULL ? ": " : "", why != NULL ? why : "",
			    line);
			free(fix);
			free(line);
			free(why);
		}
		exec_result_free(&r);
		if (strcmp(c->name, "node") == 0) {
			char ver[64];
			int maj, min;

			if (node_version(&maj, &min, ver, sizeof(ver)) == 0 &&
			    (maj < 22 || (maj == 22 && min < 21) || maj == 23 ||
			        (maj == 24 && min < 5)))
				doctor_add(d, DOCTOR_WARN, "clients",
				    "install Node >= 22.21 (or 24.5), or use "
				    "an undici ProxyAgent (docs/clients.md)",
				    "node %s is older than 22.21: its fetch "
				    "and core https ignore HTTPS_PROXY (the "
				    "official SDKs then fail with \"fetch "
				    "failed\")",
				    ver);
		}
	}
	if (!any)
		doctor_add(d, DOCTOR_OK, "clients", NULL,
		    "none of python3, node, curl is in PATH");
	if (built != NULL)
		envvars_environ_free(built);
}

/* ----------------------------------------------------------- captures */

struct capture_count {
	int64_t today_ms;
	long today;
	long day;
	long no_usage;
	long parse_err;
	long incomplete;
	long openai_stream;
	int64_t newest;
};

static int
capture_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	struct capture_count *cc = arg;

	(void)rowid;
	cc->day++;
	if (u->started_at >= cc->today_ms)
		cc->today++;
	if (u->started_at > cc->newest)
		cc->newest = u->started_at;
	if (u->error == NULL)
		return 0;
	if (str_has_prefix(u->error, "parse error"))
		cc->parse_err++;
	else if (strcmp(u->error, "usage_missing") == 0) {
		cc->no_usage++;
		if (u->provider != NULL && strcmp(u->provider, "openai") == 0 &&
		    u->stream == 1)
			cc->openai_stream++;
	} else if (strcmp(u->error, "incomplete") == 0)
		cc->incomplete++;
	return 0;
}

static int
newest_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	int64_t *t = arg;

	(void)rowid;
	if (u->started_at > *t)
		*t = u->started_at;
	return 0;
}

/* captures: the newest record, records today and in the last 24 h, and
 * the exchanges without usage or with a parse error, with the cause. */
static void
check_captures(struct doctor *d)
{
	struct capture_count cc;
	struct store_reader *rd;
	struct store_query q;
	struct tm tm;
	time_t now = time(NULL);
	char *db, *cause = NULL, when[40];
	int64_t newest = 0;

	db = d->cfg.db != NULL ? xstrdup(d->cfg.db)
	                       : xasprintf("%s/meter.db", d->state_dir);
	rd = store_reader_new(db);
	memset(&cc, 0, sizeof(cc));
	localtime_r(&now, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	cc.today_ms = (int64_t)mktime(&tm) * 1000;
	store_query_init(&q);
	q.limit = 1;
	if (store_read(rd, &q, newest_cb, &newest, &cause) == -1) {
		doctor_add(d, DOCTOR_FAIL, "captures",
		    "look at the daemon log: ~/.halton-meter/daemon.log",
		    "%s: %s", db, cause);
		free(cause);
		goto out;
	}
	store_query_init(&q);
	q.since_ms = time_now_ms() - 24LL * 3600 * 1000;
	if (store_read(rd, &q, capture_cb, &cc, &cause) == -1) {
		doctor_add(
		    d, DOCTOR_FAIL, "captures", NULL, "%s: %s", db, cause);
		free(cause);
		goto out;
	}
	if (newest == 0) {
		doctor_add(d, DOCTOR_OK, "captures", NULL,
		    "nothing recorded yet (run a client through the meter: "
		    "halton-meter run -- claude)");
		goto out;
	}
	time_format_utc(newest, when, sizeof(when));
	if (cc.openai_stream > 0)
		doctor_add(d, DOCTOR_WARN, "captures",
		    "send stream_options: {\"include_usage\": true} with "
		    "streamed OpenAI requests",
		    "%ld OpenAI streams in the last 24 h carried no usage "
		    "(stream_options.include_usage was not set)",
		    cc.openai_stream);
	if (cc.no_usage - cc.openai_stream > 0)
		doctor_add(d, DOCTOR_WARN, "captures",
		    "halton-meter log --since 24h",
		    "%ld exchanges in the last 24 h had no usage in the "
		    "response (errors, or an endpoint that reports none)",
		    cc.no_usage - cc.openai_stream);
	if (cc.parse_err > 0)
		doctor_add(d, DOCTOR_WARN, "captures",
		    "halton-meter log --since 24h",
		    "%ld exchanges in the last 24 h could not be parsed (a "
		    "response shape this version does not know)",
		    cc.parse_err);
	if (cc.incomplete > 0)
		doctor_add(d, DOCTOR_WARN, "captures",
		    "halton-meter log --since 24h",
		    "%ld exchanges in the last 24 h ended before their usage "
		    "(the client or the upstream closed the stream)",
		    cc.incomplete);
	doctor_add(d, DOCTOR_OK, "captures", NULL,
	    "last record %s; %ld today; %ld in the last 24 h", when, cc.today,
	    cc.day);
out:
	store_reader_free(rd);
	free(db);
}

const struct doctor_check doctor_checks[] = {
    {.layer = "install", .run = check_install},
    {.layer = "CA", .run = check_ca},
    {.layer = "bundle", .run = check_bundle},
    {.layer = "certifi", .run = check_certifi},
    {.layer = "env", .run = check_env},
    {.layer = "trust", .run = check_trust},
    {.layer = "system proxy", .run = check_sysproxy},
    {.layer = "daemon", .run = check_daemon},
    {.layer = "round-trip", .run = check_roundtrip},
    {.layer = "clients", .run = check_clients},
    {.layer = "captures", .run = check_captures},
};
const size_t doctor_ncheck = sizeof(doctor_checks) / sizeof(doctor_checks[0]);

void
doctor_run(struct doctor *d)
{
	size_t i;

	for (i = 0; i < doctor_ncheck; i++)
		doctor_checks[i].run(d);
}

/* -------------------------------------------------------- init, fixes */

void
doctor_init(struct doctor *d, int fix)
{
	const char *mode;
	int lvl;

	memset(d, 0, sizeof(*d));
	d->fix = fix;
	d->health_pid = -1;
	d->config_path = paths_config_file();
	if (config_load(&d->cfg, d->config_path, &d->config_cause) == -1) {
		char *ignored = NULL;

		/* Go on with the defaults (and $HALTON_METER_LISTEN). */
		config_free(&d->cfg);
		(void)config_load(&d->cfg, NULL, &ignored);
		free(ignored);
	}
	d->platform = platform_get(&d->platform_cause);
	d->home = paths_home();
	d->state_dir = paths_state_dir();
	d->ca_dir = paths_ca_dir();
	d->ca_key_file = xasprintf("%s/mitmproxy-ca.pem", d->ca_dir);
	d->ca_pem = xasprintf("%s/ca.pem", d->state_dir);
	d->bundle = xasprintf("%s/bundle.pem", d->state_dir);
	{
		char *mp = xasprintf("%s/%s", d->state_dir, MANIFEST_FILE);

		if (manifest_load(&d->m, mp, &d->manifest_found,
		        &d->manifest_cause) == -1)
			d->m = manifest_new();
		free(mp);
	}
	mode = manifest_mode(d->m);
	lvl = manifest_level_parse(mode);
	d->level = lvl < 0 ? MANIFEST_ENV : (enum manifest_level)lvl;
	d->mode = manifest_level_name(d->level);
	d->init_cmd =
	    xstrdup(d->level == MANIFEST_FULL   ? "halton-meter init --full"
	            : d->level == MANIFEST_APPS ? "halton-meter init --apps"
	                                        : "halton-meter init");
	if (d->level >= MANIFEST_APPS && d->platform != NULL &&
	    strcmp(d->platform->name, "darwin") == 0)
		d->restart_cmd = xasprintf("launchctl kickstart -k gui/%ld/%s",
		    (long)getuid(), PLATFORM_DARWIN_LABEL);
	else if (d->level >= MANIFEST_APPS &&
	    manifest_find(d->m, "systemd_unit", PLATFORM_LINUX_UNIT) != NULL)
		d->restart_cmd =
		    xstrdup("systemctl --user restart " PLATFORM_LINUX_UNIT);
	else
		d->restart_cmd = xstrdup("halton-meter daemon");
	if (file_exists(d->ca_key_file))
		(void)ca_load(&d->ca, d->ca_dir, &d->ca_cause);
	d->ca_text = file_read(d->ca_pem, NULL);
	envvars_build(&d->env, &d->cfg, d->state_dir, NULL);
}

void
doctor_free(struct doctor *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].detail);
		free(d->v[i].fix);
		free(d->v[i].notes);
	}
	free(d->v);
	config_free(&d->cfg);
	free(d->config_path);
	free(d->config_cause);
	free(d->platform_cause);
	manifest_free(d->m);
	free(d->manifest_cause);
	free(d->home);
	free(d->state_dir);
	free(d->ca_dir);
	free(d->ca_key_file);
	free(d->ca_pem);
	free(d->bundle);
	free(d->ca_text);
	if (d->ca != NULL)
		ca_free(d->ca);
	free(d->ca_cause);
	envvars_free(&d->env);
	free(d->init_cmd);
	free(d->restart_cmd);
	free(d->health_version);
	strlist_free(&d->want_certifi);
	memset(d, 0, sizeof(*d));
}

/* Waits up to 3 s for a meter of this version to answer. */
static int
wait_daemon(struct doctor *d)
{
	uint64_t until = time_mono_ms() + 3000;

	for (;;) {
		d->probed = 0;
		d->answering = d->is_meter = 0;
		free(d->health_version);
		d->health_version = NULL;
		if (daemon_ok(d))
			return 0;
		if (time_mono_ms() >= until)
			return -1;
		{
			struct timespec ts = {0, 100 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
}

int
doctor_apply_fixes(struct doctor *d, struct strbuf *out)
{
	char t[512], *cause = NULL;
	size_t i;
	int n = 0, nroots;

	if (d->want_bundle && d->ca != NULL) {
		n++;
		if (ca_bundle_write(d->ca, NULL, NULL, &nroots, &cause) == -1) {
			strbuf_addf(out,
			    "  ! rebuilding the bundle failed: %s\n", cause);
			free(cause);
			cause = NULL;
		} else
			strbuf_addf(out,
			    "  + rebuilt %s (the CA + %d system roots)\n",
			    tilde(d, d->bundle, t, sizeof(t)), nroots);
	}
	for (i = 0; i < d->want_certifi.n && d->ca_text != NULL; i++) {
		struct rcfile_change ch;
		const char *p = d->want_certifi.v[i];

		n++;
		if (rcfile_apply(p, &rcfile_certifi_markers, d->ca_text, 0644,
		        0, &ch, &cause) == -1) {
			strbuf_addf(
			    out, "  ! re-patching %s failed: %s\n", p, cause);
			free(cause);
			cause = NULL;
		} else
			strbuf_addf(out, "  + re-patched certifi: %s\n",
			    tilde(d, p, t, sizeof(t)));
	}
	if (d->want_daemon) {
		struct exec_result r;
		char *target = NULL;
		int rc;

		n++;
		if (strstr(d->restart_cmd, "launchctl") != NULL) {
			target = xasprintf("gui/%ld/%s", (long)getuid(),
			    PLATFORM_DARWIN_LABEL);
			{
				const char *argv[] = {"launchctl", "kickstart",
				    "-k", target, NULL};

				rc = exec_run(argv, EXEC_TIMEOUT_MS, 0, &r);
			}
		} else if (strstr(d->restart_cmd, "systemctl") != NULL) {
			const char *argv[] = {"systemctl", "--user", "restart",
			    PLATFORM_LINUX_UNIT, NULL};

			rc = exec_run(argv, EXEC_TIMEOUT_MS, 0, &r);
		} else if (!d->answering) {
			char *self = platform_self_exe();
			const char *argv[] = {self, "daemon", NULL};

			rc = exec_run(argv, EXEC_TIMEOUT_MS, 0, &r);
			free(self);
		} else {
			/* Another version answers without a service: killing
			 * it is the user's call. */
			strbuf_addf(out,
			    "  - not stopping the daemon of version %s (pid "
			    "%ld): %s\n",
			    d->health_version, d->health_pid,
			    "stop it yourself, then run halton-meter daemon");
			free(target);
			return n;
		}
		if (rc == -1) {
			char *q = r.err != NULL ? first_line(r.err) : NULL;

			strbuf_addf(out, "  ! %s failed (exit %d%s%s)\n",
			    d->restart_cmd, r.status, q != NULL ? ": " : "",
			    q != NULL ? q : "");
			free(q);
		} else if (wait_daemon(d) == 0)
			strbuf_addf(out,
			    "  + restarted the daemon (%s); it answers\n",
			    d->restart_cmd);
		else
			strbuf_addf(out,
			    "  ! ran %s, but no daemon answers after 3 s\n",
			    d->restart_cmd);
		exec_result_free(&r);
		free(target);
	}
	return n;
}
