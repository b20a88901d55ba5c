/*
 * attribution-linux: the process owning a local TCP connection: the
 * socket's inode and owner uid by its exact local and remote address
 * (NETLINK_SOCK_DIAG, one kernel lookup; /proc/net/tcp{,6} when netlink is
 * unavailable), then /proc/[pid]/fd (which process holds
 * "socket:[inode]").  Runs on the meter's worker thread, never on the
 * event loop.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "halton/attribution.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define PROC_MAX_FDS 65536
/* Most /proc entries looked at for one lookup. */
#define PROC_MAX_PIDS 1048576

/*
 * Formats an address and port the way /proc/net/tcp{,6} prints them: each
 * 32-bit word of the address in host order as %08X, then ":%04X".  Returns
 * 4 (tcp) or 6 (tcp6), or -1 for an unparsable address.  An IPv4-mapped
 * IPv6 address is taken as IPv4.
 */
static int
proc_format(const char *addr, int port, char *out, size_t len)
{
	struct in_addr a4;
	struct in6_addr a6;
	uint32_t w[4];

	if (inet_pton(AF_INET, addr, &a4) == 1) {
		snprintf(
		    out, len, "%08X:%04X", (unsigned)a4.s_addr, (unsigned)port);
		return 4;
	}
	if (inet_pton(AF_INET6, addr, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4.s_addr, &a6.s6_addr[12], 4);
		snprintf(
		    out, len, "%08X:%04X", (unsigned)a4.s_addr, (unsigned)port);
		return 4;
	}
	memcpy(w, &a6, sizeof(w));
	snprintf(out, len, "%08X%08X%08X%08X:%04X", (unsigned)w[0],
	    (unsigned)w[1], (unsigned)w[2], (unsigned)w[3], (unsigned)port);
	return 6;
}

/* The next space-separated field of *p: its start, its length in *len;
 * NULL at the end of the line. */
static const char *
next_field(const char **p, size_t *len)
{
	const char *s = *p, *e;

	while (*s == ' ')
		s++;
	if (*s == '\0' || *s == '\n')
		return NULL;
	for (e = s; *e != ' ' && *e != '\0' && *e != '\n'; e++)
		;
	*len = (size_t)(e - s);
	*p = e;
	return s;
}

/*
 * The inode of the socket local -> remote in one /proc/net file, or 0;
 * *uid gets the socket owner's uid.  Each line is only split as far as
 * its local address unless that matches (the common line is skipped after
 * one comparison), and the scan stops at the first match.
 */
static unsigned long
proc_inode(
    const char *file, const char *local, const char *remote, unsigned long *uid)
{
	FILE *f;
	char line[512], *end;
	const char *p, *fld;
	size_t llen = strlen(local), rlen = strlen(remote), n;
	unsigned long inode, owner, found = 0;
	int i;

	if ((f = fopen(file, "r")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL) /* header */
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		p = line;
		if (next_field(&p, &n) == NULL) /* sl */
			continue;
		if ((fld = next_field(&p, &n)) == NULL || n != llen ||
		    str_ncasecmp(fld, local, n) != 0)
			continue;
		if ((fld = next_field(&p, &n)) == NULL || n != rlen ||
		    str_ncasecmp(fld, remote, n) != 0)
			continue;
		for (i = 0; i < 4; i++) /* st tx:rx tr:when retrnsmt */
			if (next_field(&p, &n) == NULL)
				break;
		if (i < 4 || (fld = next_field(&p, &n)) == NULL)
			continue;
		owner = strtoul(fld, &end, 10);
		if (next_field(&p, &n) == NULL || /* timeout */
		    (fld = next_field(&p, &n)) == NULL)
			continue;
		inode = strtoul(fld, &end, 10);
		if (inode == 0)
			continue;
		found = inode;
		*uid = owner;
		break;
	}
out:
	fclose(f);
	return found;
}

/*
 * The pid that owned the last socket found, and the last two descriptors
 * it held one on: clients open several connections, so that pid is tried
 * first; a client that makes a new connection per request gets the same
 * lowest free descriptor again, or two alternate (the next connection is
 * opened before the previous one is closed), so those are tried before the
 * pid's whole table.  Separate atomics: a torn set only makes a try miss.
 */
static atomic_long last_owner = -1;
static atomic_int last_owner_fd[2] = {-1, -1};

/* Whether /proc/pid/fd/fd is the link want: one readlink. */
static int
pid_fd_is(long pid, int fd, const char *want, size_t wantlen)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	return n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0;
}

