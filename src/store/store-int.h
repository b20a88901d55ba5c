/*
 * store-int: what the store's files share and nobody else sees.
 *
 * One table describes every column of `requests`: its name, how it maps to
 * a field of struct usage_record, and which value means NULL.  Binding,
 * reading, the journal's JSON and log's JSON all walk this table, so a
 * column cannot round-trip in one and not in the other.
 */
#ifndef HALTON_STORE_INT_H
#define HALTON_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "halton/store.h"

enum store_col_type {
	SCOL_UUID,     /* char uuid[], NOT NULL */
	SCOL_I64,      /* int64_t, always a value */
	SCOL_I64N,     /* int64_t, -1 (any negative) = NULL */
	SCOL_STATUS,   /* int, 0 = NULL */
	SCOL_TRI,      /* int 1/0, -1 = NULL; JSON true/false/null */
	SCOL_TEXT,     /* char *, NULL = NULL */
	SCOL_JSONTEXT, /* char * holding JSON text (usage_json) */
	SCOL_REALN     /* double, negative = NULL */
};

struct store_col {
	const char *name;
	size_t namelen; /* strlen(name) */
	enum store_col_type type;
	size_t off;
};

extern const struct store_col store_cols[];
extern const size_t store_ncols;

/* "uuid, started_at, ..." in table order (static storage). */
const char *store_col_list(void);
/* The same list with NULL for the columns store_query.usage_only skips. */
const char *store_col_list_usage(void);
/* Binds column i of r to parameter i + 1 of stmt. */
int store_col_bind(sqlite3_stmt *, const struct usage_record *);
/* Reads columns first..first+ncols of the current row into r (which the
 * caller has usage_record_init'ed; strings are replaced). */
void store_col_read(sqlite3_stmt *, int, struct usage_record *);
/* A deep copy. */
void store_record_copy(struct usage_record *, const struct usage_record *);
/* JSON string escaping (invalid UTF-8 becomes U+FFFD). */
void store_json_str(struct strbuf *, const char *);
/* The journal line of a snapshot, without the newline. */
void store_ratelimit_json(const struct ratelimit_snapshot *, struct strbuf *);

/* The journal: an append-only file of JSON lines, locked by one process. */
struct store_journal;

int store_journal_open(struct store_journal **, const char *, char **);
/* Reads the whole journal as it is now (malloc'd, NUL-terminated). */
char *store_journal_read(struct store_journal *, size_t *);
/* One write() of line (which ends in '\n'); 0 or -1 with errno. */
int store_journal_append(struct store_journal *, const char *, size_t);
/* Empties the journal; 0 or -1 with errno. */
int store_journal_truncate(struct store_journal *);
void store_journal_close(struct store_journal *);

#endif
