/*
 * platform-linux: Linux integration through systemd --user,
 * environment.d, the distro trust store, NSS certutil, keytool and
 * gsettings.  It only spawns commands and writes files, so it builds and
 * is tested everywhere (fakes on PATH, system paths under
 * HALTON_METER_SYSROOT).
 *
 *   --apps  ~/.config/environment.d/60-halton-meter.conf and the user unit
 *           ~/.config/systemd/user/halton-meter.service (Restart=always),
 *           daemon-reload + enable --now; no user manager: say so, go on
 *   --full  the distro anchor (Debian, Fedora, Arch, SUSE), NSS databases
 *           (Chromium, Firefox profiles), a JDK's cacerts, GNOME's proxy
 */
/* realpath(3) is XSI. */
#define _XOPEN_SOURCE 700
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/xmalloc.h"

const char platform_systemd_template[] =
    "[Unit]\n"
    "Description=halton-meter: meters LLM API usage through a local proxy\n"
    "StartLimitIntervalSec=60\n"
    "StartLimitBurst=10\n"
    "\n"
    "[Service]\n"
    "ExecStart=\"@EXE@\" daemon --foreground\n"
    "Environment=\"HALTON_METER_HOME=@STATE_DIR@\"\n"
    "Restart=always\n"
    "RestartSec=2\n"
    "\n"
    "[Install]\n"
    "WantedBy=default.target\n";

static char *
config_home(const char *home)
{
	const char *x = getenv("XDG_CONFIG_HOME");

	if (x != NULL && x[0] == '/')
		return xstrdup(x);
	return xasprintf("%s/.config", home);
}

/* The first line systemctl printed, e.g. "enabled", "active". */
static char *
systemctl_word(const char *verb)
{
	const char *argv[] = {
	    "systemctl", "--user", verb, PLATFORM_LINUX_UNIT, NULL};
	struct exec_result r;
	char *w, *nl;

	(void)platform_query(argv, &r);
	w = xstrdup(r.out != NULL ? r.out : "");
	if ((nl = strchr(w, '\n')) != NULL)
		*nl = '\0';
	exec_result_free(&r);
	return w;
}

static void
linux_apps(struct platform_ctx *c)
{
	char *cfg = config_home(c->home), *envd, *unit, *body, *content;
	char *enabled = NULL, *active = NULL, *cause = NULL;
	int envd_changed = 0, unit_changed = 0, existed, is_on;
	cJSON *e;

	envd = xasprintf("%s/%s", cfg, PLATFORM_LINUX_ENVD);
	unit = xasprintf("%s/systemd/user/%s", cfg, PLATFORM_LINUX_UNIT);
	body = envvars_format(c->env, ENVVARS_ENVIRONMENT_D);
	content = xasprintf("# Written by halton-meter init --apps; "
	                    "removed by halton-meter uninstall.\n%s",
	    body);
	free(body);
	if (platform_file(
	        c, envd, content, 0644, MANIFEST_APPS, &envd_changed) == -1)
		goto out;
	if (envd_changed)
		platform_done(c,
		    "environment.d: %s (apps and services of "
		    "the next session)",
		    envd);
	else
		platform_same(c, "environment.d: %s is up to date", envd);
	free(content);
	content = platform_render(
	    platform_systemd_template, c->self_exe, c->state_dir, 0);
	if (platform_file(
	        c, unit, content, 0644, MANIFEST_APPS, &unit_changed) == -1)
		goto out;
	enabled = systemctl_word("is-enabled");
	active = systemctl_word("is-active");
	is_on =
	    strcmp(enabled, "enabled") == 0 && strcmp(active, "active") == 0;
	if (!envd_changed && !unit_changed && is_on) {
		platform_same(c,
		    "systemd user service %s is enabled and "
		    "running",
		    PLATFORM_LINUX_UNIT);
		goto out;
	}
	{
		const char *reload[] = {
		    "systemctl", "--user", "daemon-reload", NULL};
		const char *enable[] = {"systemctl", "--user", "enable",
		    "--now", PLATFORM_LINUX_UNIT, NULL};
		const char *restart[] = {"systemctl", "--user", "restart",
		    PLATFORM_LINUX_UNIT, NULL};

		if (platform_change(c, reload, &cause) == -1) {
			platform_skip(c,
			    "no systemd user manager answers "
			    "(a container or CI?): %s\n    the service is "
			    "not enabled; start the meter with "
			    "`halton-meter daemon`",
			    cause);
			goto out;
		}
		if (!is_on && platform_change(c, enable, &cause) == -1) {
			platform_problem(c, "%s", cause);
			goto out;
		}
		if (is_on && unit_changed &&
		    platform_change(c, restart, &cause) == -1) {
			platform_problem(c, "%s", cause);
			goto out;
		}
	}
	platform_done(c,
	    "systemd user service %s enabled and started "
	    "(Restart=always)",
	    unit);
	if (!c->dry_run) {
		e = manifest_entry(c->m, "systemd_unit", PLATFORM_LINUX_UNIT,
		    MANIFEST_APPS, &existed);
		manifest_set_str(e, "unit", unit);
	}
out:
	free(cause);
	free(enabled);
	free(active);
	free(cfg);
	free(envd);
	free(unit);
	free(content);
}

