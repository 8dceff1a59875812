/* check_auth.c -- unit tests of room authentication patterns (auth.h).
 *
 * PROTOCOL.md: a pattern is a set of KEY = VALUE pairs (VALUE any JSON
 * scalar); a connection matches when, for every pair, its attribute KEY
 * exists and equals VALUE with the same JSON type and value. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "msg.h"

static struct pattern pat;

static void setup(void)
{
    memset(&pat, 0, sizeof(pat));
}

static void teardown(void)
{
    pattern_clear(&pat);
}

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "bad JSON in test: %s", text);
    return o;
}

/* Set the pattern from JSON text; return pattern_set's result. */
static int set(const char *text)
{
    json_object *o = parse(text);
    int rc = pattern_set(&pat, o);
    json_object_put(o);
    return rc;
}

/* Whether the attributes in JSON text match the pattern. */
static bool match(const char *attrs)
{
    json_object *a = parse(attrs);
    bool m = pattern_match(&pat, a);
    json_object_put(a);
    return m;
}

static void assert_pattern_json(const char *want)
{
    json_object *o = pattern_to_json(&pat);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_object_to_json_string_ext(o, ROOMD_JSON_FLAGS), want);
    json_object_put(o);
}

START_TEST(test_several_pairs)
{
    ck_assert_int_eq(set("{\"authenticated\":true,\"role\":\"mod\",\"level\":3}"), 0);
    ck_assert_int_eq(pat.npairs, 3);
    ck_assert(match("{\"authenticated\":true,\"role\":\"mod\",\"level\":3}"));
    /* Extra attributes do not matter, nor does their order. */
    ck_assert(match("{\"id\":\"x\",\"level\":3,\"role\":\"mod\",\"authenticated\":true}"));
    /* Every pair must hold. */
    ck_assert(!match("{\"authenticated\":false,\"role\":\"mod\",\"level\":3}"));
    ck_assert(!match("{\"authenticated\":true,\"role\":\"user\",\"level\":3}"));
    ck_assert(!match("{\"authenticated\":true,\"role\":\"mod\",\"level\":4}"));
    ck_assert(!match("{\"authenticated\":true,\"role\":\"Mod\",\"level\":3}"));
}
END_TEST

START_TEST(test_typed_bool)
{
    ck_assert_int_eq(set("{\"authenticated\":true}"), 0);
    ck_assert(match("{\"authenticated\":true}"));
    ck_assert(!match("{\"authenticated\":\"true\"}"));
    ck_assert(!match("{\"authenticated\":1}"));
    ck_assert(!match("{\"authenticated\":false}"));
    ck_assert(!match("{\"authenticated\":null}"));

    ck_assert_int_eq(set("{\"authenticated\":\"true\"}"), 0);
    ck_assert(match("{\"authenticated\":\"true\"}"));
    ck_assert(!match("{\"authenticated\":true}"));
}
END_TEST

START_TEST(test_typed_number)
{
    ck_assert_int_eq(set("{\"level\":1}"), 0);
    ck_assert(match("{\"level\":1}"));
    ck_assert(!match("{\"level\":\"1\"}"));
    ck_assert(!match("{\"level\":true}"));
    ck_assert(!match("{\"level\":2}"));
    ck_assert(!match("{\"level\":-1}"));

    ck_assert_int_eq(set("{\"level\":\"1\"}"), 0);
    ck_assert(match("{\"level\":\"1\"}"));
    ck_assert(!match("{\"level\":1}"));

    ck_assert_int_eq(set("{\"score\":2.5}"), 0);
    ck_assert(match("{\"score\":2.5}"));
    ck_assert(!match("{\"score\":\"2.5\"}"));
}
END_TEST

START_TEST(test_number_value_not_spelling)
{
    /* JSON has a single number type: 1, 1.0 and 1e0 are the same JSON type
     * and the same value, so they must match each other.  Every pair that
     * does not match is listed in the failure message. */
    static const char *const same[][2] = {
        {"1", "1.0"}, {"1", "1e0"}, {"100.0", "100"}, {"2.5", "2.50"}, {"0", "-0"},
    };
    char missed[512] = "";
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"level\":%s}", same[i][0]);
        ck_assert_int_eq(set(text), 0);
        snprintf(text, sizeof(text), "{\"level\":%s}", same[i][1]);
        if (!match(text)) {
            size_t n = strlen(missed);
            snprintf(missed + n, sizeof(missed) - n, " [pattern %s, attribute %s]", same[i][0],
                     same[i][1]);
        }
    }
    ck_assert_msg(missed[0] == '\0', "equal numbers not matched:%s", missed);
}
END_TEST

