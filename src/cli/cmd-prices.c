/*
 * prices: the price table in force, or the price one model gets and where
 * it comes from.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "halton/cli.h"
#include "halton/prices.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static const char *const field_names[PRICES_NCOMP] = {
    [PRICES_INPUT] = "input_cost_per_token",
    [PRICES_OUTPUT] = "output_cost_per_token",
    [PRICES_CACHE_READ] = "cache_read_input_token_cost",
    [PRICES_CACHE_WRITE_5M] = "cache_creation_input_token_cost",
    [PRICES_CACHE_WRITE_1H] = "cache_creation_input_token_cost_above_1hr",
};

static const char *const comp_labels[PRICES_NCOMP] = {
    [PRICES_INPUT] = "input",
    [PRICES_OUTPUT] = "output",
    [PRICES_CACHE_READ] = "cache read",
    [PRICES_CACHE_WRITE_5M] = "cache write 5m",
    [PRICES_CACHE_WRITE_1H] = "cache write 1h",
};

/* USD per 1M tokens, trailing zeros trimmed; "-" if none. */
static void
per_mtok(double v, char *buf, size_t len)
{
	size_t n;

	if (isnan(v)) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%.4f", v * 1e6);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
}

/* The entry as LiteLLM fields (USD per token). */
static cJSON *
entry_json(const struct prices_entry *e)
{
	cJSON *o = cJSON_CreateObject();
	char name[128];
	int i, t;

	if (e->provider != NULL)
		cJSON_AddStringToObject(o, "litellm_provider", e->provider);
	for (i = 0; i < PRICES_NCOMP; i++)
		if (!isnan(e->base[i]))
			cJSON_AddNumberToObject(o, field_names[i], e->base[i]);
	for (i = 0; i < PRICES_NCOMP; i++)
		if (!isnan(e->batch[i])) {
			snprintf(
			    name, sizeof(name), "%s_batches", field_names[i]);
			cJSON_AddNumberToObject(o, name, e->batch[i]);
		}
	for (t = 0; t < e->ntiers; t++)
		for (i = 0; i < PRICES_NCOMP; i++)
			if (!isnan(e->tiers[t].p[i])) {
				snprintf(name, sizeof(name),
				    "%s_above_%lldk_tokens", field_names[i],
				    (long long)(e->tiers[t].threshold / 1000));
				cJSON_AddNumberToObject(
				    o, name, e->tiers[t].p[i]);
			}
	return o;
}

