#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/paths.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static const char *
env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

char *
paths_home(void)
{
	const char *home;
	struct passwd *pw;

	if ((home = env_nonempty("HOME")) != NULL)
		return xstrdup(home);
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir != NULL)
		return xstrdup(pw->pw_dir);
	return xstrdup("/");
}

char *
paths_state_dir(void)
{
	const char *dir;
	char *home, *p;

	if ((dir = env_nonempty("HALTON_METER_HOME")) != NULL)
		return xstrdup(dir);
	home = paths_home();
	p = xasprintf("%s/.halton-meter", home);
	free(home);
	return p;
}

char *
paths_state_file(const char *name)
{
	char *dir = paths_state_dir(), *p;

	p = xasprintf("%s/%s", dir, name);
	free(dir);
	return p;
}

char *
paths_ca_dir(void)
{
	char *home = paths_home(), *p;

	p = xasprintf("%s/.mitmproxy", home);
	free(home);
	return p;
}

char *
paths_sys(const char *path)
{
	const char *root = env_nonempty("HALTON_METER_SYSROOT");
	size_t n;

	if (root == NULL)
		return xstrdup(path);
	n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s", (int)n, root, path);
}

char *
paths_config_file(void)
{
	const char *p;

	if ((p = env_nonempty("HALTON_METER_CONFIG")) != NULL)
		return xstrdup(p);
	return paths_state_file("config");
}

int
paths_ensure_state_dir(char **cause)
{
	char *dir = paths_state_dir();
	struct stat st;
	int rc = -1;

	*cause = NULL;
	if (dir_create(dir, 0700) == -1) {
		*cause = xasprintf("cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	if (stat(dir, &st) == -1) {
		*cause = xasprintf("%s: %s", dir, strerror(errno));
		goto out;
	}
	if ((st.st_mode & 077) != 0 && st.st_uid == geteuid() &&
	    chmod(dir, 0700) == -1) {
		*cause = xasprintf("chmod %s: %s", dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(dir);
	return rc;
}
