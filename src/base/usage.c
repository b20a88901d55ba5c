#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/*
 * Record ids are UUIDv7 (RFC 9562): 48 bits of Unix time in ms, then 74
 * bits that are random per process and counted up per record.  The random
 * part is read once (one /dev/urandom read per record showed in the
 * daemon's syscall profile); the counter keeps the ids of one process
 * unique, the time and the random start keep them unique across restarts
 * and processes, and ids that grow with time keep the inserts into the
 * uuid index at its right edge (few dirty pages per commit).
 */
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;
static unsigned int uuid_rand_a;  /* 12 bits */
static _Atomic uint64_t uuid_seq; /* low 62 bits used */

static void
uuid_seed(void)
{
	unsigned char b[10];
	unsigned long long state;
	size_t got = 0, i;
	ssize_t r;
	int fd;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) != -1) {
		while (got < sizeof(b)) {
			r = read(fd, b + got, sizeof(b) - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fd);
	}
	if (got < sizeof(b)) {
		/* Fallback: not secret, only unique (ids are no secret). */
		state = (unsigned long long)time_mono_us() ^
		    ((unsigned long long)getpid() << 32) ^
		    (unsigned long long)time_now_ms();
		for (i = 0; i < sizeof(b); i++) {
			state = state * 6364136223846793005ULL +
			    1442695040888963407ULL;
			b[i] = (unsigned char)(state >> 56);
		}
	}
	uuid_rand_a = ((unsigned int)b[0] << 8 | b[1]) & 0x0fff;
	/* Start in the lower half of 62 bits: the count never wraps. */
	atomic_store(&uuid_seq,
	    ((uint64_t)b[2] << 56 | (uint64_t)b[3] << 48 |
	        (uint64_t)b[4] << 40 | (uint64_t)b[5] << 32 |
	        (uint64_t)b[6] << 24 | (uint64_t)b[7] << 16 |
	        (uint64_t)b[8] << 8 | (uint64_t)b[9]) &
	        (((uint64_t)1 << 61) - 1));
}

/* A new record id, "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx". */
static void
uuid_make(char out[USAGE_UUID_LEN + 1])
{
	unsigned char b[16];
	char hex[33];
	uint64_t ms, seq;
	size_t i;

	pthread_once(&uuid_once, uuid_seed);
	ms = (uint64_t)time_now_ms();
	seq = atomic_fetch_add(&uuid_seq, 1) & (((uint64_t)1 << 62) - 1);
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (uuid_rand_a >> 8));
	b[7] = (unsigned char)(uuid_rand_a & 0xff);
	b[8] = (unsigned char)(0x80 | (seq >> 56));
	for (i = 9; i < 16; i++)
		b[i] = (unsigned char)(seq >> (8 * (15 - i)));
	hex_encode(b, sizeof(b), hex);
	/* 8-4-4-4-12 */
	memcpy(out, hex, 8);
	out[8] = '-';
	memcpy(out + 9, hex + 8, 4);
	out[13] = '-';
	memcpy(out + 14, hex + 12, 4);
	out[18] = '-';
	memcpy(out + 19, hex + 16, 4);
	out[23] = '-';
	memcpy(out + 24, hex + 20, 13); /* with the NUL */
}

void
usage_record_init(struct usage_record *r)
{
	memset(r, 0, sizeof(*r));
	uuid_make(r->uuid);
	r->ttfb_ms = -1;
	r->duration_ms = -1;
	r->stream = -1;
	r->input_tokens = -1;
	r->output_tokens = -1;
	r->cache_creation_input_tokens = -1;
	r->cache_creation_5m_tokens = -1;
	r->cache_creation_1h_tokens = -1;
	r->cache_read_input_tokens = -1;
	r->reasoning_tokens = -1;
	r->web_search_requests = -1;
	r->pid = -1;
	r->bytes_up = 0;
	r->bytes_down = 0;
	r->provider_cost_usd = -1;
}

void
usage_set_str(char **field, const char *s)
{
	free(*field);
	*field = s != NULL ? xstrdup(s) : NULL;
}

/* The string members of r, for free and forget. */
#define USAGE_RECORD_STRS(r)                                                   \
	{                                                                      \
		&(r)->provider, &(r)->kind, &(r)->host, &(r)->method,          \
		    &(r)->path, &(r)->request_model, &(r)->model,              \
		    &(r)->stop_reason, &(r)->request_id, &(r)->error,          \
		    &(r)->service_tier, &(r)->client, &(r)->client_version,    \
		    &(r)->user_agent, &(r)->tag, &(r)->process, &(r)->cwd,     \
		    &(r)->project, &(r)->key_fp, &(r)->session_id,             \
		    &(r)->usage_json                                           \
	}

void
usage_record_free(struct usage_record *r)
{
	char **strs[] = USAGE_RECORD_STRS(r);
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

void
usage_record_forget(struct usage_record *r)
{
	char **strs[] = USAGE_RECORD_STRS(r);
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		*strs[i] = NULL;
}

void
ratelimit_snapshot_free(struct ratelimit_snapshot *s)
{
	free(s->provider);
	free(s->key_fp);
	free(s->headers_json);
	memset(s, 0, sizeof(*s));
}
