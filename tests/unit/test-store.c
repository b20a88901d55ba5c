/*
 * Unit tests for the store: schema, every column's round trip, uuid
 * dedupe, journal replay after a crash, a locked and a read-only database,
 * migrations, rate-limit upserts, queries and time parsing.  Real SQLite in
 * a temporary directory.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cJSON.h"

#include "halton/store.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

/* The columns issue 4 names, plus service_tier, in table order. */
static const char *const expected_cols[] = {"uuid", "started_at", "ended_at",
    "ttfb_ms", "duration_ms", "provider", "kind", "host", "method", "path",
    "status", "stream", "request_model", "model", "input_tokens",
    "output_tokens", "cache_creation_input_tokens", "cache_creation_5m_tokens",
    "cache_creation_1h_tokens", "cache_read_input_tokens", "reasoning_tokens",
    "web_search_requests", "stop_reason", "request_id", "error", "service_tier",
    "client", "client_version", "user_agent", "tag", "pid", "process", "cwd",
    "project", "key_fp", "session_id", "bytes_up", "bytes_down",
    "provider_cost_usd", "usage_json", NULL};

static char db_path[4096], journal_path[4096];

static void
paths_init(void)
{
	snprintf(db_path, sizeof(db_path), "%s/meter.db", harness_tmpdir());
	snprintf(
	    journal_path, sizeof(journal_path), "%s/journal", harness_tmpdir());
}

static struct store *
open_store(void)
{
	struct store *s = NULL;
	char *cause = NULL;

	if (store_open(&s, db_path, journal_path, &cause) == -1) {
		harness_fail(__FILE__, __LINE__, "store_open: %s", cause);
		free(cause);
	}
	return s;
}

static void
set_uuid(struct usage_record *r, int i)
{
	snprintf(r->uuid, sizeof(r->uuid), "00000000-0000-4000-8000-%012d", i);
}

/* A record with every field set to a distinct, non-default value. */
static void
full_record(struct usage_record *r, int i)
{
	usage_record_init(r);
	set_uuid(r, i);
	r->started_at = 1764356183123LL + i;
	r->ended_at = 1764356185456LL + i;
	r->ttfb_ms = 321;
	r->duration_ms = 2333;
	usage_set_str(&r->provider, "anthropic");
	usage_set_str(&r->kind, "messages");
	usage_set_str(&r->host, "api.anthropic.com");
	usage_set_str(&r->method, "POST");
	usage_set_str(&r->path, "/v1/messages");
	r->status = 200;
	r->stream = 1;
	usage_set_str(&r->request_model, "claude-sonnet-4-5");
	usage_set_str(&r->model, "claude-sonnet-4-5-20250929");
	r->input_tokens = 11;
	r->output_tokens = 22;
	r->cache_creation_input_tokens = 33;
	r->cache_creation_5m_tokens = 30;
	r->cache_creation_1h_tokens = 3;
	r->cache_read_input_tokens = 44;
	r->reasoning_tokens = 5;
	r->web_search_requests = 2;
	usage_set_str(&r->stop_reason, "end_turn");
	usage_set_str(&r->request_id, "req_011CV");
	usage_set_str(&r->error, "overloaded_error");
	usage_set_str(&r->service_tier, "standard");
	usage_set_str(&r->client, "claude-code");
	usage_set_str(&r->client_version, "2.0.14");
	usage_set_str(&r->user_agent, "claude-cli/2.0.14 (external, cli)");
	usage_set_str(&r->tag, "work \"q\" \\ \t\x01 é");
	r->pid = 4242;
	usage_set_str(&r->process, "node");
	usage_set_str(&r->cwd, "/home/u/src/proj");
	usage_set_str(&r->project, "proj");
	usage_set_str(&r->key_fp, "a1b2c3d4");
	usage_set_str(&r->session_id, "6f1c0e7a-sess");
	r->bytes_up = 123456;
	r->bytes_down = 654321;
	r->provider_cost_usd = 0.0012345;
	usage_set_str(
	    &r->usage_json, "{\"input_tokens\":11,\"output_tokens\":22}");
}

static void
check_same(const struct usage_record *a, const struct usage_record *b)
{
	CHECK_STR(a->uuid, b->uuid);
	CHECK_INT(a->started_at, b->started_at);
	CHECK_INT(a->ended_at, b->ended_at);
	CHECK_INT(a->ttfb_ms, b->ttfb_ms);
	CHECK_INT(a->duration_ms, b->duration_ms);
	CHECK_STR(a->provider, b->provider);
	CHECK_STR(a->kind, b->kind);
	CHECK_STR(a->host, b->host);
	CHECK_STR(a->method, b->method);
	CHECK_STR(a->path, b->path);
	CHECK_INT(a->status, b->status);
	CHECK_INT(a->stream, b->stream);
	CHECK_STR(a->request_model, b->request_model);
	CHECK_STR(a->model, b->model);
	CHECK_INT(a->input_tokens, b->input_tokens);
	CHECK_INT(a->output_tokens, b->output_tokens);
	CHECK_INT(
	    a->cache_creation_input_tokens, b->cache_creation_input_tokens);
	CHECK_INT(a->cache_creation_5m_tokens, b->cache_creation_5m_tokens);
	CHECK_INT(a->cache_creation_1h_tokens, b->cache_creation_1h_tokens);
	CHECK_INT(a->cache_read_input_tokens, b->cache_read_input_tokens);
	CHECK_INT(a->reasoning_tokens, b->reasoning_tokens);
	CHECK_INT(a->web_search_requests, b->web_search_requests);
	CHECK_STR(a->stop_reason, b->stop_reason);
	CHECK_STR(a->request_id, b->request_id);
	CHECK_STR(a->error, b->error);
	CHECK_STR(a->service_tier, b->service_tier);
	CHECK_STR(a->client, b->client);
	CHECK_STR(a->client_version, b->client_version);
	CHECK_STR(a->user_agent, b->user_agent);
	CHECK_STR(a->tag, b->tag);
	CHECK_INT(a->pid, b->pid);
	CHECK_STR(a->process, b->process);
	CHECK_STR(a->cwd, b->cwd);
	CHECK_STR(a->project, b->project);
	CHECK_STR(a->key_fp, b->key_fp);
	CHECK_STR(a->session_id, b->session_id);
	CHECK_INT(a->bytes_up, b->bytes_up);
	CHECK_INT(a->bytes_down, b->bytes_down);
	CHECK(a->provider_cost_usd == b->provider_cost_usd);
	CHECK_STR(a->usage_json, b->usage_json);
}

