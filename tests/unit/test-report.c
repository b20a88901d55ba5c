#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cJSON.h"
#include "halton/prices.h"
#include "halton/report.h"
#include "halton/store.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

#define CHECK_COST(a, b)                                                       \
	do {                                                                   \
		double check_x_ = (a), check_y_ = (b);                         \
		if (!(fabs(check_x_ - check_y_) <= 1e-9))                      \
			harness_fail(__FILE__, __LINE__,                       \
			    "%s == %.10f, expected %.10f", #a, check_x_,       \
			    check_y_);                                         \
	} while (0)

/* 2026-11-27T00:00:00Z */
#define DAY27 1795737600000LL
#define HOUR  3600000LL

/* Hand-computed costs (USD) of the seeded records. */
#define COST_R1 (150000 * 6e-6 + 60000 * 0.6e-6 + 1000 * 22.5e-6)
#define COST_R2                                                                \
	(1000 * 3e-6 + 500 * 15e-6 + 2000 * 0.3e-6 + 3000 * 3.75e-6 +          \
	    4000 * 6e-6)
#define COST_R3 (1.25 + 5.0)
#define COST_R5 0.5
#define COST_R7 (1000 * 1e-6 + 1000 * 2e-6)

static char db_path[4096];

static void
seed_one(struct store *s, int64_t at, const char *provider, const char *kind,
    const char *model, int64_t in, int64_t out, int64_t cr, int64_t w5,
    int64_t w1, const char *tier, double pcost, const char *client,
    const char *project, const char *tag, const char *key, const char *session)
{
	struct usage_record r;

	usage_record_init(&r);
	r.started_at = at;
	r.ended_at = at + 1000;
	usage_set_str(&r.provider, provider);
	usage_set_str(&r.kind, kind);
	usage_set_str(&r.model, model);
	r.input_tokens = in;
	r.output_tokens = out;
	r.cache_read_input_tokens = cr;
	if (w5 >= 0 || w1 >= 0) {
		r.cache_creation_5m_tokens = w5;
		r.cache_creation_1h_tokens = w1;
		r.cache_creation_input_tokens =
		    (w5 > 0 ? w5 : 0) + (w1 > 0 ? w1 : 0);
	}
	usage_set_str(&r.service_tier, tier);
	r.provider_cost_usd = pcost;
	usage_set_str(&r.client, client);
	usage_set_str(&r.project, project);
	usage_set_str(&r.tag, tag);
	usage_set_str(&r.key_fp, key);
	usage_set_str(&r.session_id, session);
	CHECK_INT(store_submit(s, &r), 0);
	usage_record_free(&r);
}

/*
 * Seven records (times UTC):
 *   R1 11-27 10:00 sonnet-4-5 dated, 210k input: the >200k tier
 *   R2 11-27 23:30 sonnet-4-5, 5m and 1h cache writes
 *   R3 11-28 01:00 gpt-4o batch (LiteLLM batch prices)
 *   R4 11-28 02:00 an unpriced OpenRouter model
 *   R5 11-28 03:00 OpenRouter with a provider-reported cost
 *   R6 11-28 04:00 count_tokens: counted, never billed
 *   R7 12-01 12:00 "my-model": priced only by the user override
 */
