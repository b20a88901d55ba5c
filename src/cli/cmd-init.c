/*
 * init: create the CA, the bundle and the config, patch certifi, and wire
 * clients to the meter in one of three modes (env-only, --apps, --full).
 * Every change is recorded in ~/.halton-meter/installed.json so that
 * `uninstall` can reverse it; running init again in another mode moves
 * between modes (what the new mode does not need is reverted).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/ca.h"
#include "halton/certifi.h"
#include "halton/cli.h"
#include "halton/envvars.h"
#include "halton/exec.h"
#include "halton/intercept.h"
#include "halton/manifest.h"
#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/rcfile.h"
#include "halton/xmalloc.h"

/* Files of ~/.mitmproxy that a new CA may bring; --purge deletes those
 * that init created. */
static const char *const ca_files[] = {
    "mitmproxy-ca.pem",
    "mitmproxy-ca-cert.pem",
    "mitmproxy-ca-cert.cer",
    "mitmproxy-ca-cert.p12",
    "mitmproxy-ca.p12",
    "mitmproxy-dhparam.pem",
    NULL,
};

static const char *const mode_flags[] = {"", " --apps", " --full"};
static const char *const mode_names[] = {"env-only", "apps", "full"};

struct init_opts {
	enum manifest_level level;
	int dry_run;
	int no_certifi;
	const char **pythons;
	size_t npythons;
};

