#include <sys/stat.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "halton/dashboard.h"
#include "halton/store.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

#define DAY27 1795737600000LL /* 2026-11-27T00:00:00Z */
#define HOUR  3600000LL
#define NOW   (DAY27 + 30 * HOUR)

static char db_path[4096];

static void
put(struct store *s, int64_t at, const char *provider, const char *model,
    int64_t in, int64_t out, int64_t cr, const char *tier, const char *client,
    const char *project)
{
	struct usage_record r;

	usage_record_init(&r);
	r.started_at = at;
	r.ended_at = at + 500;
	r.status = 200;
	usage_set_str(&r.provider, provider);
	usage_set_str(&r.kind, "chat");
	usage_set_str(&r.model, model);
	r.input_tokens = in;
	r.output_tokens = out;
	r.cache_read_input_tokens = cr;
	usage_set_str(&r.service_tier, tier);
	usage_set_str(&r.client, client);
	usage_set_str(&r.project, project);
	CHECK_INT(store_submit(s, &r), 0);
	usage_record_free(&r);
}

/* R1 11-27 sonnet above 200k ($0.9585), R3 11-28 gpt-4o batch ($6.25),
 * R4 11-28 unpriced; one Anthropic snapshot. */
static struct dashboard *
seeded(void)
{
	struct ratelimit_snapshot rl;
	struct store *s = NULL;
	char journal[4200], *cause = NULL;

	setenv("TZ", "UTC", 1);
	tzset();
	/* No override file: the compiled-in table only. */
	setenv("HALTON_METER_HOME", harness_tmpdir(), 1);
	setenv("HALTON_METER_DATADIR", harness_tmpdir(), 1);
	snprintf(db_path, sizeof(db_path), "%s/meter.db", harness_tmpdir());
	snprintf(journal, sizeof(journal), "%s/journal", harness_tmpdir());
	CHECK_INT(store_open(&s, db_path, journal, &cause), 0);
	if (s == NULL) {
		free(cause);
		return NULL;
	}
	put(s, DAY27 + 10 * HOUR, "anthropic", "claude-sonnet-4-5-20250929",
	    150000, 1000, 60000, NULL, "claude-code", "alpha");
	put(s, DAY27 + 25 * HOUR, "openai", "gpt-4o", 1000000, 1000000, -1,
	    "batch", "openai-python", "beta");
	put(s, DAY27 + 26 * HOUR, "openrouter", "vendor/unknown-x", 10, 20, -1,
	    NULL, "curl", "beta");
	memset(&rl, 0, sizeof(rl));
	rl.provider = xstrdup("anthropic");
	rl.key_fp = xstrdup("aaaa1111");
	rl.observed_at = DAY27 + 26 * HOUR;
	rl.headers_json = xstrdup(
	    "{\"anthropic-ratelimit-unified-5h-utilization\":\"0.42\"}");
	CHECK_INT(store_submit_ratelimit(s, &rl), 0);
	ratelimit_snapshot_free(&rl);
	CHECK_INT(store_close(s, 2000), 0);
	return dashboard_new(db_path);
}

/* An answer, waiting out the 202s of a summary whose full build runs on
 * its thread (each says {"building":true}).  *waited counts them. */
static int
answer_built(struct dashboard *d, const char *target, struct strbuf *sb,
    const char **ct, int *waited)
{
	struct timespec ts = {0, 2000000};
	int st, i;

	for (i = 0; i < 5000; i++) {
		strbuf_reset(sb);
		st = dashboard_answer(
		    d, "GET", target, strlen(target), NOW, sb, ct);
		if (st != 202)
			return st;
		CHECK_STR(sb->data, "{\"building\":true}\n");
		if (waited != NULL)
			(*waited)++;
		nanosleep(&ts, NULL);
	}
	return 202;
}

