/*
 * store-seed: a test tool that writes records into a database through the
 * store API, exactly as the daemon does (journal, queue, one transaction).
 *
 *	store-seed DB JOURNAL < lines
 *
 * Each input line is one JSON object: a record whose keys are the requests
 * columns (as `halton-meter log --json` prints them; missing keys keep the
 * defaults of a fresh record, so "uuid" may be left out), or
 * {"ratelimit": {"provider":..,"key_fp":..,"observed_at":..,"headers":{..}}}.
 * Exits 0 when every line is committed, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/store.h"
#include "halton/util.h"

#include "cJSON.h"

static int
seed_line(struct store *s, const char *line, size_t len, char **cause)
{
	struct usage_record r;
	struct ratelimit_snapshot rl;
	cJSON *root, *inner;
	char *text;
	int rc;

	if ((root = cJSON_ParseWithLength(line, len)) == NULL) {
		*cause = strdup("not JSON");
		return -1;
	}
	inner = cJSON_GetObjectItemCaseSensitive(root, "ratelimit");
	if (inner != NULL) {
		text = cJSON_PrintUnformatted(inner);
		rc = store_ratelimit_from_json(&rl, text, strlen(text), cause);
		cJSON_free(text);
		if (rc == 0) {
			rc = store_submit_ratelimit(s, &rl);
			ratelimit_snapshot_free(&rl);
		}
		cJSON_Delete(root);
		return rc;
	}
	cJSON_Delete(root);
	usage_record_init(&r);
	if ((rc = store_record_from_json(&r, line, len, cause)) == 0)
		rc = store_submit(s, &r);
	usage_record_free(&r);
	return rc;
}

int
main(int argc, char **argv)
{
	struct store *s;
	char *line = NULL, *cause = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int status = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: store-seed DB JOURNAL < records\n");
		return 2;
	}
	if (store_open(&s, argv[1], argv[2], &cause) == -1) {
		fprintf(stderr, "store-seed: %s\n", cause);
		free(cause);
		return 1;
	}
	while ((n = getline(&line, &cap, stdin)) != -1) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (seed_line(s, line, (size_t)n, &cause) == -1) {
			fprintf(stderr, "store-seed: line %ld: %s\n", lineno,
			    cause != NULL ? cause : "journal write failed");
			free(cause);
			cause = NULL;
			status = 1;
		}
		if (store_pending(s) >= STORE_FLUSH_BATCH)
			(void)store_flush(s);
	}
	free(line);
	if (store_close(s, 10000) != 0) {
		fprintf(stderr, "store-seed: records left uncommitted\n");
		status = 1;
	}
	return status;
}
