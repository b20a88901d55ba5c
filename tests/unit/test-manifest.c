/*
 * manifest: entries by (kind, key), order, levels, save and load; and the
 * service templates shipped in launchd/ and systemd/ match the ones the
 * binary writes.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/manifest.h"
#include "halton/platform.h"

static void
test_manifest_entries(void)
{
	struct manifest *m = manifest_new();
	cJSON *a, *b, *c;
	int existed;

	CHECK_INT(manifest_count(m), 0);
	a = manifest_entry(m, "rc", "/h/.zshenv", MANIFEST_APPS, &existed);
	CHECK_INT(existed, 0);
	manifest_set_int(a, "sep_added", 1);
	manifest_set_str(a, "previous", NULL);
	b = manifest_entry(
	    m, "certifi", "/p/cacert.pem", MANIFEST_ENV, &existed);
	manifest_set_str(b, "python", "python3");
	c = manifest_entry(m, "rc", "/h/.zshenv", MANIFEST_FULL, &existed);
	CHECK_INT(existed, 1);
	CHECK(c == a);
	CHECK_INT(manifest_int(c, "level", -1), MANIFEST_APPS);
	CHECK_INT(manifest_count(m), 2);
	CHECK(manifest_at(m, 0) == a);
	CHECK(manifest_at(m, 1) == b);
	CHECK(manifest_find(m, "certifi", "/p/cacert.pem") == b);
	CHECK(manifest_find(m, "certifi", "/other") == NULL);
	CHECK(manifest_str(a, "previous") == NULL);
	manifest_set_str(b, "python", "python3.12");
	CHECK_STR(manifest_str(b, "python"), "python3.12");
	manifest_remove(m, a);
	CHECK_INT(manifest_count(m), 1);
	CHECK(manifest_at(m, 0) == b);
	manifest_free(m);
}

static void
test_manifest_save_load(void)
{
	char path[PATH_MAX], *cause = NULL;
	struct manifest *m = manifest_new(), *m2 = NULL;
	cJSON *e;
	int existed, found;

	snprintf(path, sizeof(path), "%s/installed.json", harness_tmpdir());
	CHECK_INT(manifest_load(&m2, path, &found, &cause), 0);
	CHECK_INT(found, 0);
	CHECK_INT(manifest_count(m2), 0);
	manifest_free(m2);
	manifest_set_mode(m, "full");
	manifest_set_platform(m, "darwin");
	e = manifest_entry(
	    m, "launchctl_env", "HTTPS_PROXY", MANIFEST_APPS, &existed);
	manifest_set_str(e, "previous", "http://corp:3128");
	e = manifest_entry(m, "file", "/h/x", MANIFEST_APPS, &existed);
	manifest_set_str(e, "previous", "line 1\n\"quoted\"\t\n");
	CHECK_INT(manifest_save(m, path, &cause), 0);
	manifest_free(m);
	CHECK_INT(manifest_load(&m2, path, &found, &cause), 0);
	CHECK_INT(found, 1);
	CHECK_STR(manifest_mode(m2), "full");
	CHECK_STR(manifest_platform(m2), "darwin");
	CHECK_INT(manifest_count(m2), 2);
	e = manifest_at(m2, 0);
	CHECK_STR(manifest_str(e, "kind"), "launchctl_env");
	CHECK_STR(manifest_str(e, "key"), "HTTPS_PROXY");
	CHECK_STR(manifest_str(e, "previous"), "http://corp:3128");
	CHECK_STR(manifest_str(manifest_at(m2, 1), "previous"),
	    "line 1\n\"quoted\"\t\n");
	manifest_free(m2);
}

static void
test_manifest_bad_file(void)
{
	char path[PATH_MAX], *cause = NULL;
	struct manifest *m = NULL;
	int found;

	snprintf(path, sizeof(path), "%s/installed.json", harness_tmpdir());
	CHECK_INT(harness_write_file(path, "{\"entries\": 3}", 14), 0);
	CHECK_INT(manifest_load(&m, path, &found, &cause), -1);
	CHECK(m == NULL);
	CHECK(cause != NULL &&
	    strstr(cause, "not a halton-meter manifest") != NULL);
	free(cause);
}

static void
test_manifest_levels(void)
{
	CHECK_STR(manifest_level_name(MANIFEST_ENV), "env");
	CHECK_STR(manifest_level_name(MANIFEST_FULL), "full");
	CHECK_INT(manifest_level_parse("apps"), MANIFEST_APPS);
	CHECK_INT(manifest_level_parse("other"), -1);
	CHECK_INT(manifest_level_parse(NULL), -1);
}

static void
check_template(const char *file, const char *embedded)
{
	char *text = harness_read_file(file, NULL);

	CHECK(text != NULL);
	if (text != NULL)
		CHECK_STR(text, embedded);
	free(text);
}

static void
test_templates_match_shipped_files(void)
{
	char *s;

	check_template(
	    "launchd/com.halton-meter.daemon.plist", platform_launchd_template);
	check_template(
	    "systemd/halton-meter.service", platform_systemd_template);
	s = platform_render(
	    "<string>@EXE@</string>@STATE_DIR@", "/a&b/<x>", "/s", 1);
	CHECK_STR(s, "<string>/a&amp;b/&lt;x&gt;</string>/s");
	free(s);
	s = platform_render("ExecStart=\"@EXE@\"", "/a&b", "/s", 0);
	CHECK_STR(s, "ExecStart=\"/a&b\"");
	free(s);
}

static const struct test tests[] = {
    TEST(test_manifest_entries),
    TEST(test_manifest_save_load),
    TEST(test_manifest_bad_file),
    TEST(test_manifest_levels),
    TEST(test_templates_match_shipped_files),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
