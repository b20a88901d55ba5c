/*
 * dashboard: answers GET /, /api/summary and /api/requests for the daemon.
 * The numbers come from report.c and prices.c, so the page shows what
 * `report` and `status` show.
 */
#include <sys/stat.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cJSON.h"
#include "halton/dashboard.h"
#include "halton/prices.h"
#include "halton/report.h"
#include "halton/store.h"
#include "halton/xmalloc.h"

extern const unsigned char dashboard_page_html[];
extern const size_t dashboard_page_html_len;

#define CT_HTML "text/html; charset=utf-8"
#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

/* The reports of /api/summary, in this order. */
enum { SUM_DAYS, SUM_CLIENTS, SUM_PROJECTS, SUM_N };

/* A full build of the summary's reports, on its own thread. */
struct build {
	char *db_path;
	int64_t start;
	char *stamp;
	struct prices *p;
	struct report *rep[SUM_N];
	char *cause;
	int rc;
	int threaded; /* else it ran on the caller's thread */
	pthread_mutex_t lock;
	int done; /* under lock */
};

struct dashboard {
	char *db_path;
	struct store_reader *rd; /* for /api/requests, kept open */
	/*
	 * The summary's reports are kept and brought up to date with the
	 * records stored since (report_merge), so a summary reads only the
	 * new records while its window (start), the price files and the
	 * database file (stamp) stay the same; else they are built again.
	 * A full build reads 30 days (0.5 s for 200,000 records): it runs on
	 * a thread of its own, and /api/summary answers 202 "building" until
	 * it is done, so the daemon's loop never waits for it.
	 */
	struct prices *p;
	struct report *rep[SUM_N];
	int64_t start;
	char *stamp;
	struct build *b; /* running or done, not yet taken */
	pthread_t th;
};

static void
summary_forget(struct dashboard *d)
{
	int k;

	for (k = 0; k < SUM_N; k++) {
		report_free(d->rep[k]);
		d->rep[k] = NULL;
	}
	prices_free(d->p);
	d->p = NULL;
	free(d->stamp);
	d->stamp = NULL;
}

struct dashboard *
dashboard_new(const char *db_path)
{
	struct dashboard *d = xcalloc(1, sizeof(*d));

	d->db_path = xstrdup(db_path);
	d->rd = store_reader_new(db_path);
	return d;
}

static void
build_free(struct build *b)
{
	int k;

	if (b == NULL)
		return;
	for (k = 0; k < SUM_N; k++)
		report_free(b->rep[k]);
	prices_free(b->p);
	free(b->db_path);
	free(b->stamp);
	free(b->cause);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void
dashboard_free(struct dashboard *d)
{
	if (d == NULL)
		return;
	if (d->b != NULL) {
		if (d->b->threaded)
			(void)pthread_join(d->th, NULL);
		build_free(d->b);
	}
	store_reader_free(d->rd);
	summary_forget(d);
	free(d->db_path);
	free(d);
}

const char *
dashboard_page(size_t *len)
{
	if (len != NULL)
		*len = dashboard_page_html_len;
	return (const char *)dashboard_page_html;
}

/* The path part of an origin-form target equals p. */
static int
path_is(const char *t, size_t len, const char *p)
{
	size_t n = strlen(p);

	return len >= n && memcmp(t, p, n) == 0 && (len == n || t[n] == '?');
}

int
dashboard_owns(const char *target, size_t len)
{
	return path_is(target, len, "/") ||
	    path_is(target, len, "/index.html") ||
	    path_is(target, len, "/api/summary") ||
	    path_is(target, len, "/api/requests");
}

static double
money(double c)
{
	return round(c * 1e10) / 1e10;
}

static cJSON *
row_json(const struct report_row *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddNumberToObject(o, "requests", (double)r->requests);
	cJSON_AddNumberToObject(o, "input_tokens", (double)r->input);
	cJSON_AddNumberToObject(o, "output_tokens", (double)r->output);
	cJSON_AddNumberToObject(
	    o, "cache_write_tokens", (double)r->cache_write);
	cJSON_AddNumberToObject(o, "cache_read_tokens", (double)r->cache_read);
	cJSON_AddNumberToObject(
	    o, "total_tokens", (double)report_row_tokens(r));
	cJSON_AddNumberToObject(o, "cost_usd", money(r->cost));
	cJSON_AddNumberToObject(o, "unpriced_requests", (double)r->unpriced);
	return o;
}

static const struct report_group *
find_group(const struct report *rep, const char *name)
{
	size_t i;

	for (i = 0; i < rep->ngroups; i++)
		if (strcmp(rep->groups[i].row.name, name) == 0)
			return &rep->groups[i];
	return NULL;
}

/* Local midnight `days` days after the day of t (negative: before). */
static int64_t
midnight(int64_t ms, int days)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);

	if (localtime_r(&t, &tm) == NULL)
		return ms;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mday += days;
	tm.tm_isdst = -1;
	return (int64_t)mktime(&tm) * 1000;
}

