/*
 * platform: backend choice and the helpers both backends share.
 */
/* realpath(3) is XSI. */
#define _XOPEN_SOURCE 700
#include <sys/stat.h>
#include <sys/utsname.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/rcfile.h"
#include "halton/xmalloc.h"

const struct platform *
platform_get(char **cause)
{
	const char *forced = getenv("HALTON_METER_PLATFORM");
	struct utsname u;

	*cause = NULL;
	if (forced != NULL && *forced != '\0') {
		if (strcmp(forced, "darwin") == 0)
			return &platform_darwin;
		if (strcmp(forced, "linux") == 0)
			return &platform_linux;
		*cause = xasprintf("HALTON_METER_PLATFORM: '%s' is not darwin "
		                   "or linux",
		    forced);
		return NULL;
	}
	if (uname(&u) == 0 && strcmp(u.sysname, "Darwin") == 0)
		return &platform_darwin;
	return &platform_linux;
}

static char *
find_in_path(const char *name)
{
	const char *path = getenv("PATH"), *p, *e;
	char *full;

	if (path == NULL)
		return NULL;
	for (p = path;; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		if (e > p && *p == '/') {
			full = xasprintf("%.*s/%s", (int)(e - p), p, name);
			if (access(full, X_OK) == 0)
				return full;
			free(full);
		}
		if (*e == '\0')
			return NULL;
	}
}

char *
platform_self_exe(void)
{
	char buf[PATH_MAX];
	const char *env = getenv("HALTON_METER_SELF");
	char *p;
	ssize_t n;

	if (env != NULL && *env == '/')
		return xstrdup(env);
	if ((n = readlink("/proc/self/exe", buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		return xstrdup(buf);
	}
	if ((p = find_in_path("halton-meter")) != NULL) {
		if (realpath(p, buf) != NULL) {
			free(p);
			return xstrdup(buf);
		}
		return p;
	}
	return xstrdup("halton-meter");
}

static void
line(struct platform_ctx *c, const char *mark, const char *fmt, va_list ap)
{
	va_list aq;
	char *text;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	text = xmalloc((size_t)n + 1);
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	strbuf_addf(c->out, "  %s %s\n", mark, text);
	free(text);
}

void
platform_done(struct platform_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(c, c->dry_run ? "would:" : "+", fmt, ap);
	va_end(ap);
	c->changes++;
}

void
platform_same(struct platform_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(c, "=", fmt, ap);
	va_end(ap);
}

void
platform_problem(struct platform_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(c, "!", fmt, ap);
	va_end(ap);
	c->problems++;
}

void
platform_skip(struct platform_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(c, "-", fmt, ap);
	va_end(ap);
}

int
platform_query(const char *const *argv, struct exec_result *r)
{
	return exec_run(argv, EXEC_TIMEOUT_MS, 0, r);
}

int
platform_change(struct platform_ctx *c, const char *const *argv, char **cause)
{
	struct exec_result r;
	char *q;
	int rc;

	*cause = NULL;
	if (c->dry_run) {
		q = exec_quote_argv(argv);
		strbuf_addf(c->out, "  would run: %s\n", q);
		free(q);
		return 0;
	}
	rc = exec_run(argv, EXEC_TIMEOUT_MS, 0, &r);
	if (rc == -1)
		*cause = exec_describe(argv, &r);
	exec_result_free(&r);
	return rc;
}

int
platform_file(struct platform_ctx *c, const char *path, const char *content,
    mode_t mode, enum manifest_level level, int *changed)
{
	char *old = NULL, *dir, *slash;
	size_t oldlen = 0, len = strlen(content);
	struct stat st;
	cJSON *e;
	int existed_entry, existed;

	*changed = 0;
	existed = stat(path, &st) == 0;
	if (existed && (old = file_read(path, &oldlen)) != NULL &&
	    oldlen == len && memcmp(old, content, len) == 0) {
		/* Already so; make sure it is recorded as ours. */
		e = manifest_find(c->m, "file", path);
		free(old);
		if (e == NULL && !c->dry_run) {
			e = manifest_entry(
			    c->m, "file", path, level, &existed_entry);
			manifest_set_int(e, "existed", 1);
			manifest_set_str(e, "previous", content);
		}
		return 0;
	}
	*changed = 1;
	if (c->dry_run) {
		free(old);
		return 0;
	}
	e = manifest_entry(c->m, "file", path, level, &existed_entry);
	if (!existed_entry) {
		manifest_set_int(e, "existed", existed);
		manifest_set_str(e, "previous", existed ? old : NULL);
		manifest_set_int(
		    e, "mode", existed ? (int)(st.st_mode & 07777) : (int)mode);
	}
	free(old);
	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		(void)dir_create(dir, 0755);
	}
	free(dir);
	if (file_write_atomic(path, content, len, mode) == -1) {
		platform_problem(
		    c, "cannot write %s: %s", path, strerror(errno));
		if (!existed_entry)
			manifest_remove(c->m, e);
		return -1;
	}
	return 0;
}

static int
revert_file(struct platform_ctx *c, cJSON *e)
{
	const char *path = manifest_str(e, "key");
	const char *prev = manifest_str(e, "previous");
	int existed = manifest_int(e, "existed", 0);

	if (c->dry_run) {
		platform_done(c, "%s %s", existed ? "restore" : "remove", path);
		return 1;
	}
	if (existed && prev != NULL) {
		if (file_write_atomic(path, prev, strlen(prev),
		        (mode_t)manifest_int(e, "mode", 0644)) == -1) {
			platform_problem(
			    c, "cannot restore %s: %s", path, strerror(errno));
			return -1;
		}
		platform_done(c, "restored %s", path);
	} else {
		if (unlink(path) == -1 && errno != ENOENT) {
			platform_problem(
			    c, "cannot remove %s: %s", path, strerror(errno));
			return -1;
		}
		platform_done(c, "removed %s", path);
	}
	return 1;
}

static int
revert_block(struct platform_ctx *c, cJSON *e, const struct rcfile_markers *m,
    const char *what)
{
	const char *path = manifest_str(e, "key");
	char *cause;
	int changed;

	if (rcfile_unapply(path, m, manifest_int(e, "sep_added", 0),
	        !manifest_int(e, "existed", 1), c->dry_run, &changed,
	        &cause) == -1) {
		platform_problem(c, "%s", cause);
		free(cause);
		return -1;
	}
	if (changed)
		platform_done(c, "removed the %s block from %s", what, path);
	else
		platform_same(c, "no %s block left in %s", what, path);
	return 1;
}

int
platform_revert_common(struct platform_ctx *c, cJSON *e)
{
	const char *kind = manifest_str(e, "kind");

	if (kind == NULL || manifest_str(e, "key") == NULL)
		return 0;
	if (strcmp(kind, "file") == 0)
		return revert_file(c, e);
	if (strcmp(kind, "rc") == 0)
		return revert_block(c, e, &rcfile_shell_markers, "shell");
	if (strcmp(kind, "certifi") == 0)
		return revert_block(c, e, &rcfile_certifi_markers, "CA");
	return 0;
}

char *
platform_cert_fingerprint(const char *path, const char *alg)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int n;
	X509 *x;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		return NULL;
	if (X509_digest(x, strcmp(alg, "sha1") == 0 ? EVP_sha1() : EVP_sha256(),
	        md, &n) != 1) {
		X509_free(x);
		return NULL;
	}
	X509_free(x);
	hex_encode(md, n, hex);
	for (n = 0; hex[n] != '\0'; n++)
		if (hex[n] >= 'a' && hex[n] <= 'f')
			hex[n] = (char)(hex[n] - 'a' + 'A');
	return xstrdup(hex);
}