static void
step_ca(struct platform_ctx *c, const struct config *cfg)
{
	struct ca_options opt;
	struct intercept_list *il;
	char *dir = paths_ca_dir(), *p, *cause;
	int had[16], dir_had, created, existed;
	struct ca *ca;
	cJSON *e, *files;
	size_t i;

	dir_had = file_exists(dir);
	for (i = 0; ca_files[i] != NULL; i++) {
		p = xasprintf("%s/%s", dir, ca_files[i]);
		had[i] = file_exists(p);
		free(p);
	}
	if (c->dry_run) {
		if (!had[0])
			platform_done(c, "create a CA in %s", dir);
		else
			platform_same(c, "CA: %s/%s", dir, ca_files[0]);
		goto out;
	}
	memset(&opt, 0, sizeof(opt));
	opt.ca_dir = dir;
	opt.state_dir = c->state_dir;
	il = intercept_list_new(&cfg->intercept);
	opt.intercept = il;
	opt.name_constraints = cfg->ca_name_constraints;
	if (ca_load_or_create(&ca, &opt, &created, &cause) == -1) {
		platform_problem(c, "CA: %s", cause);
		free(cause);
		intercept_list_free(il);
		goto out;
	}
	ca_free(ca);
	intercept_list_free(il);
	if (!created) {
		platform_same(c, "CA: reusing %s/%s", dir, ca_files[0]);
		goto out;
	}
	e = manifest_entry(c->m, "ca_created", dir, MANIFEST_ENV, &existed);
	files = cJSON_CreateArray();
	for (i = 0; ca_files[i] != NULL; i++) {
		p = xasprintf("%s/%s", dir, ca_files[i]);
		if (!had[i] && file_exists(p))
			cJSON_AddItemToArray(files, cJSON_CreateString(p));
		free(p);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(e, "files");
	cJSON_AddItemToObject(e, "files", files);
	manifest_set_int(e, "dir_created", !dir_had);
	platform_done(c,
	    "created the CA: %s/%s (ca.pem and bundle.pem in "
	    "%s)",
	    dir, ca_files[0], c->state_dir);
out:
	free(dir);
}

static void
step_config(struct platform_ctx *c)
{
	char *path = paths_config_file(), *cause;

	if (file_exists(path))
		platform_same(c, "config: %s (kept as it is)", path);
	else if (c->dry_run)
		platform_done(c, "write the default config %s", path);
	else if (config_write_default(path, &cause) == -1) {
		platform_problem(c, "%s", cause);
		free(cause);
	} else
		platform_done(c, "config: %s", path);
	free(path);
}

/* An HTTPS_PROXY that points elsewhere becomes the daemon's
 * upstream_proxy, so a corporate proxy keeps working. */
static void
step_upstream(struct platform_ctx *c, const struct config *cfg)
{
	const char *v = getenv("HTTPS_PROXY");
	char *hp, *host = NULL, *path = NULL, *old = NULL, *line, *mine;
	size_t len = 0;
	int port;

	if (v == NULL || *v == '\0')
		v = getenv("https_proxy");
	if (v == NULL || *v == '\0')
		return;
	hp = xstrdup(str_has_prefix(v, "http://") ? v + 7 : v);
	if (hp[0] != '\0' && hp[strlen(hp) - 1] == '/')
		hp[strlen(hp) - 1] = '\0';
	mine = xasprintf("%s:%d", c->proxy_host, c->proxy_port);
	if (strstr(hp, mine) != NULL) {
		free(mine);
		free(hp);
		return; /* our own variable, from an rc block */
	}
	free(mine);
	if (cfg->upstream_proxy != NULL) {
		platform_same(c, "upstream_proxy = %s (from the config)",
		    cfg->upstream_proxy);
		goto out;
	}
	if (strchr(hp, '@') != NULL ||
	    (strstr(v, "://") != NULL && !str_has_prefix(v, "http://")) ||
	    config_parse_addr(hp, &host, &port) == -1) {
		platform_problem(c,
		    "HTTPS_PROXY is set to a proxy the meter "
		    "cannot use as given (only http://HOST:PORT, no "
		    "credentials); set upstream_proxy in the config by hand");
		goto out;
	}
	path = paths_config_file();
	line = xasprintf("upstream_proxy = http://%s\n", hp);
	if (c->dry_run)
		platform_done(c, "add to %s: %s", path, line);
	else {
		old = file_read(path, &len);
		{
			struct strbuf sb;

			strbuf_init(&sb);
			if (old != NULL)
				strbuf_add(&sb, old, len);
			if (sb.len > 0 && sb.data[sb.len - 1] != '\n')
				strbuf_addc(&sb, '\n');
			strbuf_adds(&sb, line);
			if (file_write_atomic(path, sb.data, sb.len, 0600) ==
			    -1)
				platform_problem(c, "cannot write %s: %s", path,
				    strerror(errno));
			else
				platform_done(c,
				    "upstream_proxy = http://%s "
				    "(HTTPS_PROXY was set; the meter forwards "
				    "through it)",
				    hp);
			strbuf_free(&sb);
		}
	}
	free(line);
out:
	free(host);
	free(path);
	free(old);
	free(hp);
}

static char *
venvs_dir(const struct platform *p, const char *home)
{
	const char *ph = getenv("PIPX_HOME");

	if (ph != NULL && ph[0] == '/')
		return xasprintf("%s/venvs", ph);
	return xasprintf("%s/%s", home, p->pipx_venvs);
}

static void
step_certifi(
    struct platform_ctx *c, const struct platform *p, const struct init_opts *o)
{
	struct certifi_list l;
	struct rcfile_change ch;
	char *venvs = venvs_dir(p, c->home), *pem, *cause;
	size_t i, len;
	int existed;
	cJSON *e;

	if ((pem = file_read(c->ca_pem, &len)) == NULL)
		pem = xstrdup("(the CA certificate)\n");
	certifi_discover(&l, o->pythons, o->npythons, venvs, 0);
	if (l.n == 0)
		platform_skip(c, "certifi: no Python interpreter found");
	for (i = 0; i < l.n; i++) {
		struct certifi_target *t = &l.v[i];

		if (t->skip != NULL) {
			platform_skip(c, "certifi (%s)%s%s: skipped: %s",
			    t->python, t->path != NULL ? " " : "",
			    t->path != NULL ? t->path : "", t->skip);
			continue;
		}
		if (rcfile_apply(t->path, &rcfile_certifi_markers, pem, 0644,
		        c->dry_run, &ch, &cause) == -1) {
			platform_problem(c, "certifi: %s", cause);
			free(cause);
			continue;
		}
		if (!ch.changed) {
			platform_same(c, "certifi: %s holds the CA", t->path);
			if (manifest_find(c->m, "certifi", t->path) != NULL)
				continue;
		} else
			platform_done(c, "certifi: appended the CA to %s (%s)",
			    t->path, t->python);
		if (c->dry_run)
			continue;
		e = manifest_entry(
		    c->m, "certifi", t->path, MANIFEST_ENV, &existed);
		if (!existed) {
			manifest_set_str(e, "python", t->python);
			manifest_set_int(e, "existed", 1);
			manifest_set_int(e, "sep_added", ch.sep_added);
		}
	}
	certifi_list_free(&l);
	free(venvs);
	free(pem);
}

static void
rc_one(struct platform_ctx *c, const char *shell, const char *path,
    const char *body)
{
	struct rcfile_change ch;
	char *cause;
	int existed;
	cJSON *e;

	if (rcfile_apply(path, &rcfile_shell_markers, body, 0644, c->dry_run,
	        &ch, &cause) == -1) {
		platform_problem(c, "%s", cause);
		free(cause);
		return;
	}
	if (ch.changed)
		platform_done(c, "%s: variables block in %s", shell, path);
	else
		platform_same(c, "%s: %s is up to date", shell, path);
	if (c->dry_run ||
	    (!ch.changed && manifest_find(c->m, "rc", path) != NULL))
		return;
	e = manifest_entry(c->m, "rc", path, MANIFEST_APPS, &existed);
	if (!existed) {
		manifest_set_str(e, "shell", shell);
		manifest_set_int(e, "existed", ch.existed);
		manifest_set_int(e, "sep_added", ch.sep_added);
	}
}

/* Rc blocks for the shells found in PATH (zsh, bash, fish). */
static void
step_rc(struct platform_ctx *c, const struct platform *p)
{
	static const char head[] = "# Managed by halton-meter: "
	                           "`halton-meter uninstall` removes it.\n";
	const char *zd = getenv("ZDOTDIR"), *xdg = getenv("XDG_CONFIG_HOME");
	char *sh, *fish, *body, *path;
	int any = 0;

	sh = envvars_format(c->env, ENVVARS_SH);
	fish = envvars_format(c->env, ENVVARS_FISH);
	if (exec_in_path("zsh")) {
		path = xasprintf(
		    "%s/.zshenv", zd != NULL && zd[0] == '/' ? zd : c->home);
		body = xasprintf("%s%s", head, sh);
		rc_one(c, "zsh", path, body);
		free(body);
		free(path);
		any = 1;
	}
	if (exec_in_path("bash")) {
		path = xasprintf("%s/%s", c->home, p->bash_rc);
		body = xasprintf("%s%s", head, sh);
		rc_one(c, "bash", path, body);
		free(body);
		free(path);
		any = 1;
	}
	if (exec_in_path("fish")) {
		if (xdg != NULL && xdg[0] == '/')
			path =
			    xasprintf("%s/fish/conf.d/halton-meter.fish", xdg);
		else
			path = xasprintf("%s/.config/fish/conf.d/"
			                 "halton-meter.fish",
			    c->home);
		body = xasprintf("%s%s", head, fish);
		rc_one(c, "fish", path, body);
		free(body);
		free(path);
		any = 1;
	}
	if (!any)
		platform_skip(c, "shells: none of zsh, bash, fish in PATH");
	free(sh);
	free(fish);
}

static void
print_next(const struct platform *p, enum manifest_level level)
{
	printf("\nNext:\n");
	if (level == MANIFEST_ENV)
		printf("  - meter one command: halton-meter run -- claude\n"
		       "  - or wire every new process: halton-meter init "
		       "--apps\n");
	else {
		printf("  - open a new terminal (shells read the variables at "
		       "start)\n"
		       "  - quit and reopen Claude Code, Cursor, Windsurf: "
		       "Node reads NODE_EXTRA_CA_CERTS only at start\n");
		if (strcmp(p->name, "darwin") == 0)
			printf("  - apps started from the Dock get the "
			       "variables; running apps do not until "
			       "reopened\n");
	}
	printf("  - Firefox has its own certificate store%s\n",
	    level == MANIFEST_FULL ? " (restart it)"
	                           : ": `init --full` adds the CA");
	if (strcmp(p->name, "darwin") == 0 && level != MANIFEST_FULL)
		printf("  - Go programs on macOS read only the keychain: "
		       "they need `init --full`\n");
	printf("  - check every layer: halton-meter doctor\n");
}

/* The whole of init; also used by `run` (env-only, quiet). */
static int
init_perform(const struct cmd *self, const struct config *cfg,
    const struct init_opts *o, int quiet)
{
	const struct platform *p;
	struct platform_ctx c;
	struct manifest *m = NULL;
	struct envvars env;
	struct strbuf out;
	char *mpath = NULL, *cause = NULL;
	const char *prev_mode;
	int found, rc = 1;

	if ((p = platform_get(&cause)) == NULL) {
		cli_error(self, "%s", cause);
		free(cause);
		return 1;
	}
	if (!o->dry_run && paths_ensure_state_dir(&cause) == -1) {
		cli_error(self, "%s", cause);
		free(cause);
		return 1;
	}
	mpath = paths_state_file(MANIFEST_FILE);
	if (manifest_load(&m, mpath, &found, &cause) == -1) {
		cli_error(self, "%s", cause);
		free(cause);
		free(mpath);
		return 1;
	}
	prev_mode = manifest_mode(m);
	strbuf_init(&out);
	{
		char *sd = paths_state_dir();

		envvars_build(&env, cfg, sd, NULL);
		free(sd);
	}
	platform_ctx_init(&c, cfg, &env, m, &out, o->dry_run);

	step_ca(&c, cfg);
	step_config(&c);
	step_upstream(&c, cfg);
	if (o->no_certifi)
		platform_skip(&c, "certifi: skipped (--no-certifi)");
	else
		step_certifi(&c, p, o);
	/* Leaving a mode reverts what the new one does not need. */
	if (prev_mode != NULL &&
	    manifest_level_parse(prev_mode) > (int)o->level) {
		strbuf_addf(&out, "  (leaving mode %s)\n", prev_mode);
		platform_revert_above(p, &c, (int)o->level);
	}
	if (o->level >= MANIFEST_APPS) {
		step_rc(&c, p);
		p->apps(&c);
	}
	if (o->level >= MANIFEST_FULL)
		p->full(&c);

	if (!o->dry_run) {
		manifest_set_mode(m, manifest_level_name(o->level));
		manifest_set_platform(m, p->name);
		if (manifest_save(m, mpath, &cause) == -1) {
			platform_problem(&c, "%s", cause);
			free(cause);
		}
	}
	if (!quiet || c.problems > 0) {
		fprintf(quiet ? stderr : stdout,
		    "halton-meter init%s (%s mode, %s)%s:\n%s",
		    mode_flags[o->level], mode_names[o->level], p->name,
		    o->dry_run ? " (dry run: nothing changed)" : "", out.data);
		if (!quiet && !o->dry_run)
			print_next(p, o->level);
	}
	rc = c.problems > 0 ? 1 : 0;
	platform_ctx_free(&c);
	envvars_free(&env);
	strbuf_free(&out);
	manifest_free(m);
	free(mpath);
	return rc;
}

int
cmd_init_env_only(const struct cmd *self, const struct config *cfg)
{
	struct init_opts o;

	memset(&o, 0, sizeof(o));
	o.level = MANIFEST_ENV;
	return init_perform(self, cfg, &o, 1);
}

static int
init_exec(const struct cmd *self, int argc, char **argv)
{
	struct init_opts o;
	struct config cfg;
	int i, rc;

	if (cli_wants_help(self, argc, argv))
		return 0;
	memset(&o, 0, sizeof(o));
	o.pythons = xcalloc((size_t)argc, sizeof(*o.pythons));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--apps") == 0)
			o.level =
			    o.level > MANIFEST_APPS ? o.level : MANIFEST_APPS;
		else if (strcmp(argv[i], "--full") == 0)
			o.level = MANIFEST_FULL;
		else if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0)
			o.dry_run = 1;
		else if (strcmp(argv[i], "--no-certifi") == 0)
			o.no_certifi = 1;
		else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
			o.pythons[o.npythons++] = argv[++i];
		else if (str_has_prefix(argv[i], "--python="))
			o.pythons[o.npythons++] = argv[i] + 9;
		else {
			free(o.pythons);
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
		}
	}
	if (cli_load_config(self, &cfg) == -1) {
		free(o.pythons);
		return 1;
	}
	rc = init_perform(self, &cfg, &o, 0);
	config_free(&cfg);
	free(o.pythons);
	return rc;
}

const struct cmd cmd_init = {
    .name = "init",
    .usage = "[--apps | --full] [--dry-run] [--no-certifi] "
             "[--python PATH]...",
    .summary = "create the CA and wire clients to the meter",
    .help = "Modes:\n"
            "  (none)        env-only: CA, bundle, config, certifi; the "
            "variables exist\n"
            "                only inside `halton-meter run`\n"
            "  --apps        also every new process: shell rc blocks, "
            "launchctl setenv\n"
            "                + LaunchAgent (macOS), environment.d + "
            "systemd user unit (Linux)\n"
            "  --full        --apps plus system trust (keychain, distro "
            "store, NSS, Java)\n"
            "                and the system HTTPS proxy\n"
            "Options:\n"
            "  --dry-run     print each planned change; change nothing\n"
            "  --no-certifi  do not patch Python certifi bundles\n"
            "  --python P    also patch interpreter P's certifi "
            "(repeatable)\n"
            "\nRunning init again in a lower mode reverts what that mode "
            "does not need.\nEvery change is recorded in "
            "~/.halton-meter/installed.json for `uninstall`.\n",
    .exec = init_exec,
};
