/*
 * platform-darwin: macOS integration through launchctl, security and
 * networksetup.  It only spawns commands and writes files under $HOME, so
 * it builds and is tested everywhere (fakes on PATH).
 *
 *   --apps  launchctl setenv for each variable (previous values kept),
 *           ~/Library/LaunchAgents/com.halton-meter.daemon.plist loaded
 *           with `launchctl bootstrap gui/UID` (the daemon re-applies the
 *           variables when it starts: setenv does not survive logout)
 *   --full  security add-trusted-cert into the System keychain (admin
 *           prompt), and the HTTPS proxy of every enabled network service
 *           (previous settings kept for uninstall)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/xmalloc.h"

#define DARWIN_KEYCHAIN "/Library/Keychains/System.keychain"

const char platform_launchd_template[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
    "<plist version=\"1.0\">\n"
    "<dict>\n"
    "\t<key>Label</key>\n"
    "\t<string>com.halton-meter.daemon</string>\n"
    "\t<key>ProgramArguments</key>\n"
    "\t<array>\n"
    "\t\t<string>@EXE@</string>\n"
    "\t\t<string>daemon</string>\n"
    "\t\t<string>--foreground</string>\n"
    "\t</array>\n"
    "\t<key>RunAtLoad</key>\n"
    "\t<true/>\n"
    "\t<key>KeepAlive</key>\n"
    "\t<true/>\n"
    "\t<key>ThrottleInterval</key>\n"
    "\t<integer>10</integer>\n"
    "\t<key>ProcessType</key>\n"
    "\t<string>Interactive</string>\n"
    "\t<key>StandardOutPath</key>\n"
    "\t<string>@STATE_DIR@/daemon.stdout.log</string>\n"
    "\t<key>StandardErrorPath</key>\n"
    "\t<string>@STATE_DIR@/daemon.stderr.log</string>\n"
    "\t<key>EnvironmentVariables</key>\n"
    "\t<dict>\n"
    "\t\t<key>HALTON_METER_HOME</key>\n"
    "\t\t<string>@STATE_DIR@</string>\n"
    "\t</dict>\n"
    "</dict>\n"
    "</plist>\n";

static char *
gui_domain(void)
{
	return xasprintf("gui/%ld", (long)getuid());
}

/* The value launchd holds for name, or NULL when unset. */
static char *
launchctl_getenv(const char *name)
{
	const char *argv[] = {"launchctl", "getenv", name, NULL};
	struct exec_result r;
	char *v = NULL;

	if (platform_query(argv, &r) == 0) {
		size_t n = r.out_len;

		while (n > 0 && (r.out[n - 1] == '\n' || r.out[n - 1] == '\r'))
			n--;
		if (n > 0)
			v = xstrndup(r.out, n);
	}
	exec_result_free(&r);
	return v;
}

static void
darwin_session_env(const struct envvars *env)
{
	struct exec_result r;
	size_t i;

	for (i = 0; i < env->n; i++) {
		const char *argv[] = {"launchctl", "setenv", env->v[i].name,
		    env->v[i].value, NULL};

		(void)exec_run(argv, EXEC_TIMEOUT_MS, 0, &r);
		exec_result_free(&r);
	}
}

static void
apps_env(struct platform_ctx *c)
{
	size_t i, set = 0;
	char *cur, *cause;
	cJSON *e;
	int existed;

	for (i = 0; i < c->env->n; i++) {
		const char *name = c->env->v[i].name;
		const char *val = c->env->v[i].value;
		const char *argv[] = {"launchctl", "setenv", name, val, NULL};

		cur = launchctl_getenv(name);
		if (cur != NULL && strcmp(cur, val) == 0) {
			free(cur);
			continue;
		}
		if (platform_change(c, argv, &cause) == -1) {
			platform_problem(c, "%s", cause);
			free(cause);
			free(cur);
			continue;
		}
		if (!c->dry_run) {
			e = manifest_entry(c->m, "launchctl_env", name,
			    MANIFEST_APPS, &existed);
			if (!existed)
				manifest_set_str(e, "previous", cur);
		}
		free(cur);
		set++;
	}
	if (set > 0)
		platform_done(c,
		    "launchctl setenv: %zu variables for apps "
		    "started from now on",
		    set);
	else
		platform_same(c, "launchctl: the variables are already set");
}

