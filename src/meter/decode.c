/*
 * decode: streaming Content-Encoding decoders (see decode.h).
 *
 * A decoder is a chain of layers, one per coding, undone in reverse order of
 * the header: layer 0 eats the body, each layer's output feeds the next,
 * and the last layer's output goes to the caller's callback.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "halton/decode.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/* Output is produced through a fixed scratch buffer of this size. */
#define DECODE_CHUNK 16384
/* Largest zstd window accepted: 2^23 = 8 MiB, the RFC 9659 limit for
 * HTTP, so a frame cannot make the decoder allocate more. */
#define DECODE_ZSTD_WINDOW_LOG 23

struct decode_layer {
	enum decode_coding coding;
	/* zlib (gzip, deflate) */
	z_stream zs;
	int zs_live;
	int deflate_probed;     /* deflate: zlib vs raw decided */
	unsigned char probe[2]; /* deflate: first bytes, for the probe */
	size_t nprobe;
	int member_done; /* gzip/deflate: a stream just ended */
	int in_member;   /* gzip/deflate: inside a stream */
	int trailing;    /* gzip/deflate: ignoring trailing bytes */
	/* brotli */
	BrotliDecoderState *br;
	int br_started;
	int br_done;
	/* zstd */
	ZSTD_DCtx *zd;
	int zd_in_frame;
};

struct decoder {
	struct decode_layer layers[DECODE_MAX_LAYERS];
	size_t nlayers;
	size_t max_output;
	uint64_t total_out;
	decode_output_cb cb;
	void *arg;
	const char *error;
	unsigned char *scratch; /* nlayers * DECODE_CHUNK bytes */
};

static int decode_push(struct decoder *, size_t, const unsigned char *, size_t);

static int
coding_from_token(const char *s, size_t n, enum decode_coding *out)
{
	static const struct {
		const char *name;
		enum decode_coding coding;
	} table[] = {
	    {"identity", DECODE_IDENTITY},
	    {"gzip", DECODE_GZIP},
	    {"x-gzip", DECODE_GZIP},
	    {"deflate", DECODE_DEFLATE},
	    {"br", DECODE_BR},
	    {"zstd", DECODE_ZSTD},
	};
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (strlen(table[i].name) == n &&
		    str_ncasecmp(table[i].name, s, n) == 0) {
			*out = table[i].coding;
			return 0;
		}
	}
	return -1;
}

int
decode_parse_encoding(const char *value, enum decode_coding *codings, size_t *n)
{
	enum decode_coding listed[DECODE_MAX_LAYERS], c;
	size_t nlisted = 0, i, len;
	const char *p = value, *start, *end;

	*n = 0;
	if (value == NULL)
		return 0;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		len = (size_t)(end - start);
		if (coding_from_token(start, len, &c) == -1)
			return -1;
		if (c == DECODE_IDENTITY)
			continue;
		if (nlisted == DECODE_MAX_LAYERS)
			return -1;
		listed[nlisted++] = c;
	}
	/* The last coding applied is the first to undo. */
	for (i = 0; i < nlisted; i++)
		codings[i] = listed[nlisted - 1 - i];
	*n = nlisted;
	return 0;
}

static int
layer_init(struct decode_layer *l, enum decode_coding coding)
{
	memset(l, 0, sizeof(*l));
	l->coding = coding;
	switch (coding) {
	case DECODE_GZIP:
		/* 15 + 32: gzip or zlib header, detected per member. */
		if (inflateInit2(&l->zs, 15 + 32) != Z_OK)
			return -1;
		l->zs_live = 1;
		break;
	case DECODE_DEFLATE:
		/* Initialised once the first two bytes tell zlib from raw. */
		break;
	case DECODE_BR:
		if ((l->br = BrotliDecoderCreateInstance(NULL, NULL, NULL)) ==
		    NULL)
			return -1;
		break;
	case DECODE_ZSTD:
		if ((l->zd = ZSTD_createDCtx()) == NULL)
			return -1;
		if (ZSTD_isError(ZSTD_DCtx_setParameter(
		        l->zd, ZSTD_d_windowLogMax, DECODE_ZSTD_WINDOW_LOG)))
			return -1;
		break;
	case DECODE_IDENTITY:
		break;
	}
	return 0;
}

static void
layer_free(struct decode_layer *l)
{
	if (l->zs_live)
		inflateEnd(&l->zs);
	if (l->br != NULL)
		BrotliDecoderDestroyInstance(l->br);
	if (l->zd != NULL)
		ZSTD_freeDCtx(l->zd);
	memset(l, 0, sizeof(*l));
}

