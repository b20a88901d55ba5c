/*
 * query: the reader side, for log, report and status.  A read-only
 * connection opened lazily (so a database created later is found by a
 * follower); in WAL mode it never blocks the daemon's writes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/xmalloc.h"
#include "store-int.h"

/* A reader may wait a little: it blocks nobody. */
#define READER_BUSY_TIMEOUT_MS 2000

struct store_reader {
	char *path;
	sqlite3 *db;
};

void
store_query_init(struct store_query *q)
{
	q->since_ms = INT64_MIN;
	q->until_ms = INT64_MAX;
	q->after_rowid = 0;
	q->limit = 0;
	q->usage_only = 0;
}

struct store_reader *
store_reader_new(const char *path)
{
	struct store_reader *rd;

	rd = xcalloc(1, sizeof(*rd));
	rd->path = xstrdup(path);
	return rd;
}

void
store_reader_free(struct store_reader *rd)
{
	if (rd == NULL)
		return;
	if (rd->db != NULL)
		sqlite3_close(rd->db);
	free(rd->path);
	free(rd);
}

/*
 * Opens the connection if the file exists and has the requests table.
 * Returns 1 ready, 0 nothing to read yet, -1 with a cause.
 */
static int
reader_ready(struct store_reader *rd, char **cause)
{
	sqlite3_stmt *st = NULL;
	int rc, have;

	if (rd->db == NULL) {
		if (!file_exists(rd->path))
			return 0;
		rc = sqlite3_open_v2(rd->path, &rd->db,
		    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
		if (rc != SQLITE_OK) {
			*cause = xasprintf("%s: %s", rd->path,
			    rd->db != NULL ? sqlite3_errmsg(rd->db)
			                   : sqlite3_errstr(rc));
			sqlite3_close(rd->db);
			rd->db = NULL;
			return -1;
		}
		sqlite3_busy_timeout(rd->db, READER_BUSY_TIMEOUT_MS);
	}
	rc = sqlite3_prepare_v2(rd->db,
	    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	    "name = 'requests'",
	    -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		have = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		return have > 0;
	}
	*cause = xasprintf("%s: %s", rd->path, sqlite3_errmsg(rd->db));
	sqlite3_finalize(st);
	return -1;
}

long
store_read(struct store_reader *rd, const struct store_query *q,
    store_record_cb cb, void *arg, char **cause)
{
	struct usage_record r;
	struct strbuf sql;
	sqlite3_stmt *st = NULL;
	const char *cols;
	long n = 0;
	int rc, ready;

	*cause = NULL;
	if ((ready = reader_ready(rd, cause)) <= 0)
		return ready;
	strbuf_init(&sql);
	cols = q->usage_only ? store_col_list_usage() : store_col_list();
	if (q->usage_only && q->limit <= 0) {
		/* For a report: table order, no sort.  The window's rows lie
		 * after after_rowid, or at or after the smallest rowid among
		 * them (an index-only lookup); the unary + keeps the planner
		 * off the started_at index, through which every row would be
		 * looked up by rowid. */
		strbuf_addf(&sql,
		    "SELECT rowid AS rid, %s FROM requests WHERE %s AND "
		    "+started_at >= ?1 AND +started_at < ?2",
		    cols,
		    q->after_rowid > 0
		        ? "rowid > ?3"
		        : "rowid >= (SELECT coalesce(min(rowid), 0) FROM "
		          "requests WHERE started_at >= ?1 AND started_at < "
		          "?2)");
	} else
		/* The inner query picks the newest `limit` of the window;
		 * the outer one puts them oldest first. */
		strbuf_addf(&sql,
		    "SELECT * FROM (SELECT rowid AS rid, %s FROM requests "
		    "WHERE started_at >= ?1 AND started_at < ?2 AND "
		    "rowid > ?3 ORDER BY %s LIMIT ?4) ORDER BY %s",
		    cols,
		    q->after_rowid > 0 ? "rowid DESC"
		                       : "started_at DESC, rowid DESC",
		    q->after_rowid > 0 ? "rid" : "started_at, rid");
	rc = sqlite3_prepare_v2(rd->db, sql.data, -1, &st, NULL);
	strbuf_free(&sql);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, q->since_ms);
	sqlite3_bind_int64(st, 2, q->until_ms);
	sqlite3_bind_int64(st, 3, q->after_rowid);
	sqlite3_bind_int64(st, 4, q->limit > 0 ? q->limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		usage_record_init(&r);
		store_col_read(st, 1, &r);
		n++;
		rc = cb(arg, &r, sqlite3_column_int64(st, 0));
		usage_record_free(&r);
		if (rc != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return n;
fail:
	*cause = xasprintf("%s: %s", rd->path, sqlite3_errmsg(rd->db));
	sqlite3_finalize(st);
	return -1;
}

int64_t
store_max_rowid(struct store_reader *rd, char **cause)
{
	sqlite3_stmt *st = NULL;
	int64_t max = -1;
	int ready;

	*cause = NULL;
	if ((ready = reader_ready(rd, cause)) <= 0)
		return ready;
	if (sqlite3_prepare_v2(rd->db, "SELECT max(rowid) FROM requests", -1,
	        &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		max = sqlite3_column_int64(st, 0);
	else
		*cause = xasprintf("%s: %s", rd->path, sqlite3_errmsg(rd->db));
	sqlite3_finalize(st);
	return max;
}

long
store_read_ratelimits(
    struct store_reader *rd, store_ratelimit_cb cb, void *arg, char **cause)
{
	struct ratelimit_snapshot snap;
	sqlite3_stmt *st = NULL;
	long n = 0;
	int rc, ready;

	*cause = NULL;
	if ((ready = reader_ready(rd, cause)) <= 0)
		return ready;
	rc = sqlite3_prepare_v2(rd->db,
	    "SELECT provider, key_fp, observed_at, headers_json FROM "
	    "ratelimits ORDER BY provider, key_fp",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&snap, 0, sizeof(snap));
		snap.provider = (char *)sqlite3_column_text(st, 0);
		snap.key_fp = (char *)sqlite3_column_text(st, 1);
		snap.observed_at = sqlite3_column_int64(st, 2);
		snap.headers_json = (char *)sqlite3_column_text(st, 3);
		n++;
		if (cb(arg, &snap) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return n;
fail:
	*cause = xasprintf("%s: %s", rd->path, sqlite3_errmsg(rd->db));
	sqlite3_finalize(st);
	return -1;
}

struct sqlite3 *
store_reader_handle(struct store_reader *rd, char **cause)
{
	*cause = NULL;
	if (reader_ready(rd, cause) <= 0)
		return NULL;
	return rd->db;
}
