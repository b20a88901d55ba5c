/*
 * Unit tests of attribution: the User-Agent table, key fingerprints (a
 * known SHA-256 vector), the Proxy-Authorization tag, the project of a
 * directory, and (Linux) the process owning a real loopback connection.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "halton/attribution.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static void
check_ua(const char *ua, const char *client, const char *version)
{
	char *c, *v;
	int rc = attribution_client(ua, &c, &v);

	if (client == NULL) {
		CHECK_INT(rc, -1);
	} else {
		CHECK_INT(rc, 0);
	}
	CHECK_STR(c, client);
	CHECK_STR(v, version);
	free(c);
	free(v);
}

static void
test_user_agents(void)
{
	check_ua(
	    "claude-cli/2.1.105 (external, cli)", "claude-code", "2.1.105");
	check_ua("claude-cli/2.1.105 (external, sdk-py, agent-sdk/0.1.59)",
	    "claude-code", "2.1.105");
	check_ua("codex_cli_rs/0.118.0 (Debian 12; x86_64) xterm-256color",
	    "codex", "0.118.0");
	check_ua("GeminiCLI/0.21.0 (linux; x64)", "gemini-cli", "0.21.0");
	check_ua("Mozilla/5.0 (X11; Linux x86_64) Cursor/1.7.4 Chrome/132",
	    "cursor", "1.7.4");
	check_ua("Windsurf/1.12.0", "windsurf", "1.12.0");
	check_ua("Anthropic/Python 0.71.0", "anthropic-sdk-python", "0.71.0");
	check_ua("Anthropic/JS 0.80.0", "anthropic-sdk-ts", "0.80.0");
	check_ua("OpenAI/Python 1.99.1", "openai-sdk-python", "1.99.1");
	check_ua("OpenAI/JS 5.20.0", "openai-sdk-ts", "5.20.0");
	check_ua("google-genai-sdk/1.30.0 gl-python/3.12.3", "google-genai-sdk",
	    "1.30.0");
	check_ua("langchain-anthropic/0.3.1 Anthropic/Python 0.71.0",
	    "langchain", "0.3.1");
	check_ua("curl/7.88.1", "curl", "7.88.1");
	check_ua("python-requests/2.28.1", "python-requests", "2.28.1");
	check_ua("python-httpx/0.23.3", "httpx", "0.23.3");
	check_ua("node", "node", NULL);
	check_ua("Dmi/JS 0.94.0", NULL, NULL);
	check_ua(NULL, NULL, NULL);
}

struct hdrs {
	const char *name;
	const char *value;
};

static const char *
lookup_cb(void *arg, const char *name)
{
	const struct hdrs *h = arg;

	for (; h->name != NULL; h++)
		if (str_casecmp(h->name, name) == 0)
			return h->value;
	return NULL;
}

static void
test_key_fp(void)
{
	/* SHA-256("abc") = ba7816bf 8f01cfea ... */
	struct hdrs xkey[] = {{"X-Api-Key", "abc"}, {NULL, NULL}};
	struct hdrs bearer[] = {{"Authorization", "Bearer abc"}, {NULL, NULL}};
	struct hdrs azure[] = {{"api-key", " abc "}, {NULL, NULL}};
	struct hdrs goog[] = {{"x-goog-api-key", "abc"}, {NULL, NULL}};
	struct hdrs sigv4[] = {
	    {"authorization",
	        "AWS4-HMAC-SHA256 "
	        "Credential=abc/20261128/us-east-1/bedrock/aws4_request, "
	        "SignedHeaders=host, Signature=ff"},
	    {NULL, NULL}};
	struct hdrs none[] = {{"user-agent", "curl/8"}, {NULL, NULL}};
	char fp[ATTRIBUTION_FP_LEN + 1];

	attribution_key_fp("abc", 3, fp);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, xkey, "/", fp), 0);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, bearer, "/", fp), 0);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, azure, "/", fp), 0);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, goog, "/", fp), 0);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, sigv4, "/", fp), 0);
	CHECK_STR(fp, "ba7816bf");
	memset(fp, 0, sizeof(fp));
	CHECK_INT(attribution_request_key_fp(lookup_cb, none,
	              "/v1beta/models/x:generateContent?alt=sse&key=abc", fp),
	    0);
	CHECK_STR(fp, "ba7816bf");
	CHECK_INT(attribution_request_key_fp(
	              lookup_cb, none, "/v1/messages?beta=true", fp),
	    -1);
	/* A different key, a different print. */
	attribution_key_fp("abd", 3, fp);
	CHECK(strcmp(fp, "ba7816bf") != 0);
	CHECK_INT(strlen(fp), 8);
	/* The last key's print is remembered: the same bytes give the same
	 * print, a key of the same length or a prefix does not get it. */
	attribution_key_fp("abc", 3, fp);
	CHECK_STR(fp, "ba7816bf");
	attribution_key_fp("ab", 2, fp);
	CHECK_STR(fp, "fb8e20fc"); /* SHA-256("ab") = fb8e20fc 2e4c3f24 ... */
	attribution_key_fp("abc", 3, fp);
	CHECK_STR(fp, "ba7816bf");
	/* Longer than what is remembered: digested each time, same print. */
	{
		char big[300], fp2[ATTRIBUTION_FP_LEN + 1];

		memset(big, 'k', sizeof(big));
		attribution_key_fp(big, sizeof(big), fp);
		attribution_key_fp("abc", 3, fp2);
		CHECK_STR(fp2, "ba7816bf");
		attribution_key_fp(big, sizeof(big), fp2);
		CHECK_STR(fp2, fp);
		CHECK(strcmp(fp, "ba7816bf") != 0);
	}
}

