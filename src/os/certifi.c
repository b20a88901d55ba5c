/*
 * certifi: interpreter discovery and bundle classification.
 */
/* realpath(3) is XSI. */
#define _XOPEN_SOURCE 700
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "halton/certifi.h"
#include "halton/exec.h"
#include "halton/paths.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static int
under(const char *path, const char *dir)
{
	char *sys = paths_sys(dir);
	int r = str_has_prefix(path, dir) || str_has_prefix(path, sys);

	free(sys);
	return r;
}

static int
is_distro_path(const char *p)
{
	return under(p, "/etc/") || under(p, "/usr/share/");
}

/* The last path component before the one at end (exclusive). */
static int
component_is(const char *path, const char *end, const char *name)
{
	const char *s = end;
	size_t n = strlen(name);

	while (s > path && s[-1] != '/')
		s--;
	return (size_t)(end - s) == n && memcmp(s, name, n) == 0;
}

char *
certifi_check_path(const char *path)
{
	char real[PATH_MAX];
	const char *slash, *slash2;
	struct stat st;

	if (path[0] != '/')
		return xasprintf("certifi.where() gave '%s', not an absolute "
		                 "path",
		    path);
	if (is_distro_path(path))
		return xstrdup(
		    "it is the distro's system bundle (the distro "
		    "redirects certifi there); not patched: use --full to "
		    "trust the CA system-wide");
	if (lstat(path, &st) == -1)
		return xasprintf("%s", strerror(errno));
	if (S_ISLNK(st.st_mode))
		return xstrdup(
		    "it is a symlink to a shared bundle "
		    "(e.g. Homebrew); not patched through a symlink");
	if (!S_ISREG(st.st_mode))
		return xstrdup("not a regular file");
	if (realpath(path, real) != NULL && is_distro_path(real))
		return xstrdup("it resolves into the distro's system bundle; "
		               "not patched");
	slash = strrchr(path, '/');
	if (slash == path || !component_is(path, slash, "certifi"))
		return xstrdup("not inside a site-packages/certifi directory");
	slash2 = slash - 1;
	while (slash2 > path && *slash2 != '/')
		slash2--;
	if (!component_is(path, slash2, "site-packages"))
		return xstrdup("not inside a site-packages/certifi directory");
	return NULL;
}

static void
add_target(struct certifi_list *l, const char *python)
{
	const char *argv[] = {
	    python, "-c", "import certifi; print(certifi.where())", NULL};
	struct certifi_target *t;
	struct exec_result r;
	char *out;
	size_t i;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	t = &l->v[l->n];
	memset(t, 0, sizeof(*t));
	t->python = xstrdup(python);
	if (exec_run(argv, CERTIFI_TIMEOUT_MS, 0, &r) == -1) {
		if (r.spawn_errno == 0 && r.err != NULL &&
		    strstr(r.err, "ModuleNotFoundError") != NULL)
			t->skip = xstrdup("certifi is not installed there");
		else
			t->skip = exec_describe(argv, &r);
		exec_result_free(&r);
		l->n++;
		return;
	}
	out = str_trim(r.out);
	if (strchr(out, '\n') != NULL)
		*strchr(out, '\n') = '\0';
	for (i = 0; i < l->n; i++) {
		if (l->v[i].path != NULL && strcmp(l->v[i].path, out) == 0) {
			/* Same bundle as an earlier interpreter. */
			free(t->python);
			exec_result_free(&r);
			return;
		}
	}
	t->path = xstrdup(out);
	t->skip = certifi_check_path(t->path);
	exec_result_free(&r);
	l->n++;
}

static int
name_cmp_cb(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
certifi_discover(struct certifi_list *l, const char *const *extra,
    size_t nextra, const char *venvs_dir, int skip_path)
{
	struct dirent *de;
	char **names = NULL, *py;
	size_t n = 0, i;
	DIR *d;

	memset(l, 0, sizeof(*l));
	if (!skip_path && exec_in_path("python3"))
		add_target(l, "python3");
	for (i = 0; i < nextra; i++)
		add_target(l, extra[i]);
	if (venvs_dir == NULL || (d = opendir(venvs_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp_cb);
	for (i = 0; i < n; i++) {
		py = xasprintf("%s/%s/bin/python", venvs_dir, names[i]);
		if (file_exists(py))
			add_target(l, py);
		free(py);
		free(names[i]);
	}
	free(names);
}

void
certifi_list_free(struct certifi_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].python);
		free(l->v[i].path);
		free(l->v[i].skip);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}