struct decoder *
decode_new(const char *content_encoding, size_t max_output, decode_output_cb cb,
    void *arg, const char **cause)
{
	struct decoder *d;
	enum decode_coding codings[DECODE_MAX_LAYERS];
	size_t n, i;

	*cause = NULL;
	if (decode_parse_encoding(content_encoding, codings, &n) == -1) {
		*cause = "unsupported content encoding";
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->max_output = max_output ? max_output : DECODE_MAX_OUTPUT_DEFAULT;
	d->cb = cb;
	d->arg = arg;
	d->nlayers = n;
	for (i = 0; i < n; i++) {
		if (layer_init(&d->layers[i], codings[i]) == -1) {
			*cause = "cannot create decompressor";
			decode_free(d);
			return NULL;
		}
	}
	if (n > 0)
		d->scratch = xmalloc(n * DECODE_CHUNK);
	return d;
}

void
decode_free(struct decoder *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nlayers; i++)
		layer_free(&d->layers[i]);
	free(d->scratch);
	free(d);
}

const char *
decode_error(const struct decoder *d)
{
	return d->error;
}

uint64_t
decode_total_out(const struct decoder *d)
{
	return d->total_out;
}

/* Hands bytes to the caller, enforcing the output cap. */
static int
decode_emit(struct decoder *d, const unsigned char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (len > d->max_output - d->total_out) {
		d->error = "decoded body exceeds limit";
		return -1;
	}
	d->total_out += len;
	if (d->cb(d->arg, p, len) != 0) {
		d->error = "stopped by consumer";
		return -1;
	}
	return 0;
}

/* Passes a layer's output on to the next layer, or to the caller. */
static int
layer_output(struct decoder *d, size_t i, const unsigned char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (i + 1 < d->nlayers)
		return decode_push(d, i + 1, p, len);
	return decode_emit(d, p, len);
}

/*
 * Decides whether a deflate body is zlib-wrapped (RFC 1950, as the HTTP
 * spec says) or raw (RFC 1951, as some servers send), from its first two
 * bytes: a zlib header has CM 8, CINFO <= 7 and a check that makes the two
 * bytes a multiple of 31.
 */
static int
deflate_probe(struct decode_layer *l)
{
	unsigned int h = (unsigned int)l->probe[0] << 8 | l->probe[1];
	int zlib =
	    (l->probe[0] & 0x0f) == 8 && (l->probe[0] >> 4) <= 7 && h % 31 == 0;

	if (inflateInit2(&l->zs, zlib ? 15 : -15) != Z_OK)
		return -1;
	l->zs_live = 1;
	l->deflate_probed = 1;
	return 0;
}

/* One inflate() call into the layer's scratch buffer; passes output on. */
static int
zlib_step(struct decoder *d, size_t i, size_t *produced)
{
	struct decode_layer *l = &d->layers[i];
	unsigned char *out = d->scratch + i * DECODE_CHUNK;
	int rc;

	l->zs.next_out = out;
	l->zs.avail_out = DECODE_CHUNK;
	rc = inflate(&l->zs, Z_NO_FLUSH);
	*produced = DECODE_CHUNK - l->zs.avail_out;
	/* Output before a bad trailer is passed on all the same, as it
	 * would have been had the trailer come in a later chunk. */
	if (layer_output(d, i, out, *produced) == -1)
		return -1;
	if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
		d->error = l->coding == DECODE_GZIP ? "invalid gzip data"
		                                    : "invalid deflate data";
		return -1;
	}
	if (rc == Z_STREAM_END) {
		l->member_done = 1;
		l->in_member = 0;
	}
	return rc;
}

static int
zlib_run(struct decoder *d, size_t i, const unsigned char *in, size_t len)
{
	struct decode_layer *l = &d->layers[i];
	size_t produced;
	int rc;

	l->zs.next_in = (Bytef *)(uintptr_t)in;
	l->zs.avail_in = (uInt)len;
	while (l->zs.avail_in > 0) {
		if (l->member_done) {
			/*
			 * Bytes after a deflate stream, or after a gzip
			 * member when they cannot start another (no 1f
			 * magic): trailing garbage, ignored as gzip(1) and
			 * browsers do.
			 */
			if (l->coding != DECODE_GZIP || l->trailing ||
			    *l->zs.next_in != 0x1f) {
				l->trailing = 1;
				l->zs.avail_in = 0;
				break;
			}
			/* Another gzip member follows. */
			if (inflateReset(&l->zs) != Z_OK) {
				d->error = "inflate reset failed";
				return -1;
			}
			l->member_done = 0;
		}
		l->in_member = 1;
		if ((rc = zlib_step(d, i, &produced)) == -1)
			return -1;
		if (rc == Z_BUF_ERROR && produced == 0)
			break;
	}
	/* Output that did not fit in the scratch buffer is still pending
	 * when the input ran out together with the room. */
	while (!l->member_done) {
		if ((rc = zlib_step(d, i, &produced)) == -1)
			return -1;
		if (produced < DECODE_CHUNK)
			break;
	}
	return 0;
}

