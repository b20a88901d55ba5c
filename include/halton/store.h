/*
 * store: usage records at rest, in SQLite (WAL), without loss and without
 * blocking the caller.
 *
 * Writing (the daemon):
 *	store_open()            open/create the DB (0600), migrate, replay
 *	                        the journal
 *	store_submit()          one write() of a JSON line to the journal,
 *	                        then queued in memory; never touches SQLite
 *	store_flush()           commit the queue in ONE transaction (at most
 *	                        STORE_FLUSH_MAX records); on a locked or
 *	                        read-only DB keep it for the next tick; once
 *	                        the queue is empty the journal is emptied
 *	store_close()           flush with a bounded wait, then close
 * The caller owns the timing: it calls store_flush() at most every
 * STORE_FLUSH_INTERVAL_MS while store_pending() > 0, and at once when
 * store_pending() reaches STORE_FLUSH_BATCH (STORE_FLUSH_MORE: call again
 * soon, e.g. on the next loop iteration).  A record stays in the journal
 * until the transaction that stored it has committed; replay is idempotent
 * because requests.uuid is unique (INSERT OR IGNORE).  This holds across a
 * crash or SIGKILL of the process (not across a power loss: neither the
 * journal nor the commit is fsync'd, so as not to block the event loop).
 *
 * Reading (log, report, status): store_reader_*, a read-only connection
 * that never blocks the writer.  A missing database reads as empty.
 *
 * Nothing secret is stored: the record holds usage metadata only.
 */
#ifndef HALTON_STORE_H
#define HALTON_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "halton/usage.h"
#include "halton/util.h"

#define STORE_FLUSH_INTERVAL_MS 200
#define STORE_FLUSH_BATCH       256  /* records: flush at once */
#define STORE_FLUSH_MAX         1024 /* records per transaction */
#define STORE_BUSY_TIMEOUT_MS   5    /* writer; never a long wait */
#define STORE_CLOSE_WAIT_MS     2000 /* default bound for store_close */

struct store;

/* What store_flush() did. */
enum store_flush_result {
	STORE_FLUSH_DONE = 0,  /* queue empty: committed (or nothing to do) */
	STORE_FLUSH_RETRY = 1, /* DB busy, locked or read-only: try later */
	STORE_FLUSH_MORE = 2,  /* committed STORE_FLUSH_MAX; more queued */
	STORE_FLUSH_ERROR = -1 /* another failure; the queue is kept too */
};

/*
 * Opens (creating, mode 0600) the database at db_path in WAL mode and the
 * journal at journal_path (0600), migrates the schema to the latest
 * version, and queues the records left in the journal by an earlier run,
 * trying to commit them at once.  A database that is locked or read-only
 * at this moment is not an error: the schema and the queue are retried by
 * store_flush().  Only one process may hold a journal.  Returns 0, or -1
 * with a cause the caller frees.
 */
int store_open(struct store **, const char *, const char *, char **);
/*
 * The same, but SQLite is first opened (the database created and migrated)
 * by the first store_flush() with something to commit: at once if the
 * journal held records, else at the first record.  What store_open would
 * refuse is still refused now, checked without SQLite: a file that is not
 * a database, a newer schema, a database that cannot be opened or created
 * (a newer schema still in another process's WAL shows at the first flush).
 * For the daemon, which thus costs no SQLite memory while idle.
 */
int store_open_lazy(struct store **, const char *, const char *, char **);
/*
 * Appends the record to the journal with one write() and queues a copy.
 * Never touches SQLite, never blocks on a lock.  Returns 0, or -1 if the
 * journal could not be written (the record is still queued, but a crash
 * before the next commit would lose it).
 */
int store_submit(struct store *, const struct usage_record *);
/* store_submit that takes r's strings over instead of copying them: r is
 * left without any (usage_record_free(r) is then a no-op). */
int store_submit_take(struct store *, struct usage_record *);
/* The same for a rate-limit snapshot (kept as the latest per provider and
 * key_fp in table ratelimits). */
int store_submit_ratelimit(struct store *, const struct ratelimit_snapshot *);
/* Commits everything queued in one transaction; see the enum. */
enum store_flush_result store_flush(struct store *);
/* Records and snapshots queued but not committed yet. */
size_t store_pending(const struct store *);
/* The SQLite message of the last failed flush, or NULL. */
const char *store_last_error(const struct store *);
/* Flushes, retrying for at most wait_ms, then closes.  What is left stays in
 * the journal for the next start.  Returns the number of records left. */
