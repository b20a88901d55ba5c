/*
 * prices: the price table (shipped + user overrides), model-name
 * normalisation and the cost of one usage record.  Rules: docs/prices.md.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "halton/paths.h"
#include "halton/prices.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "prices-data.h"

#define BUILTIN_SOURCE "built-in"

struct prices {
	struct prices_entry *v;
	size_t n;
	char *shipped;  /* path, or NULL for the built-in copy */
	char *override; /* path read, or NULL */
};

/* LiteLLM base field names, longest first where one prefixes another. */
static const struct {
	const char *name;
	enum prices_component comp;
} price_fields[] = {
    {"input_cost_per_token", PRICES_INPUT},
    {"output_cost_per_token", PRICES_OUTPUT},
    {"cache_read_input_token_cost", PRICES_CACHE_READ},
    {"cache_creation_input_token_cost_above_1hr", PRICES_CACHE_WRITE_1H},
    {"cache_creation_input_token_cost", PRICES_CACHE_WRITE_5M},
};

/* Record provider name -> LiteLLM key prefix. */
static const struct {
	const char *provider;
	const char *prefix;
} provider_prefixes[] = {
    {"anthropic", "anthropic"},
    {"openai", "openai"},
    {"gemini", "gemini"},
    {"bedrock", "bedrock"},
    {"openrouter", "openrouter"},
    {"groq", "groq"},
    {"deepseek", "deepseek"},
    {"mistral", "mistral"},
    {"xai", "xai"},
    {"azure", "azure"},
    {"together", "together_ai"},
    {"fireworks", "fireworks_ai"},
};

static void
entry_init(struct prices_entry *e, const char *key, const char *origin)
{
	int i;

	memset(e, 0, sizeof(*e));
	e->key = xstrdup(key);
	str_lower(e->key);
	e->origin = origin;
	for (i = 0; i < PRICES_NCOMP; i++) {
		e->base[i] = NAN;
		e->batch[i] = NAN;
	}
}

static void
entry_free(struct prices_entry *e)
{
	free(e->key);
	free(e->provider);
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prices_entry *)a)->key,
	    ((const struct prices_entry *)b)->key);
}

static struct prices_entry *
table_find(const struct prices *p, const char *key)
{
	struct prices_entry k;

	if (p->n == 0)
		return NULL;
	k.key = (char *)key;
	return bsearch(&k, p->v, p->n, sizeof(*p->v), entry_cmp);
}

/* Returns the tier prices for threshold t, adding the tier if needed;
 * NULL if the entry has PRICES_MAX_TIERS already. */
static double *
entry_tier(struct prices_entry *e, int64_t t)
{
	int i, j, k;

	for (i = 0; i < e->ntiers; i++)
		if (e->tiers[i].threshold == t)
			return e->tiers[i].p;
	if (e->ntiers == PRICES_MAX_TIERS)
		return NULL;
	for (i = 0; i < e->ntiers && e->tiers[i].threshold < t; i++)
		;
	for (j = e->ntiers; j > i; j--)
		e->tiers[j] = e->tiers[j - 1];
	e->tiers[i].threshold = t;
	for (k = 0; k < PRICES_NCOMP; k++)
		e->tiers[i].p[k] = NAN;
	e->ntiers++;
	return e->tiers[i].p;
}

/*
 * Maps a LiteLLM field name to the slot it sets in e: the base price, the
 * batch price or a tier price.  Returns the slot, or NULL for a field this
 * table does not use (priority/flex prices, limits, flags...).
 */
static double *
field_slot(struct prices_entry *e, const char *name)
{
	const char *rest;
	double *tier;
	char *end;
	size_t i, n;
	long long k;

	for (i = 0; i < sizeof(price_fields) / sizeof(price_fields[0]); i++) {
		n = strlen(price_fields[i].name);
		if (strncmp(name, price_fields[i].name, n) != 0)
			continue;
		rest = name + n;
		if (*rest == '\0')
			return &e->base[price_fields[i].comp];
		if (strcmp(rest, "_batches") == 0)
			return &e->batch[price_fields[i].comp];
		if (strncmp(rest, "_above_", 7) == 0 &&
		    isdigit((unsigned char)rest[7])) {
			errno = 0;
			k = strtoll(rest + 7, &end, 10);
			if (errno != 0 || k <= 0 || k > 100000000 ||
			    strcmp(end, "k_tokens") != 0)
				return NULL;
			if ((tier = entry_tier(e, k * 1000)) == NULL)
				return NULL;
			return &tier[price_fields[i].comp];
		}
		/* "..._above_1hr" is its own base name (earlier in the
		 * list); anything else (_priority, _flex) is not used. */
	}
	return NULL;
}