static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

struct anchor_layout {
	const char *dir;  /* probed under the sysroot */
	const char *file; /* NULL: `trust anchor --store` */
	const char *refresh[3];
	const char *refresh_undo[3];
	const char *distro;
};

static const struct anchor_layout anchors[] = {
    {"/etc/pki/ca-trust/source/anchors", "halton-meter.pem",
        {"update-ca-trust", "extract", NULL},
        {"update-ca-trust", "extract", NULL}, "Fedora/RHEL"},
    {"/usr/local/share/ca-certificates", "halton-meter.crt",
        {"update-ca-certificates", NULL, NULL},
        {"update-ca-certificates", "--fresh", NULL}, "Debian/Ubuntu"},
    {"/etc/ca-certificates/trust-source/anchors", NULL, {NULL, NULL, NULL},
        {NULL, NULL, NULL}, "Arch"},
    {"/etc/pki/trust/anchors", "halton-meter.pem",
        {"update-ca-certificates", NULL, NULL},
        {"update-ca-certificates", NULL, NULL}, "SUSE"},
    {"/usr/share/pki/trust/anchors", "halton-meter.pem",
        {"update-ca-certificates", NULL, NULL},
        {"update-ca-certificates", NULL, NULL}, "SUSE"},
};

static void
set_argv(cJSON *e, const char *key, const char *const *argv)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = 0; argv[i] != NULL; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
	cJSON_DeleteItemFromObjectCaseSensitive(e, key);
	cJSON_AddItemToObject(e, key, a);
}

static void
full_anchor_trust(
    struct platform_ctx *c, const struct anchor_layout *l, const char *sha)
{
	const char *store[] = {"trust", "anchor", "--store", c->ca_pem, NULL};
	cJSON *e = manifest_find(c->m, "anchor", c->ca_pem);
	char *cause;
	int existed;

	if (e != NULL && manifest_str(e, "sha256") != NULL &&
	    strcmp(manifest_str(e, "sha256"), sha) == 0) {
		platform_same(
		    c, "the CA is a p11-kit trust anchor (%s)", l->distro);
		return;
	}
	if (platform_change(c, store, &cause) == -1) {
		char *q = exec_quote_argv(store);

		platform_problem(
		    c, "%s\n    run it by hand: sudo %s", cause, q);
		free(q);
		free(cause);
		return;
	}
	if (!c->dry_run) {
		e = manifest_entry(
		    c->m, "anchor", c->ca_pem, MANIFEST_FULL, &existed);
		manifest_set_str(e, "sha256", sha);
		manifest_set_str(e, "method", "trust");
	}
	platform_done(c,
	    "trusted the CA system-wide (%s, trust anchor "
	    "--store)",
	    l->distro);
}