static cJSON *
get_json(struct dashboard *d, const char *target, int want)
{
	struct strbuf sb;
	const char *ct = NULL;
	cJSON *j;

	strbuf_init(&sb);
	CHECK_INT(answer_built(d, target, &sb, &ct, NULL), want);
	CHECK_STR(ct, "application/json");
	j = cJSON_Parse(sb.data);
	CHECK(j != NULL);
	strbuf_free(&sb);
	return j;
}

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void
test_summary(void)
{
	struct dashboard *d = seeded();
	cJSON *j, *days, *day, *t, *clients, *rl;

	if (d == NULL)
		return;
	j = get_json(d, "/api/summary", 200);
	t = cJSON_GetObjectItem(j, "today");
	CHECK_INT(num(t, "requests"), 2);
	CHECK(fabs(num(t, "cost_usd") - 6.25) < 1e-9);
	CHECK_INT(num(t, "unpriced_requests"), 1);
	CHECK_INT(num(t, "total_tokens"), 2000030);
	days = cJSON_GetObjectItem(j, "days");
	CHECK_INT(cJSON_GetArraySize(days), DASHBOARD_DAYS);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(days, 0), "day")
	              ->valuestring,
	    "2026-10-30");
	day = cJSON_GetArrayItem(days, 28);
	CHECK_STR(cJSON_GetObjectItem(day, "day")->valuestring, "2026-11-27");
	CHECK(fabs(num(day, "cost_usd") - 0.9585) < 1e-9);
	CHECK(fabs(num(cJSON_GetObjectItem(day, "models"),
	               "claude-sonnet-4-5-20250929") -
	          0.9585) < 1e-9);
	day = cJSON_GetArrayItem(days, 29);
	CHECK_STR(cJSON_GetObjectItem(day, "day")->valuestring, "2026-11-28");
	/* Only priced models are stacked. */
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(day, "models")), 1);
	CHECK(fabs(num(cJSON_GetObjectItem(day, "models"), "gpt-4o") - 6.25) <
	    1e-9);
	CHECK_INT(num(cJSON_GetArrayItem(days, 3), "requests"), 0);
	clients = cJSON_GetObjectItem(j, "by_client");
	CHECK_INT(cJSON_GetArraySize(clients), 3);
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(clients, 0), "name")
	              ->valuestring,
	    "openai-python");
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "by_project")), 2);
	rl = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "ratelimits"), 0);
	CHECK_STR(cJSON_GetObjectItem(rl, "key_fp")->valuestring, "aaaa1111");
	CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(rl, "headers"),
	              "anthropic-ratelimit-unified-5h-utilization")
	              ->valuestring,
	    "0.42");
	cJSON_Delete(j);
	dashboard_free(d);
}

/* The summary without generated_at, printed: what two summaries of the
 * same records must agree on. */
static char *
summary_text(struct dashboard *d)
{
	cJSON *j = get_json(d, "/api/summary", 200);
	char *t;

	cJSON_DeleteItemFromObject(j, "generated_at");
	t = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return t;
}

/* The kept dashboard d says exactly what a new one over the same database
 * says. */
static void
check_kept_equals_fresh(struct dashboard *d)
{
	struct dashboard *fresh = dashboard_new(db_path);
	char *a = summary_text(d), *b = summary_text(fresh);

	CHECK_STR(a, b);
	free(a);
	free(b);
	dashboard_free(fresh);
}

/*
 * The summary's reports are kept and only the records stored since are
 * read: after more records (new days, clients, models, an unpriced one,
 * one before the window) the kept dashboard says exactly what a new one
 * that reads everything says; a changed price override file is read.
 */