size_t store_close(struct store *, int);

/* The latest schema version (PRAGMA user_version). */
int store_schema_version(void);
/* For tests: creates (or migrates) the database at path up to version v
 * only.  Returns 0, or -1 with a cause the caller frees. */
int store_migrate_to(const char *, int, char **);

/*
 * Reading.  struct store_query selects records; the callback sees each
 * record (owned by the reader, valid during the call) and its rowid, and
 * returns 0 to go on or -1 to stop.
 */
struct store_reader;

struct store_query {
	int64_t since_ms;    /* started_at >= since_ms; INT64_MIN = all */
	int64_t until_ms;    /* started_at < until_ms; INT64_MAX = all */
	int64_t after_rowid; /* rowid > after_rowid; 0 = all */
	long limit;          /* the newest `limit` of the window; 0 = all */
	/* 1: only the columns a report reads (started_at, provider, kind,
	 * model, request_model, service_tier, the token counts,
	 * provider_cost_usd, client, project, tag, key_fp, session_id); the
	 * others read as NULL (strings NULL, counts -1, uuid ""). */
	int usage_only;
};

typedef int (*store_record_cb)(void *, const struct usage_record *, int64_t);

void store_query_init(struct store_query *);
/* Prepares a reader for the database at path (opened lazily, read-only). */
struct store_reader *store_reader_new(const char *);
void store_reader_free(struct store_reader *);
/*
 * Calls cb for each record of the query, oldest first (by started_at, then
 * rowid; with after_rowid set, by rowid; with usage_only and no limit in
 * the order they were stored, by rowid).  A missing database or one without
 * the schema yet yields no record.  Returns the number of records seen, or
 * -1 with a cause the caller frees.
 */
long store_read(struct store_reader *, const struct store_query *,
    store_record_cb, void *, char **);
/* The highest rowid of requests (0 if none), or -1 with a cause. */
int64_t store_max_rowid(struct store_reader *, char **);
/* Calls cb for each rate-limit snapshot (the latest per provider and
 * key_fp; key_fp "" when the request carried no key), by provider and
 * key_fp.  Returns the number seen, or -1 with a cause the caller frees. */
typedef int (*store_ratelimit_cb)(void *, const struct ratelimit_snapshot *);
long store_read_ratelimits(
    struct store_reader *, store_ratelimit_cb, void *, char **);
/*
 * The reader's read-only SQLite connection, for aggregate queries of its
 * own (report, status): NULL (and *cause NULL) while there is no database
 * or schema yet, NULL with a cause on error.  Owned by the reader.
 */
struct sqlite3 *store_reader_handle(struct store_reader *, char **);

/*
 * JSON of one record: an object whose keys are the requests columns.
 * STORE_JSON_LOG adds "cost_usd": null and embeds usage_json as an object
 * when it parses; without it (the journal form) usage_json stays a string.
 */
#define STORE_JSON_LOG 0x1
void store_record_json(const struct usage_record *, int, struct strbuf *);
/* The same with STORE_JSON_LOG's cost_usd set to cost (null if < 0). */
void store_record_json_cost(
    const struct usage_record *, int, double, struct strbuf *);
/* Fills r (already usage_record_init'ed) from such an object.  Unknown keys
 * are errors.  Returns 0, or -1 with a cause the caller frees. */
int store_record_from_json(
    struct usage_record *, const char *, size_t, char **);
/* The same for {"provider":..,"key_fp":..,"observed_at":..,"headers":{..}}
 * (headers as an object or a string). */
int store_ratelimit_from_json(
    struct ratelimit_snapshot *, const char *, size_t, char **);

/*
 * Parses a point in time as the CLI takes it: YYYY-MM-DD (local midnight),
 * YYYY-MM-DDTHH:MM[:SS] (local), "today", "yesterday" (local midnights),
 * "now", or a relative Nd, Nh, Nm, Ns before now_ms.  Returns 0 and epoch ms
 * in *out, or -1.
 */
int store_parse_when(const char *, int64_t, int64_t *);

#endif