static void
seed(void)
{
	struct ratelimit_snapshot rl;
	struct store *s = NULL;
	char journal[4200], *cause = NULL;

	snprintf(db_path, sizeof(db_path), "%s/meter.db", harness_tmpdir());
	snprintf(journal, sizeof(journal), "%s/journal", harness_tmpdir());
	CHECK_INT(store_open(&s, db_path, journal, &cause), 0);
	if (s == NULL) {
		harness_fail(__FILE__, __LINE__, "store_open: %s", cause);
		free(cause);
		return;
	}
	seed_one(s, DAY27 + 10 * HOUR, "anthropic", "messages",
	    "claude-sonnet-4-5-20250929", 150000, 1000, 60000, 0, 0, NULL, -1,
	    "claude-code", "alpha", "work", "aaaa1111", "s1");
	seed_one(s, DAY27 + 23 * HOUR + HOUR / 2, "anthropic", "messages",
	    "claude-sonnet-4-5", 1000, 500, 2000, 3000, 4000, NULL, -1,
	    "claude-code", "alpha", NULL, "aaaa1111", "s1");
	seed_one(s, DAY27 + 25 * HOUR, "openai", "chat", "gpt-4o", 1000000,
	    1000000, -1, -1, -1, "batch", -1, "openai-python", "beta", NULL,
	    "bbbb2222", NULL);
	seed_one(s, DAY27 + 26 * HOUR, "openrouter", "chat", "vendor/unknown-x",
	    10, 20, -1, -1, -1, NULL, -1, "curl", "beta", NULL, NULL, NULL);
	seed_one(s, DAY27 + 27 * HOUR, "openrouter", "chat",
	    "anthropic/claude-sonnet-4.5", 100, 100, -1, -1, -1, NULL, 0.5,
	    "curl", "beta", NULL, NULL, NULL);
	seed_one(s, DAY27 + 28 * HOUR, "anthropic", "count_tokens",
	    "claude-sonnet-4-5", 5000, -1, -1, -1, -1, NULL, -1, "claude-code",
	    "alpha", NULL, "aaaa1111", "s2");
	seed_one(s, DAY27 + 4 * 24 * HOUR + 12 * HOUR, "openai", "chat",
	    "my-model", 1000, 1000, -1, -1, -1, NULL, -1, "codex", "gamma",
	    "work", "bbbb2222", NULL);
	memset(&rl, 0, sizeof(rl));
	rl.provider = xstrdup("anthropic");
	rl.key_fp = xstrdup("aaaa1111");
	rl.observed_at = DAY27 + 28 * HOUR;
	rl.headers_json = xstrdup(
	    "{\"anthropic-ratelimit-unified-5h-utilization\":\"0.42\"}");
	CHECK_INT(store_submit_ratelimit(s, &rl), 0);
	ratelimit_snapshot_free(&rl);
	CHECK_INT(store_close(s, 2000), 0);
}

static struct prices *
prices_with_override(void)
{
	const char *ov = "{\"my-model\": {\"input_cost_per_token\": 1e-06, "
	                 "\"output_cost_per_token\": 2e-06}}";
	char path[4200], *cause = NULL;
	struct prices *p = NULL;

	snprintf(path, sizeof(path), "%s/prices.json", harness_tmpdir());
	CHECK_INT(harness_write_file(path, ov, strlen(ov)), 0);
	CHECK_INT(prices_load(&p, NULL, path, &cause), 0);
	free(cause);
	return p;
}

static struct report *
build(const struct prices *p, enum report_by by, int breakdown, int64_t since,
    int64_t until)
{
	struct report_options o;
	struct report *rep = NULL;
	char *cause = NULL;

	memset(&o, 0, sizeof(o));
	o.by = by;
	o.breakdown = breakdown;
	o.since_ms = since;
	o.until_ms = until;
	CHECK_INT(report_build(db_path, p, &o, &rep, &cause), 0);
	if (cause != NULL)
		harness_fail(__FILE__, __LINE__, "report_build: %s", cause);
	free(cause);
	return rep;
}

