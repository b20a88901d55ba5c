/*
 * meter: the glue between the engine's exchange hooks and the providers.
 *
 * Per exchange: provider by host + path; request JSON (capped) for model,
 * stream and include_usage; response framing chosen from the status and
 * Content-Type, or sniffed from the first decoded bytes; one persistent
 * Content-Encoding decoder per body; the framed events parsed with cJSON
 * and handed to the provider; at the end the record is completed (timings,
 * bytes, status, errors, attribution) and handed to the record callback.
 * Everything works on a copy of the bytes and never fails the relay: a
 * meter error ends up in the record's error column, nowhere else.
 *
 * The client process is looked up off the event loop: the first exchange
 * of a client connection queues one lookup for the meter's worker thread
 * (started by meter_new when resolve_process is set) and goes on.  A record
 * that ends before its lookup is done waits in the meter's "awaiting" list and
 * is emitted by meter_poll() (or meter_free()) once the lookup has finished.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cJSON.h"
#include "halton/attribution.h"
#include "halton/config.h"
#include "halton/decode.h"
#include "halton/eventstream.h"
#include "halton/exchange.h"
#include "halton/jsonarray.h"
#include "halton/log.h"
#include "halton/jsonarena.h"
#include "halton/jsonparse.h"
#include "halton/meter.h"
#include "halton/provider.h"
#include "halton/sse.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "halton/ws.h"
#include "halton/xmalloc.h"

/* Bytes buffered to tell an event stream from JSON when the type is
 * missing or wrong. */
#define METER_SNIFF_MAX 4096
/* Most request headers the hooks copy for one exchange. */
#define METER_MAX_HEADERS 256
/* Longest the end hook waits for a lookup that is still running.  The
 * response's last bytes are still in the proxy's output buffer then, so a
 * client that exits as soon as it has them (curl against a fast upstream)
 * is still there to be found; past this the record waits in the meter
 * instead and the loop goes on. */
#define METER_LOOKUP_WAIT_US 2000

enum framing {
	FRAME_NONE,        /* nothing to meter in this body */
	FRAME_SNIFF,       /* buffering until the first bytes tell */
	FRAME_JSON,        /* one JSON document, parsed at the end */
	FRAME_SSE,         /* text/event-stream */
	FRAME_JSONARRAY,   /* Gemini stream without alt=sse */
	FRAME_EVENTSTREAM, /* AWS event-stream (Bedrock) */
	FRAME_JSONL,       /* JSON lines (batch results) */
	FRAME_WS           /* WebSocket messages after a 101 */
};

enum lookup_state {
	LOOKUP_QUEUED,  /* in the worker's queue */
	LOOKUP_RUNNING, /* the worker is scanning the process table */
	LOOKUP_DONE     /* proc is final (pid -1 if the lookup failed) */
};

/*
 * One client connection's process lookup.  Shared between the event loop
 * (the connection's cache, records awaiting it) and the worker (while it
 * is queued or running), hence the atomic reference count; the last
 * reference frees it, whichever thread drops it.  The endpoints never
 * change after creation; state, proc and next are guarded by the meter's
 * lock until state is LOOKUP_DONE, after which proc is read-only.
 */
struct meter_lookup {
	atomic_int refs;
	enum lookup_state state;
	char client_addr[64];
	int client_port;
	char local_addr[64];
	int local_port;
	struct attribution_process proc;
	struct meter_lookup *next; /* queue link */
};

/* A finished record whose lookup is still running. */
struct meter_awaiting {
	struct usage_record *rec;
	struct meter_lookup *lookup;
	struct meter_awaiting *next;
};

struct meter {
	struct meter_options opt;
	meter_record_cb record_cb;
	meter_ratelimit_cb ratelimit_cb;
	void *arg;
	uint64_t records;

	/* Records waiting for their lookup, oldest first (loop only). */
	struct meter_awaiting *awaiting;
	struct meter_awaiting **awaiting_tail;
	size_t nawaiting;

	/* The lookup worker; lock guards everything below it and the
	 * state of every queued or running lookup. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t done; /* a lookup finished */
	pthread_t worker;
	int worker_started;
	int worker_failed;
	int stopping;
	struct meter_lookup *queue;
	struct meter_lookup **queue_tail;
	uint64_t lookups;
};

struct meter_exchange {
	struct meter *m;
	const struct provider *p;
	struct provider_state st;
	struct usage_record *rec;
	char *host;
	char *path;
	char *query;
	char *method;
	int64_t started_ms;
	uint64_t started_mono_ms;

	/* Request body: a capped, decoded copy of a JSON body. */
	int req_wanted;
	int req_done;
	int req_too_large;
	struct decoder *req_dec;
	struct strbuf req;

	/* Response. */
	int status;
	char *amzn_error;
	enum framing framing;
	struct decoder *dec;
	struct strbuf body;
	int body_too_large;
	struct sse *sse;
	struct jsonarray *ja;
	struct eventstream *es;
	char *parse_error;
	int finishing; /* the body ended: a partial event is a cut */

	/* The client connection's process lookup (a reference), or NULL. */
	struct meter_lookup *lookup;

	/* WebSocket. */
	struct ws *ws_up;
	struct ws *ws_down;
	int ws_emitted;
	int ws_pending;
	int64_t ws_started_ms;
};

/* The observer's per-client-connection cache: the connection's lookup
 * (a reference), made once at its first exchange. */
struct meter_conn {
	struct meter_lookup *lookup;
};

static size_t
meter_limit(const struct meter *m)
{
	return m->opt.body_limit != 0 ? m->opt.body_limit
	                              : CONFIG_DEFAULT_BODY_LIMIT;
}

static void
lookup_unref(struct meter_lookup *lk)
{
	if (lk == NULL)
		return;
	if (atomic_fetch_sub(&lk->refs, 1) == 1) {
		attribution_process_free(&lk->proc);
		free(lk);
	}
}

static struct meter_lookup *
lookup_ref(struct meter_lookup *lk)
{
	if (lk != NULL)
		atomic_fetch_add(&lk->refs, 1);
	return lk;
}

/*
 * The worker: takes queued lookups oldest first and runs them outside the
 * lock.  A lookup nobody holds any more (its connection closed and no
 * record waits for it) is dropped unrun.  On stopping it still finishes
 * the queue, so meter_free() emits every record with its process.
 */