static void
test_summary_kept_up_to_date(void)
{
	struct dashboard *d = seeded();
	struct store *s = NULL;
	char journal[4200], over[4200], *cause = NULL;
	cJSON *j, *t;

	if (d == NULL)
		return;
	free(summary_text(d)); /* the reports are kept from here */
	snprintf(journal, sizeof(journal), "%s/journal", harness_tmpdir());
	CHECK_INT(store_open(&s, db_path, journal, &cause), 0);
	if (s == NULL) {
		free(cause);
		dashboard_free(d);
		return;
	}
	put(s, DAY27 + 27 * HOUR, "openai", "gpt-4o", 2000, 1000, -1, NULL,
	    "codex", "gamma");
	put(s, DAY27 + 28 * HOUR, "anthropic", "claude-sonnet-4-5-20250929",
	    1000, 100, 0, NULL, "claude-code", "alpha");
	put(s, DAY27 + 29 * HOUR, "openrouter", "vendor/unknown-y", 5, 5, -1,
	    NULL, "curl", NULL);
	put(s, DAY27 - 40 * 24 * HOUR, "openai", "gpt-4o", 9, 9, -1, NULL,
	    "old", "old"); /* before the window */
	CHECK_INT(store_close(s, 2000), 0);
	check_kept_equals_fresh(d);
	j = get_json(d, "/api/summary", 200);
	t = cJSON_GetObjectItem(j, "today");
	CHECK_INT(num(t, "requests"), 5);
	CHECK_INT(num(t, "unpriced_requests"), 2);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "by_client")), 4);
	cJSON_Delete(j);

	/* A price override: both dashboards price gpt-4o anew. */
	snprintf(over, sizeof(over), "%s/prices.json", harness_tmpdir());
	{
		static const char o[] = "{\"gpt-4o\": {\"input_cost_per_token\""
		                        ": 1e-03, \"output_cost_per_token\": "
		                        "2e-03}}";

		CHECK_INT(harness_write_file(over, o, sizeof(o) - 1), 0);
	}
	check_kept_equals_fresh(d);
	/* Today: gpt-4o batch (1M in, 1M out: half price) + 2000 in / 1000
	 * out at the new prices; the sonnet request as before. */
	j = get_json(d, "/api/summary", 200);
	t = cJSON_GetObjectItem(j, "today");
	CHECK(num(t, "cost_usd") > 1000);
	cJSON_Delete(j);
	dashboard_free(d);
}

/*
 * A full build of the summary (the first, after a price file changed)
 * runs on a thread: the first answer is a 202 {"building":true} at once,
 * later ones give the built summary; a summary that only has new records
 * to merge answers 200 at once.
 */
static void
test_summary_built_off_the_loop(void)
{
	struct dashboard *d = seeded(), *fresh;
	struct strbuf sb;
	const char *ct = NULL;
	char over[4200], *a, *b;
	int waited;

	if (d == NULL)
		return;
	strbuf_init(&sb);
	CHECK_INT(
	    dashboard_answer(d, "GET", "/api/summary", 12, NOW, &sb, &ct), 202);
	CHECK_STR(ct, "application/json");
	CHECK_STR(sb.data, "{\"building\":true}\n");
	waited = 0;
	CHECK_INT(answer_built(d, "/api/summary", &sb, &ct, &waited), 200);
	/* Built: the next answers come at once, also after the database
	 * file's times changed (a WAL checkpoint) with no record lost. */
	waited = 0;
	CHECK_INT(answer_built(d, "/api/summary", &sb, &ct, &waited), 200);
	CHECK_INT(waited, 0);
	{
		struct timespec t[2] = {{1, 0}, {2, 0}};

		CHECK_INT(utimensat(AT_FDCWD, db_path, t, 0), 0);
	}
	CHECK_INT(answer_built(d, "/api/summary", &sb, &ct, &waited), 200);
	CHECK_INT(waited, 0);
	/* A new override file: built again, off the loop. */
	snprintf(over, sizeof(over), "%s/prices.json", harness_tmpdir());
	{
		static const char o[] = "{\"gpt-4o\": {\"input_cost_per_token\""
		                        ": 2e-03, \"output_cost_per_token\": "
		                        "4e-03}}";

		CHECK_INT(harness_write_file(over, o, sizeof(o) - 1), 0);
	}
	strbuf_reset(&sb);
	CHECK_INT(
	    dashboard_answer(d, "GET", "/api/summary", 12, NOW, &sb, &ct), 202);
	fresh = dashboard_new(db_path);
	a = summary_text(d);
	b = summary_text(fresh);
	CHECK_STR(a, b);
	free(a);
	free(b);
	dashboard_free(fresh);
	unlink(over);
	/* Freed while a build runs: it is waited for. */
	strbuf_reset(&sb);
	CHECK_INT(
	    dashboard_answer(d, "GET", "/api/summary", 12, NOW, &sb, &ct), 202);
	strbuf_free(&sb);
	dashboard_free(d);
}

