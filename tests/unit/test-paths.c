#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/paths.h"
#include "halton/util.h"
#include "harness.h"

static void
test_home_and_state_dir(void)
{
	char *p;

	setenv("HOME", "/home/tester", 1);
	unsetenv("HALTON_METER_HOME");
	p = paths_home();
	CHECK_STR(p, "/home/tester");
	free(p);
	p = paths_state_dir();
	CHECK_STR(p, "/home/tester/.halton-meter");
	free(p);
	p = paths_state_file("meter.db");
	CHECK_STR(p, "/home/tester/.halton-meter/meter.db");
	free(p);
	p = paths_ca_dir();
	CHECK_STR(p, "/home/tester/.mitmproxy");
	free(p);
	setenv("HALTON_METER_HOME", "/srv/hm", 1);
	p = paths_state_file("journal");
	CHECK_STR(p, "/srv/hm/journal");
	free(p);
	/* The CA dir stays under HOME: it is mitmproxy's. */
	p = paths_ca_dir();
	CHECK_STR(p, "/home/tester/.mitmproxy");
	free(p);
	unsetenv("HALTON_METER_HOME");
	unsetenv("HALTON_METER_CONFIG");
	p = paths_config_file();
	CHECK_STR(p, "/home/tester/.halton-meter/config");
	free(p);
	setenv("HALTON_METER_CONFIG", "/etc/hm.conf", 1);
	p = paths_config_file();
	CHECK_STR(p, "/etc/hm.conf");
	free(p);
	unsetenv("HALTON_METER_CONFIG");
}

static void
test_sysroot(void)
{
	char *p;

	unsetenv("HALTON_METER_SYSROOT");
	p = paths_sys("/etc/ssl/certs/ca-certificates.crt");
	CHECK_STR(p, "/etc/ssl/certs/ca-certificates.crt");
	free(p);
	setenv("HALTON_METER_SYSROOT", "/tmp/root//", 1);
	p = paths_sys("/Library/Keychains/System.keychain");
	CHECK_STR(p, "/tmp/root/Library/Keychains/System.keychain");
	free(p);
	setenv("HALTON_METER_SYSROOT", "", 1);
	p = paths_sys("/etc/x");
	CHECK_STR(p, "/etc/x");
	free(p);
	unsetenv("HALTON_METER_SYSROOT");
}

static void
test_state_dir_modes(void)
{
	char home[512], dir[600], *cause;
	struct stat st;

	snprintf(home, sizeof(home), "%s/home", harness_tmpdir());
	snprintf(dir, sizeof(dir), "%s/.halton-meter", home);
	setenv("HOME", home, 1);
	unsetenv("HALTON_METER_HOME");
	/* HOME itself does not exist yet: it is created on the way. */
	CHECK_INT(paths_ensure_state_dir(&cause), 0);
	CHECK(cause == NULL);
	CHECK_INT(stat(dir, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0700);
	/* A looser existing directory is tightened. */
	CHECK_INT(chmod(dir, 0755), 0);
	CHECK_INT(paths_ensure_state_dir(&cause), 0);
	CHECK_INT(stat(dir, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0700);
	/* A file in the way is a clear error. */
	snprintf(dir, sizeof(dir), "%s/blocked", harness_tmpdir());
	harness_write_file(dir, "x", 1);
	setenv("HALTON_METER_HOME", dir, 1);
	CHECK_INT(paths_ensure_state_dir(&cause), -1);
	CHECK(cause != NULL && strstr(cause, "blocked") != NULL);
	free(cause);
	unsetenv("HALTON_METER_HOME");
}

static void
test_atomic_write_mode(void)
{
	char path[512], *text;
	struct stat st;
	size_t len;

	snprintf(path, sizeof(path), "%s/secret", harness_tmpdir());
	CHECK_INT(file_write_atomic(path, "abc", 3, 0600), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	text = file_read(path, &len);
	CHECK_INT(len, 3);
	CHECK_STR(text, "abc");
	free(text);
	/* Replacing keeps the requested mode, whatever the umask. */
	CHECK_INT(file_write_atomic(path, "defg", 4, 0644), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	CHECK_INT(st.st_size, 4);
	CHECK(file_read("/nonexistent/file", NULL) == NULL);
}

static const struct test tests[] = {
	TEST(test_home_and_state_dir),
	TEST(test_sysroot),
	TEST(test_state_dir_modes),
	TEST(test_atomic_write_mode),
	{ 0 },
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