static void
test_tag(void)
{
	char *t;

	/* base64("my%20team:secret") */
	t = attribution_tag("Basic bXklMjB0ZWFtOnNlY3JldA==");
	CHECK_STR(t, "my team");
	free(t);
	/* base64("alice:") */
	t = attribution_tag("basic YWxpY2U6");
	CHECK_STR(t, "alice");
	free(t);
	/* base64("bob") without a colon */
	t = attribution_tag("Basic Ym9i");
	CHECK_STR(t, "bob");
	free(t);
	CHECK_STR(attribution_tag("Bearer abc"), NULL);
	CHECK_STR(attribution_tag("Basic !!!!"), NULL);
	CHECK_STR(attribution_tag("Basic "), NULL);
	CHECK_STR(attribution_tag(NULL), NULL);
	/* base64(":x"): an empty user is no tag */
	CHECK_STR(attribution_tag("Basic Ong="), NULL);
}

static void
test_project(void)
{
	const char *tmp = harness_tmpdir();
	char path[PATH_MAX], *p;

	snprintf(path, sizeof(path), "%s/myrepo/.git/HEAD", tmp);
	CHECK_INT(harness_write_file(path, "ref: x\n", 7), 0);
	snprintf(path, sizeof(path), "%s/myrepo/src/deep/x", tmp);
	CHECK_INT(harness_write_file(path, "x", 1), 0);
	snprintf(path, sizeof(path), "%s/myrepo/src/deep", tmp);
	p = attribution_project(path);
	CHECK_STR(p, "myrepo");
	free(p);
	/* A worktree's .git is a file. */
	snprintf(path, sizeof(path), "%s/wt/.git", tmp);
	CHECK_INT(harness_write_file(path, "gitdir: /x\n", 11), 0);
	snprintf(path, sizeof(path), "%s/wt", tmp);
	p = attribution_project(path);
	CHECK_STR(p, "wt");
	free(p);
	snprintf(path, sizeof(path), "%s/plain/dir/", tmp);
	CHECK_INT(dir_create(path, 0700), 0);
	p = attribution_project(path);
	CHECK_STR(p, "dir");
	free(p);
	CHECK_STR(attribution_project("relative/dir"), NULL);
}

#if defined(__linux__)
/* Fills ss with addr:port of family; returns the address length. */
static socklen_t
sockaddr_fill(
    struct sockaddr_storage *ss, int family, const char *addr, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		return sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		return sizeof(*s6);
	}
}