static void
apps_agent(struct platform_ctx *c)
{
	char *plist, *content, *dom, *target, *cause = NULL;
	struct exec_result r;
	int changed, loaded, existed;

	plist = xasprintf("%s/" PLATFORM_DARWIN_AGENTS "/%s.plist", c->home,
	    PLATFORM_DARWIN_LABEL);
	content = platform_render(
	    platform_launchd_template, c->self_exe, c->state_dir, 1);
	dom = gui_domain();
	target = xasprintf("%s/%s", dom, PLATFORM_DARWIN_LABEL);
	if (platform_file(c, plist, content, 0644, MANIFEST_APPS, &changed) ==
	    -1)
		goto out;
	{
		const char *argv[] = {"launchctl", "print", target, NULL};

		loaded = platform_query(argv, &r) == 0;
		exec_result_free(&r);
	}
	if (loaded && !changed) {
		platform_same(
		    c, "LaunchAgent %s is loaded", PLATFORM_DARWIN_LABEL);
		goto record;
	}
	if (loaded) {
		/* A changed plist is only read by bootstrap. */
		const char *argv[] = {"launchctl", "bootout", target, NULL};

		if (platform_change(c, argv, &cause) == -1) {
			platform_problem(c, "%s", cause);
			goto out;
		}
	}
	{
		const char *argv[] = {
		    "launchctl", "bootstrap", dom, plist, NULL};

		if (platform_change(c, argv, &cause) == -1) {
			platform_problem(c,
			    "%s (check System Settings > "
			    "General > Login Items: halton-meter must be "
			    "allowed in the background)",
			    cause);
			goto out;
		}
	}
	platform_done(c,
	    "LaunchAgent %s: %s (runs halton-meter daemon at "
	    "login, keeps it alive)",
	    PLATFORM_DARWIN_LABEL, plist);
record:
	if (!c->dry_run) {
		cJSON *e = manifest_entry(c->m, "launch_agent",
		    PLATFORM_DARWIN_LABEL, MANIFEST_APPS, &existed);
		manifest_set_str(e, "plist", plist);
	}
out:
	free(cause);
	free(plist);
	free(content);
	free(dom);
	free(target);
}

static void
darwin_apps(struct platform_ctx *c)
{
	apps_env(c);
	apps_agent(c);
}

static void
full_trust(struct platform_ctx *c)
{
	char *keychain = paths_sys(DARWIN_KEYCHAIN), *sha1 = NULL, *cause;
	char *q;
	struct exec_result r;
	int trusted, existed;
	cJSON *e;

	{
		const char *argv[] = {"security", "verify-cert", "-l", "-L",
		    "-R", "offline", "-p", "ssl", "-c", c->ca_pem, NULL};

		trusted = platform_query(argv, &r) == 0;
		exec_result_free(&r);
	}
	if (trusted) {
		platform_same(c, "the CA is trusted in the System keychain");
		goto out;
	}
	{
		const char *argv[] = {"security", "add-trusted-cert", "-d",
		    "-r", "trustRoot", "-k", keychain, c->ca_pem, NULL};

		if (!c->dry_run)
			printf("halton-meter: macOS will now ask for an "
			       "administrator password (or Touch ID) to trust "
			       "the halton-meter CA.\n");
		fflush(stdout);
		if (platform_change(c, argv, &cause) == -1) {
			q = exec_quote_argv(argv);
			platform_problem(c,
			    "trusting the CA failed: %s\n"
			    "    run it by hand: sudo %s",
			    cause, q);
			free(q);
			free(cause);
			goto out;
		}
	}
	sha1 = platform_cert_fingerprint(c->ca_pem, "sha1");
	if (!c->dry_run) {
		e = manifest_entry(
		    c->m, "keychain_trust", c->ca_pem, MANIFEST_FULL, &existed);
		manifest_set_str(e, "keychain", keychain);
		manifest_set_str(e, "sha1", sha1);
	}
	platform_done(c, "trusted the CA in %s", keychain);
out:
	free(keychain);
	free(sha1);
}

struct proxy_state {
	int enabled;
	char server[256];
	char port[16];
};

static int
get_secure_proxy(const char *svc, struct proxy_state *ps)
{
	const char *argv[] = {"networksetup", "-getsecurewebproxy", svc, NULL};
	struct exec_result r;
	char *line, *next, *v;
	int rc;

	memset(ps, 0, sizeof(*ps));
	strcpy(ps->port, "0");
	if ((rc = platform_query(argv, &r)) == 0) {
		for (line = r.out; line != NULL; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if ((v = strchr(line, ':')) == NULL)
				continue;
			*v++ = '\0';
			v = str_trim(v);
			if (strcmp(line, "Enabled") == 0)
				ps->enabled = strcmp(v, "Yes") == 0;
			else if (strcmp(line, "Server") == 0)
				snprintf(
				    ps->server, sizeof(ps->server), "%s", v);
			else if (strcmp(line, "Port") == 0)
				snprintf(ps->port, sizeof(ps->port), "%s", v);
		}
	}
	exec_result_free(&r);
	return rc;
}