static void
full_anchor(struct platform_ctx *c)
{
	const struct anchor_layout *l = NULL;
	char *dir = NULL, *path = NULL, *pem = NULL, *sha = NULL, *cause;
	char *old = NULL;
	size_t i, len, oldlen;
	int existed;
	cJSON *e;

	for (i = 0; i < sizeof(anchors) / sizeof(anchors[0]); i++) {
		dir = paths_sys(anchors[i].dir);
		if (is_dir(dir)) {
			l = &anchors[i];
			break;
		}
		free(dir);
		dir = NULL;
	}
	if (l == NULL) {
		platform_problem(c,
		    "no known system trust store layout "
		    "(Debian, Fedora, Arch, SUSE) was found; trust %s by hand",
		    c->ca_pem);
		return;
	}
	sha = platform_cert_fingerprint(c->ca_pem, "sha256");
	if (l->file == NULL) {
		full_anchor_trust(c, l, sha != NULL ? sha : "");
		goto out;
	}
	path = xasprintf("%s/%s", dir, l->file);
	if ((pem = file_read(c->ca_pem, &len)) == NULL && !c->dry_run) {
		platform_problem(
		    c, "cannot read %s: %s", c->ca_pem, strerror(errno));
		goto out;
	}
	if (pem == NULL) {
		/* A dry run before the CA exists. */
		pem = xstrdup("");
		len = 0;
	}
	if ((old = file_read(path, &oldlen)) != NULL && oldlen == len &&
	    memcmp(old, pem, len) == 0 &&
	    manifest_find(c->m, "anchor", path) != NULL) {
		platform_same(
		    c, "the CA is in the system trust store (%s)", path);
		goto out;
	}
	if (!c->dry_run && file_write_atomic(path, pem, len, 0644) == -1) {
		platform_problem(c,
		    "cannot write %s: %s\n    run by hand: "
		    "sudo install -m 0644 %s %s && sudo %s%s%s",
		    path, strerror(errno), c->ca_pem, path, l->refresh[0],
		    l->refresh[1] != NULL ? " " : "",
		    l->refresh[1] != NULL ? l->refresh[1] : "");
		goto out;
	}
	if (c->dry_run)
		platform_done(c, "write %s", path);
	if (!c->dry_run) {
		e = manifest_entry(
		    c->m, "anchor", path, MANIFEST_FULL, &existed);
		manifest_set_str(e, "sha256", sha);
		manifest_set_str(e, "method", "file");
		set_argv(e, "refresh_undo", l->refresh_undo);
	}
	if (platform_change(c, l->refresh, &cause) == -1) {
		platform_problem(c, "%s\n    run it by hand with sudo", cause);
		free(cause);
		goto out;
	}
	platform_done(
	    c, "trusted the CA system-wide (%s): %s", l->distro, path);
out:
	free(dir);
	free(path);
	free(pem);
	free(old);
	free(sha);
}

static void
add_db(char ***v, size_t *n, const char *dir)
{
	char *p;

	p = xasprintf("%s/cert9.db", dir);
	if (file_exists(p)) {
		free(p);
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[(*n)++] = xasprintf("sql:%s", dir);
		return;
	}
	free(p);
	p = xasprintf("%s/cert8.db", dir);
	if (file_exists(p)) {
		*v = xreallocarray(*v, *n + 1, sizeof(**v));
		(*v)[(*n)++] = xasprintf("dbm:%s", dir);
	}
	free(p);
}

static int
str_cmp_cb(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every NSS database: Chromium's, and each Firefox profile (classic, XDG,
 * snap, flatpak). */