/* Runs one SQL query returning one integer, on a separate connection. */
static long long
sql_int(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -999;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		harness_fail(__FILE__, __LINE__, "open %s", db_path);
		goto out;
	}
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		harness_fail(
		    __FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(db));
		goto out;
	}
	v = sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static long long
count_rows(void)
{
	return sql_int("SELECT count(*) FROM requests");
}

static size_t
journal_lines(void)
{
	char *data = harness_read_file(journal_path, NULL);
	size_t n = 0;
	char *p;

	if (data == NULL)
		return (size_t)-1;
	for (p = data; *p != '\0'; p++)
		n += *p == '\n';
	free(data);
	return n;
}

struct collect {
	struct usage_record recs[64];
	int64_t rowids[64];
	int n;
};

static int
collect_cb(void *arg, const struct usage_record *r, int64_t rowid)
{
	struct collect *c = arg;

	if (c->n < 64) {
		usage_record_init(&c->recs[c->n]);
		/* A deep copy, field by field. */
		c->recs[c->n] = *r;
		c->recs[c->n].provider = r->provider ? xstrdup(r->provider) : 0;
		c->recs[c->n].kind = r->kind ? xstrdup(r->kind) : 0;
		c->recs[c->n].host = r->host ? xstrdup(r->host) : 0;
		c->recs[c->n].method = r->method ? xstrdup(r->method) : 0;
		c->recs[c->n].path = r->path ? xstrdup(r->path) : 0;
		c->recs[c->n].request_model =
		    r->request_model ? xstrdup(r->request_model) : 0;
		c->recs[c->n].model = r->model ? xstrdup(r->model) : 0;
		c->recs[c->n].stop_reason =
		    r->stop_reason ? xstrdup(r->stop_reason) : 0;
		c->recs[c->n].request_id =
		    r->request_id ? xstrdup(r->request_id) : 0;
		c->recs[c->n].error = r->error ? xstrdup(r->error) : 0;
		c->recs[c->n].service_tier =
		    r->service_tier ? xstrdup(r->service_tier) : 0;
		c->recs[c->n].client = r->client ? xstrdup(r->client) : 0;
		c->recs[c->n].client_version =
		    r->client_version ? xstrdup(r->client_version) : 0;
		c->recs[c->n].user_agent =
		    r->user_agent ? xstrdup(r->user_agent) : 0;
		c->recs[c->n].tag = r->tag ? xstrdup(r->tag) : 0;
		c->recs[c->n].process = r->process ? xstrdup(r->process) : 0;
		c->recs[c->n].cwd = r->cwd ? xstrdup(r->cwd) : 0;
		c->recs[c->n].project = r->project ? xstrdup(r->project) : 0;
		c->recs[c->n].key_fp = r->key_fp ? xstrdup(r->key_fp) : 0;
		c->recs[c->n].session_id =
		    r->session_id ? xstrdup(r->session_id) : 0;
		c->recs[c->n].usage_json =
		    r->usage_json ? xstrdup(r->usage_json) : 0;
		c->rowids[c->n] = rowid;
	}
	c->n++;
	return 0;
}

static void
collect_free(struct collect *c)
{
	int i;

	for (i = 0; i < c->n && i < 64; i++)
		usage_record_free(&c->recs[i]);
	c->n = 0;
}

static long
read_all(const struct store_query *q, struct collect *c)
{
	struct store_reader *rd = store_reader_new(db_path);
	char *cause = NULL;
	long n;

	c->n = 0;
	n = store_read(rd, q, collect_cb, c, &cause);
	if (n < 0) {
		harness_fail(__FILE__, __LINE__, "store_read: %s", cause);
		free(cause);
	}
	store_reader_free(rd);
	return n;
}

static void
test_schema(void)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct store *s;
	struct stat sb;
	int i = 0;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(sql_int("PRAGMA user_version"), store_schema_version());
	CHECK_INT(store_schema_version(), 1);
	CHECK(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "PRAGMA table_info(requests)", -1, &st,
	          NULL) == SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);

		if (expected_cols[i] == NULL) {
			harness_fail(
			    __FILE__, __LINE__, "extra column %s", name);
			break;
		}
		CHECK_STR(name, expected_cols[i]);
		i++;
	}
	CHECK(expected_cols[i] == NULL);
	sqlite3_finalize(st);
	CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
	    SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* started_at (the window's first rowid) and uuid's (UNIQUE): the
	 * model index that schema 1 creates is dropped at open, without a
	 * version of its own (an older program can still use the file). */
	CHECK_INT(sql_int("SELECT count(*) FROM sqlite_master WHERE "
	                  "type = 'index' AND tbl_name = 'requests'"),
	    2);
	CHECK_INT(sql_int("SELECT count(*) FROM sqlite_master WHERE "
	                  "type = 'index' AND name IN ('requests_started_at', "
	                  "'requests_model')"),
	    1);
	CHECK_INT(sql_int("SELECT count(*) FROM pragma_index_info("
	                  "'requests_started_at') WHERE name = 'started_at'"),
	    1);
	CHECK(stat(db_path, &sb) == 0);
	CHECK_INT(sb.st_mode & 0777, 0600);
	CHECK(stat(journal_path, &sb) == 0);
	CHECK_INT(sb.st_mode & 0777, 0600);
	CHECK_INT(sql_int("SELECT count(*) FROM pragma_table_info("
	                  "'ratelimits')"),
	    4);
	CHECK_INT(store_close(s, 100), 0);
}

