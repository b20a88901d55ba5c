/*
 * attribution-macos: the process owning a local TCP connection, through
 * libproc: every pid's file descriptors (PROC_PIDLISTFDS), each socket's
 * TCP endpoints (PROC_PIDFDSOCKETINFO), then the executable path and the
 * current directory (PROC_PIDVNODEPATHINFO).  Builds on macOS only.
 */
#if defined(__APPLE__)

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <libproc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halton/attribution.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define MACOS_MAX_PIDS 65536
#define MACOS_MAX_FDS  16384

struct endpoint {
	int family; /* AF_INET or AF_INET6 */
	struct in_addr a4;
	struct in6_addr a6;
	int port;
};

static int
endpoint_parse(const char *addr, int port, struct endpoint *e)
{
	memset(e, 0, sizeof(*e));
	e->port = port;
	if (inet_pton(AF_INET, addr, &e->a4) == 1) {
		e->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &e->a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&e->a6)) {
			memcpy(&e->a4, &e->a6.s6_addr[12], 4);
			e->family = AF_INET;
		} else {
			e->family = AF_INET6;
		}
		return 0;
	}
	return -1;
}

/* Whether one side of a socket's in_sockinfo equals e. */
static int
endpoint_equal(const struct endpoint *e, int vflag,
    const struct in4in6_addr *a46, const struct in6_addr *a6, int port_be)
{
	if (ntohs((uint16_t)port_be) != e->port)
		return 0;
	if (e->family == AF_INET) {
		if ((vflag & INI_IPV4) == 0)
			return 0;
		return memcmp(&a46->i46a_addr4, &e->a4, sizeof(e->a4)) == 0;
	}
	if ((vflag & INI_IPV6) == 0)
		return 0;
	return memcmp(a6, &e->a6, sizeof(e->a6)) == 0;
}

/* Whether pid holds a TCP socket local -> remote. */
static int
pid_has_socket(
    pid_t pid, const struct endpoint *local, const struct endpoint *remote)
{
	struct proc_fdinfo *fds;
	struct socket_fdinfo si;
	struct in_sockinfo *in;
	int size, n, i, found = 0;

	size = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, NULL, 0);
	if (size <= 0)
		return 0;
	if ((size_t)size > MACOS_MAX_FDS * sizeof(struct proc_fdinfo))
		size = (int)(MACOS_MAX_FDS * sizeof(struct proc_fdinfo));
	fds = xmalloc((size_t)size);
	size = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, fds, size);
	n = size > 0 ? size / (int)sizeof(struct proc_fdinfo) : 0;
	for (i = 0; i < n && !found; i++) {
		if (fds[i].proc_fdtype != PROX_FDTYPE_SOCKET)
			continue;
		if (proc_pidfdinfo(pid, fds[i].proc_fd, PROC_PIDFDSOCKETINFO,
		        &si, sizeof(si)) != (int)sizeof(si))
			continue;
		if (si.psi.soi_kind != SOCKINFO_TCP)
			continue;
		in = &si.psi.soi_proto.pri_tcp.tcpsi_ini;
		if (endpoint_equal(local, in->insi_vflag,
		        &in->insi_laddr.ina_46, &in->insi_laddr.ina_6,
		        in->insi_lport) &&
		    endpoint_equal(remote, in->insi_vflag,
		        &in->insi_faddr.ina_46, &in->insi_faddr.ina_6,
		        in->insi_fport))
			found = 1;
	}
	free(fds);
	return found;
}

void
attribution_set_sock_diag(int on)
{
	(void)on;
}

int
attribution_process_describe(int64_t pid, struct attribution_process *out)
{
	char path[PROC_PIDPATHINFO_MAXSIZE];
	struct proc_vnodepathinfo vpi;
	const char *s;

	out->pid = pid;
	if (proc_pidpath((pid_t)pid, path, sizeof(path)) > 0) {
		s = strrchr(path, '/');
		out->process = xstrdup(s != NULL ? s + 1 : path);
	} else if (proc_name((pid_t)pid, path, sizeof(path)) > 0) {
		out->process = xstrdup(path);
	}
	if (proc_pidinfo((pid_t)pid, PROC_PIDVNODEPATHINFO, 0, &vpi,
	        sizeof(vpi)) == (int)sizeof(vpi) &&
	    vpi.pvi_cdir.vip_path[0] == '/') {
		out->cwd = xstrdup(vpi.pvi_cdir.vip_path);
		out->project = attribution_project(out->cwd);
	}
	return 0;
}

int
attribution_process_lookup(const char *client_addr, int client_port,
    const char *server_addr, int server_port, struct attribution_process *out)
{
	struct endpoint local, remote;
	pid_t *pids;
	int size, n, i;
	int64_t found = -1;

	attribution_process_init(out);
	if (client_addr == NULL || server_addr == NULL ||
	    endpoint_parse(client_addr, client_port, &local) == -1 ||
	    endpoint_parse(server_addr, server_port, &remote) == -1 ||
	    local.family != remote.family)
		return -1;
	size = proc_listpids(PROC_ALL_PIDS, 0, NULL, 0);
	if (size <= 0)
		return -1;
	if ((size_t)size > MACOS_MAX_PIDS * sizeof(pid_t))
		size = (int)(MACOS_MAX_PIDS * sizeof(pid_t));
	pids = xmalloc((size_t)size);
	size = proc_listpids(PROC_ALL_PIDS, 0, pids, size);
	n = size > 0 ? size / (int)sizeof(pid_t) : 0;
	for (i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		if (pid_has_socket(pids[i], &local, &remote)) {
			found = pids[i];
			break;
		}
	}
	free(pids);
	if (found < 0)
		return -1;
	return attribution_process_describe(found, out);
}

#endif /* __APPLE__ */
