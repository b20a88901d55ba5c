/*
 * Shared input-feeding helper for the unit tests of the streaming parsers
 * (decode, eventstream, sse): feeds a buffer whole, split in two, or byte
 * by byte, each piece from a heap buffer of exactly its size so that
 * AddressSanitizer catches any read past a piece.
 */
#ifndef TEST_FEED_H
#define TEST_FEED_H

#include <stdlib.h>
#include <string.h>

/* Feeds len bytes at p to parser; returns 0 or the parser's failure rc. */
typedef int (*feed_fn)(void *parser, const void *p, size_t len);

/* Feeds n bytes at p to parser through feed, from a buffer of exactly n. */
static inline int
feed_copy(feed_fn feed, void *parser, const void *p, size_t n)
{
	void *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, p, n);
	rc = feed(parser, copy, n);
	free(copy);
	return rc;
}

/*
 * Feeds the len bytes at data to parser: byte by byte when bytewise is
 * set, else split in two at split when split is not 0, else whole.
 * Returns 0 or the rc of the first failing feed (nothing more is fed
 * after a failure).
 */
static inline int
feed_pieces(feed_fn feed, void *parser, const void *data, size_t len,
    size_t split, int bytewise)
{
	const unsigned char *p = data;
	size_t i;
	int rc = 0;

	if (bytewise) {
		for (i = 0; i < len && rc == 0; i++)
			rc = feed_copy(feed, parser, p + i, 1);
	} else if (split > 0) {
		rc = feed_copy(feed, parser, p, split);
		if (rc == 0)
			rc = feed_copy(feed, parser, p + split, len - split);
	} else
		rc = feed_copy(feed, parser, p, len);
	return rc;
}

#endif /* TEST_FEED_H */