static void
nss_dbs(const char *home, char ***v, size_t *n)
{
	static const char *const fixed[] = {
	    ".pki/nssdb", "snap/chromium/current/.pki/nssdb", NULL};
	static const char *const roots[] = {".mozilla/firefox",
	    ".config/mozilla/firefox", "snap/firefox/common/.mozilla/firefox",
	    ".var/app/org.mozilla.firefox/.mozilla/firefox", NULL};
	struct dirent *de;
	char *p, **prof;
	size_t i, np, j;
	DIR *d;

	*v = NULL;
	*n = 0;
	for (i = 0; fixed[i] != NULL; i++) {
		p = xasprintf("%s/%s", home, fixed[i]);
		add_db(v, n, p);
		free(p);
	}
	for (i = 0; roots[i] != NULL; i++) {
		p = xasprintf("%s/%s", home, roots[i]);
		prof = NULL;
		np = 0;
		if ((d = opendir(p)) != NULL) {
			while ((de = readdir(d)) != NULL) {
				if (de->d_name[0] == '.')
					continue;
				prof =
				    xreallocarray(prof, np + 1, sizeof(*prof));
				prof[np++] = xasprintf("%s/%s", p, de->d_name);
			}
			closedir(d);
		}
		if (np > 0)
			qsort(prof, np, sizeof(*prof), str_cmp_cb);
		for (j = 0; j < np; j++) {
			add_db(v, n, prof[j]);
			free(prof[j]);
		}
		free(prof);
		free(p);
	}
}

static void
full_nss(struct platform_ctx *c)
{
	struct exec_result r;
	char **dbs, *cause;
	size_t n, i;
	int existed;
	cJSON *e;

	nss_dbs(c->home, &dbs, &n);
	if (n == 0)
		goto out;
	if (!exec_in_path("certutil")) {
		platform_problem(c,
		    "%zu NSS database(s) (Chromium, Firefox) "
		    "found but no certutil: install libnss3-tools "
		    "(nss-tools, mozilla-nss-tools) and run init again",
		    n);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *check[] = {"certutil", "-V", "-d", dbs[i], "-u",
		    "L", "-n", PLATFORM_CA_NAME, NULL};
		const char *add[] = {"certutil", "-A", "-d", dbs[i], "-t",
		    "C,,", "-n", PLATFORM_CA_NAME, "-i", c->ca_pem, NULL};

		if (platform_query(check, &r) == 0) {
			exec_result_free(&r);
			platform_same(c, "NSS %s trusts the CA", dbs[i]);
			continue;
		}
		exec_result_free(&r);
		if (platform_change(c, add, &cause) == -1) {
			platform_problem(c, "%s", cause);
			free(cause);
			continue;
		}
		if (!c->dry_run) {
			e = manifest_entry(
			    c->m, "nss", dbs[i], MANIFEST_FULL, &existed);
			manifest_set_str(e, "nickname", PLATFORM_CA_NAME);
		}
		platform_done(
		    c, "NSS %s: added the CA (restart the browser)", dbs[i]);
	}
out:
	for (i = 0; i < n; i++)
		free(dbs[i]);
	free(dbs);
}

static void
full_java(struct platform_ctx *c)
{
	const char *jh = getenv("JAVA_HOME");
	char *keytool = NULL, *cacerts = NULL, *cause, real[PATH_MAX];
	struct exec_result r;
	int existed;
	cJSON *e;

	if (jh == NULL || jh[0] != '/')
		return;
	keytool = xasprintf("%s/bin/keytool", jh);
	cacerts = xasprintf("%s/lib/security/cacerts", jh);
	if (!file_exists(cacerts)) {
		free(cacerts);
		cacerts = xasprintf("%s/jre/lib/security/cacerts", jh);
	}
	if (access(keytool, X_OK) == -1 || !file_exists(cacerts)) {
		platform_skip(c,
		    "Java: no keytool or cacerts under "
		    "JAVA_HOME=%s",
		    jh);
		goto out;
	}
	if (realpath(cacerts, real) != NULL && str_has_prefix(real, "/etc/")) {
		platform_skip(c,
		    "Java: %s is the distro's store (follows the "
		    "system trust store)",
		    cacerts);
		goto out;
	}
	{
		const char *check[] = {keytool, "-list", "-keystore", cacerts,
		    "-storepass", "changeit", "-alias", PLATFORM_CA_ALIAS,
		    NULL};
		const char *imp[] = {keytool, "-importcert", "-noprompt",
		    "-keystore", cacerts, "-storepass", "changeit", "-alias",
		    PLATFORM_CA_ALIAS, "-file", c->ca_pem, NULL};

		if (platform_query(check, &r) == 0) {
			exec_result_free(&r);
			platform_same(c, "Java %s trusts the CA", cacerts);
			goto out;
		}
		exec_result_free(&r);
		if (platform_change(c, imp, &cause) == -1) {
			platform_problem(c, "%s", cause);
			free(cause);
			goto out;
		}
	}
	if (!c->dry_run) {
		e = manifest_entry(
		    c->m, "java", cacerts, MANIFEST_FULL, &existed);
		manifest_set_str(e, "keytool", keytool);
		manifest_set_str(e, "alias", PLATFORM_CA_ALIAS);
	}
	platform_done(c, "Java %s: imported the CA", cacerts);
out:
	free(keytool);
	free(cacerts);
}