static void *
meter_worker(void *arg)
{
	struct meter *m = arg;
	struct meter_lookup *lk;
	struct attribution_process proc;
	int (*lookup_fn)(
	    const char *, int, const char *, int, struct attribution_process *);

	lookup_fn =
	    m->opt.lookup != NULL ? m->opt.lookup : attribution_process_lookup;
	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (m->queue == NULL && !m->stopping)
			pthread_cond_wait(&m->wake, &m->lock);
		if ((lk = m->queue) == NULL)
			break; /* stopping, nothing left */
		if ((m->queue = lk->next) == NULL)
			m->queue_tail = &m->queue;
		lk->next = NULL;
		attribution_process_init(&proc);
		if (atomic_load(&lk->refs) > 1) {
			lk->state = LOOKUP_RUNNING;
			m->lookups++;
			pthread_mutex_unlock(&m->lock);
			(void)lookup_fn(lk->client_addr, lk->client_port,
			    lk->local_addr, lk->local_port, &proc);
			pthread_mutex_lock(&m->lock);
		}
		lk->proc = proc;
		lk->state = LOOKUP_DONE;
		pthread_cond_broadcast(&m->done);
		pthread_mutex_unlock(&m->lock);
		lookup_unref(lk); /* the queue's reference */
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Starts the worker with every signal blocked (the loop's signal events
 * stay the only receivers).  Called with the lock held. */
static void
meter_worker_start(struct meter *m)
{
	sigset_t all, old;
	int error;

	if (m->worker_started || m->worker_failed)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&m->worker, NULL, meter_worker, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		log_warnx("meter: cannot start the process lookup thread: %s",
		    strerror(error));
		m->worker_failed = 1;
		return;
	}
	m->worker_started = 1;
}

/*
 * A new lookup for one client connection, queued for the worker; returns
 * the caller's reference.  Never blocks: without a worker the lookup is
 * done at once, unresolved (pid -1).
 */
static struct meter_lookup *
lookup_queue(
    struct meter *m, const char *caddr, int cport, const char *laddr, int lport)
{
	struct meter_lookup *lk = xcalloc(1, sizeof(*lk));

	atomic_init(&lk->refs, 1);
	attribution_process_init(&lk->proc);
	snprintf(lk->client_addr, sizeof(lk->client_addr), "%s", caddr);
	lk->client_port = cport;
	snprintf(lk->local_addr, sizeof(lk->local_addr), "%s", laddr);
	lk->local_port = lport;
	pthread_mutex_lock(&m->lock);
	meter_worker_start(m);
	if (m->worker_started && !m->stopping) {
		lk->state = LOOKUP_QUEUED;
		*m->queue_tail = lookup_ref(lk);
		m->queue_tail = &lk->next;
		pthread_cond_signal(&m->wake);
	} else {
		lk->state = LOOKUP_DONE;
	}
	pthread_mutex_unlock(&m->lock);
	return lk;
}

static int
lookup_done(struct meter *m, struct meter_lookup *lk)
{
	int done;

	pthread_mutex_lock(&m->lock);
	done = lk->state == LOOKUP_DONE;
	pthread_mutex_unlock(&m->lock);
	return done;
}

/*
 * At the end of an exchange shorter than its connection's lookup: a
 * lookup the worker has not started yet (it lost the CPU to the loop, on
 * a busy machine) is taken out of the queue and run here, because a
 * client that exits at once would be gone by the time the worker gets to
 * it; one lookup costs a fraction of a millisecond (one sock_diag query
 * and a newest-first /proc scan).  A lookup already running is waited
 * for at most METER_LOOKUP_WAIT_US; after that its record waits in the
 * awaiting list.
 */
