/*
 * report: usage aggregated by time, model, provider, client, project, tag,
 * key or session, with costs computed per record by prices.c and summed per
 * group, so that report, log and status always agree.
 *
 * Reading goes through store_reader (a read-only connection: in WAL mode
 * it never blocks the daemon); a missing database is an empty report.
 * Calendar groups (day, week, month, hour) are in local time, i.e. $TZ.
 */
#ifndef HALTON_REPORT_H
#define HALTON_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "halton/prices.h"
#include "halton/util.h"

enum report_by {
	REPORT_BY_DAY,
	REPORT_BY_WEEK,
	REPORT_BY_MONTH,
	REPORT_BY_HOUR,
	REPORT_BY_MODEL,
	REPORT_BY_PROVIDER,
	REPORT_BY_CLIENT,
	REPORT_BY_PROJECT,
	REPORT_BY_TAG,
	REPORT_BY_KEY,
	REPORT_BY_SESSION
};

/* One line of a report: a group, a model under a group (breakdown), or the
 * totals.  Token counts the provider did not report count as 0. */
struct report_row {
	char *name;
	int64_t requests;
	int64_t input;
	int64_t output;
	int64_t cache_write;
	int64_t cache_read;
	double cost;      /* USD of the priced records */
	int64_t unpriced; /* records with tokens but no price */
	int64_t unpriced_tokens;
};

struct report_group {
	struct report_row row;
	struct report_row *models; /* with breakdown, by cost */
	size_t nmodels;
};

struct report {
	enum report_by by;
	int breakdown;
	int64_t since_ms;            /* INT64_MIN: from the first record */
	int64_t until_ms;            /* INT64_MAX: up to now */
	struct report_group *groups; /* time groups in time order, others
	                                by cost, then requests */
	size_t ngroups;
	struct report_row total;
	struct report_row *unpriced; /* per unpriced model: requests and
	                                tokens */
	size_t nunpriced;
	int64_t last_rowid; /* the newest record counted, 0 = none */
};

struct report_options {
	enum report_by by;
	int breakdown;
	int64_t since_ms;
	int64_t until_ms;
	int64_t after_rowid; /* only records with a greater rowid; 0 = all */
};

/* "day", "model"... -> enum; 0 or -1. */
int report_parse_by(const char *, enum report_by *);
const char *report_by_name(enum report_by);
/*
 * Parses a --since/--until point (store_parse_when forms).  For --until
 * (is_until set) a calendar day (YYYY-MM-DD, today, yesterday) means the
 * end of that day.  Returns 0, or -1.
 */
int report_parse_when(const char *, int64_t, int, int64_t *);
/* Whether name is a time zone this system knows ("UTC" or an IANA name
 * with a zoneinfo file). */
int report_timezone_valid(const char *);

/*
 * Reads the records of the window from the database at db_path and
 * aggregates them.  Returns 0 and a report the caller frees, or -1 with a
 * cause the caller frees.
 */
int report_build(const char *, const struct prices *,
    const struct report_options *, struct report **, char **);
/* n reports from one read of the records: opts[i] gives by and breakdown
 * of outs[i]; the window (since, until, after_rowid) is opts[0]'s. */
int report_build_many(const char *, const struct prices *,
    const struct report_options *, size_t, struct report **, char **);
void report_free(struct report *);
/* Adds src's numbers into dst (the same by and breakdown; src built over
 * later records, e.g. with after_rowid = dst->last_rowid) and sorts dst as
 * report_build does: dst is then the report over both record sets. */
void report_merge(struct report *, const struct report *);
/* The total tokens of a row: input + output + cache write + cache read. */
int64_t report_row_tokens(const struct report_row *);

/* Output.  width: the columns available (80 if 0); color: ANSI styles. */
void report_write_table(const struct report *, int, int, struct strbuf *);
void report_write_json(const struct report *, const char *, struct strbuf *);
void report_write_csv(const struct report *, struct strbuf *);

/* "1,234,567" into buf (at least 32 bytes). */
void report_fmt_int(int64_t, char *, size_t);
/* "$1,234.56"; "<$0.01" for a positive cost under a cent. */
void report_fmt_cost(double, char *, size_t);

/* The newest record, for status. */
struct report_last {
	int found;
	int64_t started_at;
	char *client;
	char *model;
	char *provider;
	int64_t tokens;
	int priced; /* enum prices_result */
	double cost;
};

int report_last(
    const char *, const struct prices *, struct report_last *, char **);
void report_last_free(struct report_last *);

/* The latest rate-limit snapshots, newest first. */
struct report_ratelimit {
	char *provider;
	char *key_fp;
	int64_t observed_at;
	char *headers_json;
};

int report_ratelimits(
    const char *, struct report_ratelimit **, size_t *, char **);
void report_ratelimits_free(struct report_ratelimit *, size_t);

#endif