static void
day_label(int64_t ms, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		snprintf(buf, len, "?");
}

/* Appends the groups of rep to root[key]. */
static void
add_groups(cJSON *root, const char *key, const struct report *rep)
{
	cJSON *arr = cJSON_AddArrayToObject(root, key);
	size_t i;

	for (i = 0; i < rep->ngroups; i++)
		cJSON_AddItemToArray(arr, row_json(&rep->groups[i].row));
}

/* What the summary's kept reports depend on besides the window: the
 * database file and the two price files (identity, size, times). */
static char *
summary_stamp(const struct dashboard *d)
{
	char *paths[3];
	struct strbuf sb;
	struct stat st;
	int i;

	paths[0] = xstrdup(d->db_path);
	prices_default_paths(&paths[1], &paths[2]);
	strbuf_init(&sb);
	for (i = 0; i < 3; i++) {
		/* The database file: only which file it is.  Its size and
		 * times change at every WAL checkpoint, and the records
		 * themselves are followed by rowid (a database that lost
		 * records is caught by max_rowid). */
		if (stat(paths[i], &st) != 0)
			strbuf_adds(&sb, "-;");
		else if (i == 0)
			strbuf_addf(&sb, "%llu:%llu;",
			    (unsigned long long)st.st_dev,
			    (unsigned long long)st.st_ino);
		else
			strbuf_addf(&sb, "%llu:%llu:%lld:%lld:%lld;",
			    (unsigned long long)st.st_dev,
			    (unsigned long long)st.st_ino,
			    (long long)st.st_size, (long long)st.st_mtime,
			    (long long)st.st_ctime);
		free(paths[i]);
	}
	return strbuf_detach(&sb, NULL);
}

static void
build_options(struct report_options *o, int64_t start)
{
	static const enum report_by by[SUM_N] = {
	    REPORT_BY_DAY, REPORT_BY_CLIENT, REPORT_BY_PROJECT};
	int k;

	memset(o, 0, SUM_N * sizeof(*o));
	for (k = 0; k < SUM_N; k++) {
		o[k].by = by[k];
		o[k].breakdown = k == SUM_DAYS;
		o[k].since_ms = start;
		o[k].until_ms = INT64_MAX;
	}
}

/* The build thread: prices and the three reports, all records of the
 * window read once. */