static char *
gsettings_get(const char *schema, const char *key)
{
	const char *argv[] = {"gsettings", "get", schema, key, NULL};
	struct exec_result r;
	char *v = NULL;

	if (platform_query(argv, &r) == 0)
		v = xstrdup(str_trim(r.out));
	exec_result_free(&r);
	return v;
}

#define GS_PROXY "org.gnome.system.proxy"
#define GS_HTTPS "org.gnome.system.proxy.https"

static void
full_gnome(struct platform_ctx *c)
{
	char *mode = NULL, *host = NULL, *port = NULL, *want_host,
	     want_port[16];
	char *cause;
	int existed;
	cJSON *e;

	if (!exec_in_path("gsettings") ||
	    (mode = gsettings_get(GS_PROXY, "mode")) == NULL)
		return;
	host = gsettings_get(GS_HTTPS, "host");
	port = gsettings_get(GS_HTTPS, "port");
	want_host = xasprintf("'%s'", c->proxy_host);
	snprintf(want_port, sizeof(want_port), "%d", c->proxy_port);
	if (strcmp(mode, "'manual'") == 0 && host != NULL &&
	    strcmp(host, want_host) == 0 && port != NULL &&
	    strcmp(port, want_port) == 0) {
		platform_same(c, "GNOME's HTTPS proxy is the meter");
		goto out;
	}
	{
		const char *sh[] = {
		    "gsettings", "set", GS_HTTPS, "host", c->proxy_host, NULL};
		const char *sp[] = {
		    "gsettings", "set", GS_HTTPS, "port", want_port, NULL};
		const char *sm[] = {
		    "gsettings", "set", GS_PROXY, "mode", "manual", NULL};

		if (!c->dry_run) {
			e = manifest_entry(c->m, "gsettings", GS_PROXY,
			    MANIFEST_FULL, &existed);
			if (!existed) {
				manifest_set_str(e, "mode", mode);
				manifest_set_str(e, "host", host);
				manifest_set_str(e, "port", port);
			}
		}
		if (platform_change(c, sh, &cause) == -1 ||
		    platform_change(c, sp, &cause) == -1 ||
		    platform_change(c, sm, &cause) == -1) {
			platform_problem(c, "%s", cause);
			free(cause);
			goto out;
		}
	}
	platform_done(
	    c, "GNOME proxy: HTTPS -> %s:%d", c->proxy_host, c->proxy_port);
out:
	free(mode);
	free(host);
	free(port);
	free(want_host);
}

static void
linux_full(struct platform_ctx *c)
{
	full_anchor(c);
	full_nss(c);
	full_java(c);
	full_gnome(c);
}