/*
 * Whether process pid (a /proc entry, opened relative to procfd) belongs
 * to uid and holds the fd whose link is want (its number in *fdp).
 * Processes it cannot read do not.
 */
static int
pid_holds(int procfd, long pid, unsigned long uid, const char *want,
    size_t wantlen, int *fdp)
{
	struct stat sb;
	struct dirent *fe;
	DIR *fds;
	char name[32], link[64];
	ssize_t n;
	int pfd, ffd, count = 0, found = 0;

	snprintf(name, sizeof(name), "%ld", pid);
	if ((pfd = openat(procfd, name, O_RDONLY | O_DIRECTORY)) == -1)
		return 0;
	if (fstat(pfd, &sb) == -1 || (unsigned long)sb.st_uid != uid) {
		close(pfd);
		return 0;
	}
	ffd = openat(pfd, "fd", O_RDONLY | O_DIRECTORY);
	close(pfd);
	if (ffd == -1)
		return 0;
	if ((fds = fdopendir(ffd)) == NULL) {
		close(ffd);
		return 0;
	}
	while ((fe = readdir(fds)) != NULL && count++ < PROC_MAX_FDS) {
		if (fe->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);
		/* Not "socket:[...]" of the same length: not it. */
		if (n == (ssize_t)wantlen && memcmp(link, want, wantlen) == 0) {
			*fdp = atoi(fe->d_name);
			found = 1;
			break;
		}
	}
	closedir(fds);
	return found;
}

/* Above any pid (pid_max is at most 2^22). */
#define PID_WRAP_BIAS (1L << 30)

/* The pid the kernel handed out last, or PID_WRAP_BIAS - 1 (everything
 * counts as older) when the file cannot be read. */
static long
proc_last_pid(void)
{
	char buf[32];
	ssize_t n;
	long last;
	int fd;

	if ((fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY)) == -1)
		return PID_WRAP_BIAS - 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return PID_WRAP_BIAS - 1;
	buf[n] = '\0';
	last = strtol(buf, NULL, 10);
	return last > 0 ? last : PID_WRAP_BIAS - 1;
}

static int
pid_desc_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The pid holding socket:[inode], or -1.  Only the processes of the
 * socket's owner (uid) are searched.  The previous owner goes first, then
 * the newest pids (counting down from ns_last_pid, across a wrap-around): a
 * client is usually a young process (curl, an SDK script) and must be found
 * before it exits, in a fraction of the time a full scan of long-lived
 * processes takes.  Non-numeric /proc entries are skipped on their first byte;
 * the scan stops at the first match.
 */
static long
proc_owner(unsigned long inode, unsigned long uid)
{
	DIR *proc;
	struct dirent *pe;
	char want[64], *end;
	size_t wantlen, n = 0, cap = 0, i;
	long *pids = NULL, pid, hint, last, found = -1;
	int fd = -1, hintfd, j;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	wantlen = strlen(want);
	hint = atomic_load(&last_owner);
	/* A process that holds the socket owns it: no uid check needed. */
	for (j = 0; hint > 0 && j < 2; j++) {
		hintfd = atomic_load(&last_owner_fd[j]);
		if (hintfd >= 0 && pid_fd_is(hint, hintfd, want, wantlen)) {
			if (j == 1) { /* most recent first */
				atomic_store(&last_owner_fd[1],
				    atomic_load(&last_owner_fd[0]));
				atomic_store(&last_owner_fd[0], hintfd);
			}
			return hint;
		}
	}
	if ((proc = opendir("/proc")) == NULL)
		return -1;
	if (hint > 0 && pid_holds(dirfd(proc), hint, uid, want, wantlen, &fd)) {
		found = hint;
		goto out;
	}
	while ((pe = readdir(proc)) != NULL && n < PROC_MAX_PIDS) {
		if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
			continue;
		pid = strtol(pe->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || pid == hint)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 512 : cap * 2;
			pids = xreallocarray(pids, cap, sizeof(*pids));
		}
		pids[n++] = pid;
	}
	/* Newest first: pids count down from the last one the kernel
	 * handed out, then (after a wrap-around) down from the top. */
	last = proc_last_pid();
	for (i = 0; i < n; i++)
		if (pids[i] <= last)
			pids[i] += PID_WRAP_BIAS;
	if (n > 0)
		qsort(pids, n, sizeof(*pids), pid_desc_cmp);
	for (i = 0; i < n; i++) {
		pid =
		    pids[i] > PID_WRAP_BIAS ? pids[i] - PID_WRAP_BIAS : pids[i];
		if (pid_holds(dirfd(proc), pid, uid, want, wantlen, &fd)) {
			found = pid;
			break;
		}
	}