static void
test_roundtrip_every_column(void)
{
	struct usage_record full, empty;
	struct store_query q;
	struct collect c = {.n = 0};
	struct store *s;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	full_record(&full, 1);
	usage_record_init(&empty);
	set_uuid(&empty, 2);
	empty.started_at = full.started_at + 10;
	empty.ended_at = full.started_at + 20;
	CHECK_INT(store_submit(s, &full), 0);
	CHECK_INT(store_submit(s, &empty), 0);
	CHECK_INT(store_pending(s), 2);
	CHECK_INT(count_rows(), 0); /* submit never touches SQLite */
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(store_pending(s), 0);
	CHECK_INT(count_rows(), 2);

	/* Exact values in SQL, and NULL for every unreported count. */
	CHECK_INT(sql_int("SELECT input_tokens + 1000 * output_tokens "
	                  "FROM requests WHERE uuid LIKE '%01'"),
	    11 + 22000);
	CHECK_INT(sql_int("SELECT cache_creation_5m_tokens * 100 + "
	                  "cache_creation_1h_tokens FROM requests "
	                  "WHERE uuid LIKE '%01'"),
	    3003);
	CHECK_INT(sql_int("SELECT typeof(provider_cost_usd) = 'real' AND "
	                  "provider_cost_usd = 0.0012345 AND stream = 1 AND "
	                  "status = 200 FROM requests WHERE uuid LIKE '%01'"),
	    1);
	CHECK_INT(sql_int("SELECT (ttfb_ms IS NULL) + (duration_ms IS NULL) +"
	                  " (status IS NULL) + (stream IS NULL) +"
	                  " (input_tokens IS NULL) + (output_tokens IS NULL) +"
	                  " (cache_creation_input_tokens IS NULL) +"
	                  " (cache_creation_5m_tokens IS NULL) +"
	                  " (cache_creation_1h_tokens IS NULL) +"
	                  " (cache_read_input_tokens IS NULL) +"
	                  " (reasoning_tokens IS NULL) +"
	                  " (web_search_requests IS NULL) + (pid IS NULL) +"
	                  " (provider_cost_usd IS NULL) + (model IS NULL) +"
	                  " (usage_json IS NULL) + (bytes_up = 0)"
	                  " FROM requests WHERE uuid LIKE '%02'"),
	    17);

	store_query_init(&q);
	CHECK_INT(read_all(&q, &c), 2);
	if (c.n == 2) {
		check_same(&c.recs[0], &full);
		check_same(&c.recs[1], &empty);
		CHECK(c.rowids[0] < c.rowids[1]);
	}
	collect_free(&c);
	usage_record_free(&full);
	usage_record_free(&empty);
	CHECK_INT(store_close(s, 100), 0);
}

/* store_submit_take: the strings move to the queue, the stored row and the
 * journal line are the same as store_submit's. */
static void
test_submit_take(void)
{
	struct usage_record full, moved;
	struct store_query q;
	struct collect c = {.n = 0};
	struct store *s;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	full_record(&full, 1);
	full_record(&moved, 1);
	CHECK_INT(store_submit_take(s, &moved), 0);
	CHECK(moved.model == NULL && moved.usage_json == NULL &&
	    moved.host == NULL && moved.key_fp == NULL);
	CHECK_INT(moved.input_tokens, 11); /* numbers stay */
	usage_record_free(&moved);         /* nothing left to free */
	CHECK_INT(store_pending(s), 1);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	store_query_init(&q);
	CHECK_INT(read_all(&q, &c), 1);
	if (c.n == 1)
		check_same(&c.recs[0], &full);
	collect_free(&c);
	usage_record_free(&full);
	CHECK_INT(store_close(s, 100), 0);
}

static void
test_uuid_dedupe(void)
{
	struct usage_record r;
	struct store *s;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	full_record(&r, 7);
	CHECK_INT(store_submit(s, &r), 0);
	CHECK_INT(store_submit(s, &r), 0);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(count_rows(), 1);
	r.input_tokens = 999; /* a replay never overwrites */
	CHECK_INT(store_submit(s, &r), 0);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(count_rows(), 1);
	CHECK_INT(sql_int("SELECT input_tokens FROM requests"), 11);
	usage_record_free(&r);
	CHECK_INT(store_close(s, 100), 0);
}

/* The crash: a child submits and dies without flushing or closing. */
static void
test_replay_after_crash(void)
{
	struct usage_record r;
	struct store *s;
	pid_t pid;
	int i, status = -1;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	store_close(s, 100);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (store_open(&s, db_path, journal_path, &(char *){0}) == -1)
			_exit(3);
		for (i = 0; i < 100; i++) {
			full_record(&r, i);
			if (store_submit(s, &r) == -1)
				_exit(4);
			usage_record_free(&r);
		}
		_exit(0);
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(journal_lines(), 100);
	CHECK_INT(count_rows(), 0);

	if ((s = open_store()) == NULL)
		return;
	/* Replayed and committed by store_open itself. */
	CHECK_INT(store_pending(s), 0);
	CHECK_INT(count_rows(), 100);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(sql_int("SELECT count(DISTINCT uuid) FROM requests"), 100);
	CHECK_INT(sql_int("SELECT sum(input_tokens) FROM requests"), 1100);
	CHECK_INT(store_close(s, 100), 0);

	/* Reopening replays nothing more. */
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(count_rows(), 100);
	CHECK_INT(store_close(s, 100), 0);
}

/*
 * SIGKILL in the middle of a stream of submits and flushes (maybe mid-
 * commit): every record whose store_submit() had returned is in the
 * database exactly once after a restart, and the database is intact.
 */
