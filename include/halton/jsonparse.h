/*
 * jsonparse: a JSON parser that builds the same cJSON trees as
 * cJSON_ParseWithLength(), faster.
 *
 * The meter parses an event or a request on every metered request, and
 * cJSON's parser spends most of its time in strtod() for every number and
 * in copying every string through its escape loop.  json_parse() reads
 * integers without strtod() (up to 15 digits: exact in a double), copies
 * strings without escapes with one memcpy, and falls back to cJSON's own
 * rules for everything else, so it accepts exactly the inputs
 * cJSON_ParseWithLength() accepts (leading BOM, any byte <= 32 as white
 * space, text after the value ignored, 1000 levels of nesting) and builds
 * the same tree: types, keys, valuestring, valuedouble, valueint (true is
 * 1, numbers saturate), the first child's prev pointing at the last.
 * tests/fuzz/fuzz-jsonparse.c checks this against cJSON on every input.
 *
 * Nodes and strings come from alloc (malloc, or the allocator behind
 * cJSON's hooks), so cJSON_Delete() frees the tree.
 */
#ifndef HALTON_JSONPARSE_H
#define HALTON_JSONPARSE_H

#include <stddef.h>

#include "cJSON.h"

cJSON *json_parse(const char *, size_t, void *(*)(size_t));

#endif
