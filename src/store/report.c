/*
 * report: aggregation of usage records for `report` and `status`, and the
 * table / JSON / CSV writers.  Costs come from prices_cost_record() per
 * record, exactly as `log` shows them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cJSON.h"
#include "halton/report.h"
#include "halton/store.h"
#include "halton/xmalloc.h"

#define REPORT_WIDTH      80
#define REPORT_MIN_GROUP  6
#define REPORT_WIDE_GROUP 18
#define REPORT_NONE       "(none)"
#define REPORT_UNKNOWN    "(unknown)"

static const char *const by_names[] = {
    [REPORT_BY_DAY] = "day",
    [REPORT_BY_WEEK] = "week",
    [REPORT_BY_MONTH] = "month",
    [REPORT_BY_HOUR] = "hour",
    [REPORT_BY_MODEL] = "model",
    [REPORT_BY_PROVIDER] = "provider",
    [REPORT_BY_CLIENT] = "client",
    [REPORT_BY_PROJECT] = "project",
    [REPORT_BY_TAG] = "tag",
    [REPORT_BY_KEY] = "key",
    [REPORT_BY_SESSION] = "session",
};

static const char *const by_headers[] = {
    [REPORT_BY_DAY] = "Day",
    [REPORT_BY_WEEK] = "Week",
    [REPORT_BY_MONTH] = "Month",
    [REPORT_BY_HOUR] = "Hour",
    [REPORT_BY_MODEL] = "Model",
    [REPORT_BY_PROVIDER] = "Provider",
    [REPORT_BY_CLIENT] = "Client",
    [REPORT_BY_PROJECT] = "Project",
    [REPORT_BY_TAG] = "Tag",
    [REPORT_BY_KEY] = "Key",
    [REPORT_BY_SESSION] = "Session",
};

#define NBY ((int)(sizeof(by_names) / sizeof(by_names[0])))

int
report_parse_by(const char *s, enum report_by *by)
{
	int i;

	for (i = 0; i < NBY; i++)
		if (strcmp(s, by_names[i]) == 0) {
			*by = (enum report_by)i;
			return 0;
		}
	return -1;
}

const char *
report_by_name(enum report_by by)
{
	return (int)by >= 0 && (int)by < NBY ? by_names[by] : "?";
}

static int
is_time_by(enum report_by by)
{
	return by == REPORT_BY_DAY || by == REPORT_BY_WEEK ||
	    by == REPORT_BY_MONTH || by == REPORT_BY_HOUR;
}

int
report_parse_when(const char *s, int64_t now_ms, int is_until, int64_t *out)
{
	struct tm tm;
	time_t t;

	if (store_parse_when(s, now_ms, out) == -1)
		return -1;
	if (!is_until ||
	    !(strlen(s) == 10 || strcmp(s, "today") == 0 ||
	        strcmp(s, "yesterday") == 0))
		return 0;
	/* The end of that day: the next local midnight. */
	t = (time_t)(*out / 1000);
	if (localtime_r(&t, &tm) == NULL)
		return -1;
	tm.tm_mday += 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) == (time_t)-1)
		return -1;
	*out = (int64_t)t * 1000;
	return 0;
}

int
report_timezone_valid(const char *tz)
{
	static const char *const dirs[] = {"/usr/share/zoneinfo",
	    "/usr/lib/zoneinfo", "/usr/share/lib/zoneinfo"};
	char path[1024];
	size_t i;

	if (strcmp(tz, "UTC") == 0)
		return 1;
	if (*tz == '\0' || *tz == '/' || strstr(tz, "..") != NULL)
		return 0;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], tz);
		if (file_exists(path))
			return 1;
	}
	return 0;
}

int64_t
report_row_tokens(const struct report_row *r)
{
	return r->input + r->output + r->cache_write + r->cache_read;
}