static void
test_sigkill_loses_nothing(void)
{
	struct usage_record r;
	struct store *s;
	int fds[2], i, acked = 0, status;
	pid_t pid;
	char c;

	paths_init();
	CHECK_INT(pipe(fds), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		if (store_open(&s, db_path, journal_path, &(char *){0}) == -1)
			_exit(3);
		for (i = 0;; i++) {
			full_record(&r, i);
			store_submit(s, &r);
			usage_record_free(&r);
			/* One byte per record whose submit has returned. */
			if (write(fds[1], "x", 1) != 1)
				_exit(4);
			if (store_pending(s) >= 16)
				(void)store_flush(s);
		}
	}
	close(fds[1]);
	while (acked < 1000 && read(fds[0], &c, 1) == 1)
		acked++;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	/* Records acknowledged while the kill was on its way count too. */
	while (read(fds[0], &c, 1) == 1)
		acked++;
	close(fds[0]);
	CHECK(WIFSIGNALED(status));
	CHECK(acked >= 1000);
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(store_close(s, 1000), 0);
	CHECK_INT(sql_int("SELECT count(*) FROM pragma_integrity_check "
	                  "WHERE integrity_check = 'ok'"),
	    1);
	/* Exactly the acknowledged records, maybe plus the one being
	 * submitted at the kill (its journal line may have been written). */
	CHECK(count_rows() >= acked && count_rows() <= acked + 1);
	CHECK_INT(
	    sql_int("SELECT count(DISTINCT uuid) FROM requests"), count_rows());
	CHECK_INT(sql_int("SELECT count(*) FROM requests WHERE CAST(substr("
	                  "uuid, 25) AS INTEGER) < "
	                  "(SELECT count(*) FROM requests)"),
	    count_rows());
	CHECK_INT(journal_lines(), 0);
}

/* A crash after the commit but before the journal was emptied: the replay
 * finds records already stored and must not store them twice. */
static void
test_replay_is_idempotent(void)
{
	struct usage_record r;
	struct store *s;
	char *saved;
	size_t len;
	int i;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	for (i = 0; i < 10; i++) {
		full_record(&r, i);
		store_submit(s, &r);
		usage_record_free(&r);
	}
	saved = harness_read_file(journal_path, &len);
	CHECK(saved != NULL);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(journal_lines(), 0);
	store_close(s, 100);
	if (saved == NULL)
		return;
	CHECK_INT(harness_write_file(journal_path, saved, len), 0);
	free(saved);
	CHECK_INT(journal_lines(), 10);
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(count_rows(), 10);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(store_close(s, 100), 0);
}

/* A line cut short (a write that did not complete) is skipped; the whole
 * lines around it are replayed. */
static void
test_replay_skips_partial_line(void)
{
	struct usage_record r;
	struct strbuf sb;
	struct store *s;
	int i;

	paths_init();
	strbuf_init(&sb);
	for (i = 0; i < 3; i++) {
		full_record(&r, i);
		store_record_json(&r, 0, &sb);
		strbuf_addc(&sb, '\n');
		if (i == 1) {
			/* The fragment of a fourth record. */
			store_record_json(&r, 0, &sb);
			sb.len -= 40;
			sb.data[sb.len] = '\0';
			strbuf_addc(&sb, '\n');
		}
		usage_record_free(&r);
	}
	CHECK_INT(harness_write_file(journal_path, sb.data, sb.len), 0);
	strbuf_free(&sb);
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(count_rows(), 3);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(store_close(s, 100), 0);
}

/* The journal line holds exactly the record's columns, nothing else. */
static void
test_journal_line_is_the_record(void)
{
	struct usage_record r, back;
	struct store *s;
	char *data, *cause = NULL;
	cJSON *root, *v;
	size_t len;
	int i = 0;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	full_record(&r, 3);
	CHECK_INT(store_submit(s, &r), 0);
	data = harness_read_file(journal_path, &len);
	CHECK(data != NULL && len > 0 && data[len - 1] == '\n');
	CHECK(data != NULL && memchr(data, '\n', len) == data + len - 1);
	root = data != NULL ? cJSON_ParseWithLength(data, len) : NULL;
	CHECK(cJSON_IsObject(root));
	cJSON_ArrayForEach(v, root)
	{
		if (expected_cols[i] == NULL) {
			harness_fail(
			    __FILE__, __LINE__, "extra key %s", v->string);
			break;
		}
		CHECK_STR(v->string, expected_cols[i]);
		i++;
	}
	CHECK(expected_cols[i] == NULL);
	v = cJSON_GetObjectItemCaseSensitive(root, "input_tokens");
	CHECK(cJSON_IsNumber(v) && v->valuedouble == 11);
	v = cJSON_GetObjectItemCaseSensitive(root, "stream");
	CHECK(cJSON_IsTrue(v));
	v = cJSON_GetObjectItemCaseSensitive(root, "tag");
	CHECK(cJSON_IsString(v) &&
	    strcmp(v->valuestring, "work \"q\" \\ \t\x01 é") == 0);
	cJSON_Delete(root);
	/* And it reads back to the same record. */
	usage_record_init(&back);
	CHECK_INT(store_record_from_json(&back, data, len - 1, &cause), 0);
	check_same(&back, &r);
	usage_record_free(&back);
	free(cause);
	free(data);
	usage_record_free(&r);
	CHECK_INT(store_close(s, 100), 0);
}

