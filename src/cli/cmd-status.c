/*
 * status: one screen of what is happening now: the daemon, the install,
 * today's usage, the last request and the latest rate-limit snapshots.
 */
#include <sys/types.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "halton/cli.h"
#include "halton/healthz.h"
#include "halton/paths.h"
#include "halton/prices.h"
#include "halton/report.h"
#include "halton/store.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define HEALTH_TIMEOUT_MS 1000

static double
json_num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *
json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A header of a snapshot, by case-insensitive name. */
static const char *
header(const cJSON *h, const char *name)
{
	const cJSON *v;

	for (v = h != NULL ? h->child : NULL; v != NULL; v = v->next)
		if (v->string != NULL && str_casecmp(v->string, name) == 0)
			return cJSON_IsString(v) ? v->valuestring : NULL;
	return NULL;
}

/* "2h 13m", "45s", "3d 4h". */
static void
fmt_duration(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm", (long long)(s / 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh %lldm", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else
		snprintf(buf, len, "%lldd %lldh", (long long)(s / 86400),
		    (long long)(s % 86400 / 3600));
}

static void
fmt_local(int64_t epoch_s, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)epoch_s;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a %d %b %H:%M", &tm) == 0)
		snprintf(buf, len, "?");
}

/* Epoch seconds of a reset header: epoch seconds, or RFC 3339. */
static int
parse_reset(const char *s, int64_t *out)
{
	struct tm tm;
	long long v;
	int y, mo, d, h, mi, sec;

	if (s == NULL)
		return -1;
	if (str_to_ll(s, 0, 1LL << 40, &v) == 0) {
		*out = v;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) !=
	    6)
		return -1;
	/* UTC: days from the civil date (no timegm in POSIX). */
	memset(&tm, 0, sizeof(tm));
	{
		long long yy = y - (mo <= 2), era, yoe, doy, doe, days;

		era = (yy >= 0 ? yy : yy - 399) / 400;
		yoe = yy - era * 400;
		doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = era * 146097 + doe - 719468;
		*out = days * 86400 + h * 3600 + mi * 60 + sec;
	}
	(void)tm;
	return 0;
}

/* The unified window ("5h", "7d") of an Anthropic snapshot as JSON, or
 * NULL if the snapshot has none. */
static cJSON *
unified_window(const cJSON *hdrs, const char *win)
{
	char name[96];
	const char *util, *reset, *st;
	int64_t r;
	cJSON *o;

	snprintf(name, sizeof(name),
	    "anthropic-ratelimit-unified-%s-"
	    "utilization",
	    win);
	util = header(hdrs, name);
	snprintf(
	    name, sizeof(name), "anthropic-ratelimit-unified-%s-reset", win);
	reset = header(hdrs, name);
	snprintf(
	    name, sizeof(name), "anthropic-ratelimit-unified-%s-status", win);
	st = header(hdrs, name);
	if (util == NULL && reset == NULL)
		return NULL;
	o = cJSON_CreateObject();
	if (util != NULL)
		cJSON_AddNumberToObject(o, "utilization", strtod(util, NULL));
	else
		cJSON_AddNullToObject(o, "utilization");
	if (parse_reset(reset, &r) == 0)
		cJSON_AddNumberToObject(o, "reset", (double)r);
	else
		cJSON_AddNullToObject(o, "reset");
	if (st != NULL)
		cJSON_AddStringToObject(o, "status", st);
	return o;
}

static void
add_ll_header(cJSON *o, const cJSON *hdrs, const char *key, const char *name)
{
	const char *s = header(hdrs, name);
	long long v;

	if (s != NULL && str_to_ll(s, 0, 1LL << 62, &v) == 0)
		cJSON_AddNumberToObject(o, key, (double)v);
}

