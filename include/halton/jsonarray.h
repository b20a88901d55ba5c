/*
 * jsonarray: an incremental splitter for a streamed top-level JSON array,
 * as Gemini's :streamGenerateContent sends without ?alt=sse:
 * "[{...}\n,\r\n{...}\n]".
 *
 * Each element's bytes (white space around it trimmed) are handed to a
 * callback as soon as the element is complete, so a provider can parse them
 * with cJSON.  The splitter tracks strings, escapes and bracket nesting (and
 * checks that brackets match, and that a bare number or literal holds only
 * letters, digits and "+-."); it does not validate the JSON inside an
 * element.  A body that is a single object instead of an array (an error
 * reply) is handed over as one element.
 *
 * Convention: functions return 0 (all input consumed, more may follow) or
 * -1 (error; jsonarray_error() names it).  An error is sticky.  Memory: one
 * element buffer of at most max_element bytes.
 */
#ifndef HALTON_JSONARRAY_H
#define HALTON_JSONARRAY_H

#include <stddef.h>

/* Largest element accepted. */
#define JSONARRAY_MAX_ELEMENT ((size_t)8 << 20)
/* Deepest bracket nesting accepted inside an element. */
#define JSONARRAY_MAX_DEPTH 512

/*
 * Receives one element, NUL-terminated at data[len], valid during the call
 * only.  Returns 0 to go on, -1 to stop (the feed then fails with "stopped
 * by consumer").
 */
typedef int (*jsonarray_element_cb)(void *arg, const char *data, size_t len);

struct jsonarray;

/* Creates a splitter; max_element 0 means JSONARRAY_MAX_ELEMENT. */
struct jsonarray *jsonarray_new(
    size_t max_element, jsonarray_element_cb cb, void *arg);
int jsonarray_feed(struct jsonarray *, const void *data, size_t len);
/* Ends the stream: -1 ("truncated array") unless the closing ']' (or the
 * single object's closing '}') was seen. */
int jsonarray_finish(struct jsonarray *);
/* Why the splitter failed (static string), or NULL. */
const char *jsonarray_error(const struct jsonarray *);
/* Elements delivered so far. */
size_t jsonarray_elements(const struct jsonarray *);
void jsonarray_free(struct jsonarray *);

#endif
