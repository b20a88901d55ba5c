/*
 * rcfile: marker blocks in text files.
 */
/* realpath(3) is XSI. */
#define _XOPEN_SOURCE 700
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/rcfile.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

const struct rcfile_markers rcfile_shell_markers = {
    "# >>> halton-meter >>>",
    "# <<< halton-meter <<<",
};
const struct rcfile_markers rcfile_certifi_markers = {
    "# halton-meter CA begin",
    "# halton-meter CA end",
};

/* Whether the line at s (up to a newline or end) equals marker; trailing
 * white space (and a CR) is tolerated. */
static int
line_is(const char *s, const char *end, const char *marker)
{
	size_t n = strlen(marker);

	if ((size_t)(end - s) < n || memcmp(s, marker, n) != 0)
		return 0;
	for (s += n; s < end && *s != '\n'; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r')
			return 0;
	return 1;
}

int
rcfile_block_find(const char *buf, size_t len, const struct rcfile_markers *m,
    size_t *start, size_t *stop)
{
	const char *p = buf, *end = buf + len, *nl;
	int in = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!in && line_is(p, end, m->begin)) {
			*start = (size_t)(p - buf);
			in = 1;
		} else if (in && line_is(p, end, m->end)) {
			*stop = nl != NULL ? (size_t)(nl + 1 - buf) : len;
			return 1;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return in ? -1 : 0;
}

static char *
unterminated(const struct rcfile_markers *m)
{
	return xasprintf("a '%s' line has no '%s' line after it; fix the "
	                 "file by hand",
	    m->begin, m->end);
}

char *
rcfile_block_remove(const char *buf, size_t len, const struct rcfile_markers *m,
    int strip_sep, size_t *outlen, char **cause)
{
	struct strbuf sb;
	size_t start, stop, off = 0;
	int rc;

	*cause = NULL;
	strbuf_init(&sb);
	while ((rc = rcfile_block_find(
	            buf + off, len - off, m, &start, &stop)) == 1) {
		start += off;
		stop += off;
		/* The newline added before a block appended at the end. */
		if (strip_sep && stop == len && start > 0 &&
		    buf[start - 1] == '\n' && start - 1 >= off)
			strbuf_add(&sb, buf + off, start - 1 - off);
		else
			strbuf_add(&sb, buf + off, start - off);
		off = stop;
	}
	if (rc == -1) {
		strbuf_free(&sb);
		*cause = unterminated(m);
		return NULL;
	}
	strbuf_add(&sb, buf + off, len - off);
	return strbuf_detach(&sb, outlen);
}

char *
rcfile_block_set(const char *buf, size_t len, const struct rcfile_markers *m,
    const char *body, int *sep_added, size_t *outlen, char **cause)
{
	struct strbuf block, sb;
	size_t start, stop, blen;
	char *rest;
	int rc;

	*cause = NULL;
	*sep_added = 0;
	strbuf_init(&block);
	strbuf_addf(&block, "%s\n%s", m->begin, body);
	if (body[0] != '\0' && body[strlen(body) - 1] != '\n')
		strbuf_addc(&block, '\n');
	strbuf_addf(&block, "%s\n", m->end);
	strbuf_init(&sb);
	if ((rc = rcfile_block_find(buf, len, m, &start, &stop)) == -1) {
		*cause = unterminated(m);
		strbuf_free(&block);
		return NULL;
	}
	if (rc == 1) {
		strbuf_add(&sb, buf, start);
		strbuf_add(&sb, block.data, block.len);
		/* Drop any later duplicate. */
		if ((rest = rcfile_block_remove(
		         buf + stop, len - stop, m, 0, &blen, cause)) == NULL) {
			strbuf_free(&block);
			strbuf_free(&sb);
			return NULL;
		}
		strbuf_add(&sb, rest, blen);
		free(rest);
	} else {
		strbuf_add(&sb, buf, len);
		if (len > 0 && buf[len - 1] != '\n') {
			strbuf_addc(&sb, '\n');
			*sep_added = 1;
		}
		strbuf_add(&sb, block.data, block.len);
	}
	strbuf_free(&block);
	return strbuf_detach(&sb, outlen);
}

/* The file to write: the target of a symlink, else path itself. */
static char *
write_target(const char *path)
{
	char buf[PATH_MAX];
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
	    realpath(path, buf) != NULL)
		return xstrdup(buf);
	return xstrdup(path);
}

static int
make_parent(const char *path)
{
	char *dir = xstrdup(path), *slash;
	int rc = 0;

	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		rc = dir_create(dir, 0755);
	}
	free(dir);
	return rc;
}

int
rcfile_apply(const char *path, const struct rcfile_markers *m, const char *body,
    mode_t mode, int dry_run, struct rcfile_change *ch, char **cause)
{
	char *target = write_target(path), *old = NULL, *new = NULL;
	size_t oldlen = 0, newlen;
	struct stat st;
	int rc = -1;

	*cause = NULL;
	memset(ch, 0, sizeof(*ch));
	ch->mode = mode;
	if (stat(target, &st) == 0) {
		ch->existed = 1;
		ch->mode = st.st_mode & 07777;
		if ((old = file_read(target, &oldlen)) == NULL) {
			*cause = xasprintf(
			    "cannot read %s: %s", target, strerror(errno));
			goto out;
		}
	} else if (errno != ENOENT) {
		*cause = xasprintf("%s: %s", target, strerror(errno));
		goto out;
	}
	if ((new = rcfile_block_set(old != NULL ? old : "", oldlen, m, body,
	         &ch->sep_added, &newlen, cause)) == NULL) {
		char *c = xasprintf("%s: %s", target, *cause);
		free(*cause);
		*cause = c;
		goto out;
	}
	ch->changed =
	    !ch->existed || newlen != oldlen || memcmp(new, old, newlen) != 0;
	if (ch->changed && !dry_run) {
		if ((!ch->existed && make_parent(target) == -1) ||
		    file_write_atomic(target, new, newlen, ch->mode) == -1) {
			*cause = xasprintf(
			    "cannot write %s: %s", target, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	free(target);
	free(old);
	free(new);
	return rc;
}

int
rcfile_unapply(const char *path, const struct rcfile_markers *m, int strip_sep,
    int remove_new, int dry_run, int *changed, char **cause)
{
	char *target = write_target(path), *old = NULL, *new = NULL;
	size_t oldlen, newlen;
	struct stat st;
	int rc = -1;

	*cause = NULL;
	*changed = 0;
	if (stat(target, &st) == -1) {
		rc = errno == ENOENT ? 0 : -1;
		if (rc == -1)
			*cause = xasprintf("%s: %s", target, strerror(errno));
		goto out;
	}
	if ((old = file_read(target, &oldlen)) == NULL) {
		*cause =
		    xasprintf("cannot read %s: %s", target, strerror(errno));
		goto out;
	}
	if ((new = rcfile_block_remove(
	         old, oldlen, m, strip_sep, &newlen, cause)) == NULL) {
		char *c = xasprintf("%s: %s", target, *cause);
		free(*cause);
		*cause = c;
		goto out;
	}
	if (remove_new && newlen == 0) {
		*changed = 1;
		if (!dry_run && unlink(target) == -1) {
			*cause = xasprintf(
			    "cannot remove %s: %s", target, strerror(errno));
			goto out;
		}
	} else if (newlen != oldlen) {
		*changed = 1;
		if (!dry_run &&
		    file_write_atomic(
		        target, new, newlen, st.st_mode & 07777) == -1) {
			*cause = xasprintf(
			    "cannot write %s: %s", target, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	free(target);
	free(old);
	free(new);
	return rc;
}
