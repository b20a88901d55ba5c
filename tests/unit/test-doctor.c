/*
 * Unit tests for doctor: single checks of the table run against a temp
 * HOME (no daemon, no external command), and the result helpers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "halton/doctor.h"
#include "halton/store.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "harness.h"

static char state[1100];

/* A temp HOME with its state dir; no CA, no manifest. */
static void
setup(void)
{
	char home[1000];

	snprintf(home, sizeof(home), "%s/home", harness_tmpdir());
	snprintf(state, sizeof(state), "%s/.halton-meter", home);
	mkdir(home, 0700);
	mkdir(state, 0700);
	setenv("HOME", home, 1);
	unsetenv("HALTON_METER_HOME");
	unsetenv("HALTON_METER_CONFIG");
	setenv("HALTON_METER_PLATFORM", "linux", 1);
	setenv("HALTON_METER_LISTEN", "127.0.0.1:9", 1);
}

static void
run_check(struct doctor *d, const char *layer)
{
	size_t i;

	for (i = 0; i < doctor_ncheck; i++)
		if (strcmp(doctor_checks[i].layer, layer) == 0) {
			doctor_checks[i].run(d);
			return;
		}
	harness_fail(__FILE__, __LINE__, "no check %s", layer);
}

static int
count(const struct doctor *d, enum doctor_status s)
{
	size_t i;
	int n = 0;

	for (i = 0; i < d->n; i++)
		n += d->v[i].status == s;
	return n;
}

static const struct doctor_result *
find(const struct doctor *d, enum doctor_status s, const char *needle)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].status == s && strstr(d->v[i].detail, needle))
			return &d->v[i];
	return NULL;
}

static void
submit(struct store *s, int i, const char *provider, int stream,
    const char *error, int64_t at)
{
	struct usage_record r;

	usage_record_init(&r);
	snprintf(r.uuid, sizeof(r.uuid), "00000000-0000-4000-8000-%012d", i);
	r.started_at = at;
	r.ended_at = at + 10;
	usage_set_str(&r.provider, provider);
	usage_set_str(&r.host, "api.example.com");
	usage_set_str(&r.method, "POST");
	usage_set_str(&r.path, "/v1/x");
	r.status = 200;
	r.stream = stream;
	usage_set_str(&r.error, error);
	CHECK_INT(store_submit(s, &r), 0);
	usage_record_free(&r);
}

static void
test_the_table_is_in_issue_order(void)
{
	static const char *const want[] = {"install", "CA", "bundle", "certifi",
	    "env", "trust", "system proxy", "daemon", "round-trip", "clients",
	    "captures"};
	size_t i;

	CHECK_INT(doctor_ncheck, 11);
	for (i = 0; i < doctor_ncheck && i < 11; i++)
		CHECK_STR(doctor_checks[i].layer, want[i]);
}

static void
test_captures_empty(void)
{
	struct doctor d;

	setup();
	doctor_init(&d, 0);
	run_check(&d, "captures");
	CHECK_INT(d.n, 1);
	CHECK_INT(count(&d, DOCTOR_OK), 1);
	CHECK(find(&d, DOCTOR_OK, "nothing recorded yet") != NULL);
	doctor_free(&d);
}