static void
lookup_wait_briefly(struct meter *m, struct meter_lookup *lk)
{
	struct meter_lookup **pp;
	struct attribution_process proc;
	struct timespec until;
	int (*lookup_fn)(
	    const char *, int, const char *, int, struct attribution_process *);

	if (lk == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	if (lk->state == LOOKUP_QUEUED) {
		for (pp = &m->queue; *pp != NULL && *pp != lk;
		     pp = &(*pp)->next)
			;
		if (*pp == lk) {
			if ((*pp = lk->next) == NULL)
				m->queue_tail = pp;
			lk->next = NULL;
			lk->state = LOOKUP_RUNNING;
			m->lookups++;
			pthread_mutex_unlock(&m->lock);
			lookup_fn = m->opt.lookup != NULL
			    ? m->opt.lookup
			    : attribution_process_lookup;
			attribution_process_init(&proc);
			(void)lookup_fn(lk->client_addr, lk->client_port,
			    lk->local_addr, lk->local_port, &proc);
			pthread_mutex_lock(&m->lock);
			lk->proc = proc;
			lk->state = LOOKUP_DONE;
			pthread_cond_broadcast(&m->done);
			pthread_mutex_unlock(&m->lock);
			lookup_unref(lk); /* the queue's reference */
			return;
		}
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += METER_LOOKUP_WAIT_US * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (lk->state != LOOKUP_DONE)
		if (pthread_cond_timedwait(&m->done, &m->lock, &until) != 0)
			break;
	pthread_mutex_unlock(&m->lock);
}

/* Hands a complete record over (its process already set). */
static void
record_hand_over(struct meter *m, struct usage_record *r)
{
	m->records++;
	if (m->record_cb != NULL) {
		m->record_cb(m->arg, r);
	} else {
		usage_record_free(r);
		free(r);
	}
}

/* Copies a finished lookup's process into a record. */
static void
record_set_process(struct usage_record *r, const struct attribution_process *p)
{
	r->pid = p->pid;
	usage_set_str(&r->process, p->process);
	usage_set_str(&r->cwd, p->cwd);
	usage_set_str(&r->project, p->project);
}

/*
 * Emits the awaiting records whose lookup is done, oldest first; all of
 * them when force is set (meter_free, after the worker has ended).
 */
static void
awaiting_drain(struct meter *m, int force)
{
	struct meter_awaiting *a, **ap = &m->awaiting;

	while ((a = *ap) != NULL) {
		if (!force && !lookup_done(m, a->lookup)) {
			ap = &a->next;
			continue;
		}
		*ap = a->next;
		m->nawaiting--;
		if (a->lookup->state == LOOKUP_DONE)
			record_set_process(a->rec, &a->lookup->proc);
		lookup_unref(a->lookup);
		record_hand_over(m, a->rec);
		free(a);
	}
	m->awaiting_tail = ap;
}

/*
 * Emits a finished record: at once when its connection's lookup is done
 * (or there is none), else it joins the awaiting list and the owner is
 * asked to poll.  Records already waiting go first, so the records of one
 * connection keep their order.
 */
static void
record_deliver(struct meter *m, struct usage_record *r, struct meter_lookup *lk)
{
	struct meter_awaiting *a;

	if (m->awaiting != NULL)
		awaiting_drain(m, 0);
	if (lk == NULL) {
		record_hand_over(m, r);
		return;
	}
	if (lookup_done(m, lk)) {
		record_set_process(r, &lk->proc);
		record_hand_over(m, r);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->rec = r;
	a->lookup = lookup_ref(lk);
	*m->awaiting_tail = a;
	m->awaiting_tail = &a->next;
	m->nawaiting++;
	if (m->opt.poll_cb != NULL)
		m->opt.poll_cb(m->arg);
}

struct meter *
meter_new(const struct meter_options *opt, meter_record_cb record_cb,
    meter_ratelimit_cb ratelimit_cb, void *arg)
{
	struct meter *m = xcalloc(1, sizeof(*m));

	jsonarena_init(); /* before the worker thread exists */
	if (opt != NULL)
		m->opt = *opt;
	m->record_cb = record_cb;
	m->ratelimit_cb = ratelimit_cb;
	m->arg = arg;
	m->awaiting_tail = &m->awaiting;
	m->queue_tail = &m->queue;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	pthread_cond_init(&m->done, NULL);
	/* Started now, not at the first lookup: a client that is done in a
	 * millisecond must not wait for a thread to be created. */
	if (m->opt.resolve_process) {
		pthread_mutex_lock(&m->lock);
		meter_worker_start(m);
		pthread_mutex_unlock(&m->lock);
	}
	return m;
}

void
meter_poll(struct meter *m)
{
	if (m->awaiting != NULL)
		awaiting_drain(m, 0);
}

size_t
meter_pending(const struct meter *m)
{
	return m->nawaiting;
}

uint64_t
meter_lookups(struct meter *m)
{
	uint64_t n;

	pthread_mutex_lock(&m->lock);
	n = m->lookups;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void
meter_free(struct meter *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = 1;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
	if (m->worker_started)
		pthread_join(m->worker, NULL);
	/* The worker finished the queue: every awaiting lookup is done. */
	awaiting_drain(m, 1);
	pthread_cond_destroy(&m->wake);
	pthread_cond_destroy(&m->done);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

uint64_t
meter_records(const struct meter *m)
{
	return m->records;
}

/* Header lookup over a meter_header array (case-insensitive). */
struct header_list {
	const struct meter_header *h;
	size_t n;
};

static const char *
header_find(const struct header_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->h[i].name != NULL && l->h[i].value != NULL &&
		    str_casecmp(l->h[i].name, name) == 0)
			return l->h[i].value;
	return NULL;
}

static const char *
header_lookup_cb(void *arg, const char *name)
{
	return header_find(arg, name);
}

/* Case-insensitive "contains" for header values. */
static int
value_has(const char *v, const char *needle)
{
	size_t n = strlen(needle);

	if (v == NULL)
		return 0;
	for (; *v != '\0'; v++)
		if (str_ncasecmp(v, needle, n) == 0)
			return 1;
	return 0;
}

static void
note_parse_error(struct meter_exchange *mx, const char *what, const char *cause)
{
	if (mx->parse_error == NULL)
		mx->parse_error = xasprintf("parse error: %s%s%s", what,
		    cause != NULL ? ": " : "", cause != NULL ? cause : "");
}

/*
 * Request side.
 */
static int
req_output_cb(void *arg, const void *data, size_t len)
{
	struct meter_exchange *mx = arg;

	if (mx->req_too_large)
		return 0;
	if (mx->req.len + len > meter_limit(mx->m)) {
		mx->req_too_large = 1;
		strbuf_free(&mx->req);
		strbuf_init(&mx->req);
		return 0;
	}
	strbuf_add(&mx->req, data, len);
	return 0;
}

/*
 * A request body is parsed only as far as the providers look: they read
 * the top-level "model", "stream" and "stream_options" (provider.h), and
 * the rest is the prompt, often hundreds of KB that cJSON would turn into
 * thousands of nodes.  The members are found by skipping values (strings,
 * nesting) without building them; the wanted ones (first occurrence, as
 * cJSON_GetObjectItem reads) are parsed alone into a small object.
 */
static const char *const req_wanted_keys[] = {
    "model", "stream", "stream_options"};
#define REQ_NKEYS (sizeof(req_wanted_keys) / sizeof(req_wanted_keys[0]))

/* p at a '"': the byte after the closing quote, or NULL if cut. */
static const char *
js_string(const char *p, const char *end)
{
	const char *q, *b;

	for (p++; p < end; p = q + 1) {
		if ((q = memchr(p, '"', (size_t)(end - p))) == NULL)
			return NULL;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if ((q - b) % 2 == 0)
			return q + 1; /* not escaped */
	}
	return NULL;
}

/* The byte after the value at p (not validated beyond its extent), or
 * NULL if it is cut or nested too deep. */
static const char *
js_value(const char *p, const char *end)
{
	int depth = 0;

	if (p == end)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		while (p < end && *p != ',' && *p != '}' && *p != ']' &&
		    *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		return p;
	}
	while (p < end) {
		switch (*p) {
		case '"':
			if ((p = js_string(p, end)) == NULL)
				return NULL;
			if (depth == 0)
				return p;
			continue;
		case '{':
		case '[':
			if (++depth > 1000) /* cJSON's nesting limit */
				return NULL;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	return NULL;
}

/* The wanted members of the request object in data, or NULL when it is
 * not one well-framed object (the caller then parses it whole). */
static cJSON *
request_members(const char *data, size_t len)
{
	const char *p = data, *end = data + len, *k, *v, *ve;
	const char *span[REQ_NKEYS];
	size_t slen[REQ_NKEYS], klen, i;
	cJSON *obj, *item;

	memset(span, 0, sizeof(span));
	p = provider_json_ws(p, end);
	if (p == end || *p++ != '{')
		return NULL;
	p = provider_json_ws(p, end);
	if (p < end && *p == '}')
		p++;
	else
		for (;;) {
			if (p == end || *p != '"' ||
			    (v = js_string(p, end)) == NULL)
				return NULL;
			k = p + 1;
			klen = (size_t)(v - k) - 1;
			p = provider_json_ws(v, end);
			if (p == end || *p++ != ':')
				return NULL;
			v = provider_json_ws(p, end);
			if ((ve = js_value(v, end)) == NULL || ve == v)
				return NULL;
			for (i = 0; i < REQ_NKEYS; i++)
				if (span[i] == NULL &&
				    strlen(req_wanted_keys[i]) == klen &&
				    memcmp(k, req_wanted_keys[i], klen) == 0) {
					span[i] = v;
					slen[i] = (size_t)(ve - v);
				}
			p = provider_json_ws(ve, end);
			if (p < end && *p == ',') {
				p = provider_json_ws(p + 1, end);
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return NULL;
		}
	if (provider_json_ws(p, end) != end ||
	    (obj = cJSON_CreateObject()) == NULL)
		return NULL;
	for (i = 0; i < REQ_NKEYS; i++) {
		if (span[i] == NULL)
			continue;
		if ((item = jsonarena_parse(span[i], slen[i])) == NULL) {
			cJSON_Delete(obj);
			return NULL;
		}
		cJSON_AddItemToObject(obj, req_wanted_keys[i], item);
	}
	return obj;
}

/* Parses the buffered request JSON once, before the response is read. */
static void
request_done(struct meter_exchange *mx)
{
	cJSON *json;
	size_t mark;

	if (mx->req_done)
		return;
	mx->req_done = 1;
	if (mx->req_dec != NULL) {
		(void)decode_finish(mx->req_dec);
		decode_free(mx->req_dec);
		mx->req_dec = NULL;
	}
	if (mx->p != NULL && mx->req.len > 0 && !mx->req_too_large) {
		mark = jsonarena_mark();
		json = request_members(mx->req.data, mx->req.len);
		if (json == NULL)
			json = json_parse(mx->req.data, mx->req.len, malloc);
		if (json != NULL)
			mx->p->request(&mx->st, json);
		cJSON_Delete(json);
		jsonarena_release(mark);
	}
	/* The request body may hold a prompt: gone as soon as it is read. */
	if (mx->req.data != NULL)
		explicit_zero(mx->req.data, mx->req.cap);
	strbuf_free(&mx->req);
	strbuf_init(&mx->req);
}

struct meter_exchange *
meter_exchange_begin(struct meter *m, const struct meter_request_info *ri)
{
	struct meter_exchange *mx = xcalloc(1, sizeof(*mx));
	struct header_list hl = {ri->headers, ri->nheaders};
	struct usage_record *r;
	const char *target = ri->target != NULL ? ri->target : "/";
	const char *q, *v, *cause;
	char fp[ATTRIBUTION_FP_LEN + 1];
	char *tag;

	mx->m = m;
	mx->rec = r = xmalloc(sizeof(*r));
	usage_record_init(r);
	mx->host = xstrdup(ri->host != NULL ? ri->host : "");
	str_lower(mx->host);
	mx->method = xstrdup(ri->method != NULL ? ri->method : "");
	if ((q = strchr(target, '?')) != NULL) {
		mx->path = xstrndup(target, (size_t)(q - target));
		mx->query = xstrdup(q + 1);
	} else {
		mx->path = xstrdup(target);
		mx->query = xstrdup("");
	}
	mx->started_ms = ri->started_ms != 0 ? ri->started_ms : time_now_ms();
	mx->started_mono_ms = time_mono_ms();
	strbuf_init(&mx->req);
	strbuf_init(&mx->body);

	r->started_at = mx->started_ms;
	usage_set_str(&r->host, mx->host);
	usage_set_str(&r->method, mx->method);
	usage_set_str(&r->path, mx->path);

	/* Attribution from the request head. */
	if ((v = header_find(&hl, "user-agent")) != NULL) {
		usage_set_str(&r->user_agent, v);
		(void)attribution_client(v, &r->client, &r->client_version);
	}
	v = ri->connect_proxy_authorization;
	if (v == NULL)
		v = header_find(&hl, "proxy-authorization");
	if ((tag = attribution_tag(v)) != NULL) {
		free(r->tag);
		r->tag = tag;
	}
	if (attribution_request_key_fp(header_lookup_cb, &hl, target, fp) == 0)
		usage_set_str(&r->key_fp, fp);
	if ((v = header_find(&hl, "x-claude-code-session-id")) != NULL)
		usage_set_str(&r->session_id, v);

	provider_state_init(&mx->st);
	mx->st.rec = r;
	mx->st.host = mx->host;
	mx->st.path = mx->path;
	mx->st.query = mx->query;
	mx->st.method = mx->method;
	mx->st.ws = value_has(header_find(&hl, "upgrade"), "websocket");
	mx->p = provider_find(mx->host, mx->path);
	if (mx->p != NULL) {
		mx->st.flavor = mx->p->flavor;
		usage_set_str(&r->provider, mx->p->name);
		mx->p->begin(&mx->st);
	} else {
		usage_set_str(&r->kind, "other");
	}

	/* A JSON request body (capped) tells the model and stream flags. */
	v = header_find(&hl, "content-type");
	if (mx->p != NULL && (v == NULL || value_has(v, "json"))) {
		mx->req_wanted = 1;
		mx->req_dec = decode_new(header_find(&hl, "content-encoding"),
		    meter_limit(m) + 1, req_output_cb, mx, &cause);
		if (mx->req_dec == NULL)
			mx->req_wanted = 0;
	}
	return mx;
}

void
meter_exchange_set_process(
    struct meter_exchange *mx, const struct attribution_process *proc)
{
	struct usage_record *r = mx->rec;

	if (proc == NULL || r == NULL)
		return;
	r->pid = proc->pid;
	usage_set_str(&r->process, proc->process);
	usage_set_str(&r->cwd, proc->cwd);
	usage_set_str(&r->project, proc->project);
}

void
meter_exchange_request_body(
    struct meter_exchange *mx, const void *data, size_t len)
{
	if (!mx->req_wanted || mx->req_done || mx->req_too_large)
		return;
	if (decode_feed(mx->req_dec, data, len) == -1)
		mx->req_wanted = 0;
}

/*
 * Response side: framed events to the provider.
 */
static void
deliver_json(
    struct meter_exchange *mx, const char *type, const char *data, size_t len)
{
	cJSON *json;
	size_t mark;

	if (mx->p == NULL)
		return;
	mark = jsonarena_mark();
	json = jsonarena_parse(data, len);
	if (json == NULL) {
		jsonarena_release(mark);
		/* The last, unterminated event of a cut stream is not a
		 * parse error: the record says "incomplete". */
		if (!mx->finishing)
			note_parse_error(mx, "invalid JSON event", NULL);
		return;
	}
	mx->p->event(&mx->st, type, json);
	cJSON_Delete(json);
	jsonarena_release(mark);
}

static int
meter_sse_cb(void *arg, const char *type, const char *data, size_t len)
{
	struct meter_exchange *mx = arg;
	const char *d = data;
	size_t n = len;

	while (n > 0 && (*d == ' ' || *d == '\t' || *d == '\r' || *d == '\n')) {
		d++;
		n--;
	}
	if (n == 0)
		return 0;
	if (*d == '[' && n >= 6 && memcmp(d, "[DONE]", 6) == 0) {
		if (mx->p != NULL)
			mx->p->event(&mx->st, "[DONE]", NULL);
		return 0;
	}
	/* Most events of a stream carry text only: not parsed at all. */
	if (mx->p != NULL && mx->p->skip != NULL &&
	    mx->p->skip(&mx->st, type, d, n))
		return 0;
	deliver_json(mx, type, d, n);
	return 0;
}

static int
meter_element_cb(void *arg, const char *data, size_t len)
{
	deliver_json(arg, NULL, data, len);
	return 0;
}

static int
meter_frame_cb(void *arg, const struct eventstream_message *msg)
{
	struct meter_exchange *mx = arg;
	struct strbuf inner;

	if (mx->p == NULL)
		return 0;
	if (msg->message_type != NULL &&
	    (strcmp(msg->message_type, "exception") == 0 ||
	        strcmp(msg->message_type, "error") == 0)) {
		provider_set_error(&mx->st,
		    msg->exception_type != NULL ? msg->exception_type
		                                : msg->message_type);
		return 0;
	}
	if (msg->event_type != NULL && strcmp(msg->event_type, "chunk") == 0) {
		strbuf_init(&inner);
		if (eventstream_chunk_bytes(
		        msg->payload, msg->payload_len, &inner) == 0)
			deliver_json(mx, "chunk", inner.data, inner.len);
		else
			note_parse_error(mx, "bad event-stream chunk", NULL);
		strbuf_free(&inner);
		return 0;
	}
	deliver_json(
	    mx, msg->event_type, (const char *)msg->payload, msg->payload_len);
	return 0;
}

/* Hands every complete line of the JSONL buffer over; at_end also the
 * last, unterminated one. */
static void
jsonl_drain(struct meter_exchange *mx, int at_end)
{
	char *start = mx->body.data, *nl;
	size_t left = mx->body.len, n;

	while (left > 0) {
		nl = memchr(start, '\n', left);
		if (nl == NULL && !at_end)
			break;
		n = nl != NULL ? (size_t)(nl - start) : left;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n > 0)
			deliver_json(mx, "jsonl", start, n);
		n = nl != NULL ? (size_t)(nl - start) + 1 : left;
		start += n;
		left -= n;
	}
	if (left > 0)
		memmove(mx->body.data, start, left);
	mx->body.len = left;
	if (mx->body.data != NULL)
		mx->body.data[left] = '\0';
}

/* Leaves the sniffing state for f and replays the buffered bytes. */
static void framing_feed(struct meter_exchange *, const void *, size_t);

static void
framing_switch(struct meter_exchange *mx, enum framing f)
{
	struct strbuf held = mx->body;

	strbuf_init(&mx->body);
	mx->framing = f;
	switch (f) {
	case FRAME_SSE:
		mx->sse = sse_new(0, meter_sse_cb, mx);
		break;
	case FRAME_JSONARRAY:
		mx->ja = jsonarray_new(0, meter_element_cb, mx);
		break;
	default:
		break;
	}
	if (mx->st.rec->stream < 0 && (f == FRAME_SSE || f == FRAME_JSONARRAY))
		mx->st.rec->stream = 1;
	if (held.len > 0)
		framing_feed(mx, held.data, held.len);
	strbuf_free(&held);
}

/* Decides what the sniff buffer holds: 1 decided, 0 not yet. */
static int
sniff_decide(struct meter_exchange *mx, int at_end)
{
	const char *d = mx->body.data;
	size_t i;
	int s;

	for (i = 0; i < mx->body.len; i++)
		if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r' && d[i] != '\n')
			break;
	if (i < mx->body.len && d[i] == '[') {
		framing_switch(
		    mx, mx->st.rec->stream == 1 ? FRAME_JSONARRAY : FRAME_JSON);
		return 1;
	}
	if (i < mx->body.len && d[i] == '{') {
		framing_switch(mx, FRAME_JSON);
		return 1;
	}
	s = sse_sniff(mx->body.data, mx->body.len);
	if (s == 1) {
		framing_switch(mx, FRAME_SSE);
		return 1;
	}
	if (s == 0 || at_end || mx->body.len > METER_SNIFF_MAX) {
		framing_switch(mx, FRAME_JSON);
		return 1;
	}
	return 0;
}

static void
framing_feed(struct meter_exchange *mx, const void *data, size_t len)
{
	if (mx->parse_error != NULL && mx->framing != FRAME_JSON)
		return;
	switch (mx->framing) {
	case FRAME_NONE:
	case FRAME_WS:
		break;
	case FRAME_SNIFF:
		strbuf_add(&mx->body, data, len);
		(void)sniff_decide(mx, 0);
		break;
	case FRAME_JSON:
	case FRAME_JSONL:
		if (mx->body_too_large)
			break;
		if (mx->body.len + len > meter_limit(mx->m)) {
			mx->body_too_large = 1;
			strbuf_free(&mx->body);
			strbuf_init(&mx->body);
			break;
		}
		strbuf_add(&mx->body, data, len);
		if (mx->framing == FRAME_JSONL)
			jsonl_drain(mx, 0);
		break;
	case FRAME_SSE:
		if (sse_feed(mx->sse, data, len) == -1)
			note_parse_error(
			    mx, "event stream", sse_error(mx->sse));
		break;
	case FRAME_JSONARRAY:
		if (jsonarray_feed(mx->ja, data, len) == -1)
			note_parse_error(
			    mx, "JSON array", jsonarray_error(mx->ja));
		break;
	case FRAME_EVENTSTREAM:
		if (eventstream_feed(mx->es, data, len) == -1)
			note_parse_error(
			    mx, "event-stream", eventstream_error(mx->es));
		break;
	}
}

static int
body_output_cb(void *arg, const void *data, size_t len)
{
	framing_feed(arg, data, len);
	return 0;
}

static void
framing_reset(struct meter_exchange *mx)
{
	decode_free(mx->dec);
	mx->dec = NULL;
	sse_free(mx->sse);
	mx->sse = NULL;
	jsonarray_free(mx->ja);
	mx->ja = NULL;
	eventstream_free(mx->es);
	mx->es = NULL;
	ws_free(mx->ws_up);
	mx->ws_up = NULL;
	ws_free(mx->ws_down);
	mx->ws_down = NULL;
	strbuf_free(&mx->body);
	strbuf_init(&mx->body);
	mx->framing = FRAME_NONE;
}

/* Rate-limit headers of a response, as one snapshot. */
static void
ratelimit_snapshot(
    struct meter_exchange *mx, const struct meter_header *h, size_t n)
{
	struct ratelimit_snapshot *snap;
	cJSON *obj = NULL;
	char *name, *json;
	size_t i;

	if (mx->m->ratelimit_cb == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (h[i].name == NULL || h[i].value == NULL)
			continue;
		if (str_ncasecmp(h[i].name, "anthropic-ratelimit-", 20) != 0 &&
		    str_ncasecmp(h[i].name, "x-ratelimit-", 12) != 0)
			continue;
		if (obj == NULL && (obj = cJSON_CreateObject()) == NULL)
			return;
		name = xstrdup(h[i].name);
		str_lower(name);
		if (cJSON_GetObjectItemCaseSensitive(obj, name) == NULL)
			cJSON_AddStringToObject(obj, name, h[i].value);
		free(name);
	}
	if (obj == NULL)
		return;
	json = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (json == NULL)
		return;
	snap = xcalloc(1, sizeof(*snap));
	snap->provider =
	    xstrdup(mx->rec->provider != NULL ? mx->rec->provider : mx->host);
	snap->key_fp =
	    mx->rec->key_fp != NULL ? xstrdup(mx->rec->key_fp) : NULL;
	snap->observed_at = time_now_ms();
	snap->headers_json = xstrdup(json);
	cJSON_free(json);
	mx->m->ratelimit_cb(mx->m->arg, snap);
}

static int ws_client_cb(void *, int, const char *, size_t);
static int ws_server_cb(void *, int, const char *, size_t);

void
meter_exchange_response_head(struct meter_exchange *mx, int status,
    const struct meter_header *h, size_t n)
{
	struct header_list hl = {h, n};
	struct ws_extensions ext;
	const char *ct, *v, *cause = NULL;
	static const char *const idhdr[] = {"request-id", "x-request-id",
	    "x-amzn-requestid", "x-generation-id"};
	size_t i;

	/* An interim head (100 Continue) comes before the request body. */
	if (status >= 100 && status < 200 && status != 101)
		return;
	request_done(mx);
	framing_reset(mx);
	mx->status = status;
	mx->st.status = status;
	mx->rec->status = status;
	for (i = 0; i < sizeof(idhdr) / sizeof(idhdr[0]); i++) {
		if ((v = header_find(&hl, idhdr[i])) != NULL && *v != '\0') {
			usage_set_str(&mx->rec->request_id, v);
			break;
		}
	}
	if ((v = header_find(&hl, "x-amzn-errortype")) != NULL) {
		free(mx->amzn_error);
		mx->amzn_error = xstrndup(v, strcspn(v, ":"));
	}
	ratelimit_snapshot(mx, h, n);

	if (status == 101) {
		if (!mx->st.ws)
			return;
		memset(&ext, 0, sizeof(ext));
		if (ws_parse_extensions(
		        header_find(&hl, "sec-websocket-extensions"), &ext) ==
		    -1) {
			note_parse_error(mx, "websocket extensions", NULL);
			return;
		}
		mx->framing = FRAME_WS;
		mx->ws_up = ws_new(1, &ext, 0, ws_client_cb, mx);
		mx->ws_down = ws_new(0, &ext, 0, ws_server_cb, mx);
		mx->rec->stream = 1;
		mx->ws_started_ms = mx->started_ms;
		return;
	}
	if (status < 200 || mx->p == NULL)
		return;
	ct = header_find(&hl, "content-type");
	if (status >= 300)
		mx->framing = FRAME_JSON; /* error bodies */
	else if (mx->rec->kind != NULL && strcmp(mx->rec->kind, "other") == 0)
		mx->framing = FRAME_NONE;
	else if (mx->st.jsonl)
		mx->framing = FRAME_JSONL;
	else if (value_has(ct, "application/vnd.amazon.eventstream"))
		mx->framing = FRAME_EVENTSTREAM;
	else if (value_has(ct, "text/event-stream"))
		mx->framing = FRAME_SSE;
	else
		mx->framing = FRAME_SNIFF;
	switch (mx->framing) {
	case FRAME_SSE:
		mx->sse = sse_new(0, meter_sse_cb, mx);
		if (mx->rec->stream < 0)
			mx->rec->stream = 1;
		break;
	case FRAME_EVENTSTREAM:
		mx->es = eventstream_new(meter_frame_cb, mx);
		if (mx->rec->stream < 0)
			mx->rec->stream = 1;
		break;
	default:
		break;
	}
	if (mx->framing == FRAME_NONE)
		return;
	mx->dec = decode_new(header_find(&hl, "content-encoding"), 0,
	    body_output_cb, mx, &cause);
	if (mx->dec == NULL) {
		note_parse_error(mx, "content-encoding", cause);
		mx->framing = FRAME_NONE;
	}
}

/* Whether the response body is read (a decoder and a framing were set up
 * at the response head). */
static int
wants_body(const struct meter_exchange *mx)
{
	return mx->dec != NULL && mx->framing != FRAME_NONE;
}

void
meter_exchange_response_body(
    struct meter_exchange *mx, const void *data, size_t len)
{
	if (!wants_body(mx))
		return;
	if (decode_feed(mx->dec, data, len) == -1) {
		note_parse_error(mx, "content decoding", decode_error(mx->dec));
		decode_free(mx->dec);
		mx->dec = NULL;
	}
}

/* Ends the framing: flushes the decoder and the parsers, parses a
 * buffered JSON body. */
static void
framing_finish(struct meter_exchange *mx)
{
	cJSON *json;

	mx->finishing = 1;
	if (mx->dec != NULL && decode_finish(mx->dec) == -1)
		note_parse_error(mx, "content decoding", decode_error(mx->dec));
	if (mx->framing == FRAME_SNIFF)
		(void)sniff_decide(mx, 1);
	switch (mx->framing) {
	case FRAME_JSON:
		if (mx->body_too_large || mx->body.len == 0 || mx->p == NULL)
			break;
		json = json_parse(mx->body.data, mx->body.len, malloc);
		if (json == NULL) {
			if (mx->status >= 200 && mx->status < 300)
				note_parse_error(mx, "invalid JSON body", NULL);
			break;
		}
		mx->p->body(&mx->st, json);
		cJSON_Delete(json);
		break;
	case FRAME_JSONL:
		if (!mx->body_too_large)
			jsonl_drain(mx, 1);
		break;
	case FRAME_SSE:
		if (mx->parse_error == NULL && sse_finish(mx->sse) == -1)
			note_parse_error(
			    mx, "event stream", sse_error(mx->sse));
		break;
	case FRAME_JSONARRAY:
		(void)jsonarray_finish(mx->ja); /* a cut is "incomplete" */
		break;
	case FRAME_EVENTSTREAM:
		(void)eventstream_finish(mx->es);
		break;
	default:
		break;
	}
	/* Bodies may hold completions: wiped, not only freed. */
	if (mx->body.data != NULL)
		explicit_zero(mx->body.data, mx->body.cap);
}

/*
 * Appends usage (the raw usage object) as compact JSON, byte for byte what
 * cJSON_PrintUnformatted would write, without its printf("%1.15g") per
 * number: integers below 1e15 are written as digits, plain ASCII strings
 * as they are.  Returns -1 for anything else (the caller then lets cJSON
 * print it).
 */
static int
usage_print(const cJSON *v, struct strbuf *sb, int depth)
{
	const cJSON *c;
	const unsigned char *q;
	double d;

	if (depth > 64)
		return -1;
	if (cJSON_IsNull(v)) {
		strbuf_add(sb, "null", 4);
	} else if (cJSON_IsTrue(v)) {
		strbuf_add(sb, "true", 4);
	} else if (cJSON_IsFalse(v)) {
		strbuf_add(sb, "false", 5);
	} else if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
		if (!(d > -1e15 && d < 1e15) || d != (double)(int64_t)d ||
		    (d == 0 && signbit(d)))
			return -1;
		strbuf_add_i64(sb, (int64_t)d);
	} else if (cJSON_IsString(v)) {
		if (v->valuestring == NULL)
			return -1;
		for (q = (const unsigned char *)v->valuestring; *q != '\0'; q++)
			if (*q < 0x20 || *q >= 0x7f || *q == '"' || *q == '\\')
				return -1;
		strbuf_addc(sb, '"');
		strbuf_adds(sb, v->valuestring);
		strbuf_addc(sb, '"');
	} else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
		strbuf_addc(sb, cJSON_IsArray(v) ? '[' : '{');
		for (c = v->child; c != NULL; c = c->next) {
			if (c != v->child)
				strbuf_addc(sb, ',');
			if (cJSON_IsObject(v)) {
				if (c->string == NULL)
					return -1;
				for (q = (const unsigned char *)c->string;
				     *q != '\0'; q++)
					if (*q < 0x20 || *q >= 0x7f ||
					    *q == '"' || *q == '\\')
						return -1;
				strbuf_addc(sb, '"');
				strbuf_adds(sb, c->string);
				strbuf_add(sb, "\":", 2);
			}
			if (usage_print(c, sb, depth + 1) == -1)
				return -1;
		}
		strbuf_addc(sb, cJSON_IsArray(v) ? ']' : '}');
	} else {
		return -1;
	}
	return 0;
}

/*
 * Completes the current record and hands it over.  error is the engine's
 * cause (NULL: the exchange completed).
 */
static void
record_emit(struct meter_exchange *mx, const struct meter_end_info *end,
    int64_t ended_ms)
{
	struct usage_record *r = mx->rec;
	struct strbuf usage;
	char buf[32];
	char *json;

	if (r == NULL)
		return;
	r->status = mx->status;
	r->ended_at = ended_ms;
	if (end != NULL) {
		r->ttfb_ms = end->ttfb_ms;
		r->duration_ms = end->duration_ms;
		r->bytes_up = (int64_t)end->bytes_up;
		r->bytes_down = (int64_t)end->bytes_down;
		if (end->error != NULL && mx->status == 0 &&
		    strncmp(end->error, "upstream: ", 10) == 0) {
			/* The daemon answered 502 itself: the upstream was
			 * unreachable or failed verification.  Its cause says
			 * more than "incomplete". */
			r->status = 502;
			provider_set_error(&mx->st, end->error);
		} else if (end->error != NULL)
			provider_set_error(&mx->st, "incomplete");
	} else {
		r->duration_ms = ended_ms - r->started_at;
	}
	if (mx->body_too_large)
		provider_set_error(&mx->st, "body too large to meter");
	/* A framing error explains missing usage better than the provider's
	 * "incomplete" would. */
	if (mx->parse_error != NULL)
		provider_set_error(&mx->st, mx->parse_error);
	if (mx->p != NULL)
		mx->p->finish(&mx->st);
	if (r->error == NULL && mx->status >= 400) {
		if (mx->amzn_error != NULL && mx->amzn_error[0] != '\0') {
			usage_set_str(&r->error, mx->amzn_error);
		} else {
			snprintf(buf, sizeof(buf), "http_%d", mx->status);
			usage_set_str(&r->error, buf);
		}
	}
	if (r->model == NULL && r->request_model != NULL)
		usage_set_str(&r->model, r->request_model);
	if (mx->st.usage_raw != NULL) {
		strbuf_init(&usage);
		if (usage_print(mx->st.usage_raw, &usage, 0) == 0) {
			free(r->usage_json);
			r->usage_json = strbuf_detach(&usage, NULL);
		} else if ((json = cJSON_PrintUnformatted(mx->st.usage_raw)) !=
		    NULL) {
			usage_set_str(&r->usage_json, json);
			cJSON_free(json);
		}
		strbuf_free(&usage);
	}
	mx->rec = NULL;
	mx->st.rec = NULL;
	record_deliver(mx->m, r, mx->lookup);
}

/* A WebSocket response completed: emit it and start the next record with
 * the same identity. */
static void
ws_emit(struct meter_exchange *mx)
{
	struct usage_record *old = mx->rec, *r;
	int64_t now = time_now_ms();

	r = xmalloc(sizeof(*r));
	usage_record_init(r);
	usage_set_str(&r->provider, old->provider);
	usage_set_str(&r->kind, old->kind);
	usage_set_str(&r->host, old->host);
	usage_set_str(&r->method, old->method);
	usage_set_str(&r->path, old->path);
	usage_set_str(&r->client, old->client);
	usage_set_str(&r->client_version, old->client_version);
	usage_set_str(&r->user_agent, old->user_agent);
	usage_set_str(&r->tag, old->tag);
	usage_set_str(&r->process, old->process);
	usage_set_str(&r->cwd, old->cwd);
	usage_set_str(&r->project, old->project);
	usage_set_str(&r->key_fp, old->key_fp);
	usage_set_str(&r->session_id, old->session_id);
	r->pid = old->pid;
	r->stream = 1;
	r->status = old->status;
	old->started_at = mx->ws_started_ms;
	record_emit(mx, NULL, now);
	provider_state_clear(&mx->st);
	mx->st.usage_seen = 0;
	mx->st.terminal_seen = 0;
	mx->st.error_seen = 0;
	mx->st.record_ready = 0;
	mx->st.rec = mx->rec = r;
	r->started_at = now;
	mx->ws_started_ms = now;
	mx->ws_emitted++;
	mx->ws_pending = 0;
}

static int
ws_server_cb(void *arg, int op, const char *data, size_t len)
{
	struct meter_exchange *mx = arg;
	cJSON *json;
	const char *t;

	if (op != WS_OP_TEXT || mx->p == NULL || mx->rec == NULL)
		return 0;
	if ((json = json_parse(data, len, malloc)) == NULL)
		return 0;
	t = provider_json_str(json, "type");
	if (t != NULL &&
	    (str_has_prefix(t, "response.") || strcmp(t, "error") == 0))
		mx->ws_pending = 1;
	mx->p->event(&mx->st, NULL, json);
	cJSON_Delete(json);
	if (mx->st.record_ready)
		ws_emit(mx);
	return 0;
}

static int
ws_client_cb(void *arg, int op, const char *data, size_t len)
{
	struct meter_exchange *mx = arg;
	cJSON *json;
	const char *t, *model;

	if (op != WS_OP_TEXT || mx->rec == NULL)
		return 0;
	if ((json = json_parse(data, len, malloc)) == NULL)
		return 0;
	t = provider_json_str(json, "type");
	if (t != NULL && strcmp(t, "response.create") == 0) {
		model = provider_json_str(json, "model");
		if (model == NULL)
			model = provider_json_str(json, "response.model");
		if (model != NULL)
			usage_set_str(&mx->rec->request_model, model);
		if (!mx->ws_pending)
			mx->ws_started_ms = time_now_ms();
	}
	cJSON_Delete(json);
	return 0;
}

void
meter_exchange_upgraded(
    struct meter_exchange *mx, int to_upstream, const void *data, size_t len)
{
	struct ws *w;

	if (mx->framing != FRAME_WS)
		return;
	w = to_upstream ? mx->ws_up : mx->ws_down;
	if (w == NULL)
		return;
	if (ws_feed(w, data, len) == -1) {
		note_parse_error(mx, "websocket", ws_error(w));
		if (to_upstream) {
			ws_free(mx->ws_up);
			mx->ws_up = NULL;
		} else {
			ws_free(mx->ws_down);
			mx->ws_down = NULL;
		}
	}
}

void
meter_exchange_end(struct meter_exchange *mx, const struct meter_end_info *end)
{
	int64_t ended;

	request_done(mx);
	framing_finish(mx);
	ended = mx->started_ms +
	    (end != NULL && end->duration_ms >= 0
	            ? end->duration_ms
	            : (int64_t)(time_mono_ms() - mx->started_mono_ms));
	if (mx->framing == FRAME_WS) {
		/* Each completed response was emitted; one still running is
		 * cut short.  A socket that carried none still shows up. */
		if (mx->ws_pending) {
			provider_set_error(&mx->st, "incomplete");
			mx->rec->started_at = mx->ws_started_ms;
			record_emit(mx, end, ended);
		} else if (mx->ws_emitted == 0) {
			record_emit(mx, end, ended);
		}
	} else {
		record_emit(mx, end, ended);
	}
	if (mx->rec != NULL) {
		usage_record_free(mx->rec);
		free(mx->rec);
	}
	framing_reset(mx);
	if (mx->req_dec != NULL)
		decode_free(mx->req_dec);
	strbuf_free(&mx->req);
	provider_state_clear(&mx->st);
	free(mx->parse_error);
	free(mx->amzn_error);
	free(mx->host);
	free(mx->path);
	free(mx->query);
	free(mx->method);
	lookup_unref(mx->lookup);
	free(mx);
}

/*
 * The engine hooks.
 */
static void
meter_conn_free_cb(void *p)
{
	struct meter_conn *c = p;

	lookup_unref(c->lookup);
	free(c);
}

static int
hook_intercept_cb(void *arg, const char *host, int port)
{
	struct meter *m = arg;

	if (m->opt.intercept == NULL)
		return 1;
	return m->opt.intercept(m->opt.intercept_arg, host, port);
}

/* Copies the headers of one side of an exchange into h (at most max). */
static size_t
collect_headers(
    const struct exchange *ex, int response, struct meter_header *h, size_t max)
{
	const char *name, *value;
	size_t i;

	for (i = 0; i < max; i++) {
		if ((response
		            ? exchange_response_header_at(ex, i, &name, &value)
		            : exchange_request_header_at(
		                  ex, i, &name, &value)) != 0)
			break;
		h[i].name = name;
		h[i].value = value;
	}
	return i;
}

/*
 * The lookup of the exchange's client connection: queued at the
 * connection's first exchange and cached on the connection; NULL when
 * the meter does not resolve processes or the endpoint is unknown.
 * Never waits for the lookup itself.
 */
static struct meter_lookup *
conn_lookup(struct meter *m, struct exchange *ex)
{
	struct meter_conn *c = exchange_conn_data(ex);
	char caddr[64], laddr[64];
	int cport = 0, lport = 0;

	if (c != NULL)
		return c->lookup;
	c = xcalloc(1, sizeof(*c));
	if (m->opt.resolve_process &&
	    exchange_client_endpoint(ex, caddr, sizeof(caddr), &cport, laddr,
	        sizeof(laddr), &lport) == 0)
		c->lookup = lookup_queue(m, caddr, cport, laddr, lport);
	exchange_set_conn_data(ex, c, meter_conn_free_cb);
	return c->lookup;
}

static void
hook_request_head_cb(void *arg, struct exchange *ex)
{
	struct meter *m = arg;
	struct meter_header h[METER_MAX_HEADERS];
	struct meter_request_info ri;
	struct meter_exchange *mx;

	memset(&ri, 0, sizeof(ri));
	ri.host = exchange_host(ex);
	ri.method = exchange_method(ex);
	ri.target = exchange_path(ex);
	ri.headers = h;
	ri.nheaders = collect_headers(ex, 0, h, METER_MAX_HEADERS);
	ri.started_ms = exchange_started_ms(ex);
#ifdef EXCHANGE_HAS_CONNECT_HEADER
	ri.connect_proxy_authorization =
	    exchange_connect_header(ex, "proxy-authorization");
#endif
	mx = meter_exchange_begin(m, &ri);
	mx->lookup = lookup_ref(conn_lookup(m, ex));
	exchange_set_data(ex, mx);
}

static void
hook_request_body_cb(
    void *arg, struct exchange *ex, const void *data, size_t len)
{
	struct meter_exchange *mx = exchange_data(ex);

	if (mx != NULL)
		meter_exchange_request_body(mx, data, len);
}

static void
hook_response_head_cb(void *arg, struct exchange *ex)
{
	struct meter_exchange *mx = exchange_data(ex);
	struct meter_header h[METER_MAX_HEADERS];
	size_t n;

	if (mx == NULL)
		return;
	n = collect_headers(ex, 1, h, METER_MAX_HEADERS);
	meter_exchange_response_head(mx, exchange_status(ex), h, n);
}

static void
hook_response_body_cb(
    void *arg, struct exchange *ex, const void *data, size_t len)
{
	struct meter_exchange *mx = exchange_data(ex);

	if (mx != NULL)
		meter_exchange_response_body(mx, data, len);
}

static void
hook_upgraded_cb(void *arg, struct exchange *ex, int to_upstream,
    const void *data, size_t len)
{
	struct meter_exchange *mx = exchange_data(ex);

	if (mx != NULL)
		meter_exchange_upgraded(mx, to_upstream, data, len);
}

static void
hook_end_cb(void *arg, struct exchange *ex, const char *error)
{
	struct meter *m = arg;
	struct meter_exchange *mx = exchange_data(ex);
	struct meter_end_info end;
	uint64_t start = exchange_started_us(ex);
	uint64_t first = exchange_first_byte_us(ex);
	uint64_t now = time_mono_us();

	if (mx == NULL)
		return;
	end.error = error;
	end.ttfb_ms = first != 0 && first >= start
	    ? (int64_t)((first - start) / 1000)
	    : -1;
	end.duration_ms = now >= start ? (int64_t)((now - start) / 1000) : 0;
	end.bytes_up = exchange_bytes_up(ex);
	end.bytes_down = exchange_bytes_down(ex);
	exchange_set_data(ex, NULL);
	lookup_wait_briefly(m, mx->lookup);
	meter_exchange_end(mx, &end);
}

/*
 * The response body may be read after the client has it when the record
 * will not need the client afterwards: its process lookup is done (the end
 * hook waits for a running one so that a client that exits at once is
 * still found, and that wait needs the client still waiting for its last
 * bytes).  A body the meter does not read stays inline (nothing to move).
 */
static int
hook_body_after_write_cb(void *arg, struct exchange *ex)
{
	struct meter *m = arg;
	struct meter_exchange *mx = exchange_data(ex);
	int done;

	if (mx == NULL || !wants_body(mx))
		return 0;
	if (mx->lookup == NULL)
		return 1;
	pthread_mutex_lock(&m->lock);
	done = mx->lookup->state == LOOKUP_DONE;
	pthread_mutex_unlock(&m->lock);
	return done;
}

static const struct exchange_hooks meter_hook_table = {
    .intercept = hook_intercept_cb,
    .request_head = hook_request_head_cb,
    .request_body = hook_request_body_cb,
    .response_head = hook_response_head_cb,
    .response_body = hook_response_body_cb,
    .end = hook_end_cb,
    .upgraded_data = hook_upgraded_cb,
    .body_after_write = hook_body_after_write_cb,
};

const struct exchange_hooks *
meter_hooks(void)
{
	return &meter_hook_table;
}