static sqlite3 *
lock_db(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open(db_path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) !=
	        SQLITE_OK) {
		harness_fail(
		    __FILE__, __LINE__, "cannot lock: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* 500 records while another connection holds an exclusive lock, flushing
 * every STORE_FLUSH_BATCH records as the daemon's timer would. */
static void
test_locked_db_loses_nothing(void)
{
	struct usage_record r;
	struct store *s;
	sqlite3 *locker;
	int i, retries = 0, done = 0;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	if ((locker = lock_db()) == NULL) {
		store_close(s, 0);
		return;
	}
	for (i = 0; i < 500; i++) {
		full_record(&r, i);
		CHECK_INT(store_submit(s, &r), 0);
		usage_record_free(&r);
		if (store_pending(s) % STORE_FLUSH_BATCH == 0) {
			switch (store_flush(s)) {
			case STORE_FLUSH_RETRY:
				retries++;
				break;
			case STORE_FLUSH_DONE:
				done++;
				break;
			default:
				harness_fail(__FILE__, __LINE__, "flush: %s",
				    store_last_error(s));
			}
		}
	}
	CHECK_INT(done, 0);
	CHECK_INT(retries, 500 / STORE_FLUSH_BATCH);
	CHECK(store_last_error(s) != NULL &&
	    strstr(store_last_error(s), "locked") != NULL);
	CHECK_INT(store_pending(s), 500);
	CHECK_INT(journal_lines(), 500);
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(locker);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(store_pending(s), 0);
	CHECK_INT(count_rows(), 500);
	CHECK_INT(sql_int("SELECT count(DISTINCT uuid) FROM requests"), 500);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(store_close(s, 100), 0);
}

/* A daemon starting while another connection holds the lock starts anyway,
 * with its replayed records queued until the lock is gone. */
static void
test_open_while_locked(void)
{
	struct usage_record r;
	struct store *s;
	sqlite3 *locker;
	pid_t pid;
	int i, status = -1;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	store_close(s, 100);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (store_open(&s, db_path, journal_path, &(char *){0}) == -1)
			_exit(3);
		for (i = 0; i < 20; i++) {
			full_record(&r, i);
			store_submit(s, &r);
		}
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if ((locker = lock_db()) == NULL)
		return;
	s = open_store();
	if (s != NULL) {
		CHECK_INT(store_pending(s), 20);
		CHECK_INT(store_flush(s), STORE_FLUSH_RETRY);
		full_record(&r, 5); /* already in the journal: one row */
		store_submit(s, &r);
		usage_record_free(&r);
		CHECK_INT(store_pending(s), 21);
	}
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(locker);
	if (s == NULL)
		return;
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(count_rows(), 20);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(store_close(s, 100), 0);
}

/* A long lock piles up more than one transaction's worth: the backlog
 * drains STORE_FLUSH_MAX records per flush, and the journal is emptied
 * only once all of it is in. */
static void
test_backlog_drains_in_bounded_batches(void)
{
	struct usage_record r;
	struct store *s;
	sqlite3 *locker;
	int i, n = 2 * STORE_FLUSH_MAX + 100;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	if ((locker = lock_db()) == NULL) {
		store_close(s, 0);
		return;
	}
	for (i = 0; i < n; i++) {
		full_record(&r, i);
		store_submit(s, &r);
		usage_record_free(&r);
	}
	CHECK_INT(store_flush(s), STORE_FLUSH_RETRY);
	sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(locker);
	CHECK_INT(store_flush(s), STORE_FLUSH_MORE);
	CHECK_INT(count_rows(), STORE_FLUSH_MAX);
	CHECK_INT(store_pending(s), n - STORE_FLUSH_MAX);
	CHECK_INT(journal_lines(), n);
	CHECK_INT(store_flush(s), STORE_FLUSH_MORE);
	CHECK_INT(count_rows(), 2 * STORE_FLUSH_MAX);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(count_rows(), n);
	CHECK_INT(journal_lines(), 0);
	/* Oldest first: the first batch held the first records. */
	CHECK_INT(sql_int("SELECT max(rowid) FROM requests WHERE uuid = "
	                  "'00000000-0000-4000-8000-000000000000'"),
	    1);
	CHECK_INT(store_close(s, 100), 0);
}

/*
 * Makes the database file unwritable: mode 0400, and for root (whom modes
 * do not stop) the immutable attribute.  Returns 0 if a method applied.
 */
static int
db_readonly(int on)
{
	char cmd[8192];
	int rc;

	rc = chmod(db_path, on ? 0400 : 0600);
	if (geteuid() != 0)
		return rc;
#if defined(__APPLE__)
	snprintf(
	    cmd, sizeof(cmd), "chflags %suchg '%s'", on ? "" : "no", db_path);
#else
	snprintf(cmd, sizeof(cmd), "chattr %ci '%s' 2>/dev/null",
	    on ? '+' : '-', db_path);
#endif
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_readonly_db_loses_nothing(void)
{
	struct usage_record r;
	struct store *s;
	int i, ro;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	for (i = 0; i < 10; i++) {
		full_record(&r, i);
		store_submit(s, &r);
		usage_record_free(&r);
	}
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	store_close(s, 100);

	ro = db_readonly(1);
	CHECK_INT(ro, 0);
	/* A daemon starting on a read-only database still starts. */
	if ((s = open_store()) == NULL) {
		db_readonly(0);
		return;
	}
	for (i = 10; i < 110; i++) {
		full_record(&r, i);
		CHECK_INT(store_submit(s, &r), 0);
		usage_record_free(&r);
		if (i % 20 == 0)
			CHECK_INT(store_flush(s), STORE_FLUSH_RETRY);
	}
	CHECK_INT(store_flush(s), STORE_FLUSH_RETRY);
	CHECK(store_last_error(s) != NULL &&
	    strstr(store_last_error(s), "readonly") != NULL);
	CHECK_INT(store_pending(s), 100);
	CHECK_INT(count_rows(), 10);
	CHECK_INT(journal_lines(), 100);

	CHECK_INT(db_readonly(0), 0);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(count_rows(), 110);
	CHECK_INT(journal_lines(), 0);

	/* Read-only while the store has it open: whatever the OS lets the
	 * open connection do meanwhile, every record is there after. */
	CHECK_INT(db_readonly(1), 0);
	for (i = 110; i < 150; i++) {
		full_record(&r, i);
		store_submit(s, &r);
		usage_record_free(&r);
		if (i % 10 == 0)
			(void)store_flush(s);
	}
	CHECK_INT(db_readonly(0), 0);
	CHECK_INT(store_close(s, 1000), 0);
	CHECK_INT(count_rows(), 150);
	CHECK_INT(sql_int("SELECT count(*) FROM pragma_integrity_check "
	                  "WHERE integrity_check = 'ok'"),
	    1);
}

/* Creating the database from every earlier schema version ends at the
 * latest one, with data kept and records storable. */
static void
test_migrations_from_every_version(void)
{
	struct usage_record r;
	struct store *s;
	char *cause = NULL;
	int v;

	for (v = 0; v <= store_schema_version(); v++) {
		snprintf(
		    db_path, sizeof(db_path), "%s/v%d.db", harness_tmpdir(), v);
		snprintf(journal_path, sizeof(journal_path), "%s/v%d.journal",
		    harness_tmpdir(), v);
		if (store_migrate_to(db_path, v, &cause) == -1) {
			harness_fail(__FILE__, __LINE__, "v%d: %s", v, cause);
			free(cause);
			continue;
		}
		CHECK_INT(sql_int("PRAGMA user_version"), v);
		if (v >= 1) {
			sqlite3 *db;

			CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
			CHECK(sqlite3_exec(db,
			          "INSERT INTO requests (uuid, started_at, "
			          "ended_at, input_tokens) VALUES ('old', 5, "
			          "6, 77)",
			          NULL, NULL, NULL) == SQLITE_OK);
			sqlite3_close(db);
		}
		if ((s = open_store()) == NULL)
			continue;
		CHECK_INT(
		    sql_int("PRAGMA user_version"), store_schema_version());
		CHECK_INT(sql_int("SELECT count(*) FROM sqlite_master WHERE "
		                  "name = 'requests_model'"),
		    0);
		full_record(&r, 1);
		store_submit(s, &r);
		usage_record_free(&r);
		CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
		CHECK_INT(count_rows(), v >= 1 ? 2 : 1);
		if (v >= 1)
			CHECK_INT(sql_int("SELECT input_tokens FROM requests "
			                  "WHERE uuid = 'old'"),
			    77);
		CHECK_INT(store_close(s, 100), 0);
	}
}

static void
test_newer_schema_refused(void)
{
	struct store *s = NULL;
	sqlite3 *db;
	char *cause = NULL;

	paths_init();
	CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) ==
	    SQLITE_OK);
	sqlite3_close(db);
	CHECK_INT(store_open(&s, db_path, journal_path, &cause), -1);
	CHECK(s == NULL);
	CHECK(cause != NULL && strstr(cause, "newer") != NULL);
	free(cause);
}

static void
test_unopenable_database_refused(void)
{
	struct store *s = NULL;
	char *cause = NULL, junk[4096];

	paths_init();
	snprintf(db_path, sizeof(db_path), "%s/no/such/dir/meter.db",
	    harness_tmpdir());
	CHECK_INT(store_open(&s, db_path, journal_path, &cause), -1);
	CHECK(s == NULL);
	CHECK(cause != NULL && strstr(cause, "unable to open") != NULL);
	free(cause);
	/* Not a database at all (text longer than SQLite's header). */
	paths_init();
	memset(junk, 'x', sizeof(junk));
	CHECK_INT(harness_write_file(db_path, junk, sizeof(junk)), 0);
	CHECK_INT(store_open(&s, db_path, journal_path, &cause), -1);
	CHECK(cause != NULL && strstr(cause, "not a database") != NULL);
	free(cause);
}

static void
test_journal_held_by_one_process(void)
{
	struct store *s;
	pid_t pid;
	int status = -1;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct store *s2;
		char *cause = NULL;

		if (store_open(&s2, db_path, journal_path, &cause) == 0)
			_exit(0);
		_exit(strstr(cause, "in use") != NULL ? 7 : 8);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 7);
	CHECK_INT(store_close(s, 100), 0);
}