static const struct report_row *
group(const struct report *rep, const char *name)
{
	size_t i;

	for (i = 0; i < rep->ngroups; i++)
		if (strcmp(rep->groups[i].row.name, name) == 0)
			return &rep->groups[i].row;
	harness_fail(__FILE__, __LINE__, "no group %s", name);
	return NULL;
}

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static void
test_by_day_totals(void)
{
	struct prices *p;
	struct report *rep;
	const struct report_row *r;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	if (rep == NULL)
		goto out;
	CHECK_INT(rep->ngroups, 3);
	CHECK_STR(rep->groups[0].row.name, "2026-11-27");
	CHECK_STR(rep->groups[1].row.name, "2026-11-28");
	CHECK_STR(rep->groups[2].row.name, "2026-12-01");
	r = &rep->groups[0].row;
	CHECK_INT(r->requests, 2);
	CHECK_INT(r->input, 151000);
	CHECK_INT(r->output, 1500);
	CHECK_INT(r->cache_read, 62000);
	CHECK_INT(r->cache_write, 7000);
	CHECK_INT(report_row_tokens(r), 221500);
	CHECK_COST(r->cost, COST_R1 + COST_R2);
	r = &rep->groups[1].row;
	CHECK_INT(r->requests, 4);
	/* count_tokens adds a request but no token. */
	CHECK_INT(r->input, 1000000 + 10 + 100);
	CHECK_COST(r->cost, COST_R3 + COST_R5);
	CHECK_INT(r->unpriced, 1);
	CHECK_INT(r->unpriced_tokens, 30);
	CHECK_COST(rep->groups[2].row.cost, COST_R7);
	CHECK_INT(rep->total.requests, 7);
	CHECK_COST(
	    rep->total.cost, COST_R1 + COST_R2 + COST_R3 + COST_R5 + COST_R7);
	CHECK_INT(rep->total.unpriced, 1);
	CHECK_INT(rep->nunpriced, 1);
	CHECK_STR(rep->unpriced[0].name, "vendor/unknown-x");
	report_free(rep);
out:
	prices_free(p);
}

static void
test_without_override_unpriced(void)
{
	struct prices *p = NULL;
	struct report *rep;
	char *cause = NULL;

	set_tz("UTC");
	seed();
	CHECK_INT(prices_load(&p, NULL, NULL, &cause), 0);
	rep = build(p, REPORT_BY_MODEL, 0, INT64_MIN, INT64_MAX);
	if (rep != NULL) {
		CHECK_INT(group(rep, "my-model")->unpriced, 1);
		CHECK_COST(group(rep, "my-model")->cost, 0);
		CHECK_INT(rep->total.unpriced, 2);
		CHECK_INT(rep->nunpriced, 2);
	}
	report_free(rep);
	prices_free(p);
}

