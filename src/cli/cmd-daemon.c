/*
 * daemon: the TLS-terminating forward proxy.  This file only wires things
 * together: config, lock + pid file, detaching, the CA and TLS contexts,
 * the proxy, the meter (the proxy's exchange hooks), the store (fed by the
 * meter, flushed from a timer so the relay never waits on SQLite), the
 * dashboard (the proxy's local answers) and signals.  It is the one place
 * where engine, meter and store meet.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "halton/ca.h"
#include "halton/cli.h"
#include "halton/dashboard.h"
#include "halton/meter.h"
#include "halton/platform.h"
#include "halton/store.h"
#include "halton/config.h"
#include "halton/exchange.h"
#include "halton/intercept.h"
#include "halton/log.h"
#include "halton/paths.h"
#include "halton/proxy.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define SHUTDOWN_GRACE_S 10

struct daemon_state {
	const struct cmd *cmd;
	struct event_base *base;
	struct proxy *proxy;
	struct intercept_list *intercept;
	struct ca *ca;
	struct meter *meter;
	struct store *store;
	struct dashboard *dashboard;
	struct event *flush_timer;
	int stopping;
	/* The TLS contexts, made on first use (tls_ctx_cb): [0] the client
	 * (upstream) one, [1] the server (client-facing) one.  tls_error is
	 * the last failure logged for each, so a context that keeps failing
	 * is logged once, not at every connection. */
	const struct strlist *upstream_ca;
	SSL_CTX *tls_ctx[2];
	char *tls_error[2];
};

/* Arms the store's flush timer: at once when a batch is full or more is
 * queued than one transaction takes, else after STORE_FLUSH_INTERVAL_MS. */
static void
flush_schedule(struct daemon_state *d, int now)
{
	struct timeval tv = {0, 0};

	if (d->flush_timer == NULL)
		return;
	if (!now) {
		if (evtimer_pending(d->flush_timer, NULL))
			return;
		tv.tv_usec = STORE_FLUSH_INTERVAL_MS * 1000;
	}
	evtimer_add(d->flush_timer, &tv);
}

/* Commits the queued records in one transaction.  On a busy, locked or
 * read-only database the queue stays (and in the journal) and the next
 * tick tries again: a record is never dropped. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_state *d = arg;

	/* Records that waited for their process lookup go in now. */
	if (d->meter != NULL)
		meter_poll(d->meter);
	switch (store_flush(d->store)) {
	case STORE_FLUSH_DONE:
		break;
	case STORE_FLUSH_MORE:
		flush_schedule(d, 1);
		break;
	default:
		flush_schedule(d, 0);
		break;
	}
	if (d->meter != NULL && meter_pending(d->meter) > 0)
		flush_schedule(d, 0);
}

/* The meter has a record waiting for its process lookup: poll soon. */
static void
meter_poll_cb(void *arg)
{
	flush_schedule(arg, 0);
}

/* The meter's finished record: journal + queue, never SQLite here. */
static void
record_cb(void *arg, struct usage_record *rec)
{
	struct daemon_state *d = arg;

	if (store_submit_take(d->store, rec) != 0)
		log_warnx("cannot journal the record of %s %s: %s",
		    rec->host != NULL ? rec->host : "?",
		    rec->path != NULL ? rec->path : "?",
		    store_last_error(d->store));
	usage_record_free(rec);
	free(rec);
	flush_schedule(d, store_pending(d->store) >= STORE_FLUSH_BATCH);
}

static void
ratelimit_cb(void *arg, struct ratelimit_snapshot *snap)
{
	struct daemon_state *d = arg;

	if (store_submit_ratelimit(d->store, snap) != 0)
		log_warnx("cannot journal a rate-limit snapshot: %s",
		    store_last_error(d->store));
	ratelimit_snapshot_free(snap);
	free(snap);
	flush_schedule(d, 0);
}

static int
intercept_cb(void *arg, const char *host, int port)
{
	struct daemon_state *d = arg;

	return intercept_list_match(d->intercept, host);
}

/* The daemon's own pages (the dashboard and its JSON API). */
static int
local_cb(void *arg, const char *method, const char *target, size_t len,
    struct strbuf *body, const char **ctype)
{
	struct daemon_state *d = arg;

	if (d->dashboard == NULL || !dashboard_owns(target, len))
		return 0;
	return dashboard_answer(
	    d->dashboard, method, target, len, time_now_ms(), body, ctype);
}