static int
rl_cb(void *arg, const struct ratelimit_snapshot *rl)
{
	strbuf_addf(arg, "%s/%s@%lld%s|", rl->provider, rl->key_fp,
	    (long long)rl->observed_at, rl->headers_json);
	return 0;
}

static void
test_ratelimit_latest_wins(void)
{
	struct ratelimit_snapshot a = {0};
	struct store_reader *rd;
	struct strbuf seen;
	struct store *s;
	char *cause = NULL;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	a.provider = "anthropic";
	a.key_fp = "a1b2c3d4";
	a.observed_at = 1000;
	a.headers_json = "{\"anthropic-ratelimit-unified-5h-utilization\":"
	                 "\"0.25\"}";
	CHECK_INT(store_submit_ratelimit(s, &a), 0);
	a.observed_at = 3000;
	a.headers_json = "{\"n\":3}";
	CHECK_INT(store_submit_ratelimit(s, &a), 0);
	a.observed_at = 2000; /* older: must not win */
	a.headers_json = "{\"n\":2}";
	CHECK_INT(store_submit_ratelimit(s, &a), 0);
	a.key_fp = NULL;
	a.provider = "openai";
	a.observed_at = 5;
	a.headers_json = "{\"x-ratelimit-remaining-requests\":\"59\"}";
	CHECK_INT(store_submit_ratelimit(s, &a), 0);
	CHECK_INT(store_pending(s), 4);
	CHECK_INT(journal_lines(), 4);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(sql_int("SELECT count(*) FROM ratelimits"), 2);
	CHECK_INT(sql_int("SELECT observed_at FROM ratelimits WHERE "
	                  "provider = 'anthropic' AND key_fp = 'a1b2c3d4' AND "
	                  "headers_json = '{\"n\":3}'"),
	    3000);
	CHECK_INT(sql_int("SELECT observed_at FROM ratelimits WHERE "
	                  "provider = 'openai' AND key_fp = ''"),
	    5);
	CHECK_INT(store_close(s, 100), 0);

	/* The reader side, as status will use it. */
	rd = store_reader_new(db_path);
	strbuf_init(&seen);
	CHECK_INT(store_read_ratelimits(rd, rl_cb, &seen, &cause), 2);
	CHECK(cause == NULL);
	CHECK_STR(seen.data,
	    "anthropic/a1b2c3d4@3000{\"n\":3}|"
	    "openai/@5{\"x-ratelimit-remaining-requests\":"
	    "\"59\"}|");
	strbuf_free(&seen);
	CHECK(store_reader_handle(rd, &cause) != NULL);
	store_reader_free(rd);
}

