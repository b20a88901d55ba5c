/*
 * jsonarena: a per-thread bump arena behind cJSON's allocation hooks; see
 * jsonarena.h.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#include "halton/jsonarena.h"
#include "halton/jsonparse.h"

/* Room for one large event (a message_start is ~450 bytes: ~30 nodes of
 * 64 bytes plus their strings); more goes to malloc. */
#define JSONARENA_SIZE 16384

static _Thread_local alignas(max_align_t) unsigned char arena[JSONARENA_SIZE];
static _Thread_local size_t arena_used;
static _Thread_local int arena_on;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void *
arena_malloc(size_t n)
{
	size_t a = alignof(max_align_t);
	size_t need = (n + a - 1) & ~(a - 1);

	if (arena_on && need >= n && need <= JSONARENA_SIZE - arena_used) {
		void *p = arena + arena_used;

		arena_used += need;
		return p;
	}
	return malloc(n);
}

static void
arena_free(void *p)
{
	uintptr_t u = (uintptr_t)p, lo = (uintptr_t)arena;

	if (u >= lo && u < lo + JSONARENA_SIZE)
		return; /* given back as a whole by jsonarena_release */
	free(p);
}

static void
arena_init_once(void)
{
	cJSON_Hooks h = {arena_malloc, arena_free};

	cJSON_InitHooks(&h);
}

void
jsonarena_init(void)
{
	pthread_once(&arena_once, arena_init_once);
}

size_t
jsonarena_mark(void)
{
	return arena_used;
}

cJSON *
jsonarena_parse(const char *data, size_t len)
{
	cJSON *j;

	jsonarena_init();
	arena_on = 1;
	j = json_parse(data, len, arena_malloc);
	arena_on = 0;
	return j;
}

void
jsonarena_release(size_t mark)
{
	if (mark <= arena_used)
		arena_used = mark;
}
