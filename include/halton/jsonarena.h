/*
 * jsonarena: cJSON parses of the meter's hot path without malloc.
 *
 * An SSE event or a request member is parsed, read by a provider and
 * deleted at once; its 20-60 nodes and strings are allocated from a bump
 * arena of the calling thread instead of one malloc and one free each.
 *
 *	size_t mark = jsonarena_mark();
 *	cJSON *j = jsonarena_parse(data, len);   // nodes in the arena
 *	... read j; anything kept is copied (cJSON_Duplicate, strdup)
 *	cJSON_Delete(j);                          // arena nodes: no-op
 *	jsonarena_release(mark);                  // arena space back
 *
 * Only jsonarena_parse allocates from the arena; every other cJSON call
 * (Duplicate, Create*, Print, a parse elsewhere) gets malloc memory, also
 * while arena nodes are alive, so a tree that outlives the release can be
 * made from arena nodes only by copying them.  A parse that does not fit
 * goes on with malloc.  jsonarena_init installs the cJSON hooks (once per
 * process, before other threads use cJSON).
 */
#ifndef HALTON_JSONARENA_H
#define HALTON_JSONARENA_H

#include <stddef.h>

#include "cJSON.h"

void jsonarena_init(void);
size_t jsonarena_mark(void);
cJSON *jsonarena_parse(const char *, size_t);
void jsonarena_release(size_t);

#endif
