/*
 * Shared machinery for the libFuzzer targets that check a streaming parser
 * gives the same result whether its input is fed whole or split in two:
 * an output collector (a running FNV-1a hash plus a count), the split
 * point derivation, the two-piece feed and the compare-and-abort.  Each
 * target keeps only its parser-specific glue.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>

/*
 * What one run produced: a hash over every output and a count the target
 * defines (outputs delivered, or bytes for a decoder).
 */
struct fuzz_run {
	uint64_t hash;
	size_t count;
};

/* Feeds len bytes at p to parser; returns 0 or the parser's failure rc. */
typedef int (*fuzz_feed_fn)(void *parser, const void *p, size_t len);

/* Folds n bytes at p into the FNV-1a hash h and returns the new hash. */
static inline uint64_t
fuzz_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

/* Resets r to the state before any output. */
static inline void
fuzz_run_init(struct fuzz_run *r)
{
	r->hash = 0xcbf29ce484222325ULL;
	r->count = 0;
}

/* Folds n bytes of output at p into r without counting an output. */
static inline void
fuzz_run_add(struct fuzz_run *r, const void *p, size_t n)
{
	r->hash = fuzz_fnv(r->hash, p, n);
}

/*
 * Returns the split point encoded big-endian in the two bytes at b,
 * reduced to 0..size so that it falls inside (or at an end of) the
 * size-byte input.
 */
static inline size_t
fuzz_split(const uint8_t *b, size_t size)
{
	return ((size_t)b[0] << 8 | b[1]) % (size + 1);
}

/*
 * Feeds the len bytes at p to parser through feed: in one piece when split
 * is 0 or len, otherwise in two pieces cut at split.  Returns 0 or the rc
 * of the first failing feed (the second piece is not fed after a failure).
 */
static inline int
fuzz_feed_split(
    fuzz_feed_fn feed, void *parser, const void *p, size_t len, size_t split)
{
	const unsigned char *c = p;
	int rc;

	if (split > 0 && split < len) {
		rc = feed(parser, c, split);
		if (rc == 0)
			rc = feed(parser, c + split, len - split);
	} else
		rc = feed(parser, c, len);
	return rc;
}

/* Returns whether the runs a and b produced the same outputs. */
static inline int
fuzz_run_equal(const struct fuzz_run *a, const struct fuzz_run *b)
{
	return a->count == b->count && a->hash == b->hash;
}

/*
 * Aborts unless the whole and the split run agree on their result (rc_a,
 * rc_b) and on their outputs.
 */
static inline void
fuzz_check_same(int rc_a, int rc_b, const struct fuzz_run *whole,
    const struct fuzz_run *parts)
{
	if (rc_a != rc_b || !fuzz_run_equal(whole, parts))
		abort();
}

#endif /* FUZZ_COMMON_H */