/* A string -> index hash table (open addressing, FNV-1a). */
struct index {
	char **keys;
	size_t *vals;
	size_t cap, n;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
index_free(struct index *ix)
{
	size_t i;

	for (i = 0; i < ix->cap; i++)
		free(ix->keys[i]);
	free(ix->keys);
	free(ix->vals);
}

/* Returns the slot of key; *found tells whether it holds key already. */
static size_t
index_slot(const struct index *ix, const char *key, int *found)
{
	size_t i = hash_str(key) & (ix->cap - 1);

	while (ix->keys[i] != NULL) {
		if (strcmp(ix->keys[i], key) == 0) {
			*found = 1;
			return i;
		}
		i = (i + 1) & (ix->cap - 1);
	}
	*found = 0;
	return i;
}

static void
index_grow(struct index *ix)
{
	struct index big;
	size_t i, s;
	int found;

	big.cap = ix->cap == 0 ? 64 : ix->cap * 2;
	big.n = ix->n;
	big.keys = xcalloc(big.cap, sizeof(*big.keys));
	big.vals = xcalloc(big.cap, sizeof(*big.vals));
	for (i = 0; i < ix->cap; i++) {
		if (ix->keys[i] == NULL)
			continue;
		s = index_slot(&big, ix->keys[i], &found);
		big.keys[s] = ix->keys[i];
		big.vals[s] = ix->vals[i];
	}
	free(ix->keys);
	free(ix->vals);
	*ix = big;
}

/* The value for key, or `fresh` stored under it if it was absent. */
static size_t
index_get(struct index *ix, const char *key, size_t fresh, int *added)
{
	size_t s;
	int found;

	if ((ix->n + 1) * 2 > ix->cap)
		index_grow(ix);
	s = index_slot(ix, key, &found);
	*added = !found;
	if (found)
		return ix->vals[s];
	ix->keys[s] = xstrdup(key);
	ix->vals[s] = fresh;
	ix->n++;
	return fresh;
}

struct build {
	struct report *rep;
	const struct prices *prices;
	struct index groups;
	size_t capgroups;
	size_t capunpriced;
	char *cause;
};

static void
row_init(struct report_row *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(name);
}

static int64_t
nz(int64_t v)
{
	return v > 0 ? v : 0;
}

/* Adds one record's numbers to a row. */
static void
row_add(struct report_row *r, const struct usage_record *u, int billable,
    int priced, double cost)
{
	int64_t cw, tokens;

	r->requests++;
	if (!billable)
		return;
	cw = nz(u->cache_creation_input_tokens);
	if (cw == 0)
		cw = nz(u->cache_creation_5m_tokens) +
		    nz(u->cache_creation_1h_tokens);
	r->input += nz(u->input_tokens);
	r->output += nz(u->output_tokens);
	r->cache_write += cw;
	r->cache_read += nz(u->cache_read_input_tokens);
	if (priced == PRICES_PRICED)
		r->cost += cost;
	else if (priced == PRICES_UNPRICED) {
		tokens = nz(u->input_tokens) + nz(u->output_tokens) + cw +
		    nz(u->cache_read_input_tokens);
		r->unpriced++;
		r->unpriced_tokens += tokens;
	}
}

static const char *
record_model(const struct usage_record *u)
{
	if (u->model != NULL && *u->model != '\0')
		return u->model;
	if (u->request_model != NULL && *u->request_model != '\0')
		return u->request_model;
	return REPORT_UNKNOWN;
}

static const char *
or_none(const char *s, const char *none)
{
	return s != NULL && *s != '\0' ? s : none;
}

static void
group_key(
    enum report_by by, const struct usage_record *u, char *buf, size_t len)
{
	struct tm tm;
	time_t t;
	const char *fmt = NULL;

	switch (by) {
	case REPORT_BY_DAY:
		fmt = "%Y-%m-%d";
		break;
	case REPORT_BY_WEEK:
		fmt = "%G-W%V";
		break;
	case REPORT_BY_MONTH:
		fmt = "%Y-%m";
		break;
	case REPORT_BY_HOUR:
		fmt = "%Y-%m-%d %H:00";
		break;
	case REPORT_BY_MODEL:
		snprintf(buf, len, "%s", record_model(u));
		return;
	case REPORT_BY_PROVIDER:
		snprintf(buf, len, "%s", or_none(u->provider, REPORT_UNKNOWN));
		return;
	case REPORT_BY_CLIENT:
		snprintf(buf, len, "%s", or_none(u->client, REPORT_UNKNOWN));
		return;
	case REPORT_BY_PROJECT:
		snprintf(buf, len, "%s", or_none(u->project, REPORT_NONE));
		return;
	case REPORT_BY_TAG:
		snprintf(buf, len, "%s", or_none(u->tag, REPORT_NONE));
		return;
	case REPORT_BY_KEY:
		snprintf(buf, len, "%s", or_none(u->key_fp, REPORT_NONE));
		return;
	case REPORT_BY_SESSION:
		snprintf(buf, len, "%s", or_none(u->session_id, REPORT_NONE));
		return;
	}
	t = (time_t)(u->started_at / 1000);
	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, fmt, &tm) == 0)
		snprintf(buf, len, "?");
}