static void
add_escaped(struct strbuf *sb, const char *s, int xml)
{
	for (; xml && *s != '\0'; s++) {
		if (*s == '&')
			strbuf_adds(sb, "&amp;");
		else if (*s == '<')
			strbuf_adds(sb, "&lt;");
		else if (*s == '>')
			strbuf_adds(sb, "&gt;");
		else
			strbuf_addc(sb, *s);
	}
	if (!xml)
		strbuf_adds(sb, s);
}

char *
platform_render(
    const char *tmpl, const char *exe, const char *state_dir, int xml)
{
	struct strbuf sb;
	const char *p;

	strbuf_init(&sb);
	for (p = tmpl; *p != '\0'; p++) {
		if (str_has_prefix(p, "@EXE@")) {
			add_escaped(&sb, exe, xml);
			p += 4;
		} else if (str_has_prefix(p, "@STATE_DIR@")) {
			add_escaped(&sb, state_dir, xml);
			p += 10;
		} else
			strbuf_addc(&sb, *p);
	}
	return strbuf_detach(&sb, NULL);
}

void
platform_ctx_init(struct platform_ctx *c, const struct config *cfg,
    const struct envvars *env, struct manifest *m, struct strbuf *out,
    int dry_run)
{
	const char *h = cfg->listen_host;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->env = env;
	c->m = m;
	c->out = out;
	c->dry_run = dry_run;
	c->home = paths_home();
	c->state_dir = paths_state_dir();
	c->ca_pem = paths_state_file("ca.pem");
	c->self_exe = platform_self_exe();
	if (strcmp(h, "0.0.0.0") == 0 || h[0] == '\0')
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	c->proxy_host = xstrdup(h);
	c->proxy_port = cfg->listen_port;
}

void
platform_ctx_free(struct platform_ctx *c)
{
	free((char *)c->home);
	free((char *)c->state_dir);
	free((char *)c->ca_pem);
	free((char *)c->self_exe);
	free((char *)c->proxy_host);
	memset(c, 0, sizeof(*c));
}

void
platform_revert_above(
    const struct platform *p, struct platform_ctx *c, int min_level)
{
	size_t i = manifest_count(c->m);
	const char *kind;
	cJSON *e;
	int rc;

	while (i-- > 0) {
		e = manifest_at(c->m, i);
		if (manifest_int(e, "level", 0) <= min_level)
			continue;
		if ((rc = platform_revert_common(c, e)) == 0)
			rc = p->revert(c, e);
		if (rc == 1 && !c->dry_run)
			manifest_remove(c->m, e);
		else if (rc == 0 && (kind = manifest_str(e, "kind")) != NULL &&
		    strcmp(kind, "ca_created") != 0)
			/* Recorded by another backend (or a newer version). */
			platform_problem(c,
			    "cannot undo '%s' %s here (%s "
			    "backend)",
			    kind,
			    manifest_str(e, "key") ? manifest_str(e, "key")
			                           : "",
			    p->name);
	}
	if (p->revert_finish != NULL)
		p->revert_finish(c);
}

void
platform_daemon_started(const struct config *cfg)
{
	const struct platform *p;
	struct manifest *m = NULL;
	struct envvars env;
	char *cause = NULL, *path, *sd;
	int found;

	if ((p = platform_get(&cause)) == NULL || p->session_env == NULL) {
		free(cause);
		return;
	}
	path = paths_state_file(MANIFEST_FILE);
	if (manifest_load(&m, path, &found, &cause) == 0 && found &&
	    manifest_level_parse(manifest_mode(m)) >= MANIFEST_APPS) {
		sd = paths_state_dir();
		envvars_build(&env, cfg, sd, NULL);
		p->session_env(&env);
		envvars_free(&env);
		free(sd);
	}
	free(cause);
	manifest_free(m);
	free(path);
}
