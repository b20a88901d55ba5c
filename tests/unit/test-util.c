#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "harness.h"

static void
test_strbuf(void)
{
	struct strbuf sb;
	char *p;
	size_t len;
	int i;

	strbuf_init(&sb);
	for (i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%d,", i);
	CHECK_INT(sb.len, 3890);
	CHECK(str_has_prefix(sb.data, "0,1,2,"));
	CHECK(str_has_suffix(sb.data, "998,999,"));
	strbuf_reset(&sb);
	strbuf_add(&sb, "a\0b", 3);
	strbuf_addc(&sb, 'c');
	p = strbuf_detach(&sb, &len);
	CHECK_INT(len, 4);
	CHECK_MEM(p, "a\0bc", 5);
	CHECK(sb.data == NULL && sb.len == 0);
	free(p);
	/* Integers without printf, the extremes included. */
	strbuf_add_i64(&sb, 0);
	strbuf_addc(&sb, ' ');
	strbuf_add_i64(&sb, -42);
	strbuf_addc(&sb, ' ');
	strbuf_add_i64(&sb, INT64_MAX);
	strbuf_addc(&sb, ' ');
	strbuf_add_i64(&sb, INT64_MIN);
	CHECK_STR(sb.data, "0 -42 9223372036854775807 -9223372036854775808");
	strbuf_free(&sb);
}

static void
test_strings(void)
{
	char s[] = "  \t hello world \r\n";
	long long v;
	int b;

	CHECK_STR(str_trim(s), "hello world");
	CHECK_INT(str_casecmp("Content-Type", "content-type"), 0);
	CHECK(str_casecmp("a", "b") < 0);
	CHECK_INT(str_ncasecmp("X-Api-KeyZ", "x-api-keyY", 9), 0);
	CHECK_INT(str_to_ll("8081", 1, 65535, &v), 0);
	CHECK_INT(v, 8081);
	CHECK_INT(str_to_ll("0", 1, 65535, &v), -1);
	CHECK_INT(str_to_ll("", 0, 9, &v), -1);
	CHECK_INT(str_to_ll(" 1", 0, 9, &v), -1);
	CHECK_INT(str_to_ll("99999999999999999999", 0, 1LL << 62, &v), -1);
	CHECK_INT(str_to_bool("Yes", &b), 0);
	CHECK_INT(b, 1);
	CHECK_INT(str_to_bool("off", &b), 0);
	CHECK_INT(b, 0);
	CHECK_INT(str_to_bool("2", &b), -1);
}

static void
test_hex_and_time(void)
{
	unsigned char bytes[] = {0x00, 0x9f, 0xff};
	char hex[7], stamp[32];

	hex_encode(bytes, 3, hex);
	CHECK_STR(hex, "009fff");
	time_format_utc(1795895783123LL, stamp, sizeof(stamp));
	CHECK_STR(stamp, "2026-11-28T19:56:23.123Z");
	CHECK(time_now_ms() > 1700000000000LL);
}

static void
test_usage_record_init(void)
{
	struct usage_record a, b, c;
	char prev[USAGE_UUID_LEN + 1], hexms[13];
	long long before, after, ms;
	int i, ordered = 1;

	before = (long long)time_now_ms();
	usage_record_init(&a);
	usage_record_init(&b);
	after = (long long)time_now_ms();
	CHECK_INT(strlen(a.uuid), 36);
	/* UUIDv7: version 7, RFC 9562 variant, Unix ms in the first 48 bits. */
	CHECK(a.uuid[8] == '-' && a.uuid[13] == '-' && a.uuid[18] == '-' &&
	    a.uuid[23] == '-');
	CHECK(a.uuid[14] == '7');
	CHECK(strchr("89ab", a.uuid[19]) != NULL);
	snprintf(hexms, sizeof(hexms), "%.8s%.4s", a.uuid, a.uuid + 9);
	ms = strtoll(hexms, NULL, 16);
	CHECK(ms >= before && ms <= after);
	CHECK(strcmp(a.uuid, b.uuid) < 0);
	/* Unique and increasing within one process, also within one ms. */
	snprintf(prev, sizeof(prev), "%s", b.uuid);
	for (i = 0; i < 10000; i++) {
		usage_record_init(&c);
		if (strcmp(prev, c.uuid) >= 0)
			ordered = 0;
		snprintf(prev, sizeof(prev), "%s", c.uuid);
	}
	CHECK(ordered);
	CHECK_INT(a.input_tokens, -1);
	CHECK_INT(a.reasoning_tokens, -1);
	CHECK_INT(a.pid, -1);
	CHECK(a.provider_cost_usd < 0);
	usage_set_str(&a.model, "claude-sonnet-4-5");
	usage_set_str(&a.model, "claude-opus-4-1");
	CHECK_STR(a.model, "claude-opus-4-1");
	usage_record_free(&a);
	CHECK(a.model == NULL);
	usage_record_free(&b);
}

static const struct test tests[] = {
    TEST(test_strbuf),
    TEST(test_strings),
    TEST(test_hex_and_time),
    TEST(test_usage_record_init),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
