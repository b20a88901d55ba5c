/*
 * prices: what a metered exchange cost, in USD.
 *
 * The table is LiteLLM-shaped JSON: one object per model key, prices in USD
 * per token under LiteLLM's field names (input_cost_per_token,
 * output_cost_per_token, cache_read_input_token_cost,
 * cache_creation_input_token_cost (5-minute writes),
 * cache_creation_input_token_cost_above_1hr (1-hour writes), the same with
 * _above_NNNk_tokens for long-context tiers, and *_batches).  The shipped
 * table is DATADIR/prices.json ($HALTON_METER_DATADIR overrides DATADIR),
 * else a compiled-in copy of share/prices.json; the user's
 * ~/.halton-meter/prices.json is merged over it field by field.
 *
 * A model the table cannot price is "unpriced": its cost is unknown, never
 * $0.  A cost the provider reported (provider_cost_usd) wins over the table.
 * Every rule is in docs/prices.md.
 */
#ifndef HALTON_PRICES_H
#define HALTON_PRICES_H

#include <stddef.h>
#include <stdint.h>

#include "halton/usage.h"

enum prices_component {
	PRICES_INPUT,
	PRICES_OUTPUT,
	PRICES_CACHE_READ,
	PRICES_CACHE_WRITE_5M,
	PRICES_CACHE_WRITE_1H,
	PRICES_NCOMP
};

#define PRICES_MAX_TIERS 4
#define PRICES_MAX_NAME  256

/* One model's prices, USD per token; NAN where the table has none. */
struct prices_entry {
	char *key;          /* lower-cased table key */
	char *provider;     /* litellm_provider, or NULL */
	const char *origin; /* the file it came from, or "built-in" */
	int overridden;     /* a field came from the user's file */
	double base[PRICES_NCOMP];
	double batch[PRICES_NCOMP];
	int ntiers; /* sorted by threshold, ascending */
	struct {
		int64_t threshold; /* applies above this many input
		                      tokens */
		double p[PRICES_NCOMP];
	} tiers[PRICES_MAX_TIERS];
};

/* Normalisation steps a lookup applied (prices_lookup). */
#define PRICES_NORM_PROVIDER 0x01 /* "<provider>/" key tried first */
#define PRICES_NORM_MODELS   0x02 /* "models/" prefix removed */
#define PRICES_NORM_BEDROCK  0x04 /* Bedrock region/vendor/version */
#define PRICES_NORM_VENDOR   0x08 /* "vendor/model" (OpenRouter...) */
#define PRICES_NORM_DATE     0x10 /* date suffix removed */

struct prices_match {
	const struct prices_entry *entry; /* NULL: unpriced */
	unsigned steps;                   /* PRICES_NORM_* */
};

struct prices;

/*
 * Loads the shipped table from shipped_path (NULL, or a file that does not
 * exist: the compiled-in copy) and merges override_path over it (NULL or a
 * missing file: no overrides).  A file that does not parse, or a price that
 * is not a number >= 0, is an error naming the file and the model.
 * Returns 0, or -1 with a cause the caller frees.
 */
int prices_load(struct prices **, const char *, const char *, char **);
/* prices_load() with DATADIR/prices.json and ~/.halton-meter/prices.json. */
int prices_load_default(struct prices **, char **);
/* The two files prices_load_default() reads (the caller frees both). */
void prices_default_paths(char **, char **);
void prices_free(struct prices *);
/* The shipped source ("built-in" or a path) and the override file read
 * (NULL if none). */
const char *prices_shipped_source(const struct prices *);
const char *prices_override_source(const struct prices *);
size_t prices_count(const struct prices *);
/* The i-th entry, in key order. */
const struct prices_entry *prices_entry_at(const struct prices *, size_t);

/*
 * Finds the entry that prices `model` as served by `provider` (the
 * record's provider name; NULL ok).  Tries, in order, the name lower-cased,
 * then with a "models/" prefix removed, Bedrock region/vendor prefixes and
 * version suffixes removed, a "vendor/" prefix and ":variant" suffix
 * removed (Claude "4.5" read as "4-5"), and a date suffix removed; for each
 * name "<provider>/name" before "name".  Returns 0 and fills m, or -1 with
 * m->entry NULL if no entry matched.
 */
int prices_lookup(
    const struct prices *, const char *, const char *, struct prices_match *);
/* Writes the steps as words ("exact", "date suffix, Bedrock id", ...). */
void prices_steps_string(unsigned, char *, size_t);

/* The token counts and facts a cost depends on.  Counts are -1 when the
 * provider did not report them. */
struct prices_usage {
	const char *provider;
	const char *model;        /* the response's model, else the request's */
	const char *kind;         /* "count_tokens" is never billed */
	const char *service_tier; /* "batch" gets batch prices */
	int64_t input_tokens;
	int64_t output_tokens;
	int64_t cache_read_tokens;
	int64_t cache_write_tokens; /* 5m + 1h */
	int64_t cache_write_5m_tokens;
	int64_t cache_write_1h_tokens;
	double provider_cost_usd; /* < 0: not reported */
};

void prices_usage_from_record(
    struct prices_usage *, const struct usage_record *);

enum prices_result {
	PRICES_PRICED = 0,   /* *cost is the cost */
	PRICES_UNPRICED = 1, /* tokens, but no price: cost unknown */
	PRICES_NO_USAGE = 2  /* no token count reported: nothing to price */
};

/*
 * The cost of one record: the provider's reported cost if any, else
 * input x in + output x out + cache read x cr + 5m writes x cw5m +
 * 1h writes x cw1h, with the entry's long-context tier when the request's
 * total input (input + cache read + cache writes) is above its threshold,
 * and batch prices (the *_batches fields, else 50%) when service_tier is
 * "batch".  Sets *cost (0 unless PRICES_PRICED) and *source ("provider",
 * "prices", "not billable", "unpriced" or "no usage"); either may be NULL.
 * Returns an enum prices_result.
 */
int prices_cost(const struct prices *, const struct prices_usage *, double *,
    const char **);
/* prices_cost() of a usage record: what `log` shows as cost_usd (null
 * unless PRICES_PRICED). */
int prices_cost_record(const struct prices *, const struct usage_record *,
    double *, const char **);

/* The compiled-in copy of share/prices.json. */
const char *prices_builtin(size_t *);

#endif