static void
full_proxy(struct platform_ctx *c)
{
	const char *list[] = {"networksetup", "-listallnetworkservices", NULL};
	struct exec_result r;
	struct proxy_state ps;
	char port[16], *line, *next, *cause, *q;
	int existed, n = 0;
	cJSON *e;

	snprintf(port, sizeof(port), "%d", c->proxy_port);
	if (platform_query(list, &r) == -1) {
		cause = exec_describe(list, &r);
		platform_problem(c, "cannot list network services: %s", cause);
		free(cause);
		exec_result_free(&r);
		return;
	}
	for (line = r.out; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		str_trim(line);
		/* The header line, and disabled services ("*Name"). */
		if (*line == '\0' || *line == '*' ||
		    strstr(line, "denotes that a network service") != NULL)
			continue;
		if (get_secure_proxy(line, &ps) == -1) {
			platform_problem(
			    c, "cannot read the proxy of '%s'", line);
			continue;
		}
		if (ps.enabled && strcmp(ps.server, c->proxy_host) == 0 &&
		    strcmp(ps.port, port) == 0) {
			platform_same(c,
			    "'%s' already uses the meter as its "
			    "HTTPS proxy",
			    line);
			continue;
		}
		if (!c->dry_run) {
			e = manifest_entry(c->m, "network_proxy", line,
			    MANIFEST_FULL, &existed);
			if (!existed) {
				manifest_set_int(e, "enabled", ps.enabled);
				manifest_set_str(e, "server", ps.server);
				manifest_set_str(e, "port", ps.port);
			}
		}
		{
			const char *set[] = {"networksetup",
			    "-setsecurewebproxy", line, c->proxy_host, port,
			    NULL};
			const char *on[] = {"networksetup",
			    "-setsecurewebproxystate", line, "on", NULL};

			if (platform_change(c, set, &cause) == -1 ||
			    platform_change(c, on, &cause) == -1) {
				q = exec_quote_argv(set);
				platform_problem(c,
				    "%s\n    run it by hand: "
				    "sudo %s",
				    cause, q);
				free(q);
				free(cause);
				continue;
			}
		}
		platform_done(c, "HTTPS proxy of '%s' -> %s:%s", line,
		    c->proxy_host, port);
		n++;
	}
	exec_result_free(&r);
	(void)n;
}

static void
darwin_full(struct platform_ctx *c)
{
	full_trust(c);
	full_proxy(c);
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
darwin_revert(struct platform_ctx *c, cJSON *e)
{
	const char *kind = manifest_str(e, "kind");
	const char *key = manifest_str(e, "key");
	char *dom, *target;
	int rc = 1;

	if (kind == NULL || key == NULL)
		return 0;
	if (strcmp(kind, "launchctl_env") == 0) {
		const char *prev = manifest_str(e, "previous");
		const char *set[] = {"launchctl", "setenv", key, prev, NULL};
		const char *unset[] = {"launchctl", "unsetenv", key, NULL};

		if (revert_change(c, prev != NULL ? set : unset) == -1)
			return -1;
		platform_done(c, "launchctl %s %s",
		    prev != NULL ? "setenv" : "unsetenv", key);
		return 1;
	}
	if (strcmp(kind, "launch_agent") == 0) {
		struct exec_result r;

		dom = gui_domain();
		target = xasprintf("%s/%s", dom, key);
		{
			const char *pr[] = {"launchctl", "print", target, NULL};
			const char *bo[] = {
			    "launchctl", "bootout", target, NULL};

			/* bootout of a service that is not loaded fails
			 * with 3: only boot out a loaded one. */
			if (platform_query(pr, &r) == 0 &&
			    revert_change(c, bo) == -1)
				rc = -1;
			else
				platform_done(c, "stopped LaunchAgent %s", key);
			exec_result_free(&r);
		}
		free(dom);
		free(target);
		return rc;
	}
	if (strcmp(kind, "keychain_trust") == 0) {
		const char *sha1 = manifest_str(e, "sha1");
		const char *kc = manifest_str(e, "keychain");
		const char *rm[] = {
		    "security", "remove-trusted-cert", "-d", key, NULL};
		const char *del[] = {
		    "security", "delete-certificate", "-Z", sha1, kc, NULL};

		if (revert_change(c, rm) == -1)
			return -1;
		if (sha1 != NULL && kc != NULL && revert_change(c, del) == -1)
			return -1;
		platform_done(c, "removed the CA from the System keychain");
		return 1;
	}
	if (strcmp(kind, "network_proxy") == 0) {
		const char *server = manifest_str(e, "server");
		const char *port = manifest_str(e, "port");
		int enabled = manifest_int(e, "enabled", 0);
		const char *set[] = {"networksetup", "-setsecurewebproxy", key,
		    server, port, NULL};
		const char *state[] = {"networksetup",
		    "-setsecurewebproxystate", key, enabled ? "on" : "off",
		    NULL};

		if (server != NULL && server[0] != '\0' && port != NULL &&
		    revert_change(c, set) == -1)
			return -1;
		if (revert_change(c, state) == -1)
			return -1;
		platform_done(c, "restored the HTTPS proxy of '%s'", key);
		return 1;
	}
	return 0;
}

const struct platform platform_darwin = {
    .name = "darwin",
    .bash_rc = ".bash_profile",
    .pipx_venvs = ".local/pipx/venvs",
    .apps = darwin_apps,
    .full = darwin_full,
    .revert = darwin_revert,
    .revert_finish = NULL,
    .session_env = darwin_session_env,
};