/* The row of rows[0..*n) named name, appended (zero) if there is none. */
static struct report_row *
row_named(struct report_row **rows, size_t *n, const char *name)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*rows)[i].name, name) == 0)
			return &(*rows)[i];
	*rows = xreallocarray(*rows, *n + 1, sizeof(**rows));
	row_init(&(*rows)[*n], name);
	return &(*rows)[(*n)++];
}

static void
note_unpriced(struct build *b, const struct usage_record *u)
{
	struct report *rep = b->rep;

	row_add(row_named(&rep->unpriced, &rep->nunpriced, record_model(u)), u,
	    1, PRICES_UNPRICED, 0);
}

static int
record_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	struct build *b = arg;
	struct report *rep = b->rep;
	struct report_group *g;
	char key[512];
	double cost = 0;
	size_t gi;
	int priced, added, billable;

	billable = u->kind == NULL || strcmp(u->kind, "count_tokens") != 0;
	priced = prices_cost_record(b->prices, u, &cost, NULL);
	group_key(rep->by, u, key, sizeof(key));
	gi = index_get(&b->groups, key, rep->ngroups, &added);
	if (added) {
		rep->groups = xreallocarray(
		    rep->groups, rep->ngroups + 1, sizeof(*rep->groups));
		memset(&rep->groups[rep->ngroups], 0, sizeof(*rep->groups));
		row_init(&rep->groups[rep->ngroups].row, key);
		rep->ngroups++;
	}
	g = &rep->groups[gi];
	row_add(&g->row, u, billable, priced, cost);
	if (rep->breakdown)
		row_add(row_named(&g->models, &g->nmodels, record_model(u)), u,
		    billable, priced, cost);
	row_add(&rep->total, u, billable, priced, cost);
	if (billable && priced == PRICES_UNPRICED)
		note_unpriced(b, u);
	if (rowid > rep->last_rowid)
		rep->last_rowid = rowid;
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct report_group *)a)->row.name,
	    ((const struct report_group *)b)->row.name);
}

static int
cmp_rows(const struct report_row *x, const struct report_row *y)
{
	if (x->cost != y->cost)
		return x->cost > y->cost ? -1 : 1;
	if (x->requests != y->requests)
		return x->requests > y->requests ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
cmp_group_cost(const void *a, const void *b)
{
	return cmp_rows(&((const struct report_group *)a)->row,
	    &((const struct report_group *)b)->row);
}

static int
cmp_row_cost(const void *a, const void *b)
{
	return cmp_rows(a, b);
}

/* Time groups in time order, other groups by cost; models and the
 * unpriced list by cost. */
static void
report_sort(struct report *rep)
{
	size_t i;

	/* qsort with a NULL base is undefined even for 0 elements. */
	if (rep->ngroups > 0)
		qsort(rep->groups, rep->ngroups, sizeof(*rep->groups),
		    is_time_by(rep->by) ? cmp_name : cmp_group_cost);
	for (i = 0; i < rep->ngroups; i++)
		if (rep->groups[i].nmodels > 0)
			qsort(rep->groups[i].models, rep->groups[i].nmodels,
			    sizeof(struct report_row), cmp_row_cost);
	if (rep->nunpriced > 0)
		qsort(rep->unpriced, rep->nunpriced, sizeof(struct report_row),
		    cmp_row_cost);
}

/* One read of the records feeding several builds. */
static int
record_many_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	struct build *bs = arg;
	size_t i;

	for (i = 0; bs[i].rep != NULL; i++)
		(void)record_cb(&bs[i], u, rowid);
	return 0;
}