static void
test_by_each_group(void)
{
	struct prices *p;
	struct report *rep;
	const struct report_row *r;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	rep = build(p, REPORT_BY_PROVIDER, 0, INT64_MIN, INT64_MAX);
	/* Sorted by cost: openai, anthropic, openrouter. */
	CHECK_INT(rep->ngroups, 3);
	CHECK_STR(rep->groups[0].row.name, "openai");
	CHECK_COST(rep->groups[0].row.cost, COST_R3 + COST_R7);
	r = group(rep, "anthropic");
	CHECK_INT(r->requests, 3);
	CHECK_COST(r->cost, COST_R1 + COST_R2);
	r = group(rep, "openrouter");
	CHECK_COST(r->cost, COST_R5);
	CHECK_INT(r->unpriced, 1);
	report_free(rep);

	rep = build(p, REPORT_BY_MODEL, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 6);
	CHECK_COST(group(rep, "claude-sonnet-4-5-20250929")->cost, COST_R1);
	CHECK_INT(group(rep, "claude-sonnet-4-5")->requests, 2);
	CHECK_COST(group(rep, "claude-sonnet-4-5")->cost, COST_R2);
	CHECK_COST(group(rep, "anthropic/claude-sonnet-4.5")->cost, COST_R5);
	CHECK_COST(group(rep, "my-model")->cost, COST_R7);
	report_free(rep);

	rep = build(p, REPORT_BY_CLIENT, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 4);
	CHECK_INT(group(rep, "claude-code")->requests, 3);
	CHECK_INT(group(rep, "curl")->requests, 2);
	CHECK_COST(group(rep, "codex")->cost, COST_R7);
	report_free(rep);

	rep = build(p, REPORT_BY_PROJECT, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 3);
	CHECK_COST(group(rep, "alpha")->cost, COST_R1 + COST_R2);
	CHECK_COST(group(rep, "beta")->cost, COST_R3 + COST_R5);
	report_free(rep);

	rep = build(p, REPORT_BY_TAG, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 2);
	CHECK_INT(group(rep, "work")->requests, 2);
	CHECK_COST(group(rep, "work")->cost, COST_R1 + COST_R7);
	CHECK_INT(group(rep, "(none)")->requests, 5);
	report_free(rep);

	rep = build(p, REPORT_BY_KEY, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(group(rep, "aaaa1111")->requests, 3);
	CHECK_COST(group(rep, "bbbb2222")->cost, COST_R3 + COST_R7);
	CHECK_INT(group(rep, "(none)")->requests, 2);
	report_free(rep);

	rep = build(p, REPORT_BY_SESSION, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(group(rep, "s1")->requests, 2);
	CHECK_INT(group(rep, "s2")->requests, 1);
	CHECK_INT(group(rep, "(none)")->requests, 4);
	report_free(rep);

	rep = build(p, REPORT_BY_MONTH, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 2);
	CHECK_INT(group(rep, "2026-11")->requests, 6);
	CHECK_INT(group(rep, "2026-12")->requests, 1);
	report_free(rep);

	rep = build(p, REPORT_BY_WEEK, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 2);
	CHECK_INT(group(rep, "2026-W48")->requests, 6);
	CHECK_INT(group(rep, "2026-W49")->requests, 1);
	report_free(rep);

	rep = build(p, REPORT_BY_HOUR, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 7);
	CHECK_STR(rep->groups[0].row.name, "2026-11-27 10:00");
	CHECK_COST(rep->groups[0].row.cost, COST_R1);
	CHECK_STR(rep->groups[1].row.name, "2026-11-27 23:00");
	report_free(rep);
	prices_free(p);
}

static void
test_breakdown(void)
{
	struct prices *p;
	struct report *rep;
	const struct report_group *g;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	rep = build(p, REPORT_BY_DAY, 1, INT64_MIN, INT64_MAX);
	if (rep == NULL)
		goto out;
	g = &rep->groups[1];
	CHECK_STR(g->row.name, "2026-11-28");
	CHECK_INT(g->nmodels, 4);
	CHECK_STR(g->models[0].name, "gpt-4o");
	CHECK_COST(g->models[0].cost, COST_R3);
	CHECK_STR(g->models[1].name, "anthropic/claude-sonnet-4.5");
	CHECK_INT(g->models[3].unpriced + g->models[2].unpriced, 1);
	report_free(rep);
out:
	prices_free(p);
}

static void
test_timezones(void)
{
	struct prices *p;
	struct report *rep;

	seed();
	p = prices_with_override();
	/* UTC-8: everything of the 27th and 28th UTC falls on the 27th. */
	set_tz("America/Los_Angeles");
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 2);
	CHECK_INT(group(rep, "2026-11-27")->requests, 6);
	CHECK_INT(group(rep, "2026-12-01")->requests, 1);
	report_free(rep);
	/* UTC+9: R2 (23:30Z) moves to the 28th. */
	set_tz("Asia/Tokyo");
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	CHECK_INT(rep->ngroups, 3);
	CHECK_INT(group(rep, "2026-11-27")->requests, 1);
	CHECK_COST(group(rep, "2026-11-27")->cost, COST_R1);
	CHECK_INT(group(rep, "2026-11-28")->requests, 5);
	report_free(rep);
	set_tz("UTC");
	prices_free(p);
	CHECK(report_timezone_valid("UTC"));
	CHECK(report_timezone_valid("Europe/Paris"));
	CHECK(!report_timezone_valid("Mars/Olympus"));
	CHECK(!report_timezone_valid("../../etc/passwd"));
}

static void
test_windows(void)
{
	struct prices *p;
	struct report *rep;
	int64_t since, until, now = DAY27 + 30 * HOUR;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	CHECK_INT(report_parse_when("2026-11-28", now, 0, &since), 0);
	CHECK_INT(since, DAY27 + 24 * HOUR);
	CHECK_INT(report_parse_when("2026-11-28", now, 1, &until), 0);
	CHECK_INT(until, DAY27 + 48 * HOUR);
	rep = build(p, REPORT_BY_DAY, 0, since, until);
	CHECK_INT(rep->ngroups, 1);
	CHECK_INT(rep->total.requests, 4);
	CHECK_COST(rep->total.cost, COST_R3 + COST_R5);
	report_free(rep);
	/* "yesterday" as --until ends at today's midnight. */
	CHECK_INT(report_parse_when("yesterday", now, 1, &until), 0);
	CHECK_INT(until, DAY27 + 24 * HOUR);
	CHECK_INT(report_parse_when("today", now, 0, &since), 0);
	CHECK_INT(since, DAY27 + 24 * HOUR);
	CHECK_INT(report_parse_when("12h", now, 0, &since), 0);
	CHECK_INT(since, now - 12 * HOUR);
	CHECK_INT(report_parse_when("7d", now, 1, &until), 0);
	CHECK_INT(until, now - 7 * 24 * HOUR);
	CHECK_INT(report_parse_when("2026-13-01", now, 0, &since), -1);
	CHECK_INT(report_parse_when("soon", now, 0, &since), -1);
	/* 12h before 2026-11-28T06:00Z: R2 onwards minus R1. */
	CHECK_INT(report_parse_when("12h", now, 0, &since), 0);
	rep = build(p, REPORT_BY_DAY, 0, since, INT64_MAX);
	CHECK_INT(rep->total.requests, 6);
	report_free(rep);
	prices_free(p);
}

/*
 * Records stored out of time order (a long request ends, and is stored,
 * after a later short one; a replay brings old ones): a window counts
 * exactly its records, whatever their rowids, and the records after a
 * rowid (report_merge's input) add up to the whole.
 */
static void
test_windows_out_of_order(void)
{
	struct store *s = NULL;
	struct prices *p;
	struct report *rep, *rest;
	struct report_options o;
	char journal[4200], *cause = NULL;
	int64_t at[] = {DAY27 + 10 * HOUR, DAY27 - 5 * 24 * HOUR,
	    DAY27 + 2 * HOUR, DAY27 + 30 * HOUR, DAY27 - 1 * HOUR,
	    DAY27 + 20 * HOUR};
	size_t i;

	set_tz("UTC");
	snprintf(db_path, sizeof(db_path), "%s/meter.db", harness_tmpdir());
	snprintf(journal, sizeof(journal), "%s/journal", harness_tmpdir());
	CHECK_INT(store_open(&s, db_path, journal, &cause), 0);
	if (s == NULL) {
		free(cause);
		return;
	}
	/* rowids 1..6 in this order; input_tokens = 10^i tells them apart. */
	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		static const int64_t pow10[] = {
		    1, 10, 100, 1000, 10000, 100000};

		seed_one(s, at[i], "openai", "chat", "gpt-4o", pow10[i], 0, -1,
		    -1, -1, NULL, -1, "c", "p", NULL, NULL, NULL);
	}
	CHECK_INT(store_close(s, 2000), 0);
	p = prices_with_override();
	rep = build(p, REPORT_BY_DAY, 0, DAY27, INT64_MAX);
	CHECK_INT(rep->total.requests, 4); /* rowids 1, 3, 4, 6 */
	CHECK_INT(rep->total.input, 1 + 100 + 1000 + 100000);
	CHECK_INT(rep->last_rowid, 6);
	report_free(rep);
	rep = build(p, REPORT_BY_DAY, 0, DAY27 + 15 * HOUR, DAY27 + 25 * HOUR);
	CHECK_INT(rep->total.input, 100000); /* rowid 6 alone */
	report_free(rep);
	rep = build(p, REPORT_BY_DAY, 0, DAY27 - 6 * 24 * HOUR, DAY27);
	CHECK_INT(rep->total.input, 10 + 10000); /* rowids 2 and 5 */
	report_free(rep);
	/* The window's records after rowid 3: rowids 4 and 6. */
	memset(&o, 0, sizeof(o));
	o.by = REPORT_BY_DAY;
	o.since_ms = DAY27;
	o.until_ms = INT64_MAX;
	o.after_rowid = 3;
	CHECK_INT(report_build(db_path, p, &o, &rest, &cause), 0);
	CHECK_INT(rest->total.input, 1000 + 100000);
	CHECK_INT(rest->last_rowid, 6);
	report_free(rest);
	prices_free(p);
}

