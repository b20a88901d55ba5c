/*
 * Unit tests for the store's journal file: mode, appends, reads through the
 * locked descriptor, truncation, and the one-process lock.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/store/store-int.h"
#include "harness.h"

static char path[4096];

static struct store_journal *
open_journal(void)
{
	struct store_journal *j = NULL;
	char *cause = NULL;

	snprintf(path, sizeof(path), "%s/journal", harness_tmpdir());
	if (store_journal_open(&j, path, &cause) == -1) {
		harness_fail(__FILE__, __LINE__, "open: %s", cause);
		free(cause);
	}
	return j;
}

static void
test_append_read_truncate(void)
{
	struct store_journal *j;
	struct stat st;
	char *data;
	size_t len;

	if ((j = open_journal()) == NULL)
		return;
	CHECK(stat(path, &st) == 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	data = store_journal_read(j, &len);
	CHECK_INT(len, 0);
	CHECK_STR(data, "");
	free(data);
	CHECK_INT(store_journal_append(j, "{\"a\":1}\n", 8), 0);
	CHECK_INT(store_journal_append(j, "{\"b\":2}\n", 8), 0);
	data = store_journal_read(j, &len);
	CHECK_INT(len, 16);
	CHECK_STR(data, "{\"a\":1}\n{\"b\":2}\n");
	free(data);
	CHECK_INT(store_journal_truncate(j), 0);
	/* O_APPEND: the next line starts at the new end, offset 0. */
	CHECK_INT(store_journal_append(j, "{\"c\":3}\n", 8), 0);
	data = store_journal_read(j, &len);
	CHECK_STR(data, "{\"c\":3}\n");
	free(data);
	store_journal_close(j);
	data = harness_read_file(path, &len);
	CHECK_STR(data, "{\"c\":3}\n");
	free(data);
}

static void
test_existing_content_kept_and_mode_tightened(void)
{
	struct store_journal *j;
	struct stat st;
	char *data;
	size_t len;

	snprintf(path, sizeof(path), "%s/journal", harness_tmpdir());
	CHECK_INT(harness_write_file(path, "{\"old\":1}\n", 10), 0);
	CHECK_INT(chmod(path, 0644), 0);
	if ((j = open_journal()) == NULL)
		return;
	CHECK(stat(path, &st) == 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK_INT(store_journal_append(j, "{\"new\":2}\n", 10), 0);
	data = store_journal_read(j, &len);
	CHECK_STR(data, "{\"old\":1}\n{\"new\":2}\n");
	free(data);
	store_journal_close(j);
}

/* A second process cannot take the journal while the first holds it, and
 * can once the first is gone (a killed daemon leaves no stale lock). */
static void
test_one_process_at_a_time(void)
{
	struct store_journal *j;
	pid_t pid;
	int status = -1;

	if ((j = open_journal()) == NULL)
		return;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct store_journal *j2;
		char *cause = NULL;

		_exit(store_journal_open(&j2, path, &cause) == -1 ? 5 : 6);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	store_journal_close(j);
	if ((pid = fork()) == 0) {
		struct store_journal *j2;
		char *cause = NULL;

		_exit(store_journal_open(&j2, path, &cause) == -1 ? 5 : 6);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 6);
}

static const struct test tests[] = {
    TEST(test_append_read_truncate),
    TEST(test_existing_content_kept_and_mode_tightened),
    TEST(test_one_process_at_a_time),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