/*
 * Merges one parsed table file into p.  Entries are appended unsorted and
 * sorted by the caller; an entry already present gets the new fields.
 * Returns 0, or -1 with a cause naming the file and model.
 */
static int
merge_file(struct prices *p, const char *text, size_t len, const char *origin,
    int is_override, char **cause)
{
	cJSON *root = NULL, *m, *f;
	struct prices_entry *e, tmp;
	double *slot;
	size_t sorted = p->n;
	int rc = -1;

	*cause = NULL;
	root = cJSON_ParseWithLength(text, len);
	if (root == NULL || !cJSON_IsObject(root)) {
		*cause = xasprintf("%s: not a JSON object%s", origin,
		    root == NULL ? " (JSON syntax error)" : "");
		goto out;
	}
	for (m = root->child; m != NULL; m = m->next) {
		if (m->string == NULL || m->string[0] == '_')
			continue;
		if (!cJSON_IsObject(m)) {
			*cause = xasprintf(
			    "%s: %s: not an object", origin, m->string);
			goto out;
		}
		if (strlen(m->string) >= PRICES_MAX_NAME) {
			*cause = xasprintf("%s: %.40s...: model name too long",
			    origin, m->string);
			goto out;
		}
		entry_init(&tmp, m->string, origin);
		e = NULL;
		if (sorted > 0) {
			struct prices saved = *p;

			saved.n = sorted;
			e = table_find(&saved, tmp.key);
		}
		if (e == NULL) {
			p->v = xreallocarray(p->v, p->n + 1, sizeof(*p->v));
			p->v[p->n] = tmp;
			e = &p->v[p->n++];
		} else {
			entry_free(&tmp);
			e->origin = origin;
		}
		if (is_override)
			e->overridden = 1;
		for (f = m->child; f != NULL; f = f->next) {
			if (strcmp(f->string, "litellm_provider") == 0 &&
			    cJSON_IsString(f)) {
				free(e->provider);
				e->provider = xstrdup(f->valuestring);
				continue;
			}
			if ((slot = field_slot(e, f->string)) == NULL)
				continue;
			if (!cJSON_IsNumber(f) || !(f->valuedouble >= 0) ||
			    !isfinite(f->valuedouble)) {
				*cause =
				    xasprintf("%s: %s: %s must be a number "
				              ">= 0",
				        origin, m->string, f->string);
				goto out;
			}
			*slot = f->valuedouble;
		}
		if (isnan(e->base[PRICES_INPUT]) ||
		    isnan(e->base[PRICES_OUTPUT])) {
			*cause = xasprintf("%s: %s: needs input_cost_per_token "
			                   "and output_cost_per_token",
			    origin, m->string);
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	if (p->n > 0)
		qsort(p->v, p->n, sizeof(*p->v), entry_cmp);
	return rc;
}

int
prices_load(struct prices **out, const char *shipped, const char *override,
    char **cause)
{
	struct prices *p;
	char *text = NULL;
	size_t len;
	int rc = -1;

	*out = NULL;
	*cause = NULL;
	p = xcalloc(1, sizeof(*p));
	if (shipped != NULL && (text = file_read(shipped, &len)) != NULL) {
		p->shipped = xstrdup(shipped);
		if (merge_file(p, text, len, p->shipped, 0, cause) == -1)
			goto out;
	} else if (shipped != NULL && errno != ENOENT) {
		*cause = xasprintf("%s: %s", shipped, strerror(errno));
		goto out;
	} else if (merge_file(p, (const char *)prices_builtin_json,
	               prices_builtin_json_len, BUILTIN_SOURCE, 0, cause) == -1)
		goto out;
	free(text);
	text = NULL;
	if (override != NULL && (text = file_read(override, &len)) != NULL) {
		p->override = xstrdup(override);
		if (merge_file(p, text, len, p->override, 1, cause) == -1)
			goto out;
	} else if (override != NULL && errno != ENOENT) {
		*cause = xasprintf("%s: %s", override, strerror(errno));
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	free(text);
	prices_free(p);
	return rc;
}

void
prices_default_paths(char **shipped, char **override)
{
	const char *dir = getenv("HALTON_METER_DATADIR");

	if (dir == NULL || *dir == '\0')
		dir = HALTON_DATADIR;
	*shipped = xasprintf("%s/prices.json", dir);
	*override = paths_state_file("prices.json");
}

int
prices_load_default(struct prices **out, char **cause)
{
	char *shipped, *override;
	int rc;

	prices_default_paths(&shipped, &override);
	rc = prices_load(out, shipped, override, cause);
	free(shipped);
	free(override);
	return rc;
}

void
prices_free(struct prices *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		entry_free(&p->v[i]);
	free(p->v);
	free(p->shipped);
	free(p->override);
	free(p);
}

const char *
prices_shipped_source(const struct prices *p)
{
	return p->shipped != NULL ? p->shipped : BUILTIN_SOURCE;
}

const char *
prices_override_source(const struct prices *p)
{
	return p->override;
}

size_t
prices_count(const struct prices *p)
{
	return p->n;
}

const struct prices_entry *
prices_entry_at(const struct prices *p, size_t i)
{
	return i < p->n ? &p->v[i] : NULL;
}

const char *
prices_builtin(size_t *len)
{
	if (len != NULL)
		*len = prices_builtin_json_len;
	return (const char *)prices_builtin_json;
}

/* Tries "<prefix>/name" then "name". */
static const struct prices_entry *
try_name(const struct prices *p, const char *prefix, const char *name,
    unsigned *steps)
{
	const struct prices_entry *e;
	char buf[PRICES_MAX_NAME * 2];

	if (prefix != NULL) {
		snprintf(buf, sizeof(buf), "%s/%s", prefix, name);
		if ((e = table_find(p, buf)) != NULL) {
			*steps |= PRICES_NORM_PROVIDER;
			return e;
		}
	}
	return table_find(p, name);
}

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Removes a Bedrock region prefix, vendor prefix and version suffix
 * ("us.anthropic.claude-x-20250929-v1:0" -> "claude-x-20250929") in
 * place; returns 1 if it changed anything. */
static int
strip_bedrock(char *s)
{
	static const char *const regions[] = {"us.", "eu.", "apac.", "ap.",
	    "global.", "jp.", "au.", "ca.", "us-gov."};
	static const char *const vendors[] = {"anthropic.", "meta.", "mistral.",
	    "amazon.", "cohere.", "ai21.", "deepseek.", "openai.", "qwen.",
	    "writer."};
	size_t i, n;
	char *p = s, *v;
	int changed = 0;

	for (i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		n = strlen(regions[i]);
		if (strncmp(p, regions[i], n) == 0) {
			p += n;
			break;
		}
	}
	for (i = 0; i < sizeof(vendors) / sizeof(vendors[0]); i++) {
		n = strlen(vendors[i]);
		if (strncmp(p, vendors[i], n) == 0) {
			p += n;
			changed = 1;
			break;
		}
	}
	if (!changed)
		return 0;
	memmove(s, p, strlen(p) + 1);
	/* ":N" version, then "-vN". */
	if ((v = strrchr(s, ':')) != NULL && v[1] != '\0' &&
	    all_digits(v + 1, strlen(v + 1)))
		*v = '\0';
	if ((v = strrchr(s, '-')) != NULL && v[1] == 'v' && v[2] != '\0' &&
	    all_digits(v + 2, strlen(v + 2)))
		*v = '\0';
	return 1;
}

/* "anthropic/claude-sonnet-4.5:thinking" -> "claude-sonnet-4-5". */
static int
strip_vendor(char *s)
{
	char *p, *c;
	int changed = 0;

	if ((p = strrchr(s, '/')) != NULL) {
		memmove(s, p + 1, strlen(p + 1) + 1);
		changed = 1;
	}
	if ((c = strrchr(s, ':')) != NULL && c[1] != '\0' &&
	    !all_digits(c + 1, strlen(c + 1))) {
		*c = '\0';
		changed = 1;
	}
	if (changed && str_has_prefix(s, "claude-")) {
		for (p = s; *p != '\0'; p++)
			if (*p == '.' && p > s &&
			    isdigit((unsigned char)p[-1]) &&
			    isdigit((unsigned char)p[1]))
				*p = '-';
	}
	return changed;
}

/* Removes "-YYYYMMDD", "@YYYYMMDD" or "-YYYY-MM-DD" at the end. */
static int
strip_date(char *s)
{
	size_t n = strlen(s);

	if (n > 9 && (s[n - 9] == '-' || s[n - 9] == '@') &&
	    all_digits(s + n - 8, 8) && s[n - 8] == '2') {
		s[n - 9] = '\0';
		return 1;
	}
	if (n > 11 && s[n - 11] == '-' && all_digits(s + n - 10, 4) &&
	    s[n - 6] == '-' && all_digits(s + n - 5, 2) && s[n - 3] == '-' &&
	    all_digits(s + n - 2, 2)) {
		s[n - 11] = '\0';
		return 1;
	}
	return 0;
}

int
prices_lookup(const struct prices *p, const char *provider, const char *model,
    struct prices_match *m)
{
	const char *prefix = NULL, *s;
	char name[PRICES_MAX_NAME];
	size_t i;
	unsigned steps = 0;

	m->entry = NULL;
	m->steps = 0;
	if (model == NULL || *model == '\0' || strlen(model) >= sizeof(name))
		return -1;
	for (i = 0; provider != NULL &&
	     i < sizeof(provider_prefixes) / sizeof(provider_prefixes[0]);
	     i++)
		if (strcmp(provider, provider_prefixes[i].provider) == 0)
			prefix = provider_prefixes[i].prefix;
	snprintf(name, sizeof(name), "%s", model);
	str_trim(name);
	str_lower(name);
	if ((m->entry = try_name(p, prefix, name, &steps)) != NULL)
		goto found;
	if ((s = strstr(name, "models/")) != NULL &&
	    (s == name || s[-1] == '/')) {
		memmove(name, s + 7, strlen(s + 7) + 1);
		steps |= PRICES_NORM_MODELS;
		if ((m->entry = try_name(p, prefix, name, &steps)) != NULL)
			goto found;
	}
	if (strip_bedrock(name)) {
		steps |= PRICES_NORM_BEDROCK;
		if ((m->entry = try_name(p, prefix, name, &steps)) != NULL)
			goto found;
	}
	if (strip_vendor(name)) {
		steps |= PRICES_NORM_VENDOR;
		if ((m->entry = try_name(p, prefix, name, &steps)) != NULL)
			goto found;
	}
	if (strip_date(name)) {
		steps |= PRICES_NORM_DATE;
		if ((m->entry = try_name(p, prefix, name, &steps)) != NULL)
			goto found;
	}
	return -1;
found:
	m->steps = steps;
	return 0;
}

void
prices_steps_string(unsigned steps, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *word;
	} words[] = {
	    {PRICES_NORM_MODELS, "models/ prefix"},
	    {PRICES_NORM_BEDROCK, "Bedrock id"},
	    {PRICES_NORM_VENDOR, "vendor/model"},
	    {PRICES_NORM_DATE, "date suffix"},
	    {PRICES_NORM_PROVIDER, "provider key"},
	};
	size_t i, n = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if ((steps & words[i].bit) == 0)
			continue;
		n += snprintf(buf + n, n < len ? len - n : 0, "%s%s",
		    n > 0 ? ", " : "", words[i].word);
		if (n >= len)
			return;
	}
	if (n == 0)
		snprintf(buf, len, "exact");
}

void
prices_usage_from_record(struct prices_usage *u, const struct usage_record *r)
{
	u->provider = r->provider;
	u->model =
	    r->model != NULL && *r->model != '\0' ? r->model : r->request_model;
	u->kind = r->kind;
	u->service_tier = r->service_tier;
	u->input_tokens = r->input_tokens;
	u->output_tokens = r->output_tokens;
	u->cache_read_tokens = r->cache_read_input_tokens;
	u->cache_write_tokens = r->cache_creation_input_tokens;
	u->cache_write_5m_tokens = r->cache_creation_5m_tokens;
	u->cache_write_1h_tokens = r->cache_creation_1h_tokens;
	u->provider_cost_usd = r->provider_cost_usd;
}

static int64_t
count(int64_t v)
{
	return v > 0 ? v : 0;
}

/* The price of component c for a request of total input `total`. */
static double
component_price(const struct prices_entry *e, int c, int64_t total, int batch)
{
	const double *tier = NULL;
	double v;
	int i;

	for (i = e->ntiers - 1; i >= 0; i--)
		if (total > e->tiers[i].threshold) {
			tier = e->tiers[i].p;
			break;
		}
	if (batch && tier == NULL && !isnan(e->batch[c]))
		return e->batch[c];
	v = tier != NULL && !isnan(tier[c]) ? tier[c] : e->base[c];
	if (isnan(v)) {
		/* Fallbacks: cache read and 5m writes at the input price,
		 * 1h writes at the 5m price. */
		if (c == PRICES_CACHE_WRITE_1H)
			return component_price(
			    e, PRICES_CACHE_WRITE_5M, total, batch);
		return component_price(e, PRICES_INPUT, total, batch);
	}
	return batch ? v * 0.5 : v;
}

int
prices_cost(const struct prices *p, const struct prices_usage *u, double *cost,
    const char **source)
{
	struct prices_match m;
	int64_t n[PRICES_NCOMP], total, w;
	double sum = 0;
	int i, batch;

	if (cost != NULL)
		*cost = 0;
	if (u->kind != NULL && strcmp(u->kind, "count_tokens") == 0) {
		if (source != NULL)
			*source = "not billable";
		return PRICES_PRICED;
	}
	if (u->provider_cost_usd >= 0) {
		if (cost != NULL)
			*cost = u->provider_cost_usd;
		if (source != NULL)
			*source = "provider";
		return PRICES_PRICED;
	}
	if (u->input_tokens < 0 && u->output_tokens < 0 &&
	    u->cache_read_tokens < 0 && u->cache_write_tokens < 0 &&
	    u->cache_write_5m_tokens < 0 && u->cache_write_1h_tokens < 0) {
		if (source != NULL)
			*source = "no usage";
		return PRICES_NO_USAGE;
	}
	n[PRICES_INPUT] = count(u->input_tokens);
	n[PRICES_OUTPUT] = count(u->output_tokens);
	n[PRICES_CACHE_READ] = count(u->cache_read_tokens);
	/* The 5m/1h split when known; an unsplit total counts as 5m. */
	n[PRICES_CACHE_WRITE_1H] = count(u->cache_write_1h_tokens);
	if (u->cache_write_5m_tokens >= 0)
		n[PRICES_CACHE_WRITE_5M] = u->cache_write_5m_tokens;
	else {
		w = count(u->cache_write_tokens) - n[PRICES_CACHE_WRITE_1H];
		n[PRICES_CACHE_WRITE_5M] = w > 0 ? w : 0;
	}
	total = 0;
	for (i = 0; i < PRICES_NCOMP; i++)
		total += i == PRICES_OUTPUT ? 0 : n[i];
	if (total == 0 && n[PRICES_OUTPUT] == 0) {
		if (source != NULL)
			*source = "prices";
		return PRICES_PRICED; /* zero tokens cost zero */
	}
	if (prices_lookup(p, u->provider, u->model, &m) == -1) {
		if (source != NULL)
			*source = "unpriced";
		return PRICES_UNPRICED;
	}
	batch =
	    u->service_tier != NULL && strcmp(u->service_tier, "batch") == 0;
	for (i = 0; i < PRICES_NCOMP; i++)
		if (n[i] > 0)
			sum += (double)n[i] *
			    component_price(m.entry, i, total, batch);
	if (cost != NULL)
		*cost = sum;
	if (source != NULL)
		*source = "prices";
	return PRICES_PRICED;
}

int
prices_cost_record(const struct prices *p, const struct usage_record *r,
    double *cost, const char **source)
{
	struct prices_usage u;

	prices_usage_from_record(&u, r);
	return prices_cost(p, &u, cost, source);
}
