/*
 * rcfile: marker blocks set, replaced, removed; files written only when
 * changed, modes kept, symlinks written through.
 */
#include <sys/stat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "halton/rcfile.h"

#define B "# >>> halton-meter >>>\n"
#define E "# <<< halton-meter <<<\n"

static const struct rcfile_markers *sm = &rcfile_shell_markers;

static char *
set(const char *in, const char *body, int *sep)
{
	char *cause = NULL, *out;
	size_t n;

	out = rcfile_block_set(in, strlen(in), sm, body, sep, &n, &cause);
	CHECK(cause == NULL);
	free(cause);
	if (out != NULL)
		CHECK_INT(strlen(out), n);
	return out;
}

static char *
rm(const char *in, int strip)
{
	char *cause = NULL, *out;
	size_t n;

	out = rcfile_block_remove(in, strlen(in), sm, strip, &n, &cause);
	CHECK(cause == NULL);
	free(cause);
	return out;
}

static void
test_rcfile_append_and_remove(void)
{
	char *a, *b;
	int sep;

	a = set("", "export A=1\n", &sep);
	CHECK_STR(a, B "export A=1\n" E);
	CHECK_INT(sep, 0);
	b = rm(a, 0);
	CHECK_STR(b, "");
	free(a);
	free(b);

	a = set("user\n", "export A=1", &sep);
	CHECK_STR(a, "user\n" B "export A=1\n" E);
	CHECK_INT(sep, 0);
	b = rm(a, sep);
	CHECK_STR(b, "user\n");
	free(a);
	free(b);
}

static void
test_rcfile_no_final_newline(void)
{
	char *a, *b;
	int sep;

	a = set("user", "x\n", &sep);
	CHECK_STR(a, "user\n" B "x\n" E);
	CHECK_INT(sep, 1);
	b = rm(a, sep);
	CHECK_STR(b, "user");
	free(b);
	/* Without strip_sep the separator stays. */
	b = rm(a, 0);
	CHECK_STR(b, "user\n");
	free(a);
	free(b);
}

static void
test_rcfile_replace_in_place(void)
{
	char *a;
	int sep;

	a = set("before\n" B "old\n" E "after\n", "new\n", &sep);
	CHECK_STR(a, "before\n" B "new\n" E "after\n");
	CHECK_INT(sep, 0);
	free(a);
	/* Duplicates collapse into the first. */
	a = set("a\n" B "one\n" E "b\n" B "two\n" E "c\n", "new\n", &sep);
	CHECK_STR(a, "a\n" B "new\n" E "b\nc\n");
	free(a);
	/* An end marker with trailing space and CRLF still counts. */
	a = set("a\n" B "one\n# <<< halton-meter <<<  \r\nz\n", "n\n", &sep);
	CHECK_STR(a, "a\n" B "n\n" E "z\n");
	free(a);
}

static void
test_rcfile_markers_must_be_whole_lines(void)
{
	char *a;
	int sep;

	/* A marker inside a line is user content, not a block. */
	a = set("echo '# >>> halton-meter >>>'\n", "x\n", &sep);
	CHECK_STR(a, "echo '# >>> halton-meter >>>'\n" B "x\n" E);
	free(a);
}

static void
test_rcfile_unterminated(void)
{
	const char *in = "a\n" B "half\n";
	char *cause = NULL, *out;
	size_t n, s, e;
	int sep;

	CHECK_INT(rcfile_block_find(in, strlen(in), sm, &s, &e), -1);
	out = rcfile_block_set(in, strlen(in), sm, "x\n", &sep, &n, &cause);
	CHECK(out == NULL);
	CHECK(cause != NULL &&
	    strstr(cause,
	        "has no '# <<< halton-meter "
	        "<<<' line") != NULL);
	free(cause);
	cause = NULL;
	out = rcfile_block_remove(in, strlen(in), sm, 0, &n, &cause);
	CHECK(out == NULL);
	CHECK(cause != NULL);
	free(cause);
}