static void
test_missing_db_is_empty(void)
{
	struct prices *p = NULL;
	struct report *rep = NULL;
	struct report_options o = {REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX, 0};
	struct report_last last;
	struct report_ratelimit *rl;
	struct strbuf sb;
	char *cause = NULL, path[4200];
	size_t n;

	CHECK_INT(prices_load(&p, NULL, NULL, &cause), 0);
	snprintf(path, sizeof(path), "%s/none.db", harness_tmpdir());
	CHECK_INT(report_build(path, p, &o, &rep, &cause), 0);
	CHECK(rep != NULL && rep->ngroups == 0 && rep->total.requests == 0);
	CHECK(!file_exists(path));
	strbuf_init(&sb);
	report_write_table(rep, 80, 0, &sb);
	CHECK_STR(sb.data, "No requests recorded in this period.\n");
	strbuf_reset(&sb);
	report_write_csv(rep, &sb);
	CHECK_STR(sb.data,
	    "group,model,requests,input_tokens,output_tokens,"
	    "cache_write_tokens,cache_read_tokens,total_tokens,"
	    "cost_usd,unpriced_requests\n"
	    "TOTAL,,0,0,0,0,0,0,0.000000,0\n");
	strbuf_free(&sb);
	CHECK_INT(report_last(path, p, &last, &cause), 0);
	CHECK_INT(last.found, 0);
	CHECK_INT(report_ratelimits(path, &rl, &n, &cause), 0);
	CHECK_INT(n, 0);
	report_free(rep);
	prices_free(p);
}