/* One snapshot as the JSON status shows it. */
static cJSON *
snapshot_json(const struct report_ratelimit *rl)
{
	cJSON *o = cJSON_CreateObject(), *hdrs, *w, *x;
	const char *s;

	cJSON_AddStringToObject(
	    o, "provider", rl->provider != NULL ? rl->provider : "");
	cJSON_AddStringToObject(
	    o, "key_fp", rl->key_fp != NULL ? rl->key_fp : "");
	cJSON_AddNumberToObject(o, "observed_at", (double)rl->observed_at);
	hdrs = rl->headers_json != NULL ? cJSON_Parse(rl->headers_json) : NULL;
	if ((w = unified_window(hdrs, "5h")) != NULL)
		cJSON_AddItemToObject(o, "unified_5h", w);
	if ((w = unified_window(hdrs, "7d")) != NULL)
		cJSON_AddItemToObject(o, "unified_7d", w);
	if ((s = header(hdrs, "anthropic-ratelimit-unified-status")) != NULL)
		cJSON_AddStringToObject(o, "unified_status", s);
	x = cJSON_CreateObject();
	add_ll_header(x, hdrs, "requests_limit", "x-ratelimit-limit-requests");
	add_ll_header(
	    x, hdrs, "requests_remaining", "x-ratelimit-remaining-requests");
	add_ll_header(x, hdrs, "tokens_limit", "x-ratelimit-limit-tokens");
	add_ll_header(
	    x, hdrs, "tokens_remaining", "x-ratelimit-remaining-tokens");
	add_ll_header(
	    x, hdrs, "requests_limit", "anthropic-ratelimit-requests-limit");
	add_ll_header(x, hdrs, "requests_remaining",
	    "anthropic-ratelimit-requests-remaining");
	add_ll_header(
	    x, hdrs, "tokens_limit", "anthropic-ratelimit-tokens-limit");
	add_ll_header(x, hdrs, "tokens_remaining",
	    "anthropic-ratelimit-tokens-remaining");
	if ((s = header(hdrs, "x-ratelimit-reset-requests")) != NULL)
		cJSON_AddStringToObject(x, "requests_reset", s);
	if ((s = header(hdrs, "x-ratelimit-reset-tokens")) != NULL)
		cJSON_AddStringToObject(x, "tokens_reset", s);
	if (x->child != NULL)
		cJSON_AddItemToObject(o, "limits", x);
	else
		cJSON_Delete(x);
	if (hdrs != NULL)
		cJSON_AddItemToObject(o, "headers", hdrs);
	else
		cJSON_AddNullToObject(o, "headers");
	return o;
}

static void
print_window(const char *label, const cJSON *w, int64_t now_s)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(w, "utilization");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(w, "reset");
	const char *st = json_str(w, "status");
	char when[64], in[32];

	printf("    %-3s ", label);
	if (cJSON_IsNumber(u))
		printf("%3.0f%% used", u->valuedouble * 100);
	else
		printf("   ?%% used");
	if (cJSON_IsNumber(r)) {
		fmt_local((int64_t)r->valuedouble, when, sizeof(when));
		fmt_duration((int64_t)r->valuedouble - now_s, in, sizeof(in));
		printf(", resets %s (in %s)", when, in);
	}
	if (st != NULL)
		printf(" [%s]", st);
	printf("\n");
}

static void
print_snapshot(const cJSON *o, int64_t now_ms)
{
	const cJSON *w, *x;
	char age[32], a[32], b[32];
	const char *s;

	fmt_duration((now_ms - (int64_t)json_num(o, "observed_at", 0)) / 1000,
	    age, sizeof(age));
	s = json_str(o, "key_fp");
	printf("  %s%s%s (seen %s ago)\n", json_str(o, "provider"),
	    s != NULL && *s != '\0' ? " key " : "", s != NULL ? s : "", age);
	if ((w = cJSON_GetObjectItemCaseSensitive(o, "unified_5h")) != NULL)
		print_window("5h", w, now_ms / 1000);
	if ((w = cJSON_GetObjectItemCaseSensitive(o, "unified_7d")) != NULL)
		print_window("7d", w, now_ms / 1000);
	if ((x = cJSON_GetObjectItemCaseSensitive(o, "limits")) != NULL) {
		if (cJSON_GetObjectItemCaseSensitive(x, "requests_remaining") !=
		    NULL) {
			report_fmt_int(
			    (int64_t)json_num(x, "requests_remaining", 0), a,
			    sizeof(a));
			report_fmt_int(
			    (int64_t)json_num(x, "requests_limit", 0), b,
			    sizeof(b));
			printf("    requests %s of %s left", a, b);
			if ((s = json_str(x, "requests_reset")) != NULL)
				printf(" (reset in %s)", s);
			printf("\n");
		}
		if (cJSON_GetObjectItemCaseSensitive(x, "tokens_remaining") !=
		    NULL) {
			report_fmt_int(
			    (int64_t)json_num(x, "tokens_remaining", 0), a,
			    sizeof(a));
			report_fmt_int((int64_t)json_num(x, "tokens_limit", 0),
			    b, sizeof(b));
			printf("    tokens   %s of %s left", a, b);
			if ((s = json_str(x, "tokens_reset")) != NULL)
				printf(" (reset in %s)", s);
			printf("\n");
		}
	}
}

