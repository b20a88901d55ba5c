#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/prices.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

#define CHECK_COST(a, b)                                                       \
	do {                                                                   \
		double check_x_ = (a), check_y_ = (b);                         \
		if (!(fabs(check_x_ - check_y_) <= 1e-12))                     \
			harness_fail(__FILE__, __LINE__,                       \
			    "%s == %.12f, expected %.12f", #a, check_x_,       \
			    check_y_);                                         \
	} while (0)

static struct prices *
load_builtin(void)
{
	struct prices *p = NULL;
	char *cause = NULL;

	CHECK_INT(prices_load(&p, NULL, NULL, &cause), 0);
	CHECK(cause == NULL);
	free(cause);
	return p;
}

static void
usage_init(struct prices_usage *u, const char *provider, const char *model)
{
	memset(u, 0, sizeof(*u));
	u->provider = provider;
	u->model = model;
	u->input_tokens = u->output_tokens = u->cache_read_tokens = -1;
	u->cache_write_tokens = u->cache_write_5m_tokens = -1;
	u->cache_write_1h_tokens = -1;
	u->provider_cost_usd = -1;
}

/* The compiled-in copy is byte for byte share/prices.json (regenerate with
 * tools/gen-prices.py c share/prices.json). */
static void
test_builtin_matches_share(void)
{
	size_t len, blen;
	char *text = harness_read_file("share/prices.json", &len);
	const char *b = prices_builtin(&blen);

	CHECK(text != NULL);
	if (text == NULL)
		return;
	CHECK_INT(blen, len);
	CHECK(blen == len && memcmp(text, b, len) == 0);
	free(text);
}

static void
test_table_values(void)
{
	struct prices *p = load_builtin();
	struct prices_match m;
	const struct prices_entry *e;

	if (p == NULL)
		return;
	CHECK(prices_count(p) >= 60);
	CHECK_STR(prices_shipped_source(p), "built-in");
	CHECK(prices_override_source(p) == NULL);
	CHECK_INT(prices_lookup(p, "anthropic", "claude-sonnet-4-5", &m), 0);
	e = m.entry;
	CHECK_STR(e->key, "claude-sonnet-4-5");
	CHECK_COST(e->base[PRICES_INPUT], 3e-06);
	CHECK_COST(e->base[PRICES_OUTPUT], 1.5e-05);
	CHECK_COST(e->base[PRICES_CACHE_READ], 3e-07);
	CHECK_COST(e->base[PRICES_CACHE_WRITE_5M], 3.75e-06);
	CHECK_COST(e->base[PRICES_CACHE_WRITE_1H], 6e-06);
	CHECK_INT(e->ntiers, 1);
	CHECK_INT(e->tiers[0].threshold, 200000);
	CHECK_COST(e->tiers[0].p[PRICES_INPUT], 6e-06);
	CHECK_COST(e->tiers[0].p[PRICES_CACHE_WRITE_1H], 1.2e-05);
	CHECK_INT(prices_lookup(p, "openai", "gpt-5.4", &m), 0);
	CHECK_INT(m.entry->ntiers, 1);
	CHECK_INT(m.entry->tiers[0].threshold, 272000);
	CHECK_INT(prices_lookup(p, "openai", "gpt-4o", &m), 0);
	CHECK_COST(m.entry->batch[PRICES_INPUT], 1.25e-06);
	CHECK_COST(m.entry->batch[PRICES_OUTPUT], 5e-06);
	CHECK(isnan(m.entry->batch[PRICES_CACHE_READ]));
	/* Every vendor the issue names has at least one price. */
	CHECK_INT(prices_lookup(p, "openai", "o3", &m), 0);
	CHECK_INT(prices_lookup(p, "gemini", "gemini-2.5-pro", &m), 0);
	CHECK_INT(prices_lookup(p, "deepseek", "deepseek-chat", &m), 0);
	CHECK_INT(prices_lookup(p, "mistral", "mistral-small-latest", &m), 0);
	CHECK_INT(prices_lookup(p, "xai", "grok-4", &m), 0);
	CHECK_INT(prices_lookup(p, "groq", "llama-3.3-70b-versatile", &m), 0);
	CHECK_INT(prices_lookup(p, "together", "zai-org/GLM-4.6", &m), 0);
	CHECK_INT(prices_lookup(p, "fireworks",
	              "accounts/fireworks/models/kimi-k2-instruct", &m),
	    0);
	prices_free(p);
}