static void
test_outputs(void)
{
	struct prices *p;
	struct report *rep;
	struct strbuf sb;
	cJSON *j, *rows, *row;
	char *line, *save = NULL;
	size_t lines = 0;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	strbuf_init(&sb);
	report_write_csv(rep, &sb);
	CHECK(strstr(sb.data,
	          "\n2026-11-27,,2,151000,1500,7000,62000,221500,"
	          "1.004850,0\n") != NULL);
	CHECK(strstr(sb.data,
	          "\n2026-11-28,,4,1000110,1000120,0,0,2000230,"
	          "6.750000,1\n") != NULL);
	CHECK(strstr(sb.data,
	          "\nTOTAL,,7,1152110,1002620,7000,62000,"
	          "2223730,7.757850,1\n") != NULL);
	strbuf_reset(&sb);
	report_write_json(rep, "UTC", &sb);
	j = cJSON_Parse(sb.data);
	CHECK(j != NULL);
	rows = cJSON_GetObjectItem(j, "rows");
	CHECK_INT(cJSON_GetArraySize(rows), 3);
	row = cJSON_GetArrayItem(rows, 0);
	CHECK_STR(cJSON_GetObjectItem(row, "group")->valuestring, "2026-11-27");
	CHECK_COST(cJSON_GetObjectItem(row, "cost_usd")->valuedouble,
	    COST_R1 + COST_R2);
	CHECK_INT(cJSON_GetObjectItem(
	              cJSON_GetObjectItem(j, "totals"), "unpriced_requests")
	              ->valueint,
	    1);
	CHECK_STR(cJSON_GetObjectItem(j, "timezone")->valuestring, "UTC");
	cJSON_Delete(j);
	/* The table: thousands separators, at most 80 columns, no
	 * escape codes without colour. */
	strbuf_reset(&sb);
	report_write_table(rep, 80, 0, &sb);
	CHECK(strstr(sb.data, "221,500") != NULL);
	CHECK(strstr(sb.data, "$7.76*") != NULL);
	CHECK(strstr(sb.data, "vendor/unknown-x (1)") != NULL);
	CHECK(strchr(sb.data, '\033') == NULL);
	for (line = strtok_r(sb.data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		CHECK(strlen(line) <= 80);
		lines++;
	}
	CHECK_INT(lines, 9);
	strbuf_reset(&sb);
	report_write_table(rep, 80, 1, &sb);
	CHECK(strstr(sb.data, "\033[1m") != NULL);
	strbuf_free(&sb);
	report_free(rep);
	/* Narrow: long group names are cut to fit 80 columns. */
	rep = build(p, REPORT_BY_MODEL, 1, INT64_MIN, INT64_MAX);
	strbuf_init(&sb);
	report_write_table(rep, 60, 0, &sb);
	/* The table itself; the unpriced note below is plain prose. */
	if ((line = strstr(sb.data, "\n\n")) != NULL)
		line[1] = '\0';
	CHECK(strstr(sb.data, "~ ") != NULL);
	save = NULL;
	for (line = strtok_r(sb.data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		CHECK(strlen(line) <= 60);
	strbuf_free(&sb);
	report_free(rep);
	prices_free(p);
}

static void
test_formatting(void)
{
	char b[48];

	report_fmt_int(0, b, sizeof(b));
	CHECK_STR(b, "0");
	report_fmt_int(999, b, sizeof(b));
	CHECK_STR(b, "999");
	report_fmt_int(1000, b, sizeof(b));
	CHECK_STR(b, "1,000");
	report_fmt_int(1234567890LL, b, sizeof(b));
	CHECK_STR(b, "1,234,567,890");
	report_fmt_int(-1234, b, sizeof(b));
	CHECK_STR(b, "-1,234");
	report_fmt_cost(0, b, sizeof(b));
	CHECK_STR(b, "$0.00");
	report_fmt_cost(0.004, b, sizeof(b));
	CHECK_STR(b, "<$0.01");
	report_fmt_cost(1234.567, b, sizeof(b));
	CHECK_STR(b, "$1,234.57");
}

static void
test_last_and_ratelimits(void)
{
	struct prices *p;
	struct report_last last;
	struct report_ratelimit *rl = NULL;
	char *cause = NULL;
	size_t n = 0;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	CHECK_INT(report_last(db_path, p, &last, &cause), 0);
	CHECK_INT(last.found, 1);
	CHECK_INT(last.started_at, DAY27 + 4 * 24 * HOUR + 12 * HOUR);
	CHECK_STR(last.model, "my-model");
	CHECK_STR(last.client, "codex");
	CHECK_INT(last.tokens, 2000);
	CHECK_INT(last.priced, PRICES_PRICED);
	CHECK_COST(last.cost, COST_R7);
	report_last_free(&last);
	CHECK_INT(report_ratelimits(db_path, &rl, &n, &cause), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(rl[0].provider, "anthropic");
		CHECK_STR(rl[0].key_fp, "aaaa1111");
		CHECK(strstr(rl[0].headers_json, "0.42") != NULL);
	}
	report_ratelimits_free(rl, n);
	prices_free(p);
}

/* A writer holding an open write transaction does not block the report,
 * which sees the committed records only. */
static void
test_reads_during_write(void)
{
	struct prices *p;
	struct report *rep;
	sqlite3 *w = NULL;

	set_tz("UTC");
	seed();
	p = prices_with_override();
	CHECK_INT(sqlite3_open(db_path, &w), SQLITE_OK);
	CHECK_INT(sqlite3_exec(w,
	              "BEGIN IMMEDIATE; INSERT INTO requests "
	              "(uuid, started_at, ended_at, model, "
	              "input_tokens) VALUES ('x', 1, 2, 'gpt-4o', "
	              "5)",
	              NULL, NULL, NULL),
	    SQLITE_OK);
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	CHECK(rep != NULL && rep->total.requests == 7);
	report_free(rep);
	CHECK_INT(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(w);
	rep = build(p, REPORT_BY_DAY, 0, INT64_MIN, INT64_MAX);
	CHECK(rep != NULL && rep->total.requests == 8);
	report_free(rep);
	prices_free(p);
}

static const struct test tests[] = {
    TEST(test_by_day_totals),
    TEST(test_without_override_unpriced),
    TEST(test_by_each_group),
    TEST(test_breakdown),
    TEST(test_timezones),
    TEST(test_windows),
    TEST(test_windows_out_of_order),
    TEST(test_missing_db_is_empty),
    TEST(test_outputs),
    TEST(test_formatting),
    TEST(test_last_and_ratelimits),
    TEST(test_reads_during_write),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