/* Set the pattern {"uid":PATTERN} and report whether {"uid":ATTRIBUTE} matches it. */
static bool uid_matches(const char *pattern, const char *attribute)
{
    char text[96];
    snprintf(text, sizeof(text), "{\"uid\":%s}", pattern);
    ck_assert_int_eq(set(text), 0);
    snprintf(text, sizeof(text), "{\"uid\":%s}", attribute);
    return match(text);
}

START_TEST(test_numbers_compare_exactly)
{
    /* Issue 11 item 5: a token for uid ...456700 entered the room guarded by uid ...456789,
     * both being the same double.  Integers compare as integers; an integer equals a double
     * only when the double is exactly that integer. */
    static const char *const differ[][2] = {
        {"1234567890123456789", "1234567890123456700"},
        {"1234567890123456789", "1234567890123456789.0"}, /* the double is ...768 */
        {"1234567890123456789", "1.234567890123456789e18"},
        {"9007199254740993", "9007199254740992"}, /* 2^53 + 1 and 2^53 */
        {"9007199254740993", "9007199254740992.0"},
        {"18446744073709551615", "18446744073709551614"},   /* uint64 */
        {"18446744073709551615", "9223372036854775807"},    /* uint64 vs int64 max */
        {"9223372036854775808", "9223372036854775807"},     /* 2^63 vs 2^63 - 1 */
        {"-9223372036854775808", "-9223372036854775807"},   /* int64 min */
        {"-9223372036854775808", "9223372036854775808"},    /* the sign counts */
        {"18446744073709551615", "18446744073709551616.0"}, /* 2^64 as a double */
        {"2", "2.0000000000000004"},
        {"2", "-2"},
        {"0.1", "0.30000000000000004"},
    };
    static const char *const same[][2] = {
        {"1234567890123456789", "1234567890123456789"},
        {"1234567890123456768", "1234567890123456768.0"},   /* that double, exactly */
        {"9223372036854775808", "9.223372036854775808e18"}, /* 2^63 */
        {"-9223372036854775808", "-9223372036854775808.0"}, /* -2^63 */
        {"-9223372036854775808", "-9223372036854775808"},
        {"18446744073709551615", "18446744073709551615"},
        {"0.1", "0.1"},
        {"0", "-0.0"},
    };
    char wrong[1024] = "";
    for (int order = 0; order < 2; order++) {
        for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
            if (uid_matches(differ[i][order], differ[i][!order])) {
                size_t n = strlen(wrong);
                snprintf(wrong + n, sizeof(wrong) - n, " [%s matched %s]", differ[i][order],
                         differ[i][!order]);
            }
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
            if (!uid_matches(same[i][order], same[i][!order])) {
                size_t n = strlen(wrong);
                snprintf(wrong + n, sizeof(wrong) - n, " [%s missed %s]", same[i][order],
                         same[i][!order]);
            }
    }
    ck_assert_msg(wrong[0] == '\0', "numbers compared wrongly:%s", wrong);
}
END_TEST

START_TEST(test_typed_null)
{
    ck_assert_int_eq(set("{\"banned\":null}"), 0);
    ck_assert_int_eq(pat.npairs, 1);
    ck_assert(match("{\"banned\":null}"));
    ck_assert(!match("{\"banned\":\"null\"}"));
    ck_assert(!match("{\"banned\":false}"));
    ck_assert(!match("{\"banned\":0}"));
    /* null must still be present as an attribute. */
    ck_assert(!match("{}"));
    ck_assert(!match("{\"other\":null}"));
}
END_TEST

START_TEST(test_typed_string)
{
    ck_assert_int_eq(set("{\"name\":\"caf\xc3\xa9 a/b\"}"), 0);
    ck_assert(match("{\"name\":\"caf\xc3\xa9 a/b\"}"));
    /* The same string spelt with escapes is the same value. */
    ck_assert(match("{\"name\":\"caf\\u00e9 a\\/b\"}"));
    ck_assert(!match("{\"name\":\"cafe a/b\"}"));
    ck_assert(!match("{\"name\":\"caf\xc3\xa9 a/b \"}"));
}
END_TEST

START_TEST(test_missing_attribute)
{
    ck_assert_int_eq(set("{\"role\":\"mod\",\"level\":3}"), 0);
    ck_assert(!match("{\"role\":\"mod\"}"));
    ck_assert(!match("{\"level\":3}"));
    ck_assert(!match("{}"));
    ck_assert(!match("{\"Role\":\"mod\",\"level\":3}"));
}
END_TEST

START_TEST(test_empty_pattern)
{
    /* A fresh pattern and an empty object both match anything. */
    ck_assert_int_eq(pat.npairs, 0);
    ck_assert(match("{}"));
    ck_assert(match("{\"a\":1}"));
    ck_assert(pattern_match(&pat, NULL));
    ck_assert_int_eq(set("{}"), 0);
    ck_assert_int_eq(pat.npairs, 0);
    ck_assert(match("{}"));
    ck_assert(match("{\"authenticated\":false}"));
    assert_pattern_json("{}");
}
END_TEST