int
report_build_many(const char *db_path, const struct prices *prices,
    const struct report_options *opts, size_t n, struct report **outs,
    char **cause)
{
	struct store_reader *rd;
	struct store_query q;
	struct build *bs;
	size_t i;
	long got;

	*cause = NULL;
	bs = xcalloc(n + 1, sizeof(*bs)); /* bs[n].rep == NULL ends it */
	for (i = 0; i < n; i++) {
		outs[i] = NULL;
		bs[i].prices = prices;
		bs[i].rep = xcalloc(1, sizeof(*bs[i].rep));
		bs[i].rep->by = opts[i].by;
		bs[i].rep->breakdown = opts[i].breakdown;
		bs[i].rep->since_ms = opts[0].since_ms;
		bs[i].rep->until_ms = opts[0].until_ms;
		row_init(&bs[i].rep->total, "TOTAL");
	}
	store_query_init(&q);
	q.since_ms = opts[0].since_ms;
	q.until_ms = opts[0].until_ms;
	q.after_rowid = opts[0].after_rowid > 0 ? opts[0].after_rowid : 0;
	q.usage_only = 1;
	rd = store_reader_new(db_path);
	got = store_read(rd, &q, record_many_cb, bs, cause);
	store_reader_free(rd);
	for (i = 0; i < n; i++) {
		index_free(&bs[i].groups);
		if (got < 0)
			report_free(bs[i].rep);
		else {
			report_sort(bs[i].rep);
			outs[i] = bs[i].rep;
		}
	}
	free(bs);
	return got < 0 ? -1 : 0;
}

int
report_build(const char *db_path, const struct prices *prices,
    const struct report_options *opt, struct report **out, char **cause)
{
	return report_build_many(db_path, prices, opt, 1, out, cause);
}

/* Adds src's numbers to dst (names are not touched). */
static void
row_sum(struct report_row *dst, const struct report_row *src)
{
	dst->requests += src->requests;
	dst->input += src->input;
	dst->output += src->output;
	dst->cache_write += src->cache_write;
	dst->cache_read += src->cache_read;
	dst->cost += src->cost;
	dst->unpriced += src->unpriced;
	dst->unpriced_tokens += src->unpriced_tokens;
}

void
report_merge(struct report *dst, const struct report *src)
{
	const struct report_group *sg;
	struct report_group *dg;
	size_t i, j;

	for (i = 0; i < src->ngroups; i++) {
		sg = &src->groups[i];
		for (j = 0; j < dst->ngroups; j++)
			if (strcmp(dst->groups[j].row.name, sg->row.name) == 0)
				break;
		if (j == dst->ngroups) {
			dst->groups = xreallocarray(dst->groups,
			    dst->ngroups + 1, sizeof(*dst->groups));
			memset(&dst->groups[j], 0, sizeof(*dst->groups));
			row_init(&dst->groups[j].row, sg->row.name);
			dst->ngroups++;
		}
		dg = &dst->groups[j];
		row_sum(&dg->row, &sg->row);
		for (j = 0; j < sg->nmodels; j++)
			row_sum(row_named(&dg->models, &dg->nmodels,
			            sg->models[j].name),
			    &sg->models[j]);
	}
	row_sum(&dst->total, &src->total);
	for (i = 0; i < src->nunpriced; i++)
		row_sum(row_named(&dst->unpriced, &dst->nunpriced,
		            src->unpriced[i].name),
		    &src->unpriced[i]);
	if (src->last_rowid > dst->last_rowid)
		dst->last_rowid = src->last_rowid;
	report_sort(dst);
}

void
report_free(struct report *rep)
{
	size_t i, j;

	if (rep == NULL)
		return;
	for (i = 0; i < rep->ngroups; i++) {
		free(rep->groups[i].row.name);
		for (j = 0; j < rep->groups[i].nmodels; j++)
			free(rep->groups[i].models[j].name);
		free(rep->groups[i].models);
	}
	free(rep->groups);
	for (i = 0; i < rep->nunpriced; i++)
		free(rep->unpriced[i].name);
	free(rep->unpriced);
	free(rep->total.name);
	free(rep);
}

