/*
 * manifest: ~/.halton-meter/installed.json, the record of every change
 * init made (what, where, the previous content or value), in order, so
 * uninstall can reverse them exactly, last first.
 *
 *   {"version": 1, "mode": "env|apps|full", "platform": "darwin|linux",
 *    "entries": [{"kind": "...", "key": "...", "level": 0|1|2, ...}]}
 *
 * An entry is identified by (kind, key); level is the mode that needs it
 * (0 env-only, 1 --apps, 2 --full), so switching to a lower mode reverses
 * the entries above it.  Entries are cJSON objects owned by the manifest.
 */
#ifndef HALTON_MANIFEST_H
#define HALTON_MANIFEST_H

#include <stddef.h>

#include "cJSON.h"

#define MANIFEST_FILE    "installed.json"
#define MANIFEST_VERSION 1

enum manifest_level { MANIFEST_ENV, MANIFEST_APPS, MANIFEST_FULL };

struct manifest;

/* Loads path; a missing file gives an empty manifest (*found = 0).
 * Returns 0, or -1 with a cause on unreadable or malformed JSON. */
int manifest_load(struct manifest **, const char *, int *, char **);
struct manifest *manifest_new(void);
void manifest_free(struct manifest *);
/* Writes the manifest atomically (0600).  0 or -1 with a cause. */
int manifest_save(const struct manifest *, const char *, char **);

const char *manifest_mode(const struct manifest *);
void manifest_set_mode(struct manifest *, const char *);
const char *manifest_platform(const struct manifest *);
void manifest_set_platform(struct manifest *, const char *);
const char *manifest_level_name(enum manifest_level);
int manifest_level_parse(const char *);

size_t manifest_count(const struct manifest *);
cJSON *manifest_at(const struct manifest *, size_t);
cJSON *manifest_find(const struct manifest *, const char *, const char *);
/* A new entry appended at the end (or the existing one of that kind and
 * key, left in place).  *existed tells which. */
cJSON *manifest_entry(
    struct manifest *, const char *, const char *, enum manifest_level, int *);
/* Removes (and frees) the entry. */
void manifest_remove(struct manifest *, cJSON *);

/* Field helpers: a string (NULL if missing or not a string), an int. */
const char *manifest_str(const cJSON *, const char *);
int manifest_int(const cJSON *, const char *, int);
void manifest_set_str(cJSON *, const char *, const char *);
void manifest_set_int(cJSON *, const char *, int);

#endif
