/*
 * doctor: walk every layer a metered client depends on, in order (install,
 * CA, bundle, certifi, env, trust, system proxy, daemon, round-trip,
 * clients, captures), and name the one that is wrong with the command that
 * fixes it.
 *
 * The checks are a const table (doctor_checks); each adds one or more
 * result lines through doctor_add().  A check never changes the machine;
 * it only records what `--fix` may repair (doctor_fix).  Every external
 * command runs through exec_run() with DOCTOR_CMD_TIMEOUT_MS.
 */
#ifndef HALTON_DOCTOR_H
#define HALTON_DOCTOR_H

#include <stddef.h>

#include "halton/config.h"
#include "halton/envvars.h"
#include "halton/log.h"
#include "halton/manifest.h"
#include "halton/util.h"

#define DOCTOR_CMD_TIMEOUT_MS    2000 /* OS queries */
#define DOCTOR_CLIENT_TIMEOUT_MS 4000 /* python3, node, curl */
#define DOCTOR_NET_TIMEOUT_MS    2000 /* the proxy socket */
#define DOCTOR_CA_WARN_DAYS      30

enum doctor_status { DOCTOR_OK, DOCTOR_WARN, DOCTOR_FAIL };

struct doctor_result {
	enum doctor_status status;
	const char *layer;
	char *detail;
	char *fix;   /* the exact command (or step); NULL when ok */
	char *notes; /* extra lines (the daemon log's last errors), or NULL */
	int top;     /* the danger case: printed first */
};

struct ca;
struct platform;

struct doctor {
	int fix; /* --fix was given */

	/* What the checks share, set up by doctor_init(). */
	struct config cfg;
	char *config_path;
	char *config_cause; /* NULL if the config parsed */
	struct manifest *m;
	int manifest_found;
	char *manifest_cause;
	enum manifest_level level;
	const char *mode; /* "env", "apps", "full" */
	const struct platform *platform;
	char *platform_cause;
	char *home;
	char *state_dir;
	char *ca_dir;
	char *ca_key_file; /* ca_dir/mitmproxy-ca.pem */
	char *ca_pem;      /* state_dir/ca.pem */
	char *bundle;      /* state_dir/bundle.pem */
	char *ca_text;     /* ca.pem's content, or NULL */
	struct ca *ca;     /* NULL when it did not load */
	char *ca_cause;
	struct envvars env;
	char *init_cmd;    /* "halton-meter init [--apps|--full]" */
	char *restart_cmd; /* how to (re)start the daemon */

	/* The daemon, probed once (doctor_probe). */
	int probed;
	int answering; /* an HTTP answer came back */
	int is_meter;  /* it was halton-meter's /healthz JSON */
	char *health_version;
	long health_pid;
	long health_uptime;
	long health_exchanges;
	char health_error[160];

	/* What --fix may repair. */
	int want_bundle;
	int want_daemon;
	struct strlist want_certifi; /* bundles to re-patch */

	struct doctor_result *v;
	size_t n;
};

struct doctor_check {
	const char *layer;
	void (*run)(struct doctor *);
};

/* The checks, in the order they run and print. */
extern const struct doctor_check doctor_checks[];
extern const size_t doctor_ncheck;

/* Loads the config, the manifest and the CA; never fails (what cannot be
 * read becomes a result of the install or CA check). */
void doctor_init(struct doctor *, int);
void doctor_free(struct doctor *);
/* Runs every check of the table. */
void doctor_run(struct doctor *);
/* Adds a result line; fix may be NULL (and is only kept for ! and x). */
void doctor_add(struct doctor *, enum doctor_status, const char *, const char *,
    const char *, ...) LOG_PRINTF(5, 6);
/* Applies the safe fixes the checks asked for (rebuild the bundle,
 * re-patch certifi, restart the daemon through its service), appending
 * one line per action to out.  Returns the number of actions tried. */
int doctor_apply_fixes(struct doctor *, struct strbuf *);
/* Probes GET /healthz at the configured address once (cached). */
void doctor_probe(struct doctor *);
/* The first failure (the top one first), or NULL. */
const struct doctor_result *doctor_first_failure(const struct doctor *);
const char *doctor_status_name(enum doctor_status);

#endif