static int
deflate_push(struct decoder *d, size_t i, const unsigned char *in, size_t len)
{
	struct decode_layer *l = &d->layers[i];
	unsigned char first[2];
	size_t take;

	if (!l->deflate_probed) {
		take = 2 - l->nprobe;
		if (take > len)
			take = len;
		memcpy(l->probe + l->nprobe, in, take);
		l->nprobe += take;
		in += take;
		len -= take;
		if (l->nprobe < 2)
			return 0;
		if (deflate_probe(l) == -1) {
			d->error = "cannot create decompressor";
			return -1;
		}
		memcpy(first, l->probe, 2);
		if (zlib_run(d, i, first, 2) == -1)
			return -1;
	}
	if (len == 0)
		return 0;
	return zlib_run(d, i, in, len);
}

static int
brotli_push(struct decoder *d, size_t i, const unsigned char *in, size_t len)
{
	struct decode_layer *l = &d->layers[i];
	unsigned char *out = d->scratch + i * DECODE_CHUNK;
	const uint8_t *next_in = in;
	size_t avail_in = len, avail_out;
	uint8_t *next_out;
	BrotliDecoderResult rc;

	l->br_started = 1;
	for (;;) {
		if (l->br_done) {
			if (avail_in > 0) {
				d->error = "data after end of brotli stream";
				return -1;
			}
			return 0;
		}
		next_out = out;
		avail_out = DECODE_CHUNK;
		rc = BrotliDecoderDecompressStream(
		    l->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
		if (layer_output(d, i, out, DECODE_CHUNK - avail_out) == -1)
			return -1;
		if (rc == BROTLI_DECODER_RESULT_ERROR) {
			d->error = "invalid brotli data";
			return -1;
		}
		if (rc == BROTLI_DECODER_RESULT_SUCCESS)
			l->br_done = 1;
		else if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
			return 0;
		/* NEEDS_MORE_OUTPUT: go round with a fresh buffer. */
	}
}

static int
zstd_push(struct decoder *d, size_t i, const unsigned char *in, size_t len)
{
	struct decode_layer *l = &d->layers[i];
	unsigned char *out = d->scratch + i * DECODE_CHUNK;
	ZSTD_inBuffer ib = {in, len, 0};
	ZSTD_outBuffer ob;
	size_t rc, before;

	for (;;) {
		before = ib.pos;
		ob.dst = out;
		ob.size = DECODE_CHUNK;
		ob.pos = 0;
		rc = ZSTD_decompressStream(l->zd, &ob, &ib);
		if (ZSTD_isError(rc)) {
			d->error = ZSTD_getErrorCode(rc) ==
			        ZSTD_error_frameParameter_windowTooLarge
			    ? "zstd window too large"
			    : "invalid zstd data";
			return -1;
		}
		if (layer_output(d, i, out, ob.pos) == -1)
			return -1;
		/* rc 0: a frame ended; the next byte, if any, starts one.  A
		 * call that moved nothing says nothing about frames. */
		if (ib.pos > before || ob.pos > 0)
			l->zd_in_frame = rc != 0;
		if (ib.pos == ib.size && ob.pos < ob.size)
			return 0;
	}
}

static int
decode_push(struct decoder *d, size_t i, const unsigned char *in, size_t len)
{
	switch (d->layers[i].coding) {
	case DECODE_GZIP:
		return zlib_run(d, i, in, len);
	case DECODE_DEFLATE:
		return deflate_push(d, i, in, len);
	case DECODE_BR:
		return brotli_push(d, i, in, len);
	case DECODE_ZSTD:
		return zstd_push(d, i, in, len);
	case DECODE_IDENTITY:
		break;
	}
	return layer_output(d, i, in, len);
}

int
decode_feed(struct decoder *d, const void *data, size_t len)
{
	if (d->error != NULL)
		return -1;
	if (len == 0)
		return 0;
	if (d->nlayers == 0)
		return decode_emit(d, data, len);
	return decode_push(d, 0, data, len);
}

int
decode_finish(struct decoder *d)
{
	const struct decode_layer *l;
	size_t i;

	if (d->error != NULL)
		return -1;
	for (i = 0; i < d->nlayers; i++) {
		l = &d->layers[i];
		switch (l->coding) {
		case DECODE_GZIP:
			if (l->in_member) {
				d->error = "truncated gzip stream";
				return -1;
			}
			break;
		case DECODE_DEFLATE:
			if (l->in_member ||
			    (l->nprobe > 0 && !l->member_done)) {
				d->error = "truncated deflate stream";
				return -1;
			}
			break;
		case DECODE_BR:
			if (l->br_started && !l->br_done) {
				d->error = "truncated brotli stream";
				return -1;
			}
			break;
		case DECODE_ZSTD:
			if (l->zd_in_frame) {
				d->error = "truncated zstd stream";
				return -1;
			}
			break;
		case DECODE_IDENTITY:
			break;
		}
	}
	return 0;
}
