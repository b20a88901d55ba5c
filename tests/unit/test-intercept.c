#include <stdlib.h>
#include <string.h>

#include "halton/config.h"
#include "halton/intercept.h"
#include "harness.h"

static void
test_exact(void)
{
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "api.openai.com"), 1);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "API.OpenAI.Com"), 1);
	CHECK_INT(
	    intercept_pattern_match("API.OPENAI.COM", "api.openai.com"), 1);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "api.openai.com."), 1);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com.", "api.openai.com"), 1);
	CHECK_INT(intercept_pattern_match("api.openai.com", "openai.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "x.api.openai.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "api.openai.co"), 0);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "api.openai.comm"), 0);
	CHECK_INT(
	    intercept_pattern_match("api.openai.com", "api.openai.com.."), 0);
	CHECK_INT(intercept_pattern_match("api.openai.com", ""), 0);
	CHECK_INT(intercept_pattern_match("api.openai.com", "."), 0);
	CHECK_INT(intercept_pattern_match("api.openai.com", NULL), 0);
	CHECK_INT(intercept_pattern_match(NULL, "api.openai.com"), 0);
}

static void
test_star_dot_suffix(void)
{
	const char *p = "*.openai.azure.com";

	CHECK_INT(intercept_pattern_match(p, "myres.openai.azure.com"), 1);
	CHECK_INT(intercept_pattern_match(p, "a.b.openai.azure.com"), 1);
	CHECK_INT(intercept_pattern_match(p, "MyRes.OPENAI.azure.com."), 1);
	/* The suffix itself has no leading label. */
	CHECK_INT(intercept_pattern_match(p, "openai.azure.com"), 0);
	CHECK_INT(intercept_pattern_match(p, ".openai.azure.com"), 0);
	CHECK_INT(intercept_pattern_match(p, "x.openai.azure.com.evil"), 0);
	CHECK_INT(intercept_pattern_match(p, "xopenai.azure.com"), 0);
	CHECK_INT(intercept_pattern_match(p, "a..openai.azure.com"), 0);
}

