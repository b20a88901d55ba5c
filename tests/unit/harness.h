/*
 * A tiny unit-test harness.  A test file lists its tests in a const table
 * and hands it to harness_main():
 *
 *	static void test_parse_ok(void) { CHECK_INT(parse("1"), 1); }
 *	static const struct test tests[] = { TEST(test_parse_ok), { 0 } };
 *	int main(int argc, char **argv) { return harness_main(argc, argv, tests); }
 *
 * Each CHECK records a failure (file, line, both values) and the test goes
 * on; a test with any failed CHECK counts as failed.  The binary prints
 * "test-NAME: N passed, N failed" and exits 1 on any failure.  An argument
 * runs only the tests whose names contain it.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stddef.h>
#include <stdint.h>

struct test {
	const char *name;
	void (*fn)(void);
};

#define TEST(fn) { #fn, fn }

int harness_main(int, char **, const struct test *);
void harness_fail(const char *, int, const char *, ...);
int harness_failed(void);
/* A fresh temporary directory for this test, removed after it. */
const char *harness_tmpdir(void);
/* Writes a file (creating parent dirs) and returns 0, or -1. */
int harness_write_file(const char *, const void *, size_t);
/* Reads a whole file into a malloc'd NUL-terminated buffer. */
char *harness_read_file(const char *, size_t *);

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			harness_fail(__FILE__, __LINE__, "%s", #cond);     \
	} while (0)

#define CHECK_INT(a, b)                                                    \
	do {                                                               \
		long long check_a_ = (long long)(a);                       \
		long long check_b_ = (long long)(b);                       \
		if (check_a_ != check_b_)                                  \
			harness_fail(__FILE__, __LINE__,                   \
			    "%s == %lld, expected %lld", #a, check_a_,     \
			    check_b_);                                     \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *check_a_ = (a);                                \
		const char *check_b_ = (b);                                \
		if (check_a_ == NULL || check_b_ == NULL                   \
		    ? check_a_ != check_b_                                 \
		    : strcmp(check_a_, check_b_) != 0)                     \
			harness_fail(__FILE__, __LINE__,                   \
			    "%s == \"%s\", expected \"%s\"", #a,           \
			    check_a_ ? check_a_ : "(null)",                \
			    check_b_ ? check_b_ : "(null)");               \
	} while (0)

#define CHECK_MEM(a, b, n)                                                 \
	do {                                                               \
		if (memcmp((a), (b), (n)) != 0)                            \
			harness_fail(__FILE__, __LINE__,                   \
			    "%s differs from %s", #a, #b);                 \
	} while (0)

#endif