void
report_fmt_int(int64_t v, char *buf, size_t len)
{
	char digits[32], out[48];
	size_t n, i, o = 0;
	int neg = v < 0;

	snprintf(digits, sizeof(digits), "%llu",
	    neg ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v);
	n = strlen(digits);
	if (neg)
		out[o++] = '-';
	for (i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	snprintf(buf, len, "%s", out);
}

void
report_fmt_cost(double c, char *buf, size_t len)
{
	char whole[48];
	long long cents;

	if (c > 0 && c < 0.005) {
		snprintf(buf, len, "<$0.01");
		return;
	}
	cents = llround(c * 100);
	report_fmt_int(cents / 100, whole, sizeof(whole));
	snprintf(buf, len, "$%s.%02lld", whole, cents % 100);
}

/* "12.3k", "4.56M": at most 6 characters. */
static void
fmt_compact(int64_t v, char *buf, size_t len)
{
	if (v < 10000)
		report_fmt_int(v, buf, len);
	else if (v < 1000000)
		snprintf(buf, len, "%.1fk", (double)v / 1e3);
	else if (v < 1000000000)
		snprintf(buf, len, "%.1fM", (double)v / 1e6);
	else
		snprintf(buf, len, "%.1fB", (double)v / 1e9);
}

#define NCOLS 8

struct cells {
	char c[NCOLS][64];
	int style; /* 0 plain, 1 bold, 2 dim */
	int indent;
};

static void
row_cells(const struct report_row *r, int compact, struct cells *out)
{
	void (*fmt)(int64_t, char *, size_t) =
	    compact ? fmt_compact : report_fmt_int;
	size_t n;

	fmt(r->requests, out->c[1], sizeof(out->c[1]));
	fmt(r->input, out->c[2], sizeof(out->c[2]));
	fmt(r->output, out->c[3], sizeof(out->c[3]));
	fmt(r->cache_write, out->c[4], sizeof(out->c[4]));
	fmt(r->cache_read, out->c[5], sizeof(out->c[5]));
	fmt(report_row_tokens(r), out->c[6], sizeof(out->c[6]));
	report_fmt_cost(r->cost, out->c[7], sizeof(out->c[7]) - 1);
	/* Nothing priced at all: no dollar figure, never "$0.00". */
	if (r->unpriced > 0 && r->cost == 0 && r->unpriced == r->requests)
		snprintf(out->c[7], sizeof(out->c[7]) - 1, "unpriced");
	if (r->unpriced > 0) {
		n = strlen(out->c[7]);
		out->c[7][n] = '*';
		out->c[7][n + 1] = '\0';
	}
}

/* Appends s padded to w columns (s is ASCII, or UTF-8 counted by code
 * point), cut with '~' if longer. */
static void
add_cell(struct strbuf *sb, const char *s, size_t w, int right)
{
	size_t n = 0, i, bytes = 0;

	for (i = 0; s[i] != '\0'; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	if (n > w) {
		/* Keep w - 1 code points and mark the cut. */
		for (i = 0, n = 0; s[i] != '\0'; i++) {
			if (((unsigned char)s[i] & 0xc0) != 0x80 && ++n > w - 1)
				break;
			bytes = i + 1;
		}
		strbuf_add(sb, s, bytes);
		strbuf_addc(sb, '~');
		return;
	}
	if (right)
		for (i = n; i < w; i++)
			strbuf_addc(sb, ' ');
	strbuf_adds(sb, s);
	if (!right)
		for (i = n; i < w; i++)
			strbuf_addc(sb, ' ');
}

static size_t
text_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

void
report_write_table(
    const struct report *rep, int width, int color, struct strbuf *sb)
{
	static const char *const wide[NCOLS] = {NULL, "Reqs", "Input", "Output",
	    "Cache wr", "Cache rd", "Total", "Cost"};
	static const char *const narrow[NCOLS] = {
	    NULL, "Req", "In", "Out", "C.wr", "C.rd", "Total", "Cost"};
	struct cells *lines;
	size_t nlines = 0, i, j, w[NCOLS], sum;
	int compact, c;
	char num[32];

	if (width <= 0)
		width = REPORT_WIDTH;
	if (rep->total.requests == 0) {
		strbuf_adds(sb, "No requests recorded in this period.\n");
		return;
	}
	nlines = 2 + rep->ngroups;
	for (i = 0; rep->breakdown && i < rep->ngroups; i++)
		nlines += rep->groups[i].nmodels;
	lines = xcalloc(nlines, sizeof(*lines));
	for (compact = 0; compact <= 1; compact++) {
		nlines = 0;
		for (j = 0; j < NCOLS; j++)
			snprintf(lines[0].c[j], sizeof(lines[0].c[j]), "%s",
			    j == 0 ? by_headers[rep->by]
			           : (compact ? narrow : wide)[j]);
		lines[0].style = 1;
		nlines = 1;
		for (i = 0; i < rep->ngroups; i++) {
			const struct report_group *g = &rep->groups[i];

			row_cells(&g->row, compact, &lines[nlines]);
			snprintf(lines[nlines].c[0], sizeof(lines[0].c[0]),
			    "%s", g->row.name);
			lines[nlines++].style = 0;
			for (j = 0; rep->breakdown && j < g->nmodels; j++) {
				row_cells(
				    &g->models[j], compact, &lines[nlines]);
				snprintf(lines[nlines].c[0],
				    sizeof(lines[0].c[0]), "  %s",
				    g->models[j].name);
				lines[nlines].style = 2;
				nlines++;
			}
		}
		row_cells(&rep->total, compact, &lines[nlines]);
		snprintf(lines[nlines].c[0], sizeof(lines[0].c[0]), "Total");
		lines[nlines++].style = 1;
		for (j = 0; j < NCOLS; j++) {
			w[j] = 0;
			for (i = 0; i < nlines; i++)
				if (text_width(lines[i].c[j]) > w[j])
					w[j] = text_width(lines[i].c[j]);
		}
		sum = 0;
		for (j = 0; j < NCOLS; j++)
			sum += w[j] + (j > 0 ? 2 : 0);
		/* Full numbers while the group column keeps a useful
		 * width; else the narrow layout. */
		if (sum - w[0] +
		            (w[0] < REPORT_WIDE_GROUP ? w[0]
		                                      : REPORT_WIDE_GROUP) <=
		        (size_t)width ||
		    compact)
			break;
	}
	/* Still too wide: the group column gives way. */
	sum -= w[0];
	if (sum + w[0] > (size_t)width)
		w[0] = sum + REPORT_MIN_GROUP <= (size_t)width
		    ? (size_t)width - sum
		    : REPORT_MIN_GROUP;
	for (i = 0; i < nlines; i++) {
		if (i == nlines - 1) {
			for (j = 0; j < sum + w[0]; j++)
				strbuf_addc(sb, '-');
			strbuf_addc(sb, '\n');
		}
		c = color && lines[i].style != 0;
		if (c)
			strbuf_adds(
			    sb, lines[i].style == 1 ? "\033[1m" : "\033[2m");
		for (j = 0; j < NCOLS; j++) {
			if (j > 0)
				strbuf_adds(sb, "  ");
			add_cell(sb, lines[i].c[j], w[j], j > 0);
		}
		if (c)
			strbuf_adds(sb, "\033[0m");
		/* No trailing blanks. */
		while (sb->len > 0 && sb->data[sb->len - 1] == ' ')
			sb->data[--sb->len] = '\0';
		strbuf_addc(sb, '\n');
	}
	free(lines);
	if (rep->total.unpriced > 0) {
		report_fmt_int(rep->total.unpriced, num, sizeof(num));
		strbuf_addf(sb,
		    "\n* %s request%s unpriced (cost unknown, not "
		    "in the totals):\n",
		    num, rep->total.unpriced == 1 ? "" : "s");
		for (i = 0; i < rep->nunpriced; i++) {
			report_fmt_int(
			    rep->unpriced[i].unpriced, num, sizeof(num));
			strbuf_addf(
			    sb, "    %s (%s)\n", rep->unpriced[i].name, num);
		}
		strbuf_adds(sb,
		    "  Add prices to ~/.halton-meter/prices.json "
		    "(see 'halton-meter prices').\n");
	}
}

static double
round_cost(double c)
{
	return round(c * 1e10) / 1e10;
}

static cJSON *
row_json(const struct report_row *r, const char *namekey)
{
	cJSON *o = cJSON_CreateObject();

	if (namekey != NULL)
		cJSON_AddStringToObject(o, namekey, r->name);
	cJSON_AddNumberToObject(o, "requests", (double)r->requests);
	cJSON_AddNumberToObject(o, "input_tokens", (double)r->input);
	cJSON_AddNumberToObject(o, "output_tokens", (double)r->output);
	cJSON_AddNumberToObject(
	    o, "cache_write_tokens", (double)r->cache_write);
	cJSON_AddNumberToObject(o, "cache_read_tokens", (double)r->cache_read);
	cJSON_AddNumberToObject(
	    o, "total_tokens", (double)report_row_tokens(r));
	cJSON_AddNumberToObject(o, "cost_usd", round_cost(r->cost));
	cJSON_AddNumberToObject(o, "unpriced_requests", (double)r->unpriced);
	cJSON_AddNumberToObject(
	    o, "unpriced_tokens", (double)r->unpriced_tokens);
	return o;
}

static void
add_time(cJSON *o, const char *key, int64_t ms)
{
	char buf[32];

	if (ms == INT64_MIN || ms == INT64_MAX) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	time_format_utc(ms, buf, sizeof(buf));
	cJSON_AddStringToObject(o, key, buf);
}

void
report_write_json(const struct report *rep, const char *tz, struct strbuf *sb)
{
	cJSON *root = cJSON_CreateObject(), *rows, *o, *models, *un;
	char *text;
	size_t i, j;

	cJSON_AddStringToObject(root, "by", report_by_name(rep->by));
	add_time(root, "since", rep->since_ms);
	add_time(root, "until", rep->until_ms);
	if (tz != NULL)
		cJSON_AddStringToObject(root, "timezone", tz);
	else
		cJSON_AddNullToObject(root, "timezone");
	rows = cJSON_AddArrayToObject(root, "rows");
	for (i = 0; i < rep->ngroups; i++) {
		o = row_json(&rep->groups[i].row, "group");
		if (rep->breakdown) {
			models = cJSON_AddArrayToObject(o, "models");
			for (j = 0; j < rep->groups[i].nmodels; j++)
				cJSON_AddItemToArray(models,
				    row_json(
				        &rep->groups[i].models[j], "model"));
		}
		cJSON_AddItemToArray(rows, o);
	}
	cJSON_AddItemToObject(root, "totals", row_json(&rep->total, NULL));
	un = cJSON_AddArrayToObject(root, "unpriced_models");
	for (i = 0; i < rep->nunpriced; i++) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "model", rep->unpriced[i].name);
		cJSON_AddNumberToObject(
		    o, "requests", (double)rep->unpriced[i].unpriced);
		cJSON_AddNumberToObject(
		    o, "tokens", (double)rep->unpriced[i].unpriced_tokens);
		cJSON_AddItemToArray(un, o);
	}
	text = cJSON_Print(root);
	strbuf_adds(sb, text);
	strbuf_addc(sb, '\n');
	free(text);
	cJSON_Delete(root);
}