out:
	if (found > 0) {
		if (found != hint)
			atomic_store(&last_owner_fd[0], -1);
		atomic_store(&last_owner, found);
		atomic_store(&last_owner_fd[1], atomic_load(&last_owner_fd[0]));
		atomic_store(&last_owner_fd[0], fd);
	}
	free(pids);
	closedir(proc);
	return found;
}

/* How long a sock_diag answer may take before the /proc fallback. */
#define DIAG_TIMEOUT_MS 500

/* 0: tests force the /proc/net scan. */
static atomic_int use_sock_diag = 1;

void
attribution_set_sock_diag(int on)
{
	atomic_store(&use_sock_diag, on != 0);
}

/*
 * One NETLINK_SOCK_DIAG socket for the process, made at the first lookup
 * and kept (socket() + close() per lookup showed in the profile of fresh
 * connections).  Lookups run on the meter's worker and, rarely, on the
 * loop (a record that ends before its lookup ran, bounded to a few
 * milliseconds): the loop never waits for the worker's answer, it takes a
 * socket of its own when the shared one is busy.  A socket whose request
 * failed or timed out is closed, so no late answer is ever read.
 */
static pthread_mutex_t diag_lock = PTHREAD_MUTEX_INITIALIZER;
static int diag_fd = -1;

static int
diag_open(void)
{
	struct timeval tv = {0, DIAG_TIMEOUT_MS * 1000};
	int fd;

	if ((fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG)) == -1)
		return -1;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * Asks the kernel (NETLINK_SOCK_DIAG, an exact-match request, not a dump)
 * for the TCP socket src:sport -> dst:dport of family.  Returns 1 and sets
 * *inode and *uid, 0 when no such socket exists, -1 when netlink cannot
 * answer (the caller falls back to /proc/net).
 */
static int
diag_find(int family, const void *src, int sport, const void *dst, int dport,
    unsigned long *inode, unsigned long *uid)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl sa;
	union {
		struct nlmsghdr align;
		char buf[8192];
	} ans;
	const struct nlmsghdr *h;
	const struct inet_diag_msg *d;
	const struct nlmsgerr *e;
	size_t alen = family == AF_INET ? 4 : 16;
	ssize_t n;
	unsigned int len;
	int fd, shared, rc = -1;

	if ((shared = pthread_mutex_trylock(&diag_lock) == 0)) {
		if (diag_fd == -1)
			diag_fd = diag_open();
		fd = diag_fd;
	} else
		fd = diag_open();
	if (fd == -1)
		goto out;
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.req.sdiag_family = (uint8_t)family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = ~0U;
	msg.req.id.idiag_sport = htons((uint16_t)sport);
	msg.req.id.idiag_dport = htons((uint16_t)dport);
	memcpy(msg.req.id.idiag_src, src, alen);
	memcpy(msg.req.id.idiag_dst, dst, alen);
	msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&sa,
	        sizeof(sa)) != (ssize_t)sizeof(msg) ||
	    (n = recv(fd, ans.buf, sizeof(ans.buf), 0)) <= 0) {
		if (shared) { /* a late answer must not reach the next ask */
			close(diag_fd);
			diag_fd = -1;
		}
		goto out;
	}
	len = (unsigned int)n;
	for (h = &ans.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				break;
			e = NLMSG_DATA(h);
			/* ENOENT: no such socket; anything else (EPERM,
			 * EOPNOTSUPP): let /proc/net decide. */
			if (e->error == -ENOENT)
				rc = 0;
			break;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(*d)))
			continue;
		d = NLMSG_DATA(h);
		/* inode 0: a closed (TIME_WAIT) socket, no owner any more. */
		if (d->idiag_inode == 0) {
			rc = 0;
			break;
		}
		*inode = d->idiag_inode;
		*uid = d->idiag_uid;
		rc = 1;
		break;
	}
out:
	if (shared)
		pthread_mutex_unlock(&diag_lock);
	else if (fd != -1)
		close(fd);
	return rc;
}

/*
 * The socket client:cport -> server:sport through sock_diag: as given,
 * and for an IPv4 pair also as the v4-mapped pair of a dual-stack IPv6
 * client socket.  Same returns as diag_find.
 */