static void
test_normalisation(void)
{
	static const struct {
		const char *provider, *model, *key, *steps;
	} cases[] = {
	    {"anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5",
	        "date suffix"},
	    {"anthropic", "Claude-Opus-4-1", "claude-opus-4-1", "exact"},
	    {"anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4",
	        "date suffix"},
	    {"bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
	        "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "exact"},
	    {"bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
	        "claude-haiku-4-5", "Bedrock id, date suffix"},
	    {"bedrock", "global.anthropic.claude-opus-4-5-20251101-v1:0",
	        "claude-opus-4-5", "Bedrock id, date suffix"},
	    {"bedrock", "anthropic.claude-opus-4-1-20250805-v1",
	        "claude-opus-4-1", "Bedrock id, date suffix"},
	    {"bedrock", "anthropic.claude-sonnet-4-6:0", "claude-sonnet-4-6",
	        "Bedrock id"},
	    {"gemini", "models/gemini-2.5-flash", "gemini-2.5-flash",
	        "models/ prefix"},
	    {"openrouter", "anthropic/claude-sonnet-4.5",
	        "openrouter/anthropic/claude-sonnet-4.5", "provider key"},
	    {"openrouter", "anthropic/claude-haiku-4.5:thinking",
	        "claude-haiku-4-5", "vendor/model"},
	    {"openrouter", "openai/gpt-4.1-mini", "gpt-4.1-mini",
	        "vendor/model"},
	    {"anthropic", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5",
	        "date suffix"},
	    {"openai", "gpt-4o-2024-08-06", "gpt-4o", "date suffix"},
	    {"groq", "llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile",
	        "provider key"},
	    {"deepseek", "deepseek-reasoner", "deepseek-reasoner", "exact"},
	    {NULL, "gpt-5", "gpt-5", "exact"},
	};
	struct prices *p = load_builtin();
	struct prices_match m;
	char how[128];
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (prices_lookup(p, cases[i].provider, cases[i].model, &m) ==
		    -1) {
			harness_fail(__FILE__, __LINE__, "no match for %s",
			    cases[i].model);
			continue;
		}
		CHECK_STR(m.entry->key, cases[i].key);
		prices_steps_string(m.steps, how, sizeof(how));
		CHECK_STR(how, cases[i].steps);
	}
	CHECK_INT(prices_lookup(p, "anthropic", "claude-mystery-9", &m), -1);
	CHECK(m.entry == NULL);
	CHECK_INT(prices_lookup(p, "anthropic", "", &m), -1);
	CHECK_INT(prices_lookup(p, "anthropic", NULL, &m), -1);
	prices_free(p);
}

static void
test_cost_cache_5m_1h(void)
{
	struct prices *p = load_builtin();
	struct prices_usage u;
	const char *src = NULL;
	double c = -1;

	if (p == NULL)
		return;
	usage_init(&u, "anthropic", "claude-sonnet-4-5-20250929");
	u.input_tokens = 1000;
	u.output_tokens = 500;
	u.cache_read_tokens = 2000;
	u.cache_write_tokens = 7000;
	u.cache_write_5m_tokens = 3000;
	u.cache_write_1h_tokens = 4000;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	/* 1000*3 + 500*15 + 2000*0.3 + 3000*3.75 + 4000*6, per 1M. */
	CHECK_COST(c, 0.04635);
	CHECK_STR(src, "prices");
	/* No split: the whole write is priced as 5m. */
	u.cache_write_5m_tokens = u.cache_write_1h_tokens = -1;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	CHECK_COST(c, 0.003 + 0.0075 + 0.0006 + 7000 * 3.75e-6);
	/* Only the 1h part known: 5m is the rest. */
	u.cache_write_1h_tokens = 4000;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	CHECK_COST(c, 0.04635);
	prices_free(p);
}

static void
test_cost_tier_above_200k(void)
{
	struct prices *p = load_builtin();
	struct prices_usage u;
	double c;

	if (p == NULL)
		return;
	usage_init(&u, "anthropic", "claude-sonnet-4-5");
	u.input_tokens = 150000;
	u.cache_read_tokens = 60000;
	u.output_tokens = 1000;
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	/* 210k input > 200k: 150000*6 + 60000*0.6 + 1000*22.5 per 1M. */
	CHECK_COST(c, 0.9 + 0.036 + 0.0225);
	/* Exactly 200k is not above: base prices. */
	u.cache_read_tokens = 50000;
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 0.45 + 0.015 + 0.015);
	/* Cache writes count toward the threshold; 1h tier price. */
	u.cache_write_tokens = 10000;
	u.cache_write_1h_tokens = 10000;
	u.cache_write_5m_tokens = 0;
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 0.9 + 0.03 + 0.0225 + 0.12);
	/* A model without a tier keeps its base price. */
	u.model = "claude-sonnet-4-6";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 0.45 + 0.015 + 0.015 + 0.06);
	prices_free(p);
}