static void
test_star_in_first_label(void)
{
	const char *p = "*-aiplatform.googleapis.com";

	CHECK_INT(
	    intercept_pattern_match(p, "us-central1-aiplatform.googleapis.com"),
	    1);
	CHECK_INT(intercept_pattern_match(
	              p, "EUROPE-WEST4-AIPLATFORM.googleapis.com."),
	    1);
	/* '*' needs at least one character and never crosses a dot. */
	CHECK_INT(intercept_pattern_match(p, "-aiplatform.googleapis.com"), 0);
	CHECK_INT(
	    intercept_pattern_match(p, "a.us-aiplatform.googleapis.com"), 0);
	CHECK_INT(intercept_pattern_match(p, "aiplatform.googleapis.com"), 0);
	CHECK_INT(
	    intercept_pattern_match(p, "us-aiplatformx.googleapis.com"), 0);
	CHECK_INT(
	    intercept_pattern_match(p, "us-aiplatform.googleapis.com.evil.net"),
	    0);
	CHECK_INT(
	    intercept_pattern_match("api*.example.com", "api2.example.com"), 1);
	CHECK_INT(
	    intercept_pattern_match("api*.example.com", "api.example.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("a*z.example.com", "abcz.example.com"), 1);
	CHECK_INT(
	    intercept_pattern_match("a*z.example.com", "abcy.example.com"), 0);
}

static void
test_star_middle_label(void)
{
	const char *p = "bedrock-runtime.*.amazonaws.com";

	CHECK_INT(intercept_pattern_match(
	              p, "bedrock-runtime.us-east-1.amazonaws.com"),
	    1);
	CHECK_INT(intercept_pattern_match(
	              p, "Bedrock-Runtime.EU-WEST-3.amazonaws.com."),
	    1);
	/* Exactly one label. */
	CHECK_INT(
	    intercept_pattern_match(p, "bedrock-runtime.amazonaws.com"), 0);
	CHECK_INT(
	    intercept_pattern_match(p, "bedrock-runtime.a.b.amazonaws.com"), 0);
	CHECK_INT(intercept_pattern_match(
	              p, "x.bedrock-runtime.us-east-1.amazonaws.com"),
	    0);
	CHECK_INT(
	    intercept_pattern_match(p, "bedrock.us-east-1.amazonaws.com"), 0);
	CHECK_INT(
	    intercept_pattern_match(p, "bedrock-runtime..amazonaws.com"), 0);
}

static void
test_builtin_list(void)
{
	struct intercept_list *l = intercept_list_new(NULL);
	size_t n = 0;

	while (intercept_builtin[n] != NULL)
		n++;
	CHECK_INT(n, 15);
	CHECK_INT(intercept_list_count(l), 15);
	CHECK_STR(intercept_list_at(l, 0), "api.anthropic.com");
	CHECK_STR(intercept_list_at(l, 14), "api.fireworks.ai");
	CHECK(intercept_list_at(l, 15) == NULL);

	CHECK_INT(intercept_list_match(l, "api.anthropic.com"), 1);
	CHECK_INT(intercept_list_match(l, "API.ANTHROPIC.COM."), 1);
	CHECK_INT(intercept_list_match(l, "api.openai.com"), 1);
	CHECK_INT(
	    intercept_list_match(l, "generativelanguage.googleapis.com"), 1);
	CHECK_INT(intercept_list_match(l, "aiplatform.googleapis.com"), 1);
	CHECK_INT(
	    intercept_list_match(l, "us-east5-aiplatform.googleapis.com"), 1);
	CHECK_INT(intercept_list_match(l, "cloudcode-pa.googleapis.com"), 1);
	CHECK_INT(
	    intercept_list_match(l, "bedrock-runtime.us-west-2.amazonaws.com"),
	    1);
	CHECK_INT(intercept_list_match(l, "contoso.openai.azure.com"), 1);
	CHECK_INT(intercept_list_match(l, "openrouter.ai"), 1);
	CHECK_INT(intercept_list_match(l, "api.groq.com"), 1);
	CHECK_INT(intercept_list_match(l, "api.deepseek.com"), 1);
	CHECK_INT(intercept_list_match(l, "api.mistral.ai"), 1);
	CHECK_INT(intercept_list_match(l, "api.x.ai"), 1);
	CHECK_INT(intercept_list_match(l, "api.together.xyz"), 1);
	CHECK_INT(intercept_list_match(l, "api.fireworks.ai"), 1);

	/* Look-alikes and neighbours are tunnelled. */
	CHECK_INT(
	    intercept_list_match(l, "evil-api.anthropic.com.attacker.net"), 0);
	CHECK_INT(intercept_list_match(l, "api.anthropic.com.evil"), 0);
	CHECK_INT(intercept_list_match(l, "evil-api.anthropic.com"), 0);
	CHECK_INT(intercept_list_match(l, "anthropic.com"), 0);
	CHECK_INT(intercept_list_match(l, "console.anthropic.com"), 0);
	CHECK_INT(intercept_list_match(l, "storage.googleapis.com"), 0);
	CHECK_INT(intercept_list_match(l, "s3.us-east-1.amazonaws.com"), 0);
	CHECK_INT(intercept_list_match(l, "openai.azure.com"), 0);
	CHECK_INT(intercept_list_match(l, "www.openrouter.ai"), 0);
	CHECK_INT(intercept_list_match(l, "github.com"), 0);
	CHECK_INT(intercept_list_match(l, "api.anthropic.com:443"), 0);
	CHECK_INT(intercept_list_match(l, "api.anthropic.com/"), 0);
	CHECK_INT(intercept_list_match(l, "1.2.3.4"), 0);
	CHECK_INT(intercept_list_match(l, ""), 0);
	CHECK_INT(intercept_list_match(l, INTERCEPT_DOCTOR_HOST), 0);
	intercept_list_free(l);
}

static void
test_config_patterns(void)
{
	struct strlist extra = {0};
	struct intercept_list *l;

	strlist_add(&extra, "LLM.Example.com");
	strlist_add(&extra, "*.llm.example.net.");
	strlist_add(&extra, "api.openai.com"); /* duplicate of a built-in */
	l = intercept_list_new(&extra);
	CHECK_INT(intercept_list_count(l), 17);
	CHECK_STR(intercept_list_at(l, 15), "llm.example.com");
	CHECK_STR(intercept_list_at(l, 16), "*.llm.example.net");
	CHECK_INT(intercept_list_match(l, "llm.example.com"), 1);
	CHECK_INT(intercept_list_match(l, "a.llm.example.net"), 1);
	CHECK_INT(intercept_list_match(l, "llm.example.net"), 0);
	CHECK_INT(intercept_list_match(l, "api.anthropic.com"), 1);
	intercept_list_free(l);
	strlist_free(&extra);
	intercept_list_free(NULL);
}

static void
test_bad_host_syntax(void)
{
	CHECK_INT(
	    intercept_pattern_match("*.example.com", "a b.example.com"), 0);
	CHECK_INT(intercept_pattern_match("*.example.com", "*.example.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("*.example.com", "a\n.example.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("*-x.example.com", "*-x.example.com"), 0);
	CHECK_INT(
	    intercept_pattern_match("*.example.com", "under_score.example.com"),
	    1);
}

static const struct test tests[] = {
    TEST(test_exact),
    TEST(test_star_dot_suffix),
    TEST(test_star_in_first_label),
    TEST(test_star_middle_label),
    TEST(test_builtin_list),
    TEST(test_config_patterns),
    TEST(test_bad_host_syntax),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
