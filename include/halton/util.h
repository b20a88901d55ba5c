/*
 * util: small string, buffer, time and file helpers shared by every module.
 */
#ifndef HALTON_UTIL_H
#define HALTON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A growable byte buffer, always NUL-terminated after len bytes. */
struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};

void strbuf_init(struct strbuf *);
void strbuf_free(struct strbuf *);
void strbuf_reset(struct strbuf *);
/* strbuf_reset that keeps the allocation for the next use, unless it grew
 * past max bytes (then it is freed). */
void strbuf_clear_keep(struct strbuf *, size_t);
void strbuf_add(struct strbuf *, const void *, size_t);
void strbuf_adds(struct strbuf *, const char *);
void strbuf_addc(struct strbuf *, char);
/* Room for n more bytes and the NUL: returns where they go.  The caller
 * writes k <= n of them, then strbuf_setlen(sb, sb->len + k). */
char *strbuf_reserve(struct strbuf *, size_t);
void strbuf_setlen(struct strbuf *, size_t);
/* v in decimal, without printf. */
void strbuf_add_i64(struct strbuf *, int64_t);
void strbuf_addf(struct strbuf *, const char *, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Hands the buffer to the caller (who frees it) and resets the strbuf. */
char *strbuf_detach(struct strbuf *, size_t *);

/* Milliseconds on the monotonic clock, and since the epoch. */
uint64_t time_mono_ms(void);
uint64_t time_mono_us(void);
int64_t time_now_ms(void);
/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds
 * ("2026-11-28T19:56:23.123Z") into buf (at least 32 bytes). */
void time_format_utc(int64_t, char *, size_t);

/* Trims ASCII white space at both ends, in place; returns s. */
char *str_trim(char *);
int str_has_prefix(const char *, const char *);
int str_has_suffix(const char *, const char *);
/* ASCII case-insensitive compare, independent of locale. */
int str_casecmp(const char *, const char *);
int str_ncasecmp(const char *, const char *, size_t);
/* Lower-cases ASCII in place. */
void str_lower(char *);
/* Parses a whole decimal number in [min, max]; returns 0 or -1. */
int str_to_ll(const char *, long long, long long, long long *);
/* Parses yes/no/true/false/on/off/1/0; returns 0 or -1. */
int str_to_bool(const char *, int *);
/* Hex-encodes n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *, size_t, char *);

/* Reads a whole file (NUL-terminated); NULL with errno on failure. */
char *file_read(const char *, size_t *);
/* Writes data to path through a temporary file in the same directory and
 * rename(2), with the given mode: readers see the old or the new content,
 * never a mix.  Returns 0, or -1 with errno. */
int file_write_atomic(const char *, const void *, size_t, mode_t);
/* Creates a directory and its parents; the last one gets mode (existing
 * directories are left alone).  Returns 0, or -1 with errno. */
int dir_create(const char *, mode_t);
int file_exists(const char *);

#endif
