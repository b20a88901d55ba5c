/*
 * log: the recorded requests, one per line (or JSON), oldest first.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "halton/cli.h"
#include "halton/paths.h"
#include "halton/prices.h"
#include "halton/store.h"
#include "halton/util.h"

#define LOG_DEFAULT_LIMIT  50
#define LOG_FOLLOW_POLL_MS 500

static volatile sig_atomic_t log_stop;

struct log_out {
	const struct prices *prices;
	int json;           /* 0 table, 1 array, 2 one object a line */
	long n;             /* records printed */
	int64_t skip_above; /* the window shows no rowid above this */
	int64_t last_rowid; /* the follow cursor */
};

static void
log_stop_cb(int sig)
{
	(void)sig;
	log_stop = 1;
}

/* A count as the table shows it: "-" for NULL. */
static void
fmt_count(char *buf, size_t len, int64_t v)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static void
print_header(void)
{
	printf("%-19s %-9s %-26s %-12s %4s %8s %8s %8s %8s %7s %9s  %s\n",
	    "TIME", "PROVIDER", "MODEL", "CLIENT", "STAT", "IN", "OUT",
	    "CACHE-R", "CACHE-W", "DUR", "COST", "ERROR");
}

/* The record's cost in USD, or -1 when unpriced (never $0 for that). */
static double
record_cost(const struct prices *prices, const struct usage_record *r)
{
	double cost;

	if (prices != NULL &&
	    prices_cost_record(prices, r, &cost, NULL) == PRICES_PRICED)
		return cost;
	return -1;
}

static void
print_row(const struct usage_record *r, double cost)
{
	char when[32], in[24], out[24], cr[24], cw[24], dur[24], st[8];
	char usd[24];
	struct tm tm;
	time_t t = (time_t)(r->started_at / 1000);

	if (localtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "?");
	fmt_count(in, sizeof(in), r->input_tokens);
	fmt_count(out, sizeof(out), r->output_tokens);
	fmt_count(cr, sizeof(cr), r->cache_read_input_tokens);
	fmt_count(cw, sizeof(cw), r->cache_creation_input_tokens);
	if (r->duration_ms < 0)
		snprintf(dur, sizeof(dur), "-");
	else if (r->duration_ms < 10000)
		snprintf(dur, sizeof(dur), "%lldms", (long long)r->duration_ms);
	else
		snprintf(
		    dur, sizeof(dur), "%.1fs", (double)r->duration_ms / 1000);
	if (r->status == 0)
		snprintf(st, sizeof(st), "-");
	else
		snprintf(st, sizeof(st), "%d", r->status);
	if (cost < 0)
		snprintf(usd, sizeof(usd), "-");
	else
		snprintf(usd, sizeof(usd), "$%.4f", cost);
	printf("%-19s %-9.9s %-26.26s %-12.12s %4s %8s %8s %8s %8s %7s %9s  "
	       "%s\n",
	    when, r->provider != NULL ? r->provider : "-",
	    r->model != NULL               ? r->model
	        : r->request_model != NULL ? r->request_model
	                                   : "-",
	    r->client != NULL ? r->client : "-", st, in, out, cr, cw, dur, usd,
	    r->error != NULL ? r->error : "");
}

static int
print_cb(void *arg, const struct usage_record *r, int64_t rowid)
{
	struct log_out *o = arg;
	struct strbuf sb;

	if (rowid > o->skip_above)
		return 0; /* committed after the cursor: the next poll's */
	if (rowid > o->last_rowid)
		o->last_rowid = rowid;
	if (o->json) {
		strbuf_init(&sb);
		store_record_json_cost(
		    r, STORE_JSON_LOG, record_cost(o->prices, r), &sb);
		if (o->json == 1)
			printf("%s\n  %s", o->n == 0 ? "[" : ",", sb.data);
		else
			printf("%s\n", sb.data);
		strbuf_free(&sb);
	} else {
		if (o->n == 0)
			print_header();
		print_row(r, record_cost(o->prices, r));
	}
	o->n++;
	return 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	/* A signal ends the sleep early; the caller checks log_stop. */
	(void)nanosleep(&ts, NULL);
}

/*
 * Prints the window, then (with --follow) polls for rows with a higher
 * rowid every LOG_FOLLOW_POLL_MS until SIGINT or SIGTERM.
 */
