/*
 * dashboard: the local web page the daemon serves at http://LISTEN/ and
 * the JSON endpoints it reads (docs/dashboard.md).
 *
 *	GET /                      one self-contained HTML page (no external
 *	                           scripts, fonts or CDNs)
 *	GET /api/summary           today's totals, cost per day by model (30
 *	                           days), tokens by client and by project,
 *	                           the latest rate-limit snapshots
 *	GET /api/requests?since=N  the records with rowid > N (at most 100,
 *	                           the newest), oldest first
 *
 * The engine calls dashboard_answer() for an origin-form request on its
 * listener (loopback clients only: the engine checks the peer).  Reading
 * uses a read-only SQLite connection that never blocks the store's writer.
 */
#ifndef HALTON_DASHBOARD_H
#define HALTON_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "halton/util.h"

#define DASHBOARD_DAYS         30
#define DASHBOARD_MAX_REQUESTS 100

struct dashboard;

/* A dashboard over the database at db_path (which may not exist yet).
 * The summary's reports are kept and brought up to date with the records
 * stored since the last summary; they are built again (prices read anew,
 * on a thread) when a price file or the database file changed or the
 * 30-day window moved on, so edits of the override file show at the next
 * summary. */
struct dashboard *dashboard_new(const char *);
void dashboard_free(struct dashboard *);

/*
 * Answers one request: method and target (origin-form, "/api/requests?
 * since=5"; target_len bytes, not NUL-terminated).  Appends the body to
 * body, sets *content_type (static storage) and returns the HTTP status
 * (200, 400, 404, 405 or 500; 202 with {"building":true} while the
 * summary's 30 days are read on the dashboard's thread).  now_ms is the
 * current time (calendar groups are local time).  dashboard_free() waits
 * for a build that still runs.
 */
int dashboard_answer(struct dashboard *, const char *, const char *, size_t,
    int64_t, struct strbuf *, const char **);

/* Whether target is one of the dashboard's paths ("/", "/api/..."), for
 * the engine to decide before calling dashboard_answer(). */
int dashboard_owns(const char *, size_t);

/* The embedded page (src/store/dashboard.html). */
const char *dashboard_page(size_t *);

#endif
