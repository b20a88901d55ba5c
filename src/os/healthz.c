/*
 * healthz: the daemon's health probe over a plain, non-blocking socket.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "halton/healthz.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static int
remaining_ms(uint64_t deadline)
{
	uint64_t now = time_mono_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/*
 * A socket connected to ai before the deadline, trying each address in
 * turn; -1 with *err the errno of the last failure (ETIMEDOUT when the
 * deadline passed).
 */
static int
connect_any(const struct addrinfo *ai, uint64_t deadline, int *err)
{
	const struct addrinfo *a;
	struct pollfd pfd;
	socklen_t sl;
	int fd, e;

	*err = EIO;
	for (a = ai; a != NULL; a = a->ai_next) {
		if ((fd = socket(a->ai_family, SOCK_STREAM, 0)) == -1) {
			*err = errno;
			continue;
		}
		e = 0;
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
			e = errno;
		else if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			e = 0;
		else if (errno != EINPROGRESS)
			e = errno;
		else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, remaining_ms(deadline)) <= 0)
				e = ETIMEDOUT;
			else {
				sl = sizeof(e);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
				        &sl) == -1)
					e = errno;
			}
		}
		if (e == 0)
			return fd;
		*err = e;
		close(fd);
		if (e == ETIMEDOUT)
			break;
	}
	return -1;
}

static int
write_all(int fd, const char *s, size_t n, uint64_t deadline)
{
	struct pollfd pfd;
	ssize_t w;

	while (n > 0) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((w = write(fd, s, n)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static long
json_long(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static void
json_copy(const cJSON *o, const char *key, char *buf, size_t len, int *has)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v))
		return;
	snprintf(buf, len, "%s", v->valuestring);
	if (has != NULL)
		*has = 1;
}

/* Fills out from an HTTP answer; -1 when it is not one. */
static int
parse_answer(const char *text, struct healthz *out)
{
	const char *body;
	cJSON *j;
	int code;

	if (!str_has_prefix(text, "HTTP/1.") || strlen(text) < 12 ||
	    text[8] != ' ')
		return -1;
	if (sscanf(text + 9, "%3d", &code) != 1)
		return -1;
	out->http_status = code;
	if ((body = strstr(text, "\r\n\r\n")) == NULL ||
	    (j = cJSON_Parse(body + 4)) == NULL)
		return 0;
	if (cJSON_IsObject(j)) {
		out->is_json = 1;
		json_copy(j, "status", out->status, sizeof(out->status), NULL);
		json_copy(j, "version", out->version, sizeof(out->version),
		    &out->has_version);
		out->pid = json_long(j, "pid");
		out->uptime_s = json_long(j, "uptime_s");
		out->connections = json_long(j, "connections");
		out->exchanges = json_long(j, "exchanges");
	}
	cJSON_Delete(j);
	return 0;
}

static void
reset(struct healthz *out)
{
	memset(out, 0, sizeof(*out));
	out->pid = out->uptime_s = out->connections = out->exchanges = -1;
}

int
healthz_probe(const char *host, int port, int timeout_ms, struct healthz *out,
    char **cause)
{
	struct addrinfo hints, *ai = NULL;
	struct pollfd pfd;
	struct strbuf sb;
	char portstr[16], req[320], buf[4096], *why = NULL;
	uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms;
	ssize_t n;
	int fd = -1, rc = -1, e, timed_out = 0;

	reset(out);
	if (cause != NULL)
		*cause = NULL;
	strbuf_init(&sb);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((e = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		why = xstrdup(gai_strerror(e));
		goto out;
	}
	if ((fd = connect_any(ai, deadline, &e)) == -1) {
		why = xstrdup(strerror(e));
		goto out;
	}
	snprintf(req, sizeof(req),
	    "GET /healthz HTTP/1.1\r\nHost: %s%s%s:%d\r\n"
	    "Connection: close\r\n\r\n",
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port);
	if (write_all(fd, req, strlen(req), deadline) == -1) {
		why = xstrdup(strerror(errno));
		goto out;
	}
	while (sb.len <= HEALTHZ_MAX_BYTES) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
			timed_out = 1;
			break;
		}
		if ((n = read(fd, buf, sizeof(buf))) == -1 &&
		    (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		strbuf_add(&sb, buf, (size_t)n);
	}
	if (sb.len == 0) {
		why = timed_out ? xasprintf("connected, but no answer "
		                            "(timed out after %d ms)",
		                      timeout_ms)
		                : xstrdup("connected, but no answer");
		goto out;
	}
	if (parse_answer(sb.data, out) == -1) {
		reset(out);
		why = xstrdup("not an HTTP answer");
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (ai != NULL)
		freeaddrinfo(ai);
	strbuf_free(&sb);
	if (cause != NULL)
		*cause = why;
	else
		free(why);
	return rc;
}
