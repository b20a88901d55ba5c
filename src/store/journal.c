/*
 * journal: the file where a finished record lands first, one JSON line per
 * record, written with one write(2) on an O_APPEND descriptor.  The store
 * empties it once everything in it has been committed to SQLite.
 *
 * One process holds a journal at a time (a POSIX record lock on the whole
 * file): two writers would truncate each other's uncommitted lines.  The
 * lock belongs to the descriptor kept here, so the file is read through
 * that descriptor too (closing any other descriptor of the file would drop
 * a POSIX lock).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/xmalloc.h"
#include "store-int.h"

#define JOURNAL_MODE 0600

struct store_journal {
	int fd;
};

/*
 * Opens (creating 0600) and locks the journal at path.  Returns 0, or -1
 * with a cause the caller frees (another process holding it included).
 */
int
store_journal_open(struct store_journal **out, const char *path, char **cause)
{
	struct store_journal *j;
	struct flock fl;
	struct stat st;
	int fd;

	*out = NULL;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, JOURNAL_MODE);
	if (fd == -1) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077) != 0)
		(void)fchmod(fd, JOURNAL_MODE);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		*cause = xasprintf("%s: in use by another process (%s)", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	j = xcalloc(1, sizeof(*j));
	j->fd = fd;
	*out = j;
	return 0;
}

/* Reads the whole journal from offset 0 through the locked descriptor. */
char *
store_journal_read(struct store_journal *j, size_t *lenp)
{
	struct strbuf sb;
	char buf[65536];
	off_t off = 0;
	ssize_t n;

	strbuf_init(&sb);
	for (;;) {
		n = pread(j->fd, buf, sizeof(buf), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		strbuf_add(&sb, buf, (size_t)n);
		off += n;
	}
	if (sb.data == NULL)
		strbuf_add(&sb, "", 0);
	return strbuf_detach(&sb, lenp);
}

/*
 * Appends one line with a single write(2): with O_APPEND the line lands
 * whole at the end, and a process killed after write() returned cannot
 * lose it.  A short write (disk full) leaves a partial line, which replay
 * skips; it is reported as an error.
 */
int
store_journal_append(struct store_journal *j, const char *line, size_t len)
{
	ssize_t n;

	do
		n = write(j->fd, line, len);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != len) {
		/* End the fragment so the next line starts clean. */
		n = write(j->fd, "\n", 1);
		(void)n;
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

int
store_journal_truncate(struct store_journal *j)
{
	return ftruncate(j->fd, 0);
}

void
store_journal_close(struct store_journal *j)
{
	if (j == NULL)
		return;
	close(j->fd);
	free(j);
}
