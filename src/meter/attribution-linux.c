/*
 * attribution-linux: the process owning a local TCP connection, from
 * /proc/net/tcp{,6} (socket inode by local and remote address) and
 * /proc/[pid]/fd (which process holds "socket:[inode]").
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/attribution.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define PROC_MAX_FDS 65536

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

/* The inode of the socket local -> remote in one /proc/net file, or 0;
 * *uid gets the socket owner's uid. */
static unsigned long
proc_inode(
    const char *file, const char *local, const char *remote, unsigned long *uid)
{
	FILE *f;
	char line[512], l[64], r[64];
	unsigned long inode, owner, found = 0;
	int n;

	if ((f = fopen(file, "r")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL) /* header */
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		n = sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %lu %*s %lu",
		    l, r, &owner, &inode);
		if (n != 4)
			continue;
		if (str_casecmp(l, local) == 0 && str_casecmp(r, remote) == 0 &&
		    inode != 0) {
			found = inode;
			*uid = owner;
			break;
		}
	}
out:
	fclose(f);
	return found;
}

/* The pid holding socket:[inode], or -1.  Only the processes of the
 * socket's owner (uid) are searched; the ones it cannot read are skipped. */
static long
proc_owner(unsigned long inode, unsigned long uid)
{
	struct stat sb;
	DIR *proc, *fds;
	struct dirent *pe, *fe;
	char path[PATH_MAX], want[64], link[64];
	ssize_t n;
	long pid, found = -1;
	char *end;
	int count;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	if ((proc = opendir("/proc")) == NULL)
		return -1;
	while (found < 0 && (pe = readdir(proc)) != NULL) {
		pid = strtol(pe->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld", pid);
		if (stat(path, &sb) == -1 || (unsigned long)sb.st_uid != uid)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		if ((fds = opendir(path)) == NULL)
			continue;
		count = 0;
		while ((fe = readdir(fds)) != NULL && count++ < PROC_MAX_FDS) {
			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid,
			    fe->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				found = pid;
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
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
	if ((pid = proc_owner(inode, uid)) < 0)
		return -1;
	return attribution_process_describe(pid, out);
}
