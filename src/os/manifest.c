/*
 * manifest: the install record, as JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halton/manifest.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

struct manifest {
	cJSON *root;
	cJSON *entries; /* borrowed from root */
};

static const char *const level_names[] = {"env", "apps", "full"};

const char *
manifest_level_name(enum manifest_level l)
{
	return level_names[l];
}

int
manifest_level_parse(const char *s)
{
	int i;

	for (i = 0; s != NULL && i < 3; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

struct manifest *
manifest_new(void)
{
	struct manifest *m = xcalloc(1, sizeof(*m));

	if ((m->root = cJSON_CreateObject()) == NULL)
		abort();
	cJSON_AddNumberToObject(m->root, "version", MANIFEST_VERSION);
	m->entries = cJSON_AddArrayToObject(m->root, "entries");
	if (m->entries == NULL)
		abort();
	return m;
}

void
manifest_free(struct manifest *m)
{
	if (m == NULL)
		return;
	cJSON_Delete(m->root);
	free(m);
}

int
manifest_load(struct manifest **mp, const char *path, int *found, char **cause)
{
	struct manifest *m = NULL;
	cJSON *root = NULL, *e;
	char *text;
	size_t len;

	*mp = NULL;
	*cause = NULL;
	*found = 0;
	if ((text = file_read(path, &len)) == NULL) {
		if (errno == ENOENT) {
			*mp = manifest_new();
			return 0;
		}
		*cause = xasprintf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	*found = 1;
	root = cJSON_ParseWithLength(text, len);
	free(text);
	if (root == NULL || !cJSON_IsObject(root) ||
	    !cJSON_IsArray(
	        e = cJSON_GetObjectItemCaseSensitive(root, "entries"))) {
		cJSON_Delete(root);
		*cause = xasprintf("%s: not a halton-meter manifest", path);
		return -1;
	}
	m = xcalloc(1, sizeof(*m));
	m->root = root;
	m->entries = e;
	*mp = m;
	return 0;
}

int
manifest_save(const struct manifest *m, const char *path, char **cause)
{
	char *text;
	int rc = 0;

	*cause = NULL;
	if ((text = cJSON_Print(m->root)) == NULL)
		abort();
	if (file_write_atomic(path, text, strlen(text), 0600) == -1) {
		*cause =
		    xasprintf("cannot write %s: %s", path, strerror(errno));
		rc = -1;
	}
	cJSON_free(text);
	return rc;
}

static const char *
root_str(const struct manifest *m, const char *k)
{
	return manifest_str(m->root, k);
}

const char *
manifest_mode(const struct manifest *m)
{
	return root_str(m, "mode");
}

void
manifest_set_mode(struct manifest *m, const char *mode)
{
	manifest_set_str(m->root, "mode", mode);
}

const char *
manifest_platform(const struct manifest *m)
{
	return root_str(m, "platform");
}

void
manifest_set_platform(struct manifest *m, const char *p)
{
	manifest_set_str(m->root, "platform", p);
}

size_t
manifest_count(const struct manifest *m)
{
	return (size_t)cJSON_GetArraySize(m->entries);
}

cJSON *
manifest_at(const struct manifest *m, size_t i)
{
	return cJSON_GetArrayItem(m->entries, (int)i);
}

cJSON *
manifest_find(const struct manifest *m, const char *kind, const char *key)
{
	cJSON *e;
	const char *k, *y;

	cJSON_ArrayForEach(e, m->entries)
	{
		k = manifest_str(e, "kind");
		y = manifest_str(e, "key");
		if (k != NULL && y != NULL && strcmp(k, kind) == 0 &&
		    strcmp(y, key) == 0)
			return e;
	}
	return NULL;
}

cJSON *
manifest_entry(struct manifest *m, const char *kind, const char *key,
    enum manifest_level level, int *existed)
{
	cJSON *e;

	if ((e = manifest_find(m, kind, key)) != NULL) {
		*existed = 1;
		return e;
	}
	*existed = 0;
	if ((e = cJSON_CreateObject()) == NULL)
		abort();
	cJSON_AddStringToObject(e, "kind", kind);
	cJSON_AddStringToObject(e, "key", key);
	cJSON_AddNumberToObject(e, "level", level);
	cJSON_AddItemToArray(m->entries, e);
	return e;
}

void
manifest_remove(struct manifest *m, cJSON *e)
{
	cJSON_Delete(cJSON_DetachItemViaPointer(m->entries, e));
}

const char *
manifest_str(const cJSON *e, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
manifest_int(const cJSON *e, const char *k, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, k);

	return cJSON_IsNumber(v) ? v->valueint : def;
}

void
manifest_set_str(cJSON *e, const char *k, const char *v)
{
	cJSON *item = v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull();

	if (item == NULL)
		abort();
	if (cJSON_GetObjectItemCaseSensitive(e, k) != NULL)
		cJSON_ReplaceItemInObjectCaseSensitive(e, k, item);
	else
		cJSON_AddItemToObject(e, k, item);
}

void
manifest_set_int(cJSON *e, const char *k, int v)
{
	cJSON *item = cJSON_CreateNumber(v);

	if (item == NULL)
		abort();
	if (cJSON_GetObjectItemCaseSensitive(e, k) != NULL)
		cJSON_ReplaceItemInObjectCaseSensitive(e, k, item);
	else
		cJSON_AddItemToObject(e, k, item);
}
