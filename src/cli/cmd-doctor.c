/*
 * doctor: walk every layer from the CA to the captures, one line each, and
 * name the one that is wrong with the command that fixes it.  The checks
 * live in doctor-checks.c; this file parses the options, applies --fix and
 * prints the results as text or JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "halton/cli.h"
#include "halton/doctor.h"
#include "halton/platform.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define LAYER_WIDTH 13

static const char *
symbol(enum doctor_status s)
{
	switch (s) {
	case DOCTOR_OK:
		return "\xe2\x9c\x93"; /* ✓ */
	case DOCTOR_WARN:
		return "!";
	case DOCTOR_FAIL:
		return "\xe2\x9c\x97"; /* ✗ */
	}
	return "?";
}

/* The results in print order: the danger case first, then the rest. */
static size_t
print_order(const struct doctor *d, size_t *idx)
{
	size_t i, n = 0;

	for (i = 0; i < d->n; i++)
		if (d->v[i].top)
			idx[n++] = i;
	for (i = 0; i < d->n; i++)
		if (!d->v[i].top)
			idx[n++] = i;
	return n;
}

static void
print_indented(const char *prefix, const char *text)
{
	const char *p = text, *nl;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		printf("%*s%s%.*s\n", LAYER_WIDTH + 3, "", prefix,
		    (int)(nl != NULL ? (size_t)(nl - p) : strlen(p)), p);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

static void
print_text(const struct doctor *d, const char *fixed)
{
	const struct doctor_result *first = doctor_first_failure(d);
	size_t *idx = xcalloc(d->n + 1, sizeof(*idx)), i, n;
	int warnings = 0;

	printf("halton-meter doctor (%s mode, %s)\n", d->mode,
	    d->platform != NULL ? d->platform->name : "?");
	if (fixed != NULL && fixed[0] != '\0')
		printf("--fix:\n%s\n", fixed);
	else if (d->fix)
		printf("--fix: nothing to fix\n\n");
	n = print_order(d, idx);
	for (i = 0; i < n; i++) {
		const struct doctor_result *r = &d->v[idx[i]];

		printf("%s %-*s %s\n", symbol(r->status), LAYER_WIDTH, r->layer,
		    r->detail);
		if (r->status != DOCTOR_OK && r->fix != NULL)
			print_indented("fix: ", r->fix);
		if (r->notes != NULL)
			print_indented("log: ", r->notes);
		if (r->status == DOCTOR_WARN)
			warnings++;
	}
	if (first != NULL)
		printf("\nthe layer that is wrong: %s: %s\n", first->layer,
		    first->detail);
	else
		printf("\nno layer is wrong%s\n",
		    warnings > 0 ? " (see the warnings above)" : "");
	free(idx);
}

static void
print_json(const struct doctor *d, const char *fixed)
{
	const struct doctor_result *first = doctor_first_failure(d);
	cJSON *root = cJSON_CreateObject(), *arr, *o, *fx;
	size_t *idx = xcalloc(d->n + 1, sizeof(*idx)), i, n;
	char *text, *line, *next, *copy;

	cJSON_AddStringToObject(root, "version", HALTON_VERSION);
	cJSON_AddStringToObject(root, "mode", d->mode);
	cJSON_AddStringToObject(root, "platform",
	    d->platform != NULL ? d->platform->name : "unknown");
	cJSON_AddBoolToObject(root, "ok", first == NULL);
	cJSON_AddNumberToObject(root, "exit", first == NULL ? 0 : 1);
	fx = cJSON_AddArrayToObject(root, "fixed");
	if (fixed != NULL) {
		copy = xstrdup(fixed);
		for (line = copy; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			cJSON_AddItemToArray(
			    fx, cJSON_CreateString(str_trim(line)));
		}
		free(copy);
	}
	arr = cJSON_AddArrayToObject(root, "checks");
	n = print_order(d, idx);
	for (i = 0; i < n; i++) {
		const struct doctor_result *r = &d->v[idx[i]];

		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "layer", r->layer);
		cJSON_AddStringToObject(
		    o, "status", doctor_status_name(r->status));
		cJSON_AddStringToObject(o, "symbol", symbol(r->status));
		cJSON_AddStringToObject(o, "detail", r->detail);
		if (r->fix != NULL)
			cJSON_AddStringToObject(o, "fix", r->fix);
		else
			cJSON_AddNullToObject(o, "fix");
		if (r->notes != NULL)
			cJSON_AddStringToObject(o, "log", r->notes);
		if (r->top)
			cJSON_AddBoolToObject(o, "danger", 1);
		cJSON_AddItemToArray(arr, o);
	}
	if (first != NULL) {
		o = cJSON_AddObjectToObject(root, "wrong_layer");
		cJSON_AddStringToObject(o, "layer", first->layer);
		cJSON_AddStringToObject(o, "detail", first->detail);
		if (first->fix != NULL)
			cJSON_AddStringToObject(o, "fix", first->fix);
	} else
		cJSON_AddNullToObject(root, "wrong_layer");
	text = cJSON_Print(root);
	printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
	free(idx);
}

static int
doctor_exec(const struct cmd *self, int argc, char **argv)
{
	struct doctor d;
	struct strbuf fixed;
	int i, json = 0, fix = 0, rc;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--fix") == 0)
			fix = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	strbuf_init(&fixed);
	doctor_init(&d, fix);
	doctor_run(&d);
	if (fix && doctor_apply_fixes(&d, &fixed) > 0) {
		/* Check again from scratch: the output shows the result. */
		doctor_free(&d);
		doctor_init(&d, fix);
		doctor_run(&d);
	}
	if (json)
		print_json(&d, fixed.len > 0 ? fixed.data : NULL);
	else
		print_text(&d, fixed.len > 0 ? fixed.data : NULL);
	fflush(stdout);
	rc = doctor_first_failure(&d) != NULL ? 1 : 0;
	doctor_free(&d);
	strbuf_free(&fixed);
	return rc;
}

const struct cmd cmd_doctor = {
    .name = "doctor",
    .usage = "[--json] [--fix]",
    .summary = "check every layer and name the one that is wrong",
    .help = "Checks, in order: install, CA, bundle, certifi, env, trust "
            "(--full),\n"
            "system proxy (--full), daemon, round-trip, clients, "
            "captures.\n"
            "Each prints one line: \xe2\x9c\x93 ok, ! warning, "
            "\xe2\x9c\x97 failure; each ! and \xe2\x9c\x97 is\n"
            "followed by the command that fixes it.\n"
            "Options:\n"
            "  --json   the same results as JSON\n"
            "  --fix    apply the safe fixes (rebuild the bundle, "
            "re-patch certifi,\n"
            "           restart the daemon through its service), then "
            "check again\n"
            "Exit status: 0 when no layer fails, 1 otherwise.\n",
    .exec = doctor_exec,
};
