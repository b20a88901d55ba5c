/*
 * uninstall: reverse what init recorded in ~/.halton-meter/installed.json,
 * last change first; --purge also deletes ~/.halton-meter and the CA files
 * init created (never a CA it found).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/cli.h"
#include "halton/envvars.h"
#include "halton/manifest.h"
#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/xmalloc.h"

/* Deletes path and everything below it (symlinks are not followed). */
static int
remove_tree(const char *path)
{
	struct dirent *de;
	struct stat st;
	char *child;
	DIR *d;
	int rc = 0;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		child = xasprintf("%s/%s", path, de->d_name);
		if (remove_tree(child) == -1)
			rc = -1;
		free(child);
	}
	closedir(d);
	if (rmdir(path) == -1)
		rc = -1;
	return rc;
}

static void
stop_daemon(struct platform_ctx *c)
{
	char *pidfile = paths_state_file("daemon.pid"), *text;
	long long pid;

	if ((text = file_read(pidfile, NULL)) != NULL &&
	    str_to_ll(str_trim(text), 2, 1LL << 30, &pid) == 0 &&
	    kill((pid_t)pid, 0) == 0) {
		if (c->dry_run || kill((pid_t)pid, SIGTERM) == 0)
			platform_done(c, "stop the daemon (pid %lld)", pid);
	}
	free(text);
	free(pidfile);
}

static void
purge(struct platform_ctx *c, struct manifest *m)
{
	const char *path;
	cJSON *e, *files, *f;
	size_t i;

	stop_daemon(c);
	for (i = 0; i < manifest_count(m); i++) {
		e = manifest_at(m, i);
		if ((path = manifest_str(e, "kind")) == NULL ||
		    strcmp(path, "ca_created") != 0)
			continue;
		files = cJSON_GetObjectItemCaseSensitive(e, "files");
		cJSON_ArrayForEach(f, files)
		{
			if (!cJSON_IsString(f))
				continue;
			if (!c->dry_run && unlink(f->valuestring) == -1 &&
			    errno != ENOENT)
				platform_problem(c, "cannot remove %s: %s",
				    f->valuestring, strerror(errno));
			else
				platform_done(c, "removed %s", f->valuestring);
		}
		if (manifest_int(e, "dir_created", 0) &&
		    (path = manifest_str(e, "key")) != NULL && !c->dry_run)
			(void)rmdir(path); /* only if empty */
	}
	if (c->dry_run)
		platform_done(c, "remove %s", c->state_dir);
	else if (remove_tree(c->state_dir) == -1)
		platform_problem(
		    c, "cannot remove %s: %s", c->state_dir, strerror(errno));
	else
		platform_done(c, "removed %s", c->state_dir);
}

static int
uninstall_exec(const struct cmd *self, int argc, char **argv)
{
	const struct platform *p;
	struct platform_ctx c;
	struct manifest *m;
	struct envvars env;
	struct config cfg;
	struct strbuf out;
	char *mpath, *cause, *sd;
	int i, dry_run = 0, do_purge = 0, found, rc;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0)
			dry_run = 1;
		else if (strcmp(argv[i], "--purge") == 0)
			do_purge = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if ((p = platform_get(&cause)) == NULL) {
		cli_error(self, "%s", cause);
		free(cause);
		return 1;
	}
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	mpath = paths_state_file(MANIFEST_FILE);
	if (manifest_load(&m, mpath, &found, &cause) == -1) {
		cli_error(self, "%s", cause);
		free(cause);
		free(mpath);
		config_free(&cfg);
		return 1;
	}
	sd = paths_state_dir();
	envvars_build(&env, &cfg, sd, NULL);
	free(sd);
	strbuf_init(&out);
	platform_ctx_init(&c, &cfg, &env, m, &out, dry_run);
	if (!found)
		platform_skip(&c, "no %s: nothing recorded to undo", mpath);
	platform_revert_above(p, &c, -1);
	if (!dry_run && found) {
		if (c.problems > 0) {
			if (manifest_save(m, mpath, &cause) == -1) {
				platform_problem(&c, "%s", cause);
				free(cause);
			}
		} else if (unlink(mpath) == -1 && errno != ENOENT)
			platform_problem(
			    &c, "cannot remove %s: %s", mpath, strerror(errno));
	}
	if (do_purge && c.problems > 0)
		platform_skip(&c,
		    "not purging: some changes could not be "
		    "undone (fix them and run uninstall again)");
	else if (do_purge)
		purge(&c, m);
	printf("halton-meter uninstall%s:\n%s",
	    dry_run ? " (dry run: nothing changed)" : "", out.data);
	if (c.problems > 0)
		printf("\n%d step(s) failed; the rest of the record is kept "
		       "in %s for another try.\n",
		    c.problems, mpath);
	rc = c.problems > 0 ? 1 : 0;
	platform_ctx_free(&c);
	envvars_free(&env);
	strbuf_free(&out);
	manifest_free(m);
	free(mpath);
	config_free(&cfg);
	return rc;
}

const struct cmd cmd_uninstall = {
    .name = "uninstall",
    .usage = "[--dry-run] [--purge]",
    .summary = "undo everything init changed",
    .help = "Options:\n"
            "  --dry-run  print what would be undone; change nothing\n"
            "  --purge    also delete ~/.halton-meter and the CA files "
            "init created\n"
            "             (a CA that existed before init is kept)\n",
    .exec = uninstall_exec,
};
