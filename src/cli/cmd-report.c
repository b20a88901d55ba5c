/*
 * report: tokens and dollars aggregated by day, week, month, hour, model,
 * provider, client, project, tag, key or session.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/cli.h"
#include "halton/paths.h"
#include "halton/prices.h"
#include "halton/report.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/* Whether stdout gets ANSI styles: a TTY, and NO_COLOR unset or empty. */
static int
want_color(void)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(STDOUT_FILENO) && (nc == NULL || *nc == '\0');
}

static int
out_width(void)
{
	const char *c = getenv("COLUMNS");
	long long v;

	if (c != NULL && str_to_ll(c, 20, 1000, &v) == 0)
		return (int)v;
	return 80;
}

/* "--name VALUE" or "--name=VALUE"; returns the value or NULL. */
static const char *
opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static int
report_exec(const struct cmd *self, int argc, char **argv)
{
	struct report_options opt;
	struct report *rep = NULL;
	struct prices *prices = NULL;
	struct config cfg;
	struct strbuf sb;
	const char *v, *since = NULL, *until = NULL, *tz = NULL;
	char *db = NULL, *cause = NULL;
	int i, json = 0, csv = 0, rc = 1;
	int64_t now = time_now_ms();

	if (cli_wants_help(self, argc, argv))
		return 0;
	memset(&opt, 0, sizeof(opt));
	opt.by = REPORT_BY_DAY;
	opt.since_ms = INT64_MIN;
	opt.until_ms = INT64_MAX;
	for (i = 1; i < argc; i++) {
		if ((v = opt_value(argc, argv, &i, "--by")) != NULL) {
			if (report_parse_by(v, &opt.by) == -1)
				return cli_usage_error(
				    self, "bad --by '%s'", v);
		} else if ((v = opt_value(argc, argv, &i, "--since")) != NULL)
			since = v;
		else if ((v = opt_value(argc, argv, &i, "--until")) != NULL)
			until = v;
		else if ((v = opt_value(argc, argv, &i, "--timezone")) != NULL)
			tz = v;
		else if (strcmp(argv[i], "--breakdown") == 0)
			opt.breakdown = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if (json && csv)
		return cli_usage_error(self,
		    "--json and --csv exclude each "
		    "other");
	if (tz != NULL) {
		if (!report_timezone_valid(tz))
			return cli_usage_error(
			    self, "unknown time zone '%s'", tz);
		setenv("TZ", tz, 1);
		tzset();
	}
	if (since != NULL &&
	    report_parse_when(since, now, 0, &opt.since_ms) == -1)
		return cli_usage_error(self, "bad --since '%s'", since);
	if (until != NULL &&
	    report_parse_when(until, now, 1, &opt.until_ms) == -1)
		return cli_usage_error(self, "bad --until '%s'", until);
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	db = cfg.db != NULL ? xstrdup(cfg.db) : paths_state_file("meter.db");
	config_free(&cfg);
	if (prices_load_default(&prices, &cause) == -1) {
		cli_error(self, "%s", cause);
		goto out;
	}
	if (report_build(db, prices, &opt, &rep, &cause) == -1) {
		cli_error(self, "%s", cause);
		goto out;
	}
	strbuf_init(&sb);
	if (json)
		report_write_json(rep, tz, &sb);
	else if (csv)
		report_write_csv(rep, &sb);
	else
		report_write_table(rep, out_width(), want_color(), &sb);
	fwrite(sb.data, 1, sb.len, stdout);
	strbuf_free(&sb);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	free(cause);
	free(db);
	report_free(rep);
	prices_free(prices);
	return rc;
}

const struct cmd cmd_report = {
    .name = "report",
    .usage = "[--by GROUP] [--since WHEN] [--until WHEN] [--breakdown] "
             "[--json|--csv] [--timezone TZ]",
    .summary = "tokens and dollars by day, model, client, project...",
    .help =
        "Options:\n"
        "  --by GROUP     day (default), week, month, hour, model, provider,\n"
        "                 client, project, tag, key or session\n"
        "  --since WHEN   from WHEN on: YYYY-MM-DD, YYYY-MM-DDTHH:MM, today,\n"
        "                 yesterday, or Nd / Nh / Nm before now (7d, 12h)\n"
        "  --until WHEN   up to WHEN (a day counts whole: --until today\n"
        "                 ends at midnight tonight)\n"
        "  --breakdown    a row per model under each group\n"
        "  --json, --csv  machine-readable output, the same numbers\n"
        "  --timezone TZ  calendar days in TZ (an IANA name such as\n"
        "                 Europe/Paris); default: the local time zone\n"
        "\nCosts use the price table (see 'halton-meter prices'); a cost\n"
        "the provider reported wins.  Requests of models without a price\n"
        "are counted apart as unpriced, never as $0.\n",
    .exec = report_exec,
};