static void *
build_main(void *arg)
{
	struct build *b = arg;
	struct report_options o[SUM_N];

	b->rc = prices_load_default(&b->p, &b->cause);
	if (b->rc == 0) {
		build_options(o, b->start);
		b->rc = report_build_many(
		    b->db_path, b->p, o, SUM_N, b->rep, &b->cause);
	}
	pthread_mutex_lock(&b->lock);
	b->done = 1;
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* Starts a full build for the window from start on its thread, or runs
 * it here if no thread can be made; the stamp is the build's. */
static void
build_start(struct dashboard *d, int64_t start, char *stamp)
{
	struct build *b = xcalloc(1, sizeof(*b));
	sigset_t all, old;

	b->db_path = xstrdup(d->db_path);
	b->start = start;
	b->stamp = stamp;
	pthread_mutex_init(&b->lock, NULL);
	/* Signals stay the loop's: the thread starts with all blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	b->threaded = pthread_create(&d->th, NULL, build_main, b) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!b->threaded)
		(void)build_main(b);
	d->b = b;
}

/* A finished build replaces the kept reports.  Returns 1 while it runs,
 * 0 when there is none (any more), -1 with *cause if it failed. */
static int
build_take(struct dashboard *d, char **cause)
{
	struct build *b = d->b;
	int done, k;

	if (b == NULL)
		return 0;
	pthread_mutex_lock(&b->lock);
	done = b->done;
	pthread_mutex_unlock(&b->lock);
	if (!done)
		return 1;
	if (b->threaded)
		(void)pthread_join(d->th, NULL);
	d->b = NULL;
	if (b->rc != 0) {
		*cause = b->cause;
		b->cause = NULL;
		build_free(b);
		return -1;
	}
	summary_forget(d);
	d->p = b->p;
	d->stamp = b->stamp;
	d->start = b->start;
	for (k = 0; k < SUM_N; k++) {
		d->rep[k] = b->rep[k];
		b->rep[k] = NULL;
	}
	b->p = NULL;
	b->stamp = NULL;
	build_free(b);
	return 0;
}

/*
 * Brings the summary's reports up to date: the records stored since the
 * last summary are read and merged in at once; everything is read again
 * (on the build thread) when the window moved on, a price file or the
 * database file changed, or the database holds fewer records than were
 * counted.  Returns 0 when the reports are ready, 1 while a full build
 * runs, -1 with *cause.
 */
static int
summary_reports(struct dashboard *d, int64_t start, char **cause)
{
	struct report_options o[SUM_N];
	struct report *delta[SUM_N];
	char *stamp, *c = NULL;
	int64_t max;
	int k, full, rc;

	if ((rc = build_take(d, cause)) != 0)
		return rc;
	stamp = summary_stamp(d);
	full = d->p == NULL || d->start != start || d->stamp == NULL ||
	    strcmp(d->stamp, stamp) != 0;
	if (!full) {
		max = store_max_rowid(d->rd, &c);
		free(c);
		full = max < d->rep[SUM_DAYS]->last_rowid;
	}
	if (full) {
		build_start(d, start, stamp);
		/* Building on its thread; or built here, without one. */
		return d->b->threaded ? 1 : build_take(d, cause);
	}
	free(stamp);
	/* All three counted the same records: one read for the new ones. */
	build_options(o, start);
	o[0].after_rowid = d->rep[SUM_DAYS]->last_rowid;
	if (report_build_many(d->db_path, d->p, o, SUM_N, delta, cause) == -1)
		goto fail;
	for (k = 0; k < SUM_N; k++) {
		report_merge(d->rep[k], delta[k]);
		report_free(delta[k]);
	}
	return 0;
fail:
	summary_forget(d);
	return -1;
}

static int
summary(struct dashboard *d, int64_t now, struct strbuf *body, char **cause)
{
	struct report *rep;
	struct report_ratelimit *rl = NULL;
	const struct report_group *g;
	struct report_row zero;
	cJSON *root = cJSON_CreateObject(), *arr, *day, *models, *h;
	char label[32], today[32], *text;
	size_t i, j, nrl = 0;
	int64_t start = midnight(now, -(DASHBOARD_DAYS - 1));
	int k, rc = -1;

	if ((k = summary_reports(d, start, cause)) != 0) {
		if (k == 1)
			strbuf_adds(body, "{\"building\":true}\n");
		rc = k == 1 ? 1 : -1;
		goto out;
	}
	rep = d->rep[SUM_DAYS];
	cJSON_AddNumberToObject(root, "generated_at", (double)now);
	day_label(now, today, sizeof(today));
	memset(&zero, 0, sizeof(zero));
	zero.name = today;
	g = find_group(rep, today);
	cJSON_AddItemToObject(
	    root, "today", row_json(g != NULL ? &g->row : &zero));
	arr = cJSON_AddArrayToObject(root, "days");
	for (k = 0; k < DASHBOARD_DAYS; k++) {
		day_label(
		    midnight(start, k) + 12 * 3600000LL, label, sizeof(label));
		day = cJSON_CreateObject();
		cJSON_AddStringToObject(day, "day", label);
		models = cJSON_AddObjectToObject(day, "models");
		g = find_group(rep, label);
		for (j = 0; g != NULL && j < g->nmodels; j++)
			if (g->models[j].cost > 0)
				cJSON_AddNumberToObject(models,
				    g->models[j].name,
				    money(g->models[j].cost));
		cJSON_AddNumberToObject(
		    day, "cost_usd", g != NULL ? money(g->row.cost) : 0);
		cJSON_AddNumberToObject(
		    day, "requests", g != NULL ? (double)g->row.requests : 0);
		cJSON_AddNumberToObject(day, "total_tokens",
		    g != NULL ? (double)report_row_tokens(&g->row) : 0);
		cJSON_AddItemToArray(arr, day);
	}
	add_groups(root, "by_client", d->rep[SUM_CLIENTS]);
	add_groups(root, "by_project", d->rep[SUM_PROJECTS]);
	if (report_ratelimits(d->db_path, &rl, &nrl, cause) == -1)
		goto out;
	arr = cJSON_AddArrayToObject(root, "ratelimits");
	for (i = 0; i < nrl; i++) {
		day = cJSON_CreateObject();
		cJSON_AddStringToObject(day, "provider",
		    rl[i].provider != NULL ? rl[i].provider : "");
		cJSON_AddStringToObject(
		    day, "key_fp", rl[i].key_fp != NULL ? rl[i].key_fp : "");
		cJSON_AddNumberToObject(
		    day, "observed_at", (double)rl[i].observed_at);
		h = rl[i].headers_json != NULL ? cJSON_Parse(rl[i].headers_json)
		                               : NULL;
		cJSON_AddItemToObject(
		    day, "headers", h != NULL ? h : cJSON_CreateObject());
		cJSON_AddItemToArray(arr, day);
	}
	text = cJSON_PrintUnformatted(root);
	strbuf_adds(body, text);
	strbuf_addc(body, '\n');
	free(text);
	rc = 0;
out:
	cJSON_Delete(root);
	report_ratelimits_free(rl, nrl);
	return rc;
}

struct requests_arg {
	const struct prices *prices;
	cJSON *arr;
};

static void
add_count(cJSON *o, const char *key, int64_t v)
{
	if (v < 0)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddNumberToObject(o, key, (double)v);
}

static void
add_str(cJSON *o, const char *key, const char *v)
{
	if (v == NULL)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddStringToObject(o, key, v);
}

static int
request_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	struct requests_arg *a = arg;
	cJSON *o = cJSON_CreateObject();
	double cost;

	cJSON_AddNumberToObject(o, "rowid", (double)rowid);
	cJSON_AddNumberToObject(o, "started_at", (double)u->started_at);
	add_str(o, "provider", u->provider);
	add_str(o, "kind", u->kind);
	add_str(o, "model", u->model != NULL ? u->model : u->request_model);
	add_str(o, "client", u->client);
	add_str(o, "project", u->project);
	add_str(o, "tag", u->tag);
	if (u->status > 0)
		cJSON_AddNumberToObject(o, "status", u->status);
	else
		cJSON_AddNullToObject(o, "status");
	add_str(o, "error", u->error);
	add_count(o, "duration_ms", u->duration_ms);
	add_count(o, "input_tokens", u->input_tokens);
	add_count(o, "output_tokens", u->output_tokens);
	add_count(o, "cache_read_input_tokens", u->cache_read_input_tokens);
	add_count(
	    o, "cache_creation_input_tokens", u->cache_creation_input_tokens);
	if (prices_cost_record(a->prices, u, &cost, NULL) == PRICES_PRICED)
		cJSON_AddNumberToObject(o, "cost_usd", money(cost));
	else
		cJSON_AddNullToObject(o, "cost_usd");
	cJSON_AddItemToArray(a->arr, o);
	return 0;
}

/* The value of since= in the query of target, or -1 if malformed. */
static long long
query_since(const char *target, size_t len)
{
	const char *q = memchr(target, '?', len), *end = target + len, *p;
	char buf[32];
	size_t n;
	long long v = 0;

	if (q == NULL)
		return 0;
	for (p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp != NULL ? amp : end;

		if ((size_t)(stop - p) > 6 && memcmp(p, "since=", 6) == 0) {
			n = (size_t)(stop - p - 6);
			if (n >= sizeof(buf))
				return -1;
			memcpy(buf, p + 6, n);
			buf[n] = '\0';
			if (str_to_ll(buf, 0, INT64_MAX, &v) == -1)
				return -1;
		}
		p = stop + 1;
	}
	return v;
}

static int
requests(
    struct dashboard *d, long long since, struct strbuf *body, char **cause)
{
	struct prices *p = NULL;
	struct store_query q;
	struct requests_arg a;
	cJSON *root = cJSON_CreateObject();
	char *text;
	int rc = -1;

	if (prices_load_default(&p, cause) == -1)
		goto out;
	a.prices = p;
	a.arr = cJSON_AddArrayToObject(root, "requests");
	store_query_init(&q);
	q.after_rowid = since;
	q.limit = DASHBOARD_MAX_REQUESTS;
	if (store_read(d->rd, &q, request_cb, &a, cause) < 0)
		goto out;
	text = cJSON_PrintUnformatted(root);
	strbuf_adds(body, text);
	strbuf_addc(body, '\n');
	free(text);
	rc = 0;
out:
	cJSON_Delete(root);
	prices_free(p);
	return rc;
}

int
dashboard_answer(struct dashboard *d, const char *method, const char *target,
    size_t len, int64_t now_ms, struct strbuf *body, const char **ctype)
{
	char *cause = NULL;
	long long since;
	int rc;

	*ctype = CT_TEXT;
	if (!dashboard_owns(target, len)) {
		strbuf_adds(body, "halton-meter: not found\n");
		return 404;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		strbuf_adds(body, "halton-meter: method not allowed\n");
		return 405;
	}
	if (path_is(target, len, "/") || path_is(target, len, "/index.html")) {
		*ctype = CT_HTML;
		strbuf_add(body, dashboard_page_html, dashboard_page_html_len);
		return 200;
	}
	*ctype = CT_JSON;
	if (path_is(target, len, "/api/summary")) {
		if ((rc = summary(d, now_ms, body, &cause)) == 1)
			return 202; /* building: the page asks again */
	} else {
		if ((since = query_since(target, len)) < 0) {
			strbuf_adds(body, "{\"error\":\"bad since\"}\n");
			return 400;
		}
		rc = requests(d, since, body, &cause);
	}
	if (rc == 0)
		return 200;
	strbuf_reset(body);
	{
		cJSON *e = cJSON_CreateObject();
		char *t;

		cJSON_AddStringToObject(
		    e, "error", cause != NULL ? cause : "error");
		t = cJSON_PrintUnformatted(e);
		strbuf_adds(body, t);
		strbuf_addc(body, '\n');
		free(t);
		cJSON_Delete(e);
	}
	free(cause);
	return 500;
}