static void
test_cost_batch(void)
{
	struct prices *p = load_builtin();
	struct prices_usage u;
	double c;

	if (p == NULL)
		return;
	usage_init(&u, "openai", "gpt-4o");
	u.input_tokens = 1000000;
	u.output_tokens = 1000000;
	u.cache_read_tokens = 1000;
	u.service_tier = "batch";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	/* LiteLLM batch fields 1.25/5; cache read 50% of 1.25. */
	CHECK_COST(c, 1.25 + 5 + 0.000625);
	u.service_tier = "default";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 2.5 + 10 + 0.00125);
	/* No batch fields: 50% of everything. */
	usage_init(&u, "anthropic", "claude-sonnet-4-5");
	u.input_tokens = 1000000;
	u.output_tokens = 1000000;
	u.cache_write_tokens = u.cache_write_1h_tokens = 1000000;
	u.service_tier = "batch";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	/* total 2M > 200k: tier 6/22.5/12, halved. */
	CHECK_COST(c, (6 + 22.5 + 12) / 2);
	prices_free(p);
}

static void
test_cost_provider_unpriced_no_usage(void)
{
	struct prices *p = load_builtin();
	struct prices_usage u;
	const char *src;
	double c;

	if (p == NULL)
		return;
	usage_init(&u, "openrouter", "some-vendor/unknown-model");
	u.input_tokens = 100;
	u.output_tokens = 10;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_UNPRICED);
	CHECK_COST(c, 0);
	CHECK_STR(src, "unpriced");
	u.provider_cost_usd = 0.0123;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	CHECK_COST(c, 0.0123);
	CHECK_STR(src, "provider");
	/* The provider's cost wins over the table too. */
	u.model = "gpt-4o";
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	CHECK_COST(c, 0.0123);
	usage_init(&u, "openai", "gpt-4o");
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_NO_USAGE);
	CHECK_STR(src, "no usage");
	u.kind = "count_tokens";
	u.input_tokens = 5000;
	CHECK_INT(prices_cost(p, &u, &c, &src), PRICES_PRICED);
	CHECK_COST(c, 0);
	CHECK_STR(src, "not billable");
	prices_free(p);
}

static void
test_cost_record(void)
{
	struct prices *p = load_builtin();
	struct usage_record r;
	double c;

	if (p == NULL)
		return;
	usage_record_init(&r);
	usage_set_str(&r.provider, "openai");
	usage_set_str(&r.request_model, "gpt-4.1-mini");
	r.input_tokens = 1000;
	r.output_tokens = 100;
	r.cache_read_input_tokens = 4000;
	CHECK_INT(prices_cost_record(p, &r, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 1000 * 4e-7 + 100 * 1.6e-6 + 4000 * 1e-7);
	/* The response's model wins over the request's. */
	usage_set_str(&r.model, "gpt-4.1");
	CHECK_INT(prices_cost_record(p, &r, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 1000 * 2e-6 + 100 * 8e-6 + 4000 * 5e-7);
	usage_record_free(&r);
	prices_free(p);
}

static void
test_override_merge(void)
{
	char path[4096];
	const char *ov = "{\"claude-sonnet-4-5\": {\"input_cost_per_token\": "
	                 "1e-05},\n \"my-local-model\": {\"input_cost_per_token"
	                 "\": 1e-06, \"output_cost_per_token\": 2e-06, "
	                 "\"max_tokens\": 8192, \"mode\": \"chat\"}}";
	struct prices *p = NULL;
	struct prices_match m;
	struct prices_usage u;
	char *cause = NULL;
	double c;

	snprintf(path, sizeof(path), "%s/prices.json", harness_tmpdir());
	CHECK_INT(harness_write_file(path, ov, strlen(ov)), 0);
	CHECK_INT(prices_load(&p, NULL, path, &cause), 0);
	CHECK(cause == NULL);
	if (p == NULL)
		return;
	CHECK_STR(prices_override_source(p), path);
	CHECK_INT(prices_lookup(p, "anthropic", "claude-sonnet-4-5", &m), 0);
	CHECK_STR(m.entry->origin, path);
	CHECK_INT(m.entry->overridden, 1);
	CHECK_COST(m.entry->base[PRICES_INPUT], 1e-05);
	CHECK_COST(m.entry->base[PRICES_OUTPUT], 1.5e-05); /* kept */
	usage_init(&u, "anthropic", "claude-sonnet-4-5");
	u.input_tokens = 1000;
	u.output_tokens = 1000;
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 0.01 + 0.015);
	u.model = "my-local-model";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 0.001 + 0.002);
	CHECK_INT(prices_lookup(p, NULL, "gpt-4o", &m), 0);
	CHECK_STR(m.entry->origin, "built-in");
	CHECK_INT(m.entry->overridden, 0);
	prices_free(p);
}