static cJSON *
installed_json(void)
{
	cJSON *o = cJSON_CreateObject(), *m = NULL;
	char *path = paths_state_file("installed.json"), *text;
	const char *mode;

	if ((text = file_read(path, NULL)) == NULL) {
		cJSON_AddBoolToObject(o, "initialised", 0);
		goto out;
	}
	cJSON_AddBoolToObject(o, "initialised", 1);
	m = cJSON_Parse(text);
	if ((mode = json_str(m, "mode")) != NULL)
		cJSON_AddStringToObject(o, "mode", mode);
	else
		cJSON_AddNullToObject(o, "mode");
	cJSON_AddStringToObject(o, "manifest", path);
out:
	cJSON_Delete(m);
	free(text);
	free(path);
	return o;
}

static int
status_exec(const struct cmd *self, int argc, char **argv)
{
	struct config cfg;
	struct prices *prices = NULL;
	struct report_options opt;
	struct report *today = NULL;
	struct report_last last;
	struct report_ratelimit *rls = NULL;
	struct healthz h;
	cJSON *root, *o, *arr, *it;
	char *db = NULL, *cause = NULL, *herr = NULL, *text, a[32], b[32];
	char c[32];
	size_t nrls = 0, i;
	int64_t now = time_now_ms();
	int json = 0, running, rc = 1;

	memset(&last, 0, sizeof(last));
	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	db = cfg.db != NULL ? xstrdup(cfg.db) : paths_state_file("meter.db");
	running = healthz_probe(cfg.listen_host, cfg.listen_port,
	              HEALTH_TIMEOUT_MS, &h, &herr) == 0;
	if (prices_load_default(&prices, &cause) == -1)
		goto fail;
	memset(&opt, 0, sizeof(opt));
	opt.by = REPORT_BY_DAY;
	opt.until_ms = INT64_MAX;
	if (store_parse_when("today", now, &opt.since_ms) == -1)
		opt.since_ms = now - 86400000;
	if (report_build(db, prices, &opt, &today, &cause) == -1 ||
	    report_last(db, prices, &last, &cause) == -1 ||
	    report_ratelimits(db, &rls, &nrls, &cause) == -1)
		goto fail;

	root = cJSON_CreateObject();
	o = cJSON_AddObjectToObject(root, "daemon");
	cJSON_AddBoolToObject(o, "running", running);
	cJSON_AddStringToObject(o, "address", cfg.listen);
	if (running && h.is_json) {
		cJSON_AddNumberToObject(o, "pid", (double)h.pid);
		cJSON_AddNumberToObject(o, "uptime_s", (double)h.uptime_s);
		if (h.has_version)
			cJSON_AddStringToObject(o, "version", h.version);
		cJSON_AddNumberToObject(o, "connections",
		    h.connections >= 0 ? (double)h.connections : 0);
		cJSON_AddNumberToObject(
		    o, "exchanges", h.exchanges >= 0 ? (double)h.exchanges : 0);
	}
	if (!running)
		cJSON_AddStringToObject(o, "error", herr);
	cJSON_AddItemToObject(root, "installed", installed_json());
	o = cJSON_AddObjectToObject(root, "today");
	cJSON_AddNumberToObject(o, "requests", (double)today->total.requests);
	cJSON_AddNumberToObject(
	    o, "total_tokens", (double)report_row_tokens(&today->total));
	cJSON_AddNumberToObject(o, "input_tokens", (double)today->total.input);
	cJSON_AddNumberToObject(
	    o, "output_tokens", (double)today->total.output);
	cJSON_AddNumberToObject(
	    o, "cost_usd", round(today->total.cost * 1e10) / 1e10);
	cJSON_AddNumberToObject(
	    o, "unpriced_requests", (double)today->total.unpriced);
	if (last.found) {
		o = cJSON_AddObjectToObject(root, "last_request");
		cJSON_AddNumberToObject(
		    o, "started_at", (double)last.started_at);
		cJSON_AddNumberToObject(
		    o, "age_s", (double)((now - last.started_at) / 1000));
		if (last.client != NULL)
			cJSON_AddStringToObject(o, "client", last.client);
		else
			cJSON_AddNullToObject(o, "client");
		cJSON_AddStringToObject(o, "model", last.model);
		cJSON_AddNumberToObject(o, "tokens", (double)last.tokens);
		if (last.priced == PRICES_PRICED)
			cJSON_AddNumberToObject(
			    o, "cost_usd", round(last.cost * 1e10) / 1e10);
		else
			cJSON_AddNullToObject(o, "cost_usd");
	} else
		cJSON_AddNullToObject(root, "last_request");
	arr = cJSON_AddArrayToObject(root, "ratelimits");
	for (i = 0; i < nrls; i++)
		cJSON_AddItemToArray(arr, snapshot_json(&rls[i]));

	if (json) {
		text = cJSON_Print(root);
		printf("%s\n", text);
		free(text);
	} else {
		o = cJSON_GetObjectItemCaseSensitive(root, "daemon");
		if (running && !h.is_json)
			printf("daemon     running, %s (no health details)\n",
			    cfg.listen);
		else if (running) {
			fmt_duration(
			    (int64_t)json_num(o, "uptime_s", 0), a, sizeof(a));
			printf("daemon     running, pid %.0f, up %s, %s\n",
			    json_num(o, "pid", -1), a, cfg.listen);
		} else
			printf("daemon     not running (%s: %s)\n", cfg.listen,
			    herr);
		o = cJSON_GetObjectItemCaseSensitive(root, "installed");
		if (!cJSON_IsTrue(
		        cJSON_GetObjectItemCaseSensitive(o, "initialised")))
			printf("install    not initialised (run 'halton-meter "
			       "init')\n");
		else
			printf("install    %s\n",
			    json_str(o, "mode") != NULL ? json_str(o, "mode")
			                                : "initialised");
		report_fmt_int(today->total.requests, a, sizeof(a));
		report_fmt_int(report_row_tokens(&today->total), b, sizeof(b));
		report_fmt_cost(today->total.cost, c, sizeof(c));
		printf("today      %s request%s, %s tokens, %s", a,
		    today->total.requests == 1 ? "" : "s", b, c);
		if (today->total.unpriced > 0)
			printf(" (+%lld unpriced)",
			    (long long)today->total.unpriced);
		printf("\n");
		if (last.found) {
			fmt_duration(
			    (now - last.started_at) / 1000, a, sizeof(a));
			report_fmt_int(last.tokens, b, sizeof(b));
			if (last.priced == PRICES_PRICED)
				report_fmt_cost(last.cost, c, sizeof(c));
			else
				snprintf(c, sizeof(c), "%s",
				    last.priced == PRICES_UNPRICED
				        ? "unpriced"
				        : "no usage");
			printf("last       %s ago: %s, %s, %s tokens, %s\n", a,
			    last.client != NULL ? last.client : "(unknown)",
			    last.model, b, c);
		} else
			printf("last       no request recorded yet\n");
		if (nrls == 0)
			printf("limits     no rate-limit headers seen yet\n");
		else {
			printf("limits\n");
			cJSON_ArrayForEach(it, arr) print_snapshot(it, now);
		}
	}
	cJSON_Delete(root);
	rc = 0;
	goto out;
fail:
	cli_error(self, "%s", cause);
out:
	free(herr);
	free(cause);
	free(db);
	config_free(&cfg);
	prices_free(prices);
	report_free(today);
	report_last_free(&last);
	report_ratelimits_free(rls, nrls);
	return rc;
}

const struct cmd cmd_status = {
    .name = "status",
    .usage = "[--json]",
    .summary = "daemon, today's usage, last request and rate limits",
    .help = "Options:\n"
            "  --json    machine-readable output\n"
            "\nShows whether the daemon answers on its address (1 s "
            "timeout), the\ninstall mode, today's requests, tokens and "
            "cost, the last request, and\nthe latest rate-limit headers "
            "per provider and key: Anthropic's unified\n5-hour and 7-day "
            "utilization with reset times, OpenAI's remaining\nrequests "
            "and tokens.\n",
    .exec = status_exec,
};
