/*
 * store: the writer side.  Records go to the journal and a queue; a flush
 * commits the whole queue in one transaction and then empties the journal.
 * SQLite is only touched from store_open, store_flush and store_close, with
 * a busy timeout of a few milliseconds: a lock held by someone else makes a
 * flush return STORE_FLUSH_RETRY, never wait.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/log.h"
#include "halton/xmalloc.h"
#include "store-int.h"

#define DB_MODE 0600

/*
 * Forward-only migrations.  Step i takes the schema from user_version i to
 * i + 1; a new version appends one step, never edits an old one.
 */
static const char *const migrations[] = {
    /* 0 -> 1: requests and ratelimits. */
    "CREATE TABLE requests ("
    " uuid TEXT NOT NULL UNIQUE,"
    " started_at INTEGER NOT NULL,"
    " ended_at INTEGER NOT NULL,"
    " ttfb_ms INTEGER,"
    " duration_ms INTEGER,"
    " provider TEXT,"
    " kind TEXT,"
    " host TEXT,"
    " method TEXT,"
    " path TEXT,"
    " status INTEGER,"
    " stream INTEGER,"
    " request_model TEXT,"
    " model TEXT,"
    " input_tokens INTEGER,"
    " output_tokens INTEGER,"
    " cache_creation_input_tokens INTEGER,"
    " cache_creation_5m_tokens INTEGER,"
    " cache_creation_1h_tokens INTEGER,"
    " cache_read_input_tokens INTEGER,"
    " reasoning_tokens INTEGER,"
    " web_search_requests INTEGER,"
    " stop_reason TEXT,"
    " request_id TEXT,"
    " error TEXT,"
    " service_tier TEXT,"
    " client TEXT,"
    " client_version TEXT,"
    " user_agent TEXT,"
    " tag TEXT,"
    " pid INTEGER,"
    " process TEXT,"
    " cwd TEXT,"
    " project TEXT,"
    " key_fp TEXT,"
    " session_id TEXT,"
    " bytes_up INTEGER NOT NULL DEFAULT 0,"
    " bytes_down INTEGER NOT NULL DEFAULT 0,"
    " provider_cost_usd REAL,"
    " usage_json TEXT);"
    "CREATE INDEX requests_started_at ON requests(started_at);"
    "CREATE INDEX requests_model ON requests(model, started_at);"
    "CREATE TABLE ratelimits ("
    " provider TEXT NOT NULL,"
    " key_fp TEXT NOT NULL DEFAULT '',"
    " observed_at INTEGER NOT NULL,"
    " headers_json TEXT NOT NULL,"
    " PRIMARY KEY (provider, key_fp));",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

struct store {
	char *db_path;
	sqlite3 *db; /* NULL until (re)opened */
	int ready;   /* WAL set, schema migrated, statements made */
	sqlite3_stmt *insert;
	sqlite3_stmt *upsert_rl;
	sqlite3_stmt *begin; /* prepared once: a flush is on the loop */
	sqlite3_stmt *commit;
	struct store_journal *journal;
	struct usage_record *recs;
	size_t nrecs, caprecs;
	struct ratelimit_snapshot *rls;
	size_t nrls, caprls;
	char *last_error;
	int failing;        /* the last flush failed (logged once) */
	struct strbuf line; /* the journal line being made (kept: no
	                     * allocation per record) */
};

int
store_schema_version(void)
{
	return SCHEMA_VERSION;
}

/* Whether an SQLite result means "someone else has it now, try later". */
static int
transient(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_READONLY:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_PERM:
		return 1;
	}
	return 0;
}