static int
revert_change(struct platform_ctx *c, const char *const *argv)
{
	char *cause;

	if (platform_change(c, argv, &cause) == -1) {
		platform_problem(c, "%s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

static int
revert_anchor(struct platform_ctx *c, cJSON *e, const char *key)
{
	const char *method = manifest_str(e, "method");
	const char *argv[4] = {NULL, NULL, NULL, NULL};
	cJSON *a, *it;
	size_t n = 0;

	if (method != NULL && strcmp(method, "trust") == 0) {
		const char *rm[] = {"trust", "anchor", "--remove", key, NULL};

		if (revert_change(c, rm) == -1)
			return -1;
		platform_done(c, "removed the p11-kit trust anchor");
		return 1;
	}
	if (c->dry_run)
		platform_done(c, "remove %s", key);
	else if (unlink(key) == -1 && errno != ENOENT) {
		platform_problem(
		    c, "cannot remove %s: %s", key, strerror(errno));
		return -1;
	}
	a = cJSON_GetObjectItemCaseSensitive(e, "refresh_undo");
	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsString(it) && n < 3)
			argv[n++] = it->valuestring;
	}
	if (n > 0 && revert_change(c, argv) == -1)
		return -1;
	platform_done(
	    c, "removed the CA from the system trust store (%s)", key);
	return 1;
}

static int
linux_revert(struct platform_ctx *c, cJSON *e)
{
	const char *kind = manifest_str(e, "kind");
	const char *key = manifest_str(e, "key");

	if (kind == NULL || key == NULL)
		return 0;
	if (strcmp(kind, "systemd_unit") == 0) {
		const char *argv[] = {
		    "systemctl", "--user", "disable", "--now", key, NULL};

		if (revert_change(c, argv) == -1)
			return -1;
		c->need_reload = 1;
		platform_done(c, "stopped and disabled %s", key);
		return 1;
	}
	if (strcmp(kind, "anchor") == 0)
		return revert_anchor(c, e, key);
	if (strcmp(kind, "nss") == 0) {
		const char *argv[] = {
		    "certutil", "-D", "-d", key, "-n", PLATFORM_CA_NAME, NULL};

		if (revert_change(c, argv) == -1)
			return -1;
		platform_done(c, "NSS %s: removed the CA", key);
		return 1;
	}
	if (strcmp(kind, "java") == 0) {
		const char *kt = manifest_str(e, "keytool");
		const char *argv[] = {kt != NULL ? kt : "keytool", "-delete",
		    "-alias", PLATFORM_CA_ALIAS, "-keystore", key, "-storepass",
		    "changeit", NULL};

		if (revert_change(c, argv) == -1)
			return -1;
		platform_done(c, "Java %s: removed the CA", key);
		return 1;
	}
	if (strcmp(kind, "gsettings") == 0) {
		const char *mode = manifest_str(e, "mode");
		const char *host = manifest_str(e, "host");
		const char *port = manifest_str(e, "port");
		const char *sh[] = {
		    "gsettings", "set", GS_HTTPS, "host", host, NULL};
		const char *sp[] = {
		    "gsettings", "set", GS_HTTPS, "port", port, NULL};
		const char *sm[] = {
		    "gsettings", "set", GS_PROXY, "mode", mode, NULL};

		if ((host != NULL && revert_change(c, sh) == -1) ||
		    (port != NULL && revert_change(c, sp) == -1) ||
		    (mode != NULL && revert_change(c, sm) == -1))
			return -1;
		platform_done(c, "restored GNOME's proxy settings");
		return 1;
	}
	return 0;
}

static void
linux_revert_finish(struct platform_ctx *c)
{
	const char *argv[] = {"systemctl", "--user", "daemon-reload", NULL};
	char *cause;

	if (!c->need_reload)
		return;
	if (platform_change(c, argv, &cause) == -1) {
		platform_problem(c, "%s", cause);
		free(cause);
	}
	c->need_reload = 0;
}

const struct platform platform_linux = {
    .name = "linux",
    .bash_rc = ".bashrc",
    .pipx_venvs = ".local/share/pipx/venvs",
    .apps = linux_apps,
    .full = linux_full,
    .revert = linux_revert,
    .revert_finish = linux_revert_finish,
    .session_env = NULL,
};