static void
csv_field(struct strbuf *sb, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		strbuf_adds(sb, s);
		return;
	}
	strbuf_addc(sb, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			strbuf_addc(sb, '"');
		strbuf_addc(sb, *s);
	}
	strbuf_addc(sb, '"');
}

static void
csv_row(struct strbuf *sb, const char *group, const char *model,
    const struct report_row *r)
{
	csv_field(sb, group);
	strbuf_addc(sb, ',');
	csv_field(sb, model);
	strbuf_addf(sb, ",%lld,%lld,%lld,%lld,%lld,%lld,%.6f,%lld\n",
	    (long long)r->requests, (long long)r->input, (long long)r->output,
	    (long long)r->cache_write, (long long)r->cache_read,
	    (long long)report_row_tokens(r), r->cost, (long long)r->unpriced);
}

void
report_write_csv(const struct report *rep, struct strbuf *sb)
{
	size_t i, j;

	strbuf_adds(sb,
	    "group,model,requests,input_tokens,output_tokens,"
	    "cache_write_tokens,cache_read_tokens,total_tokens,"
	    "cost_usd,unpriced_requests\n");
	for (i = 0; i < rep->ngroups; i++) {
		csv_row(sb, rep->groups[i].row.name, "", &rep->groups[i].row);
		for (j = 0; rep->breakdown && j < rep->groups[i].nmodels; j++)
			csv_row(sb, rep->groups[i].row.name,
			    rep->groups[i].models[j].name,
			    &rep->groups[i].models[j]);
	}
	csv_row(sb, "TOTAL", "", &rep->total);
}