static int
diag_lookup(const char *client, int cport, const char *server, int sport,
    unsigned long *inode, unsigned long *uid)
{
	struct in6_addr c6, s6;
	struct in_addr c4, s4;
	int v4, rc;

	if (inet_pton(AF_INET6, client, &c6) == 1 &&
	    inet_pton(AF_INET6, server, &s6) == 1) {
		if (!IN6_IS_ADDR_V4MAPPED(&c6) || !IN6_IS_ADDR_V4MAPPED(&s6))
			return diag_find(
			    AF_INET6, &c6, cport, &s6, sport, inode, uid);
		memcpy(&c4, &c6.s6_addr[12], 4);
		memcpy(&s4, &s6.s6_addr[12], 4);
	} else if (inet_pton(AF_INET, client, &c4) != 1 ||
	    inet_pton(AF_INET, server, &s4) != 1) {
		return 0;
	}
	v4 = diag_find(AF_INET, &c4, cport, &s4, sport, inode, uid);
	if (v4 == 1)
		return 1;
	memset(&c6, 0, sizeof(c6));
	memset(&s6, 0, sizeof(s6));
	c6.s6_addr[10] = c6.s6_addr[11] = 0xff;
	s6.s6_addr[10] = s6.s6_addr[11] = 0xff;
	memcpy(&c6.s6_addr[12], &c4, 4);
	memcpy(&s6.s6_addr[12], &s4, 4);
	rc = diag_find(AF_INET6, &c6, cport, &s6, sport, inode, uid);
	if (rc == 1)
		return 1;
	return v4 == -1 || rc == -1 ? -1 : 0;
}

static char *
read_link(const char *path)
{
	char buf[PATH_MAX];
	ssize_t n;

	if ((n = readlink(path, buf, sizeof(buf) - 1)) <= 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

int
attribution_process_describe(int64_t pid, struct attribution_process *out)
{
	char path[64], *exe, *comm, *s;
	size_t len;

	out->pid = pid;
	snprintf(path, sizeof(path), "/proc/%lld/exe", (long long)pid);
	if ((exe = read_link(path)) != NULL) {
		/* " (deleted)" after an upgrade of the binary */
		if (str_has_suffix(exe, " (deleted)"))
			exe[strlen(exe) - strlen(" (deleted)")] = '\0';
		s = strrchr(exe, '/');
		out->process = xstrdup(s != NULL ? s + 1 : exe);
		free(exe);
	} else {
		snprintf(path, sizeof(path), "/proc/%lld/comm", (long long)pid);
		if ((comm = file_read(path, &len)) != NULL) {
			out->process = xstrdup(str_trim(comm));
			free(comm);
		}
	}
	snprintf(path, sizeof(path), "/proc/%lld/cwd", (long long)pid);
	if ((out->cwd = read_link(path)) != NULL)
		out->project = attribution_project(out->cwd);
	return 0;
}

int
attribution_process_lookup(const char *client_addr, int client_port,
    const char *server_addr, int server_port, struct attribution_process *out)
{
	char local[64], remote[64];
	unsigned long inode = 0, uid = 0;
	long pid;
	int fam, fam2;

	attribution_process_init(out);
	if (client_addr == NULL || server_addr == NULL)
		return -1;
	switch (!atomic_load(&use_sock_diag)
	        ? -1
	        : diag_lookup(client_addr, client_port, server_addr,
	              server_port, &inode, &uid)) {
	case 1:
		goto owner;
	case 0:
		return -1;
	default:
		break;
	}
	fam = proc_format(client_addr, client_port, local, sizeof(local));
	fam2 = proc_format(server_addr, server_port, remote, sizeof(remote));
	if (fam < 0 || fam != fam2)
		return -1;
	if (fam == 4) {
		inode = proc_inode("/proc/net/tcp", local, remote, &uid);
		if (inode == 0) {
			/* A dual-stack client socket lists v4 peers as
			 * ::ffff:a.b.c.d in tcp6. */
			char l6[64], r6[64];
			struct in_addr a4;

			if (inet_pton(AF_INET, client_addr, &a4) == 1) {
				uint32_t w2 = htonl(0xffff);

				snprintf(l6, sizeof(l6),
				    "0000000000000000%08X%.8s:%04X",
				    (unsigned)w2, local, (unsigned)client_port);
				snprintf(r6, sizeof(r6),
				    "0000000000000000%08X%.8s:%04X",
				    (unsigned)w2, remote,
				    (unsigned)server_port);
				inode =
				    proc_inode("/proc/net/tcp6", l6, r6, &uid);
			}
		}
	} else {
		inode = proc_inode("/proc/net/tcp6", local, remote, &uid);
	}
	if (inode == 0)
		return -1;
owner:
	if ((pid = proc_owner(inode, uid)) < 0)
		return -1;
	return attribution_process_describe(pid, out);
}
