/* nftw(3) is XSI. */
#define _XOPEN_SOURCE 700
#include <sys/stat.h>

#include <errno.h>
#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int failures; /* in the current test */
static char tmpdir[4096];

void
harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

int
harness_failed(void)
{
	return failures != 0;
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

const char *
harness_tmpdir(void)
{
	const char *base;

	if (tmpdir[0] != '\0')
		return tmpdir;
	if ((base = getenv("TMPDIR")) == NULL || *base == '\0')
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/halton-unit.XXXXXX", base);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	return tmpdir;
}

static void
mkparents(const char *path)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(buf, 0700);
		*p = '/';
	}
}

int
harness_write_file(const char *path, const void *data, size_t len)
{
	FILE *f;

	mkparents(path);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	if (len > 0 && fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

char *
harness_read_file(const char *path, size_t *lenp)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((buf = realloc(buf, cap + 1)) == NULL)
				abort();
		}
		if ((n = fread(buf + len, 1, cap - len, f)) == 0)
			break;
		len += n;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

int
harness_main(int argc, char **argv, const struct test *tests)
{
	const struct test *t;
	const char *name, *filter = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0;

	if ((name = strrchr(argv[0], '/')) != NULL)
		name++;
	else
		name = argv[0];
	for (t = tests; t->name != NULL; t++) {
		if (filter != NULL && strstr(t->name, filter) == NULL)
			continue;
		failures = 0;
		tmpdir[0] = '\0';
		t->fn();
		if (tmpdir[0] != '\0')
			nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		if (failures == 0)
			passed++;
		else {
			fprintf(stderr, "%s: %s failed\n", name, t->name);
			failed++;
		}
	}
	printf("%s: %d passed, %d failed\n", name, passed, failed);
	return failed == 0 ? 0 : 1;
}