static int
log_run(const struct cmd *self, const char *db, struct store_query *q, int json,
    int follow)
{
	struct store_reader *rd;
	struct prices *prices = NULL;
	struct log_out o = {0};
	struct sigaction sa;
	char *cause = NULL;
	int64_t max;
	int rc = 1;

	o.json = json ? (follow ? 2 : 1) : 0;
	o.skip_above = INT64_MAX;
	/* A bad user price file is an error, as in report: a silently
	 * missing price would show as unpriced. */
	if (prices_load_default(&prices, &cause) != 0) {
		cli_error(self, "%s", cause);
		free(cause);
		return 1;
	}
	o.prices = prices;
	rd = store_reader_new(db);
	if (follow) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = log_stop_cb;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		/*
		 * The cursor is the highest rowid before the window is read;
		 * the window leaves out rows committed after it, which the
		 * first poll prints.  Nothing is missed, nothing is doubled.
		 */
		if ((max = store_max_rowid(rd, &cause)) < 0)
			goto fail;
		o.last_rowid = o.skip_above = max;
	}
	if (store_read(rd, q, print_cb, &o, &cause) < 0)
		goto fail;
	if (o.json == 1)
		printf("%s]\n", o.n == 0 ? "[" : "\n");
	fflush(stdout);
	while (follow && !log_stop) {
		sleep_ms(LOG_FOLLOW_POLL_MS);
		if (log_stop)
			break;
		store_query_init(q);
		q->after_rowid = o.last_rowid;
		o.skip_above = INT64_MAX;
		if (store_read(rd, q, print_cb, &o, &cause) < 0)
			goto fail;
		fflush(stdout);
	}
	rc = 0;
	goto out;
fail:
	cli_error(self, "%s", cause != NULL ? cause : "read failed");
out:
	free(cause);
	store_reader_free(rd);
	prices_free(prices);
	return rc;
}

static int
log_exec(const struct cmd *self, int argc, char **argv)
{
	struct config cfg;
	struct store_query q;
	long long limit = LOG_DEFAULT_LIMIT;
	int64_t since;
	char *db;
	int json = 0, follow = 0, i, rc;

	if (cli_wants_help(self, argc, argv))
		return 0;
	store_query_init(&q);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--follow") == 0 ||
		    strcmp(argv[i], "-f") == 0)
			follow = 1;
		else if (strcmp(argv[i], "--limit") == 0 ||
		    strcmp(argv[i], "-n") == 0) {
			if (++i == argc ||
			    str_to_ll(argv[i], 0, 100000000, &limit) == -1)
				return cli_usage_error(
				    self, "--limit takes a number >= 0");
		} else if (strcmp(argv[i], "--since") == 0) {
			if (++i == argc ||
			    store_parse_when(argv[i], time_now_ms(), &since) ==
			        -1)
				return cli_usage_error(self,
				    "--since takes YYYY-MM-DD, "
				    "YYYY-MM-DDTHH:MM, today, yesterday, or "
				    "Nd/Nh/Nm");
			q.since_ms = since;
		} else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	q.limit = (long)limit;
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	db = cfg.db != NULL ? strdup(cfg.db) : paths_state_file("meter.db");
	config_free(&cfg);
	if (db == NULL) {
		cli_error(self, "out of memory");
		return 1;
	}
	rc = log_run(self, db, &q, json, follow);
	free(db);
	return rc;
}

const struct cmd cmd_log = {
    .name = "log",
    .usage = "[--json] [--limit N] [--since TIME] [--follow]",
    .summary = "show the recorded requests, oldest first",
    .help = "Options:\n"
            "  --json         a JSON array of records (keys: the column "
            "names)\n"
            "  --limit N      the newest N records of the window (default "
            "50; 0 = all)\n"
            "  --since TIME   only records started at or after TIME:\n"
            "                 YYYY-MM-DD, YYYY-MM-DDTHH:MM (local time),\n"
            "                 today, yesterday, or 7d, 12h, 30m ago\n"
            "  --follow, -f   keep printing new records as they land\n"
            "                 (with --json: one object per line); stop "
            "with ^C\n"
            "\nReads ~/.halton-meter/meter.db (config `db`) without "
            "blocking the daemon;\nno database means no records.\n",
    .exec = log_exec,
};