START_TEST(test_non_scalar_rejected)
{
    ck_assert_int_eq(set("{\"role\":\"mod\"}"), 0);
    ck_assert_int_eq(set("{\"a\":1,\"groups\":[\"x\"]}"), -1);
    ck_assert_int_eq(set("{\"a\":1,\"o\":{\"k\":1}}"), -1);
    ck_assert_int_eq(set("{\"o\":{}}"), -1);
    ck_assert_int_eq(set("{\"o\":[]}"), -1);
    /* A refused pattern leaves the previous one in place. */
    ck_assert_int_eq(pat.npairs, 1);
    assert_pattern_json("{\"role\":\"mod\"}");
    ck_assert(match("{\"role\":\"mod\"}"));
}
END_TEST

START_TEST(test_set_replaces)
{
    ck_assert_int_eq(set("{\"a\":1,\"b\":2}"), 0);
    ck_assert_int_eq(set("{\"c\":3}"), 0);
    ck_assert_int_eq(pat.npairs, 1);
    assert_pattern_json("{\"c\":3}");
    ck_assert(match("{\"c\":3}"));
    /* NULL clears. */
    ck_assert_int_eq(pattern_set(&pat, NULL), 0);
    ck_assert_int_eq(pat.npairs, 0);
    ck_assert(match("{}"));
}
END_TEST

START_TEST(test_to_json_round_trip)
{
    const char *text =
        "{\"s\":\"v a/l\\\"ue\",\"t\":true,\"f\":false,\"n\":null,\"i\":-42,\"d\":2.5,"
        "\"u\":\"caf\xc3\xa9\"}";
    ck_assert_int_eq(set(text), 0);
    ck_assert_int_eq(pat.npairs, 7);
    json_object *o = pattern_to_json(&pat);
    json_object *in = parse(text);
    ck_assert(json_object_equal(o, in));
    ck_assert(json_object_is_type(json_object_object_get(o, "t"), json_type_boolean));
    ck_assert(json_object_is_type(json_object_object_get(o, "i"), json_type_int));
    ck_assert(json_object_is_type(json_object_object_get(o, "s"), json_type_string));
    json_object *n;
    ck_assert(json_object_object_get_ex(o, "n", &n));
    ck_assert_ptr_null(n);

    /* Setting a pattern from its own JSON gives the same pattern. */
    struct pattern p2 = {0};
    ck_assert_int_eq(pattern_set(&p2, o), 0);
    json_object *o2 = pattern_to_json(&p2);
    ck_assert(json_object_equal(o, o2));
    /* The pattern matches the attributes it was made from. */
    ck_assert(pattern_match(&p2, in));
    ck_assert(pattern_match(&pat, o2));
    pattern_clear(&p2);
    json_object_put(o2);
    json_object_put(o);
    json_object_put(in);
}
END_TEST

START_TEST(test_pattern_independent_of_source)
{
    /* The pattern keeps its own copy: freeing the source changes nothing. */
    json_object *o = parse("{\"role\":\"mod\"}");
    ck_assert_int_eq(pattern_set(&pat, o), 0);
    json_object_object_add(o, "role", json_object_new_string("user"));
    json_object_put(o);
    ck_assert(match("{\"role\":\"mod\"}"));
    ck_assert(!match("{\"role\":\"user\"}"));
}
END_TEST

START_TEST(test_clear)
{
    ck_assert_int_eq(set("{\"a\":1,\"b\":\"x\"}"), 0);
    pattern_clear(&pat);
    ck_assert_int_eq(pat.npairs, 0);
    ck_assert_ptr_null(pat.pairs);
    ck_assert(match("{}"));
    assert_pattern_json("{}");
    /* Clearing twice is harmless, and the pattern can be reused. */
    pattern_clear(&pat);
    ck_assert_int_eq(set("{\"c\":true}"), 0);
    ck_assert(match("{\"c\":true}"));
    ck_assert(!match("{}"));
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_several_pairs);
    tcase_add_test(tc, test_typed_bool);
    tcase_add_test(tc, test_typed_number);
    tcase_add_test(tc, test_number_value_not_spelling);
    tcase_add_test(tc, test_numbers_compare_exactly);
    tcase_add_test(tc, test_typed_null);
    tcase_add_test(tc, test_typed_string);
    tcase_add_test(tc, test_missing_attribute);
    tcase_add_test(tc, test_empty_pattern);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_non_scalar_rejected);
    tcase_add_test(tc, test_set_replaces);
    tcase_add_test(tc, test_to_json_round_trip);
    tcase_add_test(tc, test_pattern_independent_of_source);
    tcase_add_test(tc, test_clear);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