/*
 * The proxy's TLS contexts, made when the first intercepted connection needs
 * them: an idle daemon, or one that only tunnels, does not hold libssl's
 * pages and the contexts' heap (about 0.5 MiB).  What a user must see at
 * start (an unreadable or broken --upstream-ca file, system roots that are
 * not PEM) is checked at start by tls_client_check; the CA is loaded at
 * start too.  A context that cannot be made later (a file removed since) is
 * logged and NULL is returned: that connection fails (the client's TLS is
 * closed, an upstream handshake answers 502) and the next connection tries
 * again, so fixing the file needs no restart.
 */
static SSL_CTX *
tls_ctx_cb(void *arg, int server)
{
	struct daemon_state *d = arg;
	const char *what = server ? "client-facing" : "upstream";
	SSL_CTX *ctx;
	char *cause = NULL;
	int i = server ? 1 : 0;

	if (d->tls_ctx[i] != NULL)
		return d->tls_ctx[i];
	if (server)
		ctx = tls_server_ctx_new(d->ca, &cause);
	else
		ctx = tls_client_ctx_new(NULL, d->upstream_ca, &cause);
	if (ctx == NULL) {
		if (cause == NULL)
			cause = xstrdup("unknown error");
		if (d->tls_error[i] == NULL ||
		    strcmp(d->tls_error[i], cause) != 0)
			log_warnx("cannot make the %s TLS context: %s "
			          "(tried again at the next connection)",
			    what, cause);
		free(d->tls_error[i]);
		d->tls_error[i] = cause;
		return NULL;
	}
	if (d->tls_error[i] != NULL) {
		log_info("made the %s TLS context", what);
		free(d->tls_error[i]);
		d->tls_error[i] = NULL;
	}
	d->tls_ctx[i] = ctx;
	return ctx;
}

/* Takes the daemon lock (state_dir/daemon.pid, fcntl write lock held for
 * the life of the process) and writes our pid.  Returns the fd, or -1 with
 * a cause naming the running daemon's pid. */
