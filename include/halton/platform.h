/*
 * platform: the OS backends that wire clients to the meter, one ops table
 * for darwin and one for linux.
 *
 * The backend is chosen by uname(3), or forced with
 * HALTON_METER_PLATFORM=darwin|linux.  Both build and run everywhere: they
 * only spawn commands (launchctl, security, networksetup, systemctl,
 * update-ca-certificates, certutil, keytool, gsettings, ...) through
 * exec_run() and write files under $HOME or paths_sys(), so tests drive
 * them with recording fakes on PATH and a temporary HALTON_METER_SYSROOT.
 *
 * Every change is recorded in the manifest before or as it is made, with
 * what is needed to undo it; revert() undoes one entry.
 */
#ifndef HALTON_PLATFORM_H
#define HALTON_PLATFORM_H

#include <stddef.h>
#include <sys/types.h>

#include "halton/config.h"
#include "halton/envvars.h"
#include "halton/exec.h"
#include "halton/log.h"
#include "halton/manifest.h"
#include "halton/util.h"

#define PLATFORM_CA_NAME  "halton-meter CA" /* NSS nickname */
#define PLATFORM_CA_ALIAS "halton-meter"    /* Java alias, file names */

/* The service names `init --apps` installs and doctor checks. */
#define PLATFORM_DARWIN_LABEL    "com.halton-meter.daemon" /* launchd */
#define PLATFORM_DARWIN_AGENTS   "Library/LaunchAgents"    /* under HOME */
#define PLATFORM_LINUX_UNIT      "halton-meter.service"    /* systemd --user */
#define PLATFORM_LINUX_ENVD_FILE "60-halton-meter.conf"
#define PLATFORM_LINUX_ENVD                                                    \
	"environment.d/" PLATFORM_LINUX_ENVD_FILE /* ~/.config */

struct platform_ctx {
	const struct config *cfg;
	const struct envvars *env;
	struct manifest *m;
	const char *home;
	const char *state_dir;
	const char *ca_pem;     /* state_dir/ca.pem */
	const char *self_exe;   /* absolute path of this binary */
	const char *proxy_host; /* listen host as clients reach it */
	int proxy_port;
	int dry_run;
	int problems;       /* steps that failed (already reported) */
	int changes;        /* changes made (or planned in a dry run) */
	int need_reload;    /* backend: something to refresh at the end */
	struct strbuf *out; /* the checklist */
};

struct platform {
	const char *name;       /* "darwin", "linux" */
	const char *bash_rc;    /* bash rc file, relative to $HOME */
	const char *pipx_venvs; /* default pipx venvs dir, relative to $HOME */
	/* --apps: every new process gets the variables; the service. */
	void (*apps)(struct platform_ctx *);
	/* --full: system trust and system proxy. */
	void (*full)(struct platform_ctx *);
	/* Undoes one entry of this backend's kinds: 1 done, 0 not one of
	 * its kinds, -1 failed (reported). */
	int (*revert)(struct platform_ctx *, cJSON *);
	/* Called once after a series of reverts (e.g. daemon-reload). */
	void (*revert_finish)(struct platform_ctx *);
	/* Re-applies the session variables (darwin: launchctl setenv) when
	 * the daemon starts; NULL where nothing is needed. */
	void (*session_env)(const struct envvars *);
};

extern const struct platform platform_darwin;
extern const struct platform platform_linux;

/* The backend for this machine ($HALTON_METER_PLATFORM, else uname).
 * NULL with *cause when the variable names an unknown platform. */
const struct platform *platform_get(char **);
/* The absolute path of the running binary ($HALTON_METER_SELF, else
 * /proc/self/exe, else "halton-meter" found in PATH). */
char *platform_self_exe(void);

/* Fills the context's paths (home, state dir, ca.pem, self, proxy
 * address from cfg); release with platform_ctx_free(). */
void platform_ctx_init(struct platform_ctx *, const struct config *,
    const struct envvars *, struct manifest *, struct strbuf *, int);
void platform_ctx_free(struct platform_ctx *);
/* Reverses, last first, every manifest entry whose level is above
 * min_level (-1: all) and that a backend knows how to undo, removing each
 * one undone from the manifest (in a dry run nothing is removed). */
void platform_revert_above(const struct platform *, struct platform_ctx *, int);

/* For the daemon at start: when init --apps or --full is installed,
 * re-applies the session variables (darwin: launchctl setenv, which does
 * not survive logout).  Quiet; failures are ignored. */
void platform_daemon_started(const struct config *);

/* Checklist lines: "  + ..." done, "  = ..." already so, "  ! ..." problem
 * (counted), "  - ..." skipped. */
void platform_done(struct platform_ctx *, const char *, ...) LOG_PRINTF(2, 3);
void platform_same(struct platform_ctx *, const char *, ...) LOG_PRINTF(2, 3);
void platform_problem(struct platform_ctx *, const char *, ...)
    LOG_PRINTF(2, 3);
void platform_skip(struct platform_ctx *, const char *, ...) LOG_PRINTF(2, 3);

/* Runs a read-only query (also in a dry run).  0 if it exited 0. */
int platform_query(const char *const *, struct exec_result *);
/* Runs a command that changes the machine; in a dry run prints it and
 * returns 0.  On failure *cause describes it (command and stderr). */
int platform_change(struct platform_ctx *, const char *const *, char **);

/* Writes a whole file the meter owns (plist, unit, environment.d,
 * anchor), only when its content differs, recording kind "file" (the
 * previous content, if any) at level.  *changed tells whether it was (or
 * would be) written.  0 or -1 (reported). */
int platform_file(struct platform_ctx *, const char *, const char *, mode_t,
    enum manifest_level, int *);
/* Reverts the kinds every backend shares: "file", "rc", "certifi".
 * Same return values as platform.revert. */
int platform_revert_common(struct platform_ctx *, cJSON *);

/* The service templates (identical to launchd/com.halton-meter.daemon.plist
 * and systemd/halton-meter.service) and their rendering: @EXE@ and
 * @STATE_DIR@ replaced, XML-escaped when xml is set. */
extern const char platform_launchd_template[];
extern const char platform_systemd_template[];
char *platform_render(const char *, const char *, const char *, int);

/* Hex fingerprint ("sha1" or "sha256") of the first certificate in a PEM
 * file; NULL if unreadable. */
char *platform_cert_fingerprint(const char *, const char *);

#endif