static void
test_captures_counts_and_causes(void)
{
	struct doctor d;
	struct store *s = NULL;
	char db[1200], jn[1200], *cause = NULL;
	int64_t now = time_now_ms();
	const struct doctor_result *r;

	setup();
	snprintf(db, sizeof(db), "%s/meter.db", state);
	snprintf(jn, sizeof(jn), "%s/journal", state);
	if (store_open(&s, db, jn, &cause) == -1) {
		harness_fail(__FILE__, __LINE__, "store_open: %s", cause);
		free(cause);
		return;
	}
	submit(s, 1, "anthropic", 1, NULL, now - 1000);
	submit(s, 2, "openai", 1, "usage_missing", now - 2000);
	submit(s, 3, "openai", 1, "usage_missing", now - 3000);
	submit(s, 4, "anthropic", 0, "parse error: bad json", now - 4000);
	submit(s, 5, "anthropic", 0, NULL, now - 3 * 86400000LL);
	CHECK_INT(store_close(s, 1000), 0);

	doctor_init(&d, 0);
	run_check(&d, "captures");
	CHECK_INT(count(&d, DOCTOR_FAIL), 0);
	CHECK_INT(count(&d, DOCTOR_WARN), 2);
	r = find(&d, DOCTOR_WARN, "2 OpenAI streams");
	CHECK(r != NULL);
	if (r != NULL) {
		CHECK(strstr(r->detail, "include_usage") != NULL);
		CHECK(strstr(r->fix, "\"include_usage\": true") != NULL);
	}
	CHECK(find(&d, DOCTOR_WARN,
	          "1 exchanges in the last 24 h could not "
	          "be parsed") != NULL);
	/* 4 in the last 24 h; the 3-day-old one is not counted. */
	CHECK(find(&d, DOCTOR_OK, "; 4 in the last 24 h") != NULL);
	doctor_free(&d);
}

static void
test_no_ca(void)
{
	struct doctor d;
	const struct doctor_result *r;

	setup();
	doctor_init(&d, 0);
	run_check(&d, "CA");
	run_check(&d, "bundle");
	CHECK_INT(d.n, 2);
	r = find(&d, DOCTOR_FAIL, "no CA:");
	CHECK(r != NULL);
	if (r != NULL) {
		CHECK_STR(r->layer, "CA");
		CHECK_STR(r->fix, "halton-meter init");
		CHECK(strstr(r->detail,
		          "/.mitmproxy/mitmproxy-ca.pem is "
		          "missing") != NULL);
	}
	/* The bundle cannot be judged without a CA: a warning only. */
	CHECK(find(&d, DOCTOR_WARN, "not checked (no CA)") != NULL);
	CHECK(doctor_first_failure(&d) == r);
	doctor_free(&d);
}

static void
test_install_without_init(void)
{
	struct doctor d;

	setup();
	doctor_init(&d, 0);
	run_check(&d, "install");
	CHECK_INT(d.n, 1);
	CHECK_INT(d.v[0].status, DOCTOR_WARN);
	CHECK_STR(d.v[0].fix, "halton-meter init");
	CHECK(strstr(d.v[0].detail, "init has not run here") != NULL);
	CHECK_STR(d.mode, "env");
	doctor_free(&d);
}

static void
test_config_error_names_the_line(void)
{
	struct doctor d;
	char path[1200];
	const char text[] = "listen = 127.0.0.1:8081\nbogus_key = 1\n";

	setup();
	snprintf(path, sizeof(path), "%s/config", state);
	CHECK_INT(harness_write_file(path, text, sizeof(text) - 1), 0);
	doctor_init(&d, 0);
	run_check(&d, "install");
	CHECK_INT(count(&d, DOCTOR_FAIL), 1);
	CHECK(find(&d, DOCTOR_FAIL, "config:2:") != NULL);
	doctor_free(&d);
}

static void
test_first_failure_prefers_the_danger(void)
{
	struct doctor d;

	setup();
	doctor_init(&d, 0);
	doctor_add(&d, DOCTOR_OK, "install", "x", "fine");
	doctor_add(&d, DOCTOR_FAIL, "CA", "fix ca", "bad ca");
	doctor_add(&d, DOCTOR_FAIL, "system proxy", "fix proxy", "danger");
	CHECK(d.v[0].fix == NULL); /* no fix kept for an ok line */
	CHECK_STR(doctor_first_failure(&d)->layer, "CA");
	d.v[2].top = 1;
	CHECK_STR(doctor_first_failure(&d)->layer, "system proxy");
	CHECK_STR(doctor_status_name(DOCTOR_WARN), "warning");
	doctor_free(&d);
}

static const struct test tests[] = {
    TEST(test_the_table_is_in_issue_order),
    TEST(test_captures_empty),
    TEST(test_captures_counts_and_causes),
    TEST(test_no_ca),
    TEST(test_install_without_init),
    TEST(test_config_error_names_the_line),
    TEST(test_first_failure_prefers_the_danger),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