static int
pidfile_lock(const char *path, char **cause)
{
	struct flock fl;
	char buf[32];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		str_trim(buf);
		*cause = xasprintf("already running (pid %s)",
		    buf[0] != '\0' ? buf : "unknown");
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
shutdown_done_cb(void *arg)
{
	struct daemon_state *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
reload_config(struct daemon_state *d)
{
	struct config cfg;
	struct intercept_list *l;
	char *path = paths_config_file(), *cause = NULL;

	if (config_load(&cfg, path, &cause) != 0) {
		log_warnx("reload: %s (keeping the old config)", cause);
		config_free(&cfg);
		free(cause);
		free(path);
		return;
	}
	free(path);
	log_set_level(cfg.log_level);
	l = intercept_list_new(&cfg.intercept);
	proxy_set_intercept(d->proxy, l);
	intercept_list_free(d->intercept);
	d->intercept = l;
	log_info("reloaded the config: %zu intercept patterns",
	    intercept_list_count(l));
	config_free(&cfg);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;

	if (sig == SIGHUP) {
		if (log_reopen() != 0)
			log_warn("reopening the log");
		log_info("SIGHUP: log reopened");
		reload_config(d);
		return;
	}
	if (d->stopping) {
		log_info("second signal: stopping now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->stopping = 1;
	log_info("%s: finishing %zu connection(s) (up to %d s)",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT", proxy_connections(d->proxy),
	    SHUTDOWN_GRACE_S);
	proxy_shutdown(d->proxy, SHUTDOWN_GRACE_S, shutdown_done_cb, d);
}

/* Detaches: the parent waits on a pipe until the child reports "ok" or an
 * error (which the parent prints), so `daemon` fails visibly when the lock
 * or the listener cannot be had.  Returns the pipe's write end in the
 * child; the parent exits. */
static int
detach(const struct cmd *cmd)
{
	char buf[1024];
	ssize_t n, total = 0;
	int p[2], fd;
	pid_t pid;

	if (pipe(p) == -1) {
		cli_error(cmd, "pipe: %s", strerror(errno));
		exit(1);
	}
	if ((pid = fork()) == -1) {
		cli_error(cmd, "fork: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], buf + total,
		            sizeof(buf) - 1 - (size_t)total)) > 0)
			total += n;
		buf[total] = '\0';
		if (strncmp(buf, "ok", 2) == 0)
			exit(0);
		cli_error(cmd, "%s", total > 0 ? buf : "failed to start");
		exit(1);
	}
	close(p[0]);
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (chdir("/") == -1)
		(void)0;
	return p[1];
}

static void
report(int pipefd, const struct cmd *cmd, const char *msg)
{
	if (pipefd >= 0) {
		ssize_t w = write(pipefd, msg, strlen(msg));
		(void)w;
	} else if (strcmp(msg, "ok") != 0)
		cli_error(cmd, "%s", msg);
}

static int
daemon_exec(const struct cmd *self, int argc, char **argv)
{
	struct daemon_state d;
	struct config cfg;
	struct strlist connect_to = {NULL, 0}, upstream_ca = {NULL, 0};
	struct proxy_options po;
	struct ca_options co;
	struct event *sigs[3] = {NULL, NULL, NULL};
	const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
	char *listen = NULL, *host = NULL, *cause = NULL, *state = NULL;
	char *cadir = NULL, *pidpath = NULL, *logpath = NULL;
	char *dbpath = NULL, *journalpath = NULL;
	int foreground = 0, port = 0, pipefd = -1, lockfd = -1, rc = 1;
	int created = 0, i;
	size_t k;

	memset(&d, 0, sizeof(d));
	d.cmd = self;
	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--foreground") == 0 || strcmp(a, "-f") == 0)
			foreground = 1;
		else if (strcmp(a, "--listen") == 0 && i + 1 < argc)
			listen = argv[++i];
		else if (strncmp(a, "--listen=", 9) == 0)
			listen = (char *)a + 9;
		else if (strcmp(a, "--connect-to") == 0 && i + 1 < argc)
			strlist_add(&connect_to, argv[++i]);
		else if (strncmp(a, "--connect-to=", 13) == 0)
			strlist_add(&connect_to, a + 13);
		else if (strcmp(a, "--upstream-ca") == 0 && i + 1 < argc)
			strlist_add(&upstream_ca, argv[++i]);
		else if (strncmp(a, "--upstream-ca=", 14) == 0)
			strlist_add(&upstream_ca, a + 14);
		else {
			strlist_free(&connect_to);
			strlist_free(&upstream_ca);
			return cli_usage_error(
			    self, "unknown argument '%s'", a);
		}
	}
	if (cli_load_config(self, &cfg) != 0) {
		strlist_free(&connect_to);
		strlist_free(&upstream_ca);
		return 1;
	}
	if (config_parse_addr(
	        listen != NULL ? listen : cfg.listen, &host, &port) != 0) {
		cli_error(self, "bad listen address '%s'",
		    listen != NULL ? listen : cfg.listen);
		goto out;
	}
	if (!config_addr_is_loopback(host) && !cfg.allow_remote) {
		cli_error(self,
		    "refusing to listen on non-loopback %s (set "
		    "allow_remote = yes in the config to allow it)",
		    host);
		goto out;
	}
	for (k = 0; k < cfg.upstream_ca.n; k++)
		strlist_add(&upstream_ca, cfg.upstream_ca.v[k]);
	if (paths_ensure_state_dir(&cause) != 0) {
		cli_error(self, "%s", cause);
		goto out;
	}
	state = paths_state_dir();
	cadir = paths_ca_dir();
	pidpath = paths_state_file("daemon.pid");
	logpath = paths_state_file("daemon.log");
	dbpath =
	    cfg.db != NULL ? xstrdup(cfg.db) : paths_state_file("meter.db");
	journalpath = paths_state_file("journal");

	if (!foreground)
		pipefd = detach(self);
	signal(SIGPIPE, SIG_IGN);
	log_set_level(cfg.log_level);
	if (!foreground && log_open(logpath) != 0) {
		report(pipefd, self, "cannot open the log file");
		goto out;
	}
	log_libevent_init();
	if ((lockfd = pidfile_lock(pidpath, &cause)) == -1) {
		report(pipefd, self, cause);
		goto out;
	}
	/* After detaching: the journal's lock is not inherited by a child.
	 * SQLite is opened by the first record (or now, to replay the
	 * journal): an idle daemon does not hold its pages. */
	if (store_open_lazy(&d.store, dbpath, journalpath, &cause) != 0) {
		report(pipefd, self, cause);
		goto out;
	}
	if (!config_addr_is_loopback(host))
		log_warnx("listening on non-loopback %s (allow_remote = yes): "
		          "anyone who can reach it can use this proxy",
		    host);

	d.intercept = intercept_list_new(&cfg.intercept);
	memset(&co, 0, sizeof(co));
	co.ca_dir = cadir;
	co.state_dir = state;
	co.intercept = d.intercept;
	co.name_constraints = cfg.ca_name_constraints;
	if (ca_load_or_create(&d.ca, &co, &created, &cause) != 0) {
		report(pipefd, self, cause);
		goto out;
	}
	(void)created;
	/* The contexts are made on first use (tls_ctx_cb); what would make
	 * them fail is refused now. */
	if (tls_client_check(NULL, &upstream_ca, &cause) != 0) {
		report(pipefd, self, cause);
		goto out;
	}
	d.upstream_ca = &upstream_ca;
	/* No EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST: the relay's streams only
	 * change interest when a socket blocks, so there is little to
	 * coalesce, and the changelist mishandles a descriptor closed and
	 * reused within one turn of the loop. */
	if ((d.base = event_base_new()) == NULL) {
		report(pipefd, self, "cannot create the event loop");
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.listen_host = host;
	po.listen_port = port;
	po.max_connections = cfg.max_connections;
	po.intercept = d.intercept;
	po.ca = d.ca;
	po.ctx_get = tls_ctx_cb;
	po.ctx_arg = &d;
	po.connect_to = &connect_to;
	po.upstream_proxy = cfg.upstream_proxy;
	{
		struct meter_options mo;

		memset(&mo, 0, sizeof(mo));
		mo.body_limit = cfg.meter_body_limit;
		mo.resolve_process = 1;
		mo.intercept = intercept_cb;
		mo.intercept_arg = &d;
		mo.poll_cb = meter_poll_cb;
		d.meter = meter_new(&mo, record_cb, ratelimit_cb, &d);
	}
	d.flush_timer = evtimer_new(d.base, flush_cb, &d);
	/* Records a previous run left in the journal go in now. */
	flush_schedule(&d, 1);
	d.dashboard = dashboard_new(dbpath);
	po.hooks = meter_hooks();
	po.hooks_arg = d.meter;
	po.local = local_cb;
	po.local_arg = &d;
	if (proxy_new(&d.proxy, d.base, &po, &cause) != 0) {
		report(pipefd, self, cause);
		goto out;
	}
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d.base, signums[i], signal_cb, &d);
		evsignal_add(sigs[i], NULL);
	}
	/* macOS --apps/--full: re-apply the launchctl variables (they do not
	 * survive logout); a no-op elsewhere. */
	platform_daemon_started(&cfg);
	log_info("halton-meter %s listening on %s:%d (pid %ld)", HALTON_VERSION,
	    host, proxy_port(d.proxy), (long)getpid());
	report(pipefd, self, "ok");
	if (pipefd >= 0) {
		close(pipefd);
		pipefd = -1;
	}
	event_base_dispatch(d.base);
	log_info("stopped after %llu exchange(s), %llu record(s)",
	    (unsigned long long)proxy_exchanges(d.proxy),
	    (unsigned long long)meter_records(d.meter));
	rc = 0;
out:
	if (pipefd >= 0)
		close(pipefd);
	for (i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	/* The proxy first: closing its connections ends their exchanges, and
	 * the meter hands those records to the store before it closes. */
	proxy_free(d.proxy);
	if (d.meter != NULL)
		meter_free(d.meter);
	if (d.flush_timer != NULL)
		event_free(d.flush_timer);
	if (d.store != NULL) {
		size_t left = store_close(d.store, STORE_CLOSE_WAIT_MS);

		if (left > 0)
			log_warnx("%zu record(s) stay in the journal for the "
			          "next start",
			    left);
	}
	dashboard_free(d.dashboard);
	if (d.base != NULL)
		event_base_free(d.base);
	for (i = 0; i < 2; i++) {
		SSL_CTX_free(d.tls_ctx[i]);
		free(d.tls_error[i]);
	}
	ca_free(d.ca);
	intercept_list_free(d.intercept);
	if (lockfd != -1) {
		unlink(pidpath);
		close(lockfd);
	}
	free(cause);
	free(host);
	free(state);
	free(cadir);
	free(pidpath);
	free(logpath);
	free(dbpath);
	free(journalpath);
	strlist_free(&connect_to);
	strlist_free(&upstream_ca);
	config_free(&cfg);
	return rc;
}

const struct cmd cmd_daemon = {
    .name = "daemon",
    .usage = "[--foreground] [--listen ADDR:PORT] "
             "[--connect-to HOST:PORT:HOST2:PORT2]... [--upstream-ca FILE]...",
    .summary = "run the metering proxy (127.0.0.1:8081)",
    .help = "  --foreground        stay in front and log to stderr "
            "(launchd, systemd)\n"
            "  --listen ADDR:PORT  listen there instead of the config's "
            "`listen`\n"
            "  --connect-to H:P:H2:P2\n"
            "                      connect to H2:P2 for H:P (SNI, Host and "
            "verification\n"
            "                      still use H); applies to tunnels too\n"
            "  --upstream-ca FILE  also trust FILE's CAs for upstream "
            "servers\n",
    .exec = daemon_exec,
};