struct last_arg {
	const struct prices *prices;
	struct report_last *last;
};

static int
last_cb(void *arg, const struct usage_record *u, int64_t rowid)
{
	struct last_arg *a = arg;
	struct report_last *l = a->last;

	l->found = 1;
	l->started_at = u->started_at;
	l->client = u->client != NULL ? xstrdup(u->client) : NULL;
	l->model = xstrdup(record_model(u));
	l->provider = u->provider != NULL ? xstrdup(u->provider) : NULL;
	l->tokens = nz(u->input_tokens) + nz(u->output_tokens) +
	    nz(u->cache_read_input_tokens) + nz(u->cache_creation_input_tokens);
	l->priced = prices_cost_record(a->prices, u, &l->cost, NULL);
	return 0;
}

int
report_last(const char *db_path, const struct prices *prices,
    struct report_last *last, char **cause)
{
	struct store_reader *rd;
	struct store_query q;
	struct last_arg a;
	long n;

	memset(last, 0, sizeof(*last));
	last->priced = PRICES_NO_USAGE;
	a.prices = prices;
	a.last = last;
	store_query_init(&q);
	q.limit = 1;
	rd = store_reader_new(db_path);
	n = store_read(rd, &q, last_cb, &a, cause);
	store_reader_free(rd);
	return n < 0 ? -1 : 0;
}