static int
sockaddr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET
	        ? ((const struct sockaddr_in *)ss)->sin_port
	        : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/*
 * A real loopback connection: the client end belongs to this process.  The
 * listener has lfamily on laddr, the client socket cfamily connecting to
 * connect_addr; the lookup gets the endpoints as the proxy's accept()
 * would show them (caddr_seen / saddr_seen, NULL: the client socket's own
 * address and laddr).
 */
static void
check_lookup_with(int lfamily, const char *laddr, int cfamily,
    const char *connect_addr, const char *caddr_seen, const char *saddr_seen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int lfd, cfd, afd;
	char cwd[PATH_MAX], caddr[64], saddr[64];
	int cport, sport;
	struct attribution_process proc;
	char exe[PATH_MAX];
	ssize_t n;

	sl = sockaddr_fill(&ss, lfamily, laddr, 0);
	if ((lfd = socket(lfamily, SOCK_STREAM, 0)) == -1)
		return;
	if (bind(lfd, (struct sockaddr *)&ss, sl) == -1) {
		close(lfd);
		CHECK(lfamily == AF_INET6); /* no IPv6 here: fine */
		return;
	}
	CHECK_INT(listen(lfd, 4), 0);
	sl = sizeof(ss);
	CHECK_INT(getsockname(lfd, (struct sockaddr *)&ss, &sl), 0);
	sport = sockaddr_port(&ss);
	sl = sockaddr_fill(&ss, cfamily, connect_addr, sport);
	cfd = socket(cfamily, SOCK_STREAM, 0);
	CHECK_INT(connect(cfd, (struct sockaddr *)&ss, sl), 0);
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0);
	sl = sizeof(ss);
	CHECK_INT(getsockname(cfd, (struct sockaddr *)&ss, &sl), 0);
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    caddr, sizeof(caddr));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    caddr, sizeof(caddr));
	cport = sockaddr_port(&ss);
	if (caddr_seen != NULL)
		snprintf(caddr, sizeof(caddr), "%s", caddr_seen);
	snprintf(saddr, sizeof(saddr), "%s",
	    saddr_seen != NULL ? saddr_seen : laddr);

	CHECK_INT(
	    attribution_process_lookup(caddr, cport, saddr, sport, &proc), 0);
	CHECK_INT(proc.pid, (long long)getpid());
	/* This binary's own name (test-attribution in every build dir). */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0);
	exe[n > 0 ? n : 0] = '\0';
	CHECK_STR(proc.process,
	    strrchr(exe, '/') != NULL ? strrchr(exe, '/') + 1 : exe);
	CHECK(proc.process != NULL &&
	    strncmp(proc.process, "test-attribution", 16) == 0);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_STR(proc.cwd, cwd);
	CHECK(proc.project != NULL && proc.project[0] != '\0');
	attribution_process_free(&proc);

	/* A port nobody uses: no process. */
	CHECK_INT(attribution_process_lookup(caddr, cport, saddr,
	              sport == 65535 ? 65534 : sport + 1, &proc),
	    -1);
	CHECK_INT(proc.pid, -1);
	attribution_process_free(&proc);
	close(afd);
	close(cfd);
	close(lfd);
}

static void
check_lookup(int family, const char *addr)
{
	check_lookup_with(family, addr, family, addr, NULL, NULL);
}

/* Every case through sock_diag (on) and through the /proc/net scan
 * (off). */
static void
check_lookups(int diag)
{
	attribution_set_sock_diag(diag);
	check_lookup(AF_INET, "127.0.0.1");
	check_lookup(AF_INET6, "::1");
	/* A dual-stack listener sees a v4 client as ::ffff:127.0.0.1. */
	check_lookup_with(AF_INET6, "::", AF_INET, "127.0.0.1",
	    "::ffff:127.0.0.1", "::ffff:127.0.0.1");
	/* A dual-stack client socket to a v4 listener: the socket is in
	 * tcp6 with v4-mapped addresses. */
	check_lookup_with(AF_INET, "127.0.0.1", AF_INET6, "::ffff:127.0.0.1",
	    "127.0.0.1", "127.0.0.1");
	attribution_set_sock_diag(1);
}

/* A loopback connection to a new listener: *cfd (client end, ours),
 * *afd (accepted), its ports; the listener is closed. */
