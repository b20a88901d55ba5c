/*
 * healthz_probe against tiny loopback listeners: one that answers a fixed
 * JSON, one that never answers, and a port nobody listens on.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "halton/healthz.h"

/* A listening socket on 127.0.0.1 with *port its port; -1 on failure. */
static int
listen_loopback(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 4) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * Forks a child that accepts one connection on lfd, reads the request
 * head and answers with answer when it is a GET /healthz, else a 400.
 */
static pid_t
serve_once(int lfd, const char *answer)
{
	const char *bad = "HTTP/1.1 400 Bad Request\r\n"
	                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
	char req[2048];
	size_t got = 0;
	ssize_t n;
	pid_t pid;
	int fd;

	if ((pid = fork()) != 0)
		return pid;
	if ((fd = accept(lfd, NULL, NULL)) == -1)
		_exit(1);
	while (got < sizeof(req) - 1 &&
	    (n = read(fd, req + got, sizeof(req) - 1 - got)) > 0) {
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	req[got] = '\0';
	if (strncmp(req, "GET /healthz HTTP/1.1\r\n", 23) != 0)
		answer = bad;
	if (write(fd, answer, strlen(answer)) != (ssize_t)strlen(answer))
		_exit(1);
	close(fd);
	_exit(0);
}

static int
reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void
test_healthz_fixed_json(void)
{
	const char *answer =
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 93\r\nConnection: close\r\n\r\n"
	    "{\"status\":\"ok\",\"version\":\"9.8.7\",\"pid\":4242,"
	    "\"uptime_s\":3671,\"connections\":3,\"exchanges\":120}\n";
	struct healthz h;
	char *cause = (char *)"unset";
	int lfd, port;
	pid_t pid;

	CHECK((lfd = listen_loopback(&port)) != -1);
	pid = serve_once(lfd, answer);
	CHECK(pid > 0);
	CHECK_INT(healthz_probe("127.0.0.1", port, 5000, &h, &cause), 0);
	CHECK(cause == NULL);
	CHECK_INT(h.http_status, 200);
	CHECK_INT(h.is_json, 1);
	CHECK_INT(h.has_version, 1);
	CHECK_STR(h.status, "ok");
	CHECK_STR(h.version, "9.8.7");
	CHECK_INT(h.pid, 4242);
	CHECK_INT(h.uptime_s, 3671);
	CHECK_INT(h.connections, 3);
	CHECK_INT(h.exchanges, 120);
	CHECK_INT(reap(pid), 0);
	close(lfd);
}

/* A non-JSON answer still counts as an answer; the numbers stay -1. */
static void
test_healthz_not_json(void)
{
	const char *answer = "HTTP/1.0 503 Service Unavailable\r\n"
	                     "Content-Length: 4\r\n\r\nbusy";
	struct healthz h;
	char *cause = NULL;
	int lfd, port;
	pid_t pid;

	CHECK((lfd = listen_loopback(&port)) != -1);
	pid = serve_once(lfd, answer);
	CHECK(pid > 0);
	CHECK_INT(healthz_probe("127.0.0.1", port, 5000, &h, &cause), 0);
	CHECK(cause == NULL);
	CHECK_INT(h.http_status, 503);
	CHECK_INT(h.is_json, 0);
	CHECK_INT(h.has_version, 0);
	CHECK_STR(h.version, "");
	CHECK_INT(h.pid, -1);
	CHECK_INT(h.exchanges, -1);
	CHECK_INT(reap(pid), 0);
	close(lfd);
}

static void
test_healthz_not_http(void)
{
	struct healthz h;
	char *cause = NULL;
	int lfd, port;
	pid_t pid;

	CHECK((lfd = listen_loopback(&port)) != -1);
	pid = serve_once(lfd, "SSH-2.0-OpenSSH_9.2\r\n");
	CHECK(pid > 0);
	CHECK_INT(healthz_probe("127.0.0.1", port, 5000, &h, &cause), -1);
	CHECK_STR(cause, "not an HTTP answer");
	CHECK_INT(h.http_status, 0);
	free(cause);
	CHECK_INT(reap(pid), 0);
	close(lfd);
}

/* The kernel completes the connection but nobody ever accepts it. */
static void
test_healthz_never_answers(void)
{
	struct healthz h;
	char *cause = NULL;
	int lfd, port;

	CHECK((lfd = listen_loopback(&port)) != -1);
	CHECK_INT(healthz_probe("127.0.0.1", port, 200, &h, &cause), -1);
	CHECK_STR(cause, "connected, but no answer (timed out after 200 ms)");
	CHECK_INT(h.http_status, 0);
	CHECK_INT(h.is_json, 0);
	CHECK_INT(h.pid, -1);
	free(cause);
	close(lfd);
}

static void
test_healthz_refused(void)
{
	struct healthz h;
	char *cause = NULL;
	int lfd, port;

	/* A port that was just free: nothing listens there now. */
	CHECK((lfd = listen_loopback(&port)) != -1);
	close(lfd);
	CHECK_INT(healthz_probe("127.0.0.1", port, 2000, &h, &cause), -1);
	CHECK_STR(cause, strerror(ECONNREFUSED));
	CHECK_INT(h.http_status, 0);
	CHECK_INT(h.pid, -1);
	free(cause);
	/* Without cause, the same failure. */
	CHECK_INT(healthz_probe("127.0.0.1", port, 2000, &h, NULL), -1);
}

static const struct test tests[] = {
    TEST(test_healthz_fixed_json),
    TEST(test_healthz_not_json),
    TEST(test_healthz_not_http),
    TEST(test_healthz_never_answers),
    TEST(test_healthz_refused),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
