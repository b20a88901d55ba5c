/*
 * intercept: which hosts the daemon terminates TLS for (LLM API hosts);
 * every other host is blind-tunnelled.
 *
 * A pattern is an exact DNS name ("api.openai.com"), "*.suffix" (one or
 * more leading labels before suffix), or a name whose first label holds
 * '*' ("*-aiplatform.googleapis.com", "bedrock-runtime.*.amazonaws.com" is
 * the one built-in exception: '*' matches exactly one middle label).
 * Matching is ASCII case-insensitive; a trailing dot on the host is
 * ignored.
 */
#ifndef HALTON_INTERCEPT_H
#define HALTON_INTERCEPT_H

#include <stddef.h>

#include "halton/config.h"

/* The reserved name the daemon answers itself (for `doctor`). */
#define INTERCEPT_DOCTOR_HOST "doctor.halton-meter.invalid"

struct intercept_list;

/* The built-in LLM host patterns, NULL-terminated. */
extern const char *const intercept_builtin[];

/* Built-in patterns plus extra (may be NULL). */
struct intercept_list *intercept_list_new(const struct strlist *);
void intercept_list_free(struct intercept_list *);
/* 1 if host matches a pattern of the list, else 0. */
int intercept_list_match(const struct intercept_list *, const char *);
int intercept_pattern_match(const char *, const char *);
/* The patterns (built-in first), for name constraints and doctor. */
size_t intercept_list_count(const struct intercept_list *);
const char *intercept_list_at(const struct intercept_list *, size_t);

#endif