static void
print_json(cJSON *root)
{
	char *text = cJSON_Print(root);

	printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

static int
show_table(const struct prices *p, int json)
{
	const struct prices_entry *e;
	cJSON *root, *models;
	char v[PRICES_NCOMP][24], key[64];
	size_t i, n = prices_count(p);
	int c;

	if (json) {
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(
		    root, "shipped", prices_shipped_source(p));
		if (prices_override_source(p) != NULL)
			cJSON_AddStringToObject(
			    root, "override", prices_override_source(p));
		else
			cJSON_AddNullToObject(root, "override");
		models = cJSON_AddObjectToObject(root, "models");
		for (i = 0; i < n; i++) {
			e = prices_entry_at(p, i);
			cJSON_AddItemToObject(models, e->key, entry_json(e));
		}
		print_json(root);
		return 0;
	}
	printf("Prices in USD per 1M tokens.  Shipped: %s\nOverrides: %s\n\n",
	    prices_shipped_source(p),
	    prices_override_source(p) != NULL ? prices_override_source(p)
	                                      : "none (~/.halton-meter/"
	                                        "prices.json)");
	printf("%-36s %7s %7s %7s %7s %7s\n", "Model", "Input", "Output",
	    "Cache", "Write5m", "Write1h");
	for (i = 0; i < n; i++) {
		e = prices_entry_at(p, i);
		for (c = 0; c < PRICES_NCOMP; c++)
			per_mtok(e->base[c], v[c], sizeof(v[c]));
		if (strlen(e->key) > 34)
			snprintf(key, sizeof(key), "%.33s~", e->key);
		else
			snprintf(key, sizeof(key), "%s", e->key);
		printf("%-34s%c%c %7s %7s %7s %7s %7s\n", key,
		    e->overridden ? '*' : ' ', e->ntiers > 0 ? '+' : ' ', v[0],
		    v[1], v[2], v[3], v[4]);
	}
	printf("\n* overridden by your file  + long-context tier "
	       "(see 'halton-meter prices MODEL')\n");
	return 0;
}

static int
show_model(const struct cmd *self, const struct prices *p, const char *provider,
    const char *model, int json)
{
	struct prices_match m;
	const struct prices_entry *e;
	cJSON *root;
	char how[128], v[32];
	int c, t, any;

	if (prices_lookup(p, provider, model, &m) == -1) {
		if (json) {
			root = cJSON_CreateObject();
			cJSON_AddStringToObject(root, "model", model);
			cJSON_AddBoolToObject(root, "priced", 0);
			print_json(root);
		} else
			printf("%s: unpriced: no entry of the table matches.\n"
			       "Its requests are reported apart as "
			       "unpriced, never as $0; add a price to\n"
			       "~/.halton-meter/prices.json "
			       "(docs/prices.md).\n",
			    model);
		return 1;
	}
	e = m.entry;
	prices_steps_string(m.steps, how, sizeof(how));
	if (json) {
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "model", model);
		cJSON_AddBoolToObject(root, "priced", 1);
		cJSON_AddStringToObject(root, "key", e->key);
		cJSON_AddStringToObject(root, "matched_by", how);
		cJSON_AddStringToObject(root, "source",
		    e->overridden                            ? "override"
		        : strcmp(e->origin, "built-in") == 0 ? "built-in"
		                                             : "shipped");
		cJSON_AddStringToObject(root, "file", e->origin);
		cJSON_AddItemToObject(root, "prices", entry_json(e));
		print_json(root);
		return 0;
	}
	printf("model:      %s\n", model);
	printf("priced as:  %s (matched: %s)\n", e->key, how);
	printf("from:       %s (%s)\n", e->origin,
	    e->overridden                            ? "your override"
	        : strcmp(e->origin, "built-in") == 0 ? "compiled-in table"
	                                             : "shipped table");
	printf("USD per 1M tokens:\n");
	for (c = 0; c < PRICES_NCOMP; c++) {
		per_mtok(e->base[c], v, sizeof(v));
		printf("  %-16s %10s%s\n", comp_labels[c], v,
		    !isnan(e->base[c]) ? ""
		        : c == PRICES_CACHE_WRITE_1H
		        ? "  (charged as a 5m write)"
		        : "  (charged as input)");
	}
	for (t = 0; t < e->ntiers; t++) {
		printf("  above %lldk input tokens per request:\n",
		    (long long)(e->tiers[t].threshold / 1000));
		for (c = 0; c < PRICES_NCOMP; c++) {
			if (isnan(e->tiers[t].p[c]))
				continue;
			per_mtok(e->tiers[t].p[c], v, sizeof(v));
			printf("    %-14s %10s\n", comp_labels[c], v);
		}
	}
	any = 0;
	for (c = 0; c < PRICES_NCOMP; c++)
		if (!isnan(e->batch[c])) {
			if (!any)
				printf("  batch:\n");
			any = 1;
			per_mtok(e->batch[c], v, sizeof(v));
			printf("    %-14s %10s\n", comp_labels[c], v);
		}
	printf("  batch requests: %s\n",
	    any ? "the batch prices above, 50% for the rest"
	        : "50% of every price");
	return 0;
}

static int
prices_exec(const struct cmd *self, int argc, char **argv)
{
	struct prices *p = NULL;
	const char *model = NULL, *provider = NULL;
	char *cause = NULL;
	int i, json = 0, rc;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--provider") == 0 && i + 1 < argc)
			provider = argv[++i];
		else if (strncmp(argv[i], "--provider=", 11) == 0)
			provider = argv[i] + 11;
		else if (argv[i][0] == '-')
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
		else if (model == NULL)
			model = argv[i];
		else
			return cli_usage_error(self, "too many arguments");
	}
	if (prices_load_default(&p, &cause) == -1) {
		cli_error(self, "%s", cause);
		free(cause);
		return 1;
	}
	rc = model == NULL ? show_table(p, json)
	                   : show_model(self, p, provider, model, json);
	prices_free(p);
	return rc;
}

const struct cmd cmd_prices = {
    .name = "prices",
    .usage = "[MODEL] [--provider NAME] [--json]",
    .summary = "show the price table, or the price one model gets",
    .help = "Options:\n"
            "  MODEL            show the price applied to MODEL (as a "
            "record names it)\n"
            "                   and which table entry and normalisation "
            "matched\n"
            "  --provider NAME  the provider serving MODEL (anthropic, "
            "openai, groq, ...)\n"
            "  --json           machine-readable output\n"
            "\nThe table ships with halton-meter; "
            "~/.halton-meter/prices.json (same\nformat, LiteLLM field "
            "names, USD per token) is merged over it.\nExit status 1 "
            "when MODEL is unpriced.\n",
    .exec = prices_exec,
};