static int
loopback_pair(int *cfd, int *afd, int *cport, int *sport)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int lfd;

	sl = sockaddr_fill(&ss, AF_INET, "127.0.0.1", 0);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&ss, sl) == -1 || listen(lfd, 4) == -1)
		return -1;
	sl = sizeof(ss);
	getsockname(lfd, (struct sockaddr *)&ss, &sl);
	*sport = sockaddr_port(&ss);
	*cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*cfd, (struct sockaddr *)&ss, sl) == -1)
		return -1;
	*afd = accept(lfd, NULL, NULL);
	close(lfd);
	sl = sizeof(ss);
	getsockname(*cfd, (struct sockaddr *)&ss, &sl);
	*cport = sockaddr_port(&ss);
	return *afd >= 0 ? 0 : -1;
}

static long long
lookup_pid(int cport, int sport)
{
	struct attribution_process proc;
	long long pid;

	attribution_process_lookup(
	    "127.0.0.1", cport, "127.0.0.1", sport, &proc);
	pid = proc.pid;
	attribution_process_free(&proc);
	return pid;
}

/*
 * The lookup tries the previous owner's last descriptors first: a socket
 * on the remembered descriptor number that is another socket now, or a
 * socket that moved to a child, must not be credited to the previous
 * owner.
 */
static void
check_lookup_hints(void)
{
	int c1, a1, c2, a2, c3, a3, p1, s1, p2, s2, p3, s3, fds[2], ready[2],
	    ns;
	pid_t child;
	char b;

	if (loopback_pair(&c1, &a1, &p1, &s1) == -1) {
		CHECK(0);
		return;
	}
	CHECK_INT(lookup_pid(p1, s1), (long long)getpid());
	/* Same descriptor number, another socket: found again. */
	close(c1);
	close(a1);
	CHECK_INT(loopback_pair(&c2, &a2, &p2, &s2), 0);
	CHECK_INT(lookup_pid(p2, s2), (long long)getpid());
	CHECK_INT(lookup_pid(p1, s1), -1); /* the closed one: nobody */
	/* Two connections at once, asked in turn: both ours. */
	CHECK_INT(loopback_pair(&c3, &a3, &p3, &s3), 0);
	CHECK_INT(lookup_pid(p3, s3), (long long)getpid());
	CHECK_INT(lookup_pid(p2, s2), (long long)getpid());
	CHECK_INT(lookup_pid(p3, s3), (long long)getpid());
	/* The socket moves to a child and our descriptor number is reused
	 * by a new socket: the child owns it. */
	CHECK_INT(pipe(fds), 0);
	CHECK_INT(pipe(ready), 0);
	if ((child = fork()) == 0) {
		close(fds[1]);
		close(ready[0]);
		close(c2); /* only c3 moves */
		close(a2);
		close(a3);
		if (write(ready[1], "r", 1) != 1 || read(fds[0], &b, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	ns = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT(dup2(ns, c3), c3); /* c3's number, another socket */
	close(ns);
	close(fds[0]);
	CHECK_INT((int)read(ready[0], &b, 1), 1); /* the child closed c2 */
	close(ready[0]);
	CHECK_INT(lookup_pid(p3, s3), (long long)child);
	CHECK_INT(lookup_pid(p2, s2), (long long)getpid());
	close(fds[1]);
	waitpid(child, NULL, 0);
	close(c3);
	close(a3);
	close(c2);
	close(a2);
}

#endif /* __linux__ */

static void
test_process_lookup_hints(void)
{
#if defined(__linux__)
	check_lookup_hints();
#endif
}

static void
test_process_lookup(void)
{
#if defined(__linux__)
	check_lookups(1);
#endif
}

static void
test_process_lookup_proc_net(void)
{
#if defined(__linux__)
	check_lookups(0);
#endif
}

static const struct test tests[] = {
    TEST(test_user_agents),
    TEST(test_key_fp),
    TEST(test_tag),
    TEST(test_project),
    TEST(test_process_lookup),
    TEST(test_process_lookup_proc_net),
    TEST(test_process_lookup_hints),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
