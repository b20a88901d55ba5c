/*
 * rcfile: a managed block between two marker lines inside a text file
 * (shell rc files, certifi bundles).
 *
 * The block is the begin line, the body and the end line.  Setting it
 * replaces an existing block in place (later duplicates are dropped) or
 * appends it; removing it restores the bytes around it.  Files are
 * written atomically, only when the content changes, keeping their mode;
 * a symlinked file is written through to its target.
 */
#ifndef HALTON_RCFILE_H
#define HALTON_RCFILE_H

#include <stddef.h>
#include <sys/types.h>

struct rcfile_markers {
	const char *begin;
	const char *end;
};

extern const struct rcfile_markers rcfile_shell_markers;   /* >>> and <<< */
extern const struct rcfile_markers rcfile_certifi_markers; /* CA begin, end */

/* Finds the first block: *start and *stop delimit it (stop is past the end
 * line's newline).  Returns 1 if found, 0 if none, -1 if a begin line has
 * no end line. */
int rcfile_block_find(
    const char *, size_t, const struct rcfile_markers *, size_t *, size_t *);
/* The content with the block set to body.  *sep_added is set to 1 when a
 * newline had to be added before an appended block (the content did not
 * end in one).  NULL (with *cause) on an unterminated block. */
char *rcfile_block_set(const char *, size_t, const struct rcfile_markers *,
    const char *, int *, size_t *, char **);
/* The content without any block; with strip_sep, the newline added before
 * a block at the very end is removed too. */
char *rcfile_block_remove(const char *, size_t, const struct rcfile_markers *,
    int, size_t *, char **);

struct rcfile_change {
	int changed;   /* the file was (or would be) written */
	int existed;   /* the file existed before */
	int sep_added; /* see rcfile_block_set */
	mode_t mode;   /* the mode kept or given */
};

/* Sets the block in path (created with mode when missing, parent
 * directories too).  With dry_run nothing is written.  0 or -1 with a
 * cause. */
int rcfile_apply(const char *, const struct rcfile_markers *, const char *,
    mode_t, int, struct rcfile_change *, char **);
/* Removes the block from path; with remove_new, a file that ends up empty
 * is deleted (it did not exist before).  *changed tells whether the file
 * was touched.  A missing file is not an error. */
int rcfile_unapply(
    const char *, const struct rcfile_markers *, int, int, int, int *, char **);

#endif