static void
test_ratelimit_replayed(void)
{
	struct ratelimit_snapshot a = {0};
	struct store *s;
	pid_t pid;
	int status = -1;

	paths_init();
	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (store_open(&s, db_path, journal_path, &(char *){0}) == -1)
			_exit(3);
		a.provider = "openai";
		a.key_fp = "0badf00d";
		a.observed_at = 77;
		a.headers_json = "{\"x-ratelimit-limit-tokens\":\"30000\"}";
		_exit(store_submit_ratelimit(s, &a) == 0 ? 0 : 4);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if ((s = open_store()) == NULL)
		return;
	CHECK_INT(sql_int("SELECT observed_at FROM ratelimits WHERE "
	                  "key_fp = '0badf00d' AND headers_json = "
	                  "'{\"x-ratelimit-limit-tokens\":\"30000\"}'"),
	    77);
	CHECK_INT(store_close(s, 100), 0);
}

/* Windows, limits and rowid cursors, oldest first. */
static void
test_query_window_and_limit(void)
{
	struct usage_record r;
	struct store_query q;
	struct collect c = {.n = 0};
	struct store *s;
	int i;

	paths_init();
	if ((s = open_store()) == NULL)
		return;
	/* Submitted out of time order: started_at 1000 * (10 - i). */
	for (i = 0; i < 10; i++) {
		usage_record_init(&r);
		set_uuid(&r, i);
		r.started_at = 1000 * (10 - i);
		r.ended_at = r.started_at + 1;
		r.input_tokens = 10 - i;
		store_submit(s, &r);
		usage_record_free(&r);
	}
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);

	store_query_init(&q);
	CHECK_INT(read_all(&q, &c), 10);
	for (i = 0; i < 10 && i < c.n; i++)
		CHECK_INT(c.recs[i].started_at, 1000 * (i + 1));
	collect_free(&c);

	q.since_ms = 6000;
	CHECK_INT(read_all(&q, &c), 5);
	CHECK_INT(c.recs[0].started_at, 6000);
	CHECK_INT(c.recs[4].started_at, 10000);
	collect_free(&c);

	q.limit = 3; /* the newest three of the window, oldest first */
	CHECK_INT(read_all(&q, &c), 3);
	CHECK_INT(c.recs[0].started_at, 8000);
	CHECK_INT(c.recs[1].started_at, 9000);
	CHECK_INT(c.recs[2].started_at, 10000);
	collect_free(&c);

	store_query_init(&q);
	q.until_ms = 3000;
	CHECK_INT(read_all(&q, &c), 2);
	collect_free(&c);

	/* Rows after a cursor come in commit order. */
	store_query_init(&q);
	q.after_rowid = 7;
	CHECK_INT(read_all(&q, &c), 3);
	CHECK_INT(c.rowids[0], 8);
	CHECK_INT(c.recs[0].started_at, 3000);
	CHECK_INT(c.recs[2].started_at, 1000);
	collect_free(&c);
	CHECK_INT(store_close(s, 100), 0);
}

static void
test_reader_without_database(void)
{
	struct store_reader *rd;
	struct store_query q;
	struct collect c = {.n = 0};
	char *cause = NULL;

	paths_init();
	rd = store_reader_new(db_path);
	store_query_init(&q);
	CHECK_INT(store_read(rd, &q, collect_cb, &c, &cause), 0);
	CHECK(cause == NULL);
	CHECK_INT(store_max_rowid(rd, &cause), 0);
	CHECK(store_reader_handle(rd, &cause) == NULL && cause == NULL);
	store_reader_free(rd);
	CHECK(!file_exists(db_path)); /* a reader never creates it */
	/* An empty file (the daemon about to create the schema) too. */
	CHECK_INT(harness_write_file(db_path, "", 0), 0);
	rd = store_reader_new(db_path);
	CHECK_INT(store_read(rd, &q, collect_cb, &c, &cause), 0);
	CHECK(cause == NULL);
	store_reader_free(rd);
}

static void
test_log_json_form(void)
{
	struct usage_record r;
	struct strbuf sb;
	cJSON *root, *v;

	full_record(&r, 9);
	usage_set_str(&r.user_agent, "bad \xff\xfe utf8");
	strbuf_init(&sb);
	store_record_json(&r, STORE_JSON_LOG, &sb);
	root = cJSON_Parse(sb.data);
	CHECK(cJSON_IsObject(root));
	v = cJSON_GetObjectItemCaseSensitive(root, "cost_usd");
	CHECK(cJSON_IsNull(v));
	v = cJSON_GetObjectItemCaseSensitive(root, "usage_json");
	CHECK(cJSON_IsObject(v));
	v = cJSON_GetObjectItemCaseSensitive(v, "output_tokens");
	CHECK(cJSON_IsNumber(v) && v->valuedouble == 22);
	v = cJSON_GetObjectItemCaseSensitive(root, "user_agent");
	CHECK(cJSON_IsString(v) &&
	    strcmp(v->valuestring, "bad \xef\xbf\xbd\xef\xbf\xbd utf8") == 0);
	v = cJSON_GetObjectItemCaseSensitive(root, "provider_cost_usd");
	CHECK(cJSON_IsNumber(v) && v->valuedouble == 0.0012345);
	CHECK_INT(cJSON_GetArraySize(root), 41);
	cJSON_Delete(root);
	strbuf_free(&sb);
	usage_record_free(&r);
}

