/*
 * xmalloc: allocation that cannot fail (it aborts with a message instead),
 * for the places where running out of memory leaves nothing sensible to do.
 */
#ifndef HALTON_XMALLOC_H
#define HALTON_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
/* A malloc'd printf.  Never returns NULL. */
char *xasprintf(const char *, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Zeroes n bytes in a way the compiler cannot remove (secrets before free). */
void explicit_zero(void *, size_t);

#endif