static void
set_error(struct store *s, sqlite3 *db, int rc)
{
	free(s->last_error);
	s->last_error = xasprintf("%s (%d)",
	    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

/* Creates the file with mode 0600 before SQLite does, so the -wal and -shm
 * files (which SQLite creates with the database file's mode) are 0600 too;
 * an existing file with a looser mode is tightened. */
static void
db_file_prepare(const char *path)
{
	static const char *const sfx[] = {"-wal", "-shm"};
	struct stat st, sst;
	char *side;
	size_t i;
	int fd;

	if (stat(path, &st) == -1) {
		fd = open(
		    path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, DB_MODE);
		if (fd != -1)
			close(fd);
		return;
	}
	if ((st.st_mode & 0077) != 0)
		(void)chmod(path, DB_MODE);
	/*
	 * While the database was read-only (mode 0400), SQLite created the
	 * -wal/-shm files with that mode; once it is writable again they must
	 * be too, or every connection would stay read-only.
	 */
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		side = xasprintf("%s%s", path, sfx[i]);
		if (stat(side, &sst) == 0 && (st.st_mode & 0200) != 0 &&
		    ((sst.st_mode & 0777) != DB_MODE))
			(void)chmod(side, DB_MODE);
		free(side);
	}
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int
user_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Runs the migration steps from the database's user_version up to target,
 * each in its own IMMEDIATE transaction together with its user_version
 * bump, so a crash leaves the schema at a whole version.  Returns an
 * SQLite result code; *newer is set if the database is ahead of us.
 */
static int
migrate(sqlite3 *db, int target, int *newer)
{
	char pragma[64];
	int rc, v;

	*newer = 0;
	if ((rc = user_version(db, &v)) != SQLITE_OK)
		return rc;
	if (v > SCHEMA_VERSION) {
		*newer = v;
		return SQLITE_ERROR;
	}
	while (v < target) {
		if ((rc = exec_sql(db, "BEGIN IMMEDIATE")) != SQLITE_OK)
			return rc;
		/* Another process may have migrated while we waited. */
		if ((rc = user_version(db, &v)) != SQLITE_OK || v >= target) {
			exec_sql(db, "ROLLBACK");
			return rc;
		}
		snprintf(
		    pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if ((rc = exec_sql(db, migrations[v])) != SQLITE_OK ||
		    (rc = exec_sql(db, pragma)) != SQLITE_OK ||
		    (rc = exec_sql(db, "COMMIT")) != SQLITE_OK) {
			exec_sql(db, "ROLLBACK");
			return rc;
		}
		v++;
	}
	return SQLITE_OK;
}

static int
db_open(const char *path, int busy_ms, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	db_file_prepare(path);
	rc = sqlite3_open_v2(path, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	    NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return rc;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, busy_ms);
	*out = db;
	return SQLITE_OK;
}

int
store_migrate_to(const char *path, int version, char **cause)
{
	sqlite3 *db;
	int rc, newer;

	*cause = NULL;
	if (version < 0 || version > SCHEMA_VERSION) {
		*cause = xasprintf("no schema version %d", version);
		return -1;
	}
	if ((rc = db_open(path, 1000, &db)) != SQLITE_OK) {
		*cause = xasprintf("%s: %s", path, sqlite3_errstr(rc));
		return -1;
	}
	exec_sql(db, "PRAGMA journal_mode = WAL");
	if ((rc = migrate(db, version, &newer)) != SQLITE_OK) {
		*cause = xasprintf("%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_close(db);
	return 0;
}

static void
db_close(struct store *s)
{
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->upsert_rl);
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	s->insert = s->upsert_rl = s->begin = s->commit = NULL;
	if (s->db != NULL)
		sqlite3_close(s->db);
	s->db = NULL;
	s->ready = 0;
}

/*
 * Makes the connection usable for writing: (re)opens it, sets WAL, migrates
 * and prepares the statements.  Returns an SQLite result code; a transient
 * one leaves the store to try again on the next flush.  *fatal is set for
 * a database this program cannot use at all (newer schema, not a DB).
 */
static int
ensure_ready(struct store *s, int *fatal)
{
	struct strbuf sql;
	sqlite3_stmt *st;
	size_t i;
	int rc, newer;

	*fatal = 0;
	if (s->ready)
		return SQLITE_OK;
	if (s->db == NULL &&
	    (rc = db_open(s->db_path, STORE_BUSY_TIMEOUT_MS, &s->db)) !=
	        SQLITE_OK) {
		set_error(s, NULL, rc);
		return rc;
	}
	/* Changing to WAL needs the write lock once; later it is a no-op. */
	rc = sqlite3_prepare_v2(
	    s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			rc = SQLITE_OK;
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK)
		goto fail;
	exec_sql(s->db, "PRAGMA synchronous = NORMAL");
	if ((rc = migrate(s->db, SCHEMA_VERSION, &newer)) != SQLITE_OK) {
		if (newer) {
			free(s->last_error);
			s->last_error =
			    xasprintf("%s: schema version %d is "
			              "newer than this program's (%d)",
			        s->db_path, newer, SCHEMA_VERSION);
			*fatal = 1;
			db_close(s);
			return rc;
		}
		goto fail;
	}
	/* No query reads by model (reports scan the window in rowid order),
	 * and this index cost every insert a fifth of its work.  Dropped here
	 * rather than by a migration step: a schema version of its own would
	 * make an older halton-meter refuse the database, and it needs no
	 * index it never used.  Best effort: a busy database keeps it until
	 * the next start. */
	exec_sql(s->db, "DROP INDEX IF EXISTS requests_model");
	strbuf_init(&sql);
	strbuf_addf(&sql, "INSERT OR IGNORE INTO requests (%s) VALUES (",
	    store_col_list());
	for (i = 0; i < store_ncols; i++)
		strbuf_adds(&sql, i > 0 ? ", ?" : "?");
	strbuf_adds(&sql, ")");
	rc = sqlite3_prepare_v2(s->db, sql.data, -1, &s->insert, NULL);
	strbuf_free(&sql);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_prepare_v2(s->db,
	    "INSERT INTO ratelimits (provider, key_fp, observed_at, "
	    "headers_json) VALUES (?, ?, ?, ?) "
	    "ON CONFLICT (provider, key_fp) DO UPDATE SET "
	    "observed_at = excluded.observed_at, "
	    "headers_json = excluded.headers_json "
	    "WHERE excluded.observed_at >= ratelimits.observed_at",
	    -1, &s->upsert_rl, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_prepare_v2(
	         s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL)) !=
	        SQLITE_OK)
		goto fail;
	s->ready = 1;
	return SQLITE_OK;
fail:
	set_error(s, s->db, rc);
	if (!transient(rc))
		*fatal = (rc & 0xff) == SQLITE_NOTADB ||
		    (rc & 0xff) == SQLITE_CORRUPT;
	/* Reopen next time: a read-only or vanished file may be back. */
	db_close(s);
	return rc;
}

static void
queue_grow(struct store *s)
{
	if (s->nrecs == s->caprecs) {
		s->caprecs = s->caprecs ? s->caprecs * 2 : 64;
		s->recs = xreallocarray(s->recs, s->caprecs, sizeof(*s->recs));
	}
}

static void
queue_record(struct store *s, const struct usage_record *r)
{
	queue_grow(s);
	store_record_copy(&s->recs[s->nrecs++], r);
}

static void
queue_ratelimit(struct store *s, const struct ratelimit_snapshot *rl)
{
	struct ratelimit_snapshot *d;

	if (s->nrls == s->caprls) {
		s->caprls = s->caprls ? s->caprls * 2 : 8;
		s->rls = xreallocarray(s->rls, s->caprls, sizeof(*s->rls));
	}
	d = &s->rls[s->nrls++];
	d->provider = xstrdup(rl->provider != NULL ? rl->provider : "");
	d->key_fp = xstrdup(rl->key_fp != NULL ? rl->key_fp : "");
	d->observed_at = rl->observed_at;
	d->headers_json =
	    xstrdup(rl->headers_json != NULL ? rl->headers_json : "{}");
}

/*
 * Queues every whole line of the journal.  A line that does not parse (a
 * write cut short by a full disk, a crash mid-line) is skipped with a
 * warning; it was never acknowledged as stored.
 */
static void
replay(struct store *s)
{
	struct usage_record r;
	struct ratelimit_snapshot rl;
	char *data, *line, *end, *cause;
	size_t len, n = 0, bad = 0;

	data = store_journal_read(s->journal, &len);
	for (line = data; line < data + len; line = end + 1) {
		if ((end = memchr(line, '\n', (size_t)(data + len - line))) ==
		    NULL)
			end = data + len;
		if (end == line)
			continue;
		if (str_has_prefix(line, "{\"ratelimit\":") && end[-1] == '}') {
			if (store_ratelimit_from_json(&rl, line + 13,
			        (size_t)(end - line) - 14, &cause) == 0) {
				queue_ratelimit(s, &rl);
				ratelimit_snapshot_free(&rl);
				n++;
			} else {
				free(cause);
				bad++;
			}
			continue;
		}
		usage_record_init(&r);
		if (store_record_from_json(
		        &r, line, (size_t)(end - line), &cause) == 0) {
			queue_record(s, &r);
			n++;
		} else {
			free(cause);
			bad++;
		}
		usage_record_free(&r);
	}
	free(data);
	if (n > 0)
		log_info("store: replaying %zu journal entries", n);
	if (bad > 0)
		log_warnx("store: skipped %zu unreadable journal lines", bad);
}

/*
 * What ensure_ready would find fatal, found without SQLite (for
 * store_open_lazy): a file that is not an SQLite database, a schema newer
 * than ours (PRAGMA user_version is the big-endian word at offset 60 of the
 * header), a database that cannot be opened or created.  A missing or
 * empty file is fine: the first flush creates the database.  Returns 0, or
 * -1 with a cause the caller frees.
 */
static int
db_precheck(const char *path, char **cause)
{
	static const char magic[16] = "SQLite format 3";
	unsigned char h[100];
	char *dir, *slash;
	ssize_t n;
	long v;
	int fd, ok;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			goto cantopen;
		dir = xstrdup(path);
		if ((slash = strrchr(dir, '/')) == NULL)
			ok = access(".", W_OK | X_OK) == 0;
		else {
			*(slash == dir ? slash + 1 : slash) = '\0';
			ok = access(dir, W_OK | X_OK) == 0;
		}
		free(dir);
		if (!ok)
			goto cantopen;
		return 0;
	}
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(h) || memcmp(h, magic, sizeof(magic)) != 0) {
		*cause = xasprintf("%s: file is not a database", path);
		return -1;
	}
	v = (long)h[60] << 24 | (long)h[61] << 16 | (long)h[62] << 8 | h[63];
	if (v > SCHEMA_VERSION) {
		*cause = xasprintf("%s: schema version %ld is newer than this "
		                   "program's (%d)",
		    path, v, SCHEMA_VERSION);
		return -1;
	}
	return 0;
cantopen:
	*cause = xasprintf(
	    "%s: unable to open database file (%s)", path, strerror(errno));
	return -1;
}

/* store_open; lazy: do not touch SQLite unless the journal has records. */
static int
store_open_at(struct store **out, const char *db_path, const char *journal_path,
    int lazy, char **cause)
{
	struct store *s;
	int fatal, rc;

	*out = NULL;
	*cause = NULL;
	s = xcalloc(1, sizeof(*s));
	s->db_path = xstrdup(db_path);
	if (store_journal_open(&s->journal, journal_path, cause) == -1) {
		free(s->db_path);
		free(s);
		return -1;
	}
	if (lazy) {
		if (db_precheck(db_path, cause) == -1) {
			store_close(s, 0);
			return -1;
		}
		replay(s);
	}
	/* A lock or a read-only file now is not an error (the records wait
	 * in the journal); a database that cannot even be opened is. */
	if ((!lazy || store_pending(s) > 0) &&
	    (rc = ensure_ready(s, &fatal)) != SQLITE_OK) {
		if (fatal || (rc & 0xff) == SQLITE_CANTOPEN) {
			*cause = xstrdup(s->last_error != NULL
			        ? s->last_error
			        : "cannot open the database");
			store_close(s, 0);
			return -1;
		}
		log_warnx("store: %s: %s; will retry", db_path, s->last_error);
	}
	if (!lazy)
		replay(s);
	if (store_pending(s) > 0)
		(void)store_flush(s);
	else if (store_journal_truncate(s->journal) == -1)
		log_warn("store: journal truncate"); /* only unreadable lines */
	*out = s;
	return 0;
}

int
store_open(struct store **out, const char *db_path, const char *journal_path,
    char **cause)
{
	return store_open_at(out, db_path, journal_path, 0, cause);
}

int
store_open_lazy(struct store **out, const char *db_path,
    const char *journal_path, char **cause)
{
	return store_open_at(out, db_path, journal_path, 1, cause);
}

/* Journals r: one write() of its JSON line.  Returns 0, or -1 (logged). */
static int
journal_record(struct store *s, const struct usage_record *r)
{
	int rc;

	store_record_json(r, 0, &s->line);
	strbuf_addc(&s->line, '\n');
	rc = store_journal_append(s->journal, s->line.data, s->line.len);
	strbuf_clear_keep(&s->line, 64 * 1024);
	if (rc == -1)
		log_warn("store: journal write");
	return rc;
}

int
store_submit(struct store *s, const struct usage_record *r)
{
	int rc;

	rc = journal_record(s, r);
	queue_record(s, r);
	return rc;
}

int
store_submit_take(struct store *s, struct usage_record *r)
{
	int rc;

	rc = journal_record(s, r);
	queue_grow(s);
	s->recs[s->nrecs++] = *r; /* the strings move to the queue */
	usage_record_forget(r);
	return rc;
}

int
store_submit_ratelimit(struct store *s, const struct ratelimit_snapshot *rl)
{
	struct strbuf line;
	int rc;

	if (rl->provider == NULL)
		return -1;
	strbuf_init(&line);
	strbuf_adds(&line, "{\"ratelimit\":");
	store_ratelimit_json(rl, &line);
	strbuf_adds(&line, "}\n");
	rc = store_journal_append(s->journal, line.data, line.len);
	strbuf_free(&line);
	if (rc == -1)
		log_warn("store: journal write");
	queue_ratelimit(s, rl);
	return rc;
}

size_t
store_pending(const struct store *s)
{
	return s->nrecs + s->nrls;
}

const char *
store_last_error(const struct store *s)
{
	return s->last_error;
}

static int
step_reset(sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Writes the first n queued records and every queued snapshot. */
static int
write_batch(struct store *s, size_t n)
{
	struct ratelimit_snapshot *rl;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if ((rc = store_col_bind(s->insert, &s->recs[i])) !=
		    SQLITE_OK) {
			sqlite3_reset(s->insert);
			return rc;
		}
		if ((rc = step_reset(s->insert)) != SQLITE_OK)
			return rc;
	}
	for (i = 0; i < s->nrls; i++) {
		rl = &s->rls[i];
		sqlite3_bind_text(
		    s->upsert_rl, 1, rl->provider, -1, SQLITE_STATIC);
		sqlite3_bind_text(
		    s->upsert_rl, 2, rl->key_fp, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->upsert_rl, 3, rl->observed_at);
		sqlite3_bind_text(
		    s->upsert_rl, 4, rl->headers_json, -1, SQLITE_STATIC);
		if ((rc = step_reset(s->upsert_rl)) != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* Drops the first n queued records and every queued snapshot. */
static void
queue_drop(struct store *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		usage_record_free(&s->recs[i]);
	if (n < s->nrecs)
		memmove(
		    s->recs, s->recs + n, (s->nrecs - n) * sizeof(*s->recs));
	s->nrecs -= n;
	for (i = 0; i < s->nrls; i++)
		ratelimit_snapshot_free(&s->rls[i]);
	s->nrls = 0;
}

static void
queue_clear(struct store *s)
{
	queue_drop(s, s->nrecs);
}

/* Logs the first failure of a run of them (the caller retries every tick,
 * so logging each would flood the log). */
static enum store_flush_result
flush_failed(struct store *s, int rc)
{
	if (!s->failing)
		log_warnx("store: %s: %s; %zu entries kept in the journal, "
		          "retrying",
		    s->db_path, s->last_error != NULL ? s->last_error : "?",
		    store_pending(s));
	s->failing = 1;
	return transient(rc) ? STORE_FLUSH_RETRY : STORE_FLUSH_ERROR;
}

/*
 * Commits the queue, at most STORE_FLUSH_MAX records, in one IMMEDIATE
 * transaction (so a lock held by another connection shows at BEGIN, after
 * at most the busy timeout).  On any failure the transaction is rolled back
 * and the queue kept; the journal still holds every queued line.  Once the
 * queue is empty the journal is emptied: everything in it was queued, hence
 * is now in the database.  While records remain queued the journal keeps
 * the committed ones too, which replay would skip by uuid.
 */
enum store_flush_result
store_flush(struct store *s)
{
	size_t n;
	int rc, fatal;

	if (store_pending(s) == 0)
		return STORE_FLUSH_DONE;
	if ((rc = ensure_ready(s, &fatal)) != SQLITE_OK)
		return flush_failed(s, rc);
	n = s->nrecs < STORE_FLUSH_MAX ? s->nrecs : STORE_FLUSH_MAX;
	if ((rc = step_reset(s->begin)) != SQLITE_OK)
		goto fail;
	if ((rc = write_batch(s, n)) != SQLITE_OK ||
	    (rc = step_reset(s->commit)) != SQLITE_OK) {
		set_error(s, s->db, rc);
		exec_sql(s->db, "ROLLBACK");
		goto failed;
	}
	queue_drop(s, n);
	free(s->last_error);
	s->last_error = NULL;
	if (s->failing)
		log_info("store: %s: writable again", s->db_path);
	s->failing = 0;
	if (store_pending(s) > 0)
		return STORE_FLUSH_MORE;
	if (store_journal_truncate(s->journal) == -1)
		log_warn("store: journal truncate");
	return STORE_FLUSH_DONE;
fail:
	set_error(s, s->db, rc);
failed:
	if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
		db_close(s); /* read-only, I/O: reopen on the next try */
	return flush_failed(s, rc);
}

size_t
store_close(struct store *s, int wait_ms)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	uint64_t deadline;
	size_t left;

	if (s == NULL)
		return 0;
	deadline = time_mono_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
	while (store_flush(s) != STORE_FLUSH_DONE && time_mono_ms() < deadline)
		nanosleep(&ts, NULL);
	left = store_pending(s);
	if (left > 0)
		log_warnx("store: %zu entries left in the journal for the "
		          "next start",
		    left);
	queue_clear(s);
	free(s->recs);
	free(s->rls);
	db_close(s);
	store_journal_close(s->journal);
	free(s->last_error);
	free(s->db_path);
	strbuf_free(&s->line);
	free(s);
	return left;
}