static void
test_parse_when(void)
{
	int64_t now = 1764356183123LL, t = 0;
	struct tm tm;
	time_t secs;

	CHECK_INT(store_parse_when("7d", now, &t), 0);
	CHECK_INT(t, now - 7LL * 86400000);
	CHECK_INT(store_parse_when("12h", now, &t), 0);
	CHECK_INT(t, now - 12LL * 3600000);
	CHECK_INT(store_parse_when("30m", now, &t), 0);
	CHECK_INT(t, now - 30LL * 60000);
	CHECK_INT(store_parse_when("now", now, &t), 0);
	CHECK_INT(t, now);

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 0;
	tm.tm_mday = 2;
	tm.tm_isdst = -1;
	secs = mktime(&tm);
	CHECK_INT(store_parse_when("2026-01-02", now, &t), 0);
	CHECK_INT(t, (int64_t)secs * 1000);
	CHECK_INT(store_parse_when("2026-01-02T13:45", now, &t), 0);
	CHECK_INT(t, ((int64_t)secs + 13 * 3600 + 45 * 60) * 1000);
	CHECK_INT(store_parse_when("2026-01-02 13:45:10", now, &t), 0);
	CHECK_INT(t, ((int64_t)secs + 13 * 3600 + 45 * 60 + 10) * 1000);

	secs = (time_t)(now / 1000);
	localtime_r(&secs, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	secs = mktime(&tm);
	CHECK_INT(store_parse_when("today", now, &t), 0);
	CHECK_INT(t, (int64_t)secs * 1000);
	tm.tm_mday -= 1;
	tm.tm_isdst = -1;
	secs = mktime(&tm);
	CHECK_INT(store_parse_when("yesterday", now, &t), 0);
	CHECK_INT(t, (int64_t)secs * 1000);

	CHECK_INT(store_parse_when("", now, &t), -1);
	CHECK_INT(store_parse_when("d", now, &t), -1);
	CHECK_INT(store_parse_when("7x", now, &t), -1);
	CHECK_INT(store_parse_when("-7d", now, &t), -1);
	CHECK_INT(store_parse_when("2026-13-01", now, &t), -1);
	CHECK_INT(store_parse_when("2026-02-30", now, &t), -1);
	CHECK_INT(store_parse_when("2026-01-02T25:00", now, &t), -1);
	CHECK_INT(store_parse_when("2026-01-02T1:00", now, &t), -1);
	CHECK_INT(store_parse_when("2026-1-02", now, &t), -1);
	CHECK_INT(store_parse_when("tomorrow", now, &t), -1);
}

/*
 * store_open_lazy (the daemon's): SQLite is not touched while there is
 * nothing to commit, the first record creates the database, a journal left
 * by a crash is committed by the open itself, and what store_open refuses
 * is refused at once all the same.
 */
static void
test_open_lazy(void)
{
	struct usage_record r;
	struct store *s = NULL;
	char *cause = NULL, junk[4096];
	sqlite3 *db;
	pid_t pid;
	int i, status = -1;

	paths_init();
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), 0);
	if (s == NULL)
		return;
	CHECK(!file_exists(db_path));
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK(!file_exists(db_path));
	full_record(&r, 1);
	CHECK_INT(store_submit(s, &r), 0);
	usage_record_free(&r);
	CHECK_INT(store_flush(s), STORE_FLUSH_DONE);
	CHECK_INT(sql_int("PRAGMA user_version"), store_schema_version());
	CHECK_INT(count_rows(), 1);
	CHECK_INT(store_close(s, 100), 0);

	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (store_open_lazy(&s, db_path, journal_path, &cause) == -1)
			_exit(3);
		for (i = 2; i < 5; i++) {
			full_record(&r, i);
			if (store_submit(s, &r) == -1)
				_exit(4);
			usage_record_free(&r);
		}
		_exit(0); /* a crash: nothing flushed */
	}
	CHECK(pid > 0);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(journal_lines(), 3);
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), 0);
	if (s == NULL)
		return;
	CHECK_INT(store_pending(s), 0);
	CHECK_INT(count_rows(), 4);
	CHECK_INT(journal_lines(), 0);
	CHECK_INT(store_close(s, 100), 0);

	/* A newer schema. */
	snprintf(db_path, sizeof(db_path), "%s/newer.db", harness_tmpdir());
	CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) ==
	    SQLITE_OK);
	sqlite3_close(db);
	s = NULL;
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), -1);
	CHECK(s == NULL);
	CHECK(cause != NULL && strstr(cause, "newer") != NULL);
	free(cause);
	cause = NULL;
	/* Not a database. */
	snprintf(db_path, sizeof(db_path), "%s/junk.db", harness_tmpdir());
	memset(junk, 'x', sizeof(junk));
	CHECK_INT(harness_write_file(db_path, junk, sizeof(junk)), 0);
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), -1);
	CHECK(cause != NULL && strstr(cause, "not a database") != NULL);
	free(cause);
	cause = NULL;
	/* A directory that does not exist. */
	snprintf(db_path, sizeof(db_path), "%s/no/such/dir/meter.db",
	    harness_tmpdir());
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), -1);
	CHECK(cause != NULL && strstr(cause, "unable to open") != NULL);
	free(cause);
	/* The journal is free again after each refusal. */
	paths_init();
	CHECK_INT(store_open_lazy(&s, db_path, journal_path, &cause), 0);
	CHECK_INT(store_close(s, 100), 0);
}

static const struct test tests[] = {
    TEST(test_schema),
    TEST(test_roundtrip_every_column),
    TEST(test_submit_take),
    TEST(test_uuid_dedupe),
    TEST(test_replay_after_crash),
    TEST(test_sigkill_loses_nothing),
    TEST(test_replay_is_idempotent),
    TEST(test_replay_skips_partial_line),
    TEST(test_journal_line_is_the_record),
    TEST(test_locked_db_loses_nothing),
    TEST(test_open_while_locked),
    TEST(test_backlog_drains_in_bounded_batches),
    TEST(test_readonly_db_loses_nothing),
    TEST(test_migrations_from_every_version),
    TEST(test_newer_schema_refused),
    TEST(test_unopenable_database_refused),
    TEST(test_open_lazy),
    TEST(test_journal_held_by_one_process),
    TEST(test_ratelimit_latest_wins),
    TEST(test_ratelimit_replayed),
    TEST(test_query_window_and_limit),
    TEST(test_reader_without_database),
    TEST(test_log_json_form),
    TEST(test_parse_when),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