static void
test_override_errors(void)
{
	static const struct {
		const char *text, *cause;
	} cases[] = {
	    {"{\"a\": ", "not a JSON object (JSON syntax error)"},
	    {"[1]", "not a JSON object"},
	    {"{\"gpt-4o\": 3}", "gpt-4o: not an object"},
	    {"{\"gpt-4o\": {\"output_cost_per_token\": -1}}",
	        "gpt-4o: output_cost_per_token must be a number >= 0"},
	    {"{\"gpt-4o\": {\"input_cost_per_token\": \"1\"}}",
	        "gpt-4o: input_cost_per_token must be a number >= 0"},
	    {"{\"new-model\": {\"input_cost_per_token\": 1e-6}}",
	        "new-model: needs input_cost_per_token and "
	        "output_cost_per_token"},
	};
	char path[4096], want[4200];
	struct prices *p;
	char *cause;
	size_t i;

	snprintf(path, sizeof(path), "%s/bad.json", harness_tmpdir());
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(harness_write_file(
		              path, cases[i].text, strlen(cases[i].text)),
		    0);
		p = NULL;
		cause = NULL;
		CHECK_INT(prices_load(&p, NULL, path, &cause), -1);
		CHECK(p == NULL);
		snprintf(want, sizeof(want), "%s: %s", path, cases[i].cause);
		CHECK_STR(cause, want);
		free(cause);
	}
	/* A missing override file is no error. */
	snprintf(path, sizeof(path), "%s/none.json", harness_tmpdir());
	CHECK_INT(prices_load(&p, NULL, path, &cause), 0);
	CHECK(prices_override_source(p) == NULL);
	prices_free(p);
}

static void
test_shipped_file(void)
{
	char path[4096];
	const char *t = "{\"_comment\": \"x\", \"Only-Model\": "
	                "{\"input_cost_per_token\": 2e-06, "
	                "\"output_cost_per_token\": 4e-06, "
	                "\"input_cost_per_token_above_128k_tokens\": 3e-06, "
	                "\"input_cost_per_token_priority\": 9}}";
	struct prices *p = NULL;
	struct prices_usage u;
	char *cause = NULL;
	double c;

	snprintf(path, sizeof(path), "%s/shipped.json", harness_tmpdir());
	CHECK_INT(harness_write_file(path, t, strlen(t)), 0);
	CHECK_INT(prices_load(&p, path, NULL, &cause), 0);
	if (p == NULL)
		return;
	CHECK_STR(prices_shipped_source(p), path);
	CHECK_INT(prices_count(p), 1);
	CHECK_STR(prices_entry_at(p, 0)->key, "only-model");
	CHECK_INT(prices_entry_at(p, 0)->tiers[0].threshold, 128000);
	usage_init(&u, NULL, "only-model");
	u.input_tokens = 128001;
	u.output_tokens = 0;
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_PRICED);
	CHECK_COST(c, 128001 * 3e-6);
	u.model = "gpt-4o";
	CHECK_INT(prices_cost(p, &u, &c, NULL), PRICES_UNPRICED);
	prices_free(p);
	/* A shipped path that does not exist: the compiled-in copy. */
	snprintf(path, sizeof(path), "%s/missing.json", harness_tmpdir());
	CHECK_INT(prices_load(&p, path, NULL, &cause), 0);
	CHECK_STR(prices_shipped_source(p), "built-in");
	CHECK(prices_count(p) >= 60);
	prices_free(p);
}

static const struct test tests[] = {
    TEST(test_builtin_matches_share),
    TEST(test_table_values),
    TEST(test_normalisation),
    TEST(test_cost_cache_5m_1h),
    TEST(test_cost_tier_above_200k),
    TEST(test_cost_batch),
    TEST(test_cost_provider_unpriced_no_usage),
    TEST(test_cost_record),
    TEST(test_override_merge),
    TEST(test_override_errors),
    TEST(test_shipped_file),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