static void
test_rcfile_certifi_markers(void)
{
	const char *in = "# cert\n";
	char *cause = NULL, *out;
	size_t n;
	int sep;

	out = rcfile_block_set(in, strlen(in), &rcfile_certifi_markers,
	    "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n", &sep,
	    &n, &cause);
	CHECK_STR(out,
	    "# cert\n# halton-meter CA begin\n"
	    "-----BEGIN CERTIFICATE-----\nX\n"
	    "-----END CERTIFICATE-----\n# halton-meter CA end\n");
	free(out);
}

static void
test_rcfile_apply_file(void)
{
	char path[PATH_MAX], *text, *cause = NULL;
	struct rcfile_change ch;
	struct stat st, st2;
	int changed;

	snprintf(path, sizeof(path), "%s/sub/dir/rc", harness_tmpdir());
	CHECK_INT(rcfile_apply(path, sm, "x\n", 0640, 0, &ch, &cause), 0);
	CHECK_INT(ch.changed, 1);
	CHECK_INT(ch.existed, 0);
	text = harness_read_file(path, NULL);
	CHECK_STR(text, B "x\n" E);
	free(text);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0640);
	/* Unchanged: not rewritten (same inode). */
	CHECK_INT(rcfile_apply(path, sm, "x\n", 0644, 0, &ch, &cause), 0);
	CHECK_INT(ch.changed, 0);
	CHECK_INT(ch.existed, 1);
	CHECK_INT(stat(path, &st2), 0);
	CHECK_INT(st2.st_ino, st.st_ino);
	/* Mode kept on rewrite. */
	CHECK_INT(chmod(path, 0600), 0);
	CHECK_INT(rcfile_apply(path, sm, "y\n", 0644, 0, &ch, &cause), 0);
	CHECK_INT(ch.changed, 1);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	/* Dry run writes nothing. */
	CHECK_INT(rcfile_apply(path, sm, "z\n", 0644, 1, &ch, &cause), 0);
	CHECK_INT(ch.changed, 1);
	text = harness_read_file(path, NULL);
	CHECK_STR(text, B "y\n" E);
	free(text);
	/* A file the block created is deleted when it ends up empty. */
	CHECK_INT(rcfile_unapply(path, sm, 0, 1, 0, &changed, &cause), 0);
	CHECK_INT(changed, 1);
	CHECK_INT(access(path, F_OK), -1);
	/* A missing file is fine. */
	CHECK_INT(rcfile_unapply(path, sm, 0, 1, 0, &changed, &cause), 0);
	CHECK_INT(changed, 0);
}

static void
test_rcfile_symlink_written_through(void)
{
	char target[PATH_MAX], link[PATH_MAX], *text, *cause = NULL;
	struct rcfile_change ch;
	struct stat st;

	snprintf(target, sizeof(target), "%s/real", harness_tmpdir());
	snprintf(link, sizeof(link), "%s/link", harness_tmpdir());
	CHECK_INT(harness_write_file(target, "u\n", 2), 0);
	CHECK_INT(symlink(target, link), 0);
	CHECK_INT(rcfile_apply(link, sm, "x\n", 0644, 0, &ch, &cause), 0);
	CHECK_INT(lstat(link, &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	text = harness_read_file(target, NULL);
	CHECK_STR(text, "u\n" B "x\n" E);
	free(text);
}

static const struct test tests[] = {
    TEST(test_rcfile_append_and_remove),
    TEST(test_rcfile_no_final_newline),
    TEST(test_rcfile_replace_in_place),
    TEST(test_rcfile_markers_must_be_whole_lines),
    TEST(test_rcfile_unterminated),
    TEST(test_rcfile_certifi_markers),
    TEST(test_rcfile_apply_file),
    TEST(test_rcfile_symlink_written_through),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
