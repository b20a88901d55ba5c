#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/* Random bytes for uuids from /dev/urandom, opened once per process (one
 * open per record showed in the daemon's syscall profile). */
static void
random_bytes(unsigned char *p, size_t n)
{
	static int fd = -1;
	static unsigned long long state;
	size_t got = 0;
	ssize_t r;

	if (fd == -1)
		fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	while (fd != -1 && got < n) {
		r = read(fd, p + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got == n)
		return;
	/* Fallback: not secret, only unique (uuids are not credentials). */
	if (state == 0)
		state = (unsigned long long)time_mono_us() ^
		    ((unsigned long long)getpid() << 32);
	for (size_t i = 0; i < n; i++) {
		state = state * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i] = (unsigned char)(state >> 56);
	}
}

void
usage_record_init(struct usage_record *r)
{
	unsigned char b[16];
	char hex[33];

	memset(r, 0, sizeof(*r));
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	hex_encode(b, sizeof(b), hex);
	snprintf(r->uuid, sizeof(r->uuid), "%.8s-%.4s-%.4s-%.4s-%.12s", hex,
	    hex + 8, hex + 12, hex + 16, hex + 20);
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

void
usage_record_free(struct usage_record *r)
{
	char **strs[] = { &r->provider, &r->kind, &r->host, &r->method,
		&r->path, &r->request_model, &r->model, &r->stop_reason,
		&r->request_id, &r->error, &r->service_tier, &r->client,
		&r->client_version, &r->user_agent, &r->tag, &r->process,
		&r->cwd, &r->project, &r->key_fp, &r->session_id,
		&r->usage_json };
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

void
ratelimit_snapshot_free(struct ratelimit_snapshot *s)
{
	free(s->provider);
	free(s->key_fp);
	free(s->headers_json);
	memset(s, 0, sizeof(*s));
}