static void
test_requests_since(void)
{
	struct dashboard *d = seeded();
	cJSON *j, *arr, *r;
	char target[64];
	int last;

	if (d == NULL)
		return;
	j = get_json(d, "/api/requests?since=0", 200);
	arr = cJSON_GetObjectItem(j, "requests");
	CHECK_INT(cJSON_GetArraySize(arr), 3);
	r = cJSON_GetArrayItem(arr, 1);
	CHECK_STR(cJSON_GetObjectItem(r, "model")->valuestring, "gpt-4o");
	CHECK(fabs(num(r, "cost_usd") - 6.25) < 1e-9);
	CHECK_INT(num(r, "input_tokens"), 1000000);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(r, "cache_read_input_tokens")));
	r = cJSON_GetArrayItem(arr, 2);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(r, "cost_usd"))); /* unpriced */
	last = (int)num(r, "rowid");
	CHECK(num(cJSON_GetArrayItem(arr, 0), "rowid") < last);
	cJSON_Delete(j);
	snprintf(target, sizeof(target), "/api/requests?since=%d", last - 1);
	j = get_json(d, target, 200);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests")), 1);
	cJSON_Delete(j);
	snprintf(target, sizeof(target), "/api/requests?x=1&since=%d", last);
	j = get_json(d, target, 200);
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests")), 0);
	cJSON_Delete(j);
	j = get_json(d, "/api/requests?since=abc", 400);
	cJSON_Delete(j);
	dashboard_free(d);
}

static void
test_page_and_errors(void)
{
	struct dashboard *d;
	struct strbuf sb;
	const char *ct;
	char *file;
	size_t len, plen;
	const char *page = dashboard_page(&plen);

	/* The embedded page is src/store/dashboard.html byte for byte
	 * (tools/gen-prices.py embed regenerates it). */
	file = harness_read_file("src/store/dashboard.html", &len);
	CHECK(file != NULL && len == plen && memcmp(file, page, len) == 0);
	free(file);
	snprintf(db_path, sizeof(db_path), "%s/none.db", harness_tmpdir());
	d = dashboard_new(db_path);
	strbuf_init(&sb);
	CHECK_INT(dashboard_answer(d, "GET", "/", 1, NOW, &sb, &ct), 200);
	CHECK_STR(ct, "text/html; charset=utf-8");
	CHECK_INT(sb.len, plen);
	/* Self-contained: nothing loaded from elsewhere. */
	CHECK(strstr(sb.data, "src=\"http") == NULL);
	CHECK(strstr(sb.data, "href=\"http") == NULL);
	CHECK(strstr(sb.data, "@import") == NULL);
	CHECK(strstr(sb.data, "/api/summary") != NULL);
	strbuf_reset(&sb);
	CHECK_INT(
	    dashboard_answer(d, "POST", "/api/summary", 12, NOW, &sb, &ct),
	    405);
	strbuf_reset(&sb);
	CHECK_INT(
	    dashboard_answer(d, "GET", "/etc/passwd", 11, NOW, &sb, &ct), 404);
	strbuf_free(&sb);
	/* No database yet: empty but well-formed answers. */
	{
		cJSON *j = get_json(d, "/api/summary", 200);

		CHECK_INT(num(cJSON_GetObjectItem(j, "today"), "requests"), 0);
		CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "days")),
		    DASHBOARD_DAYS);
		cJSON_Delete(j);
		j = get_json(d, "/api/requests", 200);
		CHECK_INT(
		    cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests")), 0);
		cJSON_Delete(j);
	}
	CHECK(dashboard_owns("/", 1));
	CHECK(dashboard_owns("/api/requests?since=3", 21));
	CHECK(!dashboard_owns("/healthz", 8));
	CHECK(!dashboard_owns("/api/summaryx", 13));
	dashboard_free(d);
}

static const struct test tests[] = {
    TEST(test_summary),
    TEST(test_summary_kept_up_to_date),
    TEST(test_summary_built_off_the_loop),
    TEST(test_requests_since),
    TEST(test_page_and_errors),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
