/*
 * certifi: find the certifi bundles of the Python interpreters on this
 * machine and decide which may be patched.
 *
 * Interpreters: `python3` in PATH, each --python PATH, and every pipx venv
 * (VENVS/NAME/bin/python).  Each is asked for certifi.where() with a
 * timeout.  Only a regular file inside a site-packages/certifi directory
 * is patched; symlinks (Homebrew) and distro bundles (under /etc or
 * /usr/share: Debian, Fedora and SUSE redirect certifi to the system
 * store) are skipped with a reason.  The CA is appended between
 * "# halton-meter CA begin" and "# halton-meter CA end" (rcfile).
 */
#ifndef HALTON_CERTIFI_H
#define HALTON_CERTIFI_H

#include <stddef.h>

#define CERTIFI_TIMEOUT_MS 5000

struct certifi_target {
	char *python; /* the interpreter asked */
	char *path;   /* certifi.where(), or NULL */
	char *skip;   /* why it is not patched, or NULL (patch it) */
};

struct certifi_list {
	struct certifi_target *v;
	size_t n;
};

/* Asks every interpreter (python3 in PATH unless skip_path, the extra
 * ones, the pipx venvs under venvs_dir if it is not NULL).  Bundles
 * already listed by an earlier interpreter are not listed again. */
void certifi_discover(
    struct certifi_list *, const char *const *, size_t, const char *, int);
void certifi_list_free(struct certifi_list *);
/* NULL if path may be patched, else the reason (malloc'd). */
char *certifi_check_path(const char *);

#endif
