/*
 * ca: the local certificate authority, the trust bundle, and per-host leaf
 * certificates.
 *
 * Files (mitmproxy-compatible, see docs/engine.md):
 *   CA_DIR/mitmproxy-ca.pem        key + cert, 0600 (reused if present;
 *                                  never overwritten)
 *   CA_DIR/mitmproxy-ca-cert.pem   cert
 *   CA_DIR/mitmproxy-ca-cert.cer   cert (same bytes)
 *   STATE_DIR/ca.pem               cert (NODE_EXTRA_CA_CERTS)
 *   STATE_DIR/bundle.pem           system roots + cert (SSL_CERT_FILE, ...)
 * A new CA is ECDSA P-256, SHA-256, 10 years, name-constrained to the
 * intercept list plus INTERCEPT_DOCTOR_HOST with all IP ranges excluded.
 * Leaves share one P-256 key per process, are cached (LRU, >= 1024 hosts)
 * and valid for at most 397 days.  Loading checks the CA (key matches,
 * CA:TRUE); the leaf key is made at the first leaf.
 */
#ifndef HALTON_CA_H
#define HALTON_CA_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "halton/intercept.h"

struct ca;

struct ca_options {
	const char *ca_dir;    /* ~/.mitmproxy */
	const char *state_dir; /* ~/.halton-meter */
	/* Patterns the name constraints permit (besides the doctor host). */
	const struct intercept_list *intercept;
	int name_constraints; /* 0 = unconstrained CA */
	/* System roots file; NULL = $HALTON_METER_SYSTEM_ROOTS or the
	 * platform default (paths_sys applied). */
	const char *system_roots;
};

/* Loads the CA, creating the key, the certificate files, ca.pem and
 * bundle.pem when missing.  *created is set to 1 if a new CA key was
 * made.  A new key and certificate are made and written by a short-lived
 * child process (fork) and then loaded from the file, so the caller does
 * not keep what generating them cost.  Returns 0, or -1 with a cause the
 * caller frees. */
int ca_load_or_create(struct ca **, const struct ca_options *, int *, char **);
/* Loads an existing CA only (no file is written). */
int ca_load(struct ca **, const char *, char **);
void ca_free(struct ca *);

/* (Re)writes the bundle (path; NULL = STATE_DIR/bundle.pem) = the system
 * roots file (NULL = ca_system_roots_path(NULL)) copied as it is + CA cert,
 * atomically.  *nroots gets the number of system certificates included,
 * counted on the text (PEM "CERTIFICATE" and "X509 CERTIFICATE" headers at
 * the start of a line); a file with none is an error.  0 or -1. */
int ca_bundle_write(struct ca *, const char *, const char *, int *, char **);
/* The platform's default system roots file (before paths_sys): the first
 * candidate that exists under $HALTON_METER_SYSROOT. */
const char *ca_system_roots_default(void);
/* The system roots file to use, malloc'd: override if not NULL, else
 * $HALTON_METER_SYSTEM_ROOTS, else paths_sys(ca_system_roots_default()). */
char *ca_system_roots_path(const char *);
/* The PEM certificate headers at the start of a line in data[0..len):
 * the ones PEM_read_X509 reads, and with the last argument set also
 * "TRUSTED CERTIFICATE" (X509_STORE_load_file reads those too). */
int ca_pem_certs(const char *, size_t, int);
/* 1 if the CA's name constraints allow a leaf for host (always 1 for an
 * unconstrained CA), else 0.  An intercepted host the CA cannot sign would
 * fail at the client, so the proxy should tunnel it instead. */
int ca_permits(const struct ca *, const char *);

X509 *ca_cert(const struct ca *);
EVP_PKEY *ca_key(const struct ca *);

/* The leaf for host (minted on first use, cached).  The returned
 * references are borrowed from the cache and stay valid until the next
 * call that mints (callers use them at once: SSL_use_certificate takes its
 * own reference).  NULL with a cause on failure. */
X509 *ca_leaf(struct ca *, const char *, char **);
/* The key of every leaf: made by the first ca_leaf() call (loading a CA
 * does not make it), NULL before. */
EVP_PKEY *ca_leaf_key(const struct ca *);
size_t ca_leaf_cache_count(const struct ca *);

/* TLS contexts.  The server context presents leaves chosen by SNI (or the
 * fallback host set on the SSL with tls_server_set_host), ALPN http/1.1
 * only, TLS >= 1.2.  The client context verifies like a browser: system
 * roots + extra CA files, hostname checked, TLS >= 1.2, AEAD-only TLS 1.2
 * suites, no compression, no renegotiation, ALPN http/1.1.  The system
 * roots file (first argument; NULL = ca_system_roots_path(NULL)) must be
 * readable and hold a PEM certificate now, but is parsed into the store at
 * the context's first verification; the extra CA files are loaded now. */
SSL_CTX *tls_server_ctx_new(struct ca *, char **);
/* Sets the host used when the client sends no SNI. */
int tls_server_set_host(SSL *, const char *);
SSL_CTX *tls_client_ctx_new(const char *, const struct strlist *, char **);
/* What tls_client_ctx_new with the same arguments would refuse (an
 * unreadable or non-PEM system roots file, an extra CA file that cannot be
 * read or loaded), without making a context: a daemon that makes its
 * contexts on first use checks this at start.  0, or -1 with the cause
 * tls_client_ctx_new would give. */
int tls_client_check(const char *, const struct strlist *, char **);
/* Prepares a client SSL for host: SNI (not for IP literals) and
 * SSL_set1_host.  0 or -1. */
int tls_client_set_host(SSL *, const char *);
/* A human cause for a failed upstream handshake ("certificate has
 * expired", "hostname mismatch", ...), from the SSL's verify result and
 * the error queue. */
const char *tls_client_failure(SSL *, char *, size_t);

#endif