void
report_last_free(struct report_last *l)
{
	free(l->client);
	free(l->model);
	free(l->provider);
	memset(l, 0, sizeof(*l));
}

struct rl_arg {
	struct report_ratelimit *v;
	size_t n;
};

static int
rl_cb(void *arg, const struct ratelimit_snapshot *snap)
{
	struct rl_arg *a = arg;
	struct report_ratelimit *r;

	a->v = xreallocarray(a->v, a->n + 1, sizeof(*a->v));
	r = &a->v[a->n++];
	r->provider = snap->provider != NULL ? xstrdup(snap->provider) : NULL;
	r->key_fp = snap->key_fp != NULL ? xstrdup(snap->key_fp) : NULL;
	r->observed_at = snap->observed_at;
	r->headers_json =
	    snap->headers_json != NULL ? xstrdup(snap->headers_json) : NULL;
	return 0;
}

static int
cmp_observed(const void *a, const void *b)
{
	const struct report_ratelimit *x = a, *y = b;

	if (x->observed_at != y->observed_at)
		return x->observed_at > y->observed_at ? -1 : 1;
	return 0;
}

int
report_ratelimits(const char *db_path, struct report_ratelimit **out,
    size_t *nout, char **cause)
{
	struct store_reader *rd;
	struct rl_arg a = {NULL, 0};
	long n;

	*out = NULL;
	*nout = 0;
	rd = store_reader_new(db_path);
	n = store_read_ratelimits(rd, rl_cb, &a, cause);
	store_reader_free(rd);
	if (n < 0) {
		report_ratelimits_free(a.v, a.n);
		return -1;
	}
	/* Newest first; qsort is not stable, so equal times keep no
	 * particular order. */
	if (a.n > 0)
		qsort(a.v, a.n, sizeof(*a.v), cmp_observed);
	*out = a.v;
	*nout = a.n;
	return 0;
}

void
report_ratelimits_free(struct report_ratelimit *v, size_t n)
{
	size_t i;

	for (i = 0; i < n && v != NULL; i++) {
		free(v[i].provider);
		free(v[i].key_fp);
		free(v[i].headers_json);
	}
	free(v);
}
