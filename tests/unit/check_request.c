/* check_request.c -- unit tests of request_parse(), request_arg() and
 * request_param(): verb lines and JSON requests (PROTOCOL.md). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* Parse a string literal (embedded NULs included). */
#define PARSE(lit, req) request_parse((lit), sizeof(lit) - 1, (req))

static enum roomd_err parse_str(const char *s, struct request *req)
{
    return request_parse(s, strlen(s), req);
}

/* Parse S, expect success, and return paramAdd's key/value. */
static bool param_of(const char *s, char **key, char **value)
{
    struct request req;
    ck_assert_int_eq(parse_str(s, &req), ERR_NONE);
    bool ok = request_param(&req, key, value) == ERR_NONE;
    request_free(&req);
    return ok;
}

static void expect_param(const char *line, const char *key, const char *value)
{
    char *k = NULL, *v = NULL;
    bool ok = param_of(line, &k, &v);
    bool kok = ok && k && strcmp(k, key) == 0, vok = ok && v && strcmp(v, value) == 0;
    char got[256];
    snprintf(got, sizeof(got), "key '%s' value '%s'", k ? k : "(null)", v ? v : "(null)");
    free(k);
    free(v);
    ck_assert_msg(ok, "request_param failed for %s", line);
    ck_assert_msg(kok && vok, "%s: %s, want key '%s' value '%s'", line, got, key, value);
}

static void expect_no_param(const char *line)
{
    char *k = NULL, *v = NULL;
    ck_assert_msg(!param_of(line, &k, &v), "request_param accepted %s", line);
    free(k);
    free(v);
}

static void expect_invalid(const char *s, size_t len)
{
    struct request req;
    ck_assert_msg(request_parse(s, len, &req) == ERR_INVALID_REQUEST, "accepted: %.*s",
                  (int)(len > 80 ? 80 : len), s);
    request_free(&req);
}

#define INVALID(lit) expect_invalid((lit), sizeof(lit) - 1)

/* ---- verb lines ---- */

START_TEST(test_verb_and_arg)
{
    struct request req;
    ck_assert_int_eq(parse_str("roomChange lobby", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "roomChange");
    ck_assert_str_eq(req.arg, "lobby");
    ck_assert_uint_eq(req.arg_len, 5);
    ck_assert_ptr_null(req.json);
    request_free(&req);
}
END_TEST

START_TEST(test_arg_keeps_spaces)
{
    struct request req;
    ck_assert_int_eq(parse_str("say hello  world", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "say");
    ck_assert_str_eq(req.arg, "hello  world");
    ck_assert_uint_eq(req.arg_len, 12);
    size_t len = 0;
    const char *a = request_arg(&req, "message", &len);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(len, 12);
    ck_assert_mem_eq(a, "hello  world", 12);
    request_free(&req);

    /* Only one space is eaten after the verb; the rest is the argument. */
    ck_assert_int_eq(parse_str("say  two leading ", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "say");
    ck_assert_str_eq(req.arg, " two leading ");
    request_free(&req);

    /* Room names with spaces. */
    ck_assert_int_eq(parse_str("roomChange my room", &req), ERR_NONE);
    ck_assert_str_eq(req.arg, "my room");
    ck_assert_str_eq(request_arg(&req, "room", &len), "my room");
    ck_assert_uint_eq(len, 7);
    request_free(&req);
}
END_TEST

START_TEST(test_verb_alone)
{
    struct request req;
    ck_assert_int_eq(parse_str("roomView", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "roomView");
    ck_assert_ptr_null(req.arg);
    ck_assert_ptr_null(req.json);
    size_t len = 99;
    ck_assert_ptr_null(request_arg(&req, "room", &len));
    request_free(&req);
}
END_TEST

START_TEST(test_verb_utf8_arg)
{
    struct request req;
    ck_assert_int_eq(parse_str("say caf\xc3\xa9 \xf0\x9f\x98\x80", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "say");
    ck_assert_str_eq(req.arg, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    request_free(&req);
}
END_TEST

START_TEST(test_nul_in_line)
{
    INVALID("say a\0b");
    INVALID("\0");
    INVALID("roomView\0");
    INVALID("{\"event\":\"say\"}\0");
}
END_TEST

/* ---- JSON requests ---- */

START_TEST(test_json_request)
{
    struct request req;
    ck_assert_int_eq(parse_str("{\"event\":\"roomChange\",\"room\":\"lobby\"}", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "roomChange");
    ck_assert_ptr_nonnull(req.json);
    size_t len = 0;
    const char *room = request_arg(&req, "room", &len);
    ck_assert_ptr_nonnull(room);
    ck_assert_str_eq(room, "lobby");
    ck_assert_uint_eq(len, 5);
    ck_assert_ptr_null(request_arg(&req, "message", &len));
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":\"hi there\"}", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "say");
    ck_assert_str_eq(request_arg(&req, "message", &len), "hi there");
    ck_assert_uint_eq(len, 8);
    request_free(&req);

    /* Any characters, spaces and escapes included. */
    ck_assert_int_eq(
        parse_str("{\"room\":\"a \\\"b\\\" \\u00e9/c\",\"event\":\"listenToRoom\"}", &req),
        ERR_NONE);
    ck_assert_str_eq(req.verb, "listenToRoom");
    ck_assert_str_eq(request_arg(&req, "room", &len), "a \"b\" \xc3\xa9/c");
    request_free(&req);

    /* Event alone. */
    ck_assert_int_eq(parse_str("{\"event\":\"roomView\"}", &req), ERR_NONE);
    ck_assert_str_eq(req.verb, "roomView");
    request_free(&req);
}
END_TEST

START_TEST(test_json_non_string_field)
{
    struct request req;
    size_t len;
    ck_assert_int_eq(parse_str("{\"event\":\"roomChange\",\"room\":5}", &req), ERR_NONE);
    ck_assert_ptr_null(request_arg(&req, "room", &len));
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":null}", &req), ERR_NONE);
    ck_assert_ptr_null(request_arg(&req, "message", &len));
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":[\"a\"]}", &req), ERR_NONE);
    ck_assert_ptr_null(request_arg(&req, "message", &len));
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":{\"a\":1}}", &req), ERR_NONE);
    ck_assert_ptr_null(request_arg(&req, "message", &len));
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":true}", &req), ERR_NONE);
    ck_assert_ptr_null(request_arg(&req, "message", &len));
    request_free(&req);
}
END_TEST

START_TEST(test_json_invalid)
{
    INVALID("{");
    INVALID("{\"event\":\"say\"");
    INVALID("{\"event\":say}");
    INVALID("{event:\"say\"}");
    INVALID("{\"event\":\"say\",\"m\":tru}");
    INVALID("{\"event\":\"say\",\"m\":+1}");
    INVALID("{\"event\":\"say\",\"m\":\"\\x41\"}");
}
END_TEST

START_TEST(test_json_rfc8259_only)
{
    /* "A JSON request that does not parse ... invalid request": none of
     * these is JSON (RFC 8259), each must be refused.  Every one accepted
     * is listed in the failure message. */
    static const char *const not_json[] = {
        "{\"event\":\"say\",}",               /* trailing comma in object */
        "{\"event\":\"say\",\"m\":[1,]}",     /* trailing comma in array */
        "{'event':'say'}",                    /* single quotes */
        "{\"event\":\"say\",\"m\":/*c*/1}",   /* comment */
        "{\"event\":\"say\",\"m\":01}",       /* leading zero */
        "{\"event\":\"say\",\"m\":NaN}",      /* NaN */
        "{\"event\":\"say\",\"m\":Infinity}", /* Infinity */
        "{\"event\":\"say\",\"m\":\"a\tb\"}", /* raw control character in a string */
    };
    char accepted[1024] = "";
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        struct request req;
        if (parse_str(not_json[i], &req) != ERR_INVALID_REQUEST) {
            size_t n = strlen(accepted);
            snprintf(accepted + n, sizeof(accepted) - n, " [%s]", not_json[i]);
        }
        request_free(&req);
    }
    ck_assert_msg(accepted[0] == '\0', "accepted as JSON requests:%s", accepted);
}
END_TEST

START_TEST(test_json_missing_event)
{
    INVALID("{}");
    INVALID("{\"room\":\"lobby\"}");
    INVALID("{\"Event\":\"say\"}");
}
END_TEST

START_TEST(test_json_non_string_event)
{
    INVALID("{\"event\":1}");
    INVALID("{\"event\":null}");
    INVALID("{\"event\":true}");
    INVALID("{\"event\":[\"say\"]}");
    INVALID("{\"event\":{\"name\":\"say\"}}");
}
END_TEST

START_TEST(test_json_trailing_garbage)
{
    INVALID("{\"event\":\"say\"}x");
    INVALID("{\"event\":\"say\"}}");
    INVALID("{\"event\":\"say\"}{\"event\":\"say\"}");
    INVALID("{\"event\":\"say\"} roomView");
}
END_TEST

START_TEST(test_json_non_object)
{
    /* A line starting with '{' that is not one JSON object. */
    INVALID("{[1,2]}");
    INVALID("{\"a\"}");
    INVALID("{\"event\":\"say\"},[]");
    INVALID("{1:2}");

    /* JSON that is not an object does not start with '{': by PROTOCOL.md
     * it is a verb line (whose first word then is no verb), not a JSON
     * request. */
    struct request req;
    ck_assert_int_eq(parse_str("[{\"event\":\"say\"}]", &req), ERR_NONE);
    ck_assert_ptr_null(req.json);
    ck_assert_str_eq(req.verb, "[{\"event\":\"say\"}]");
    request_free(&req);
    ck_assert_int_eq(parse_str("\"say\"", &req), ERR_NONE);
    ck_assert_ptr_null(req.json);
    ck_assert_str_eq(req.verb, "\"say\"");
    request_free(&req);
}
END_TEST

START_TEST(test_json_deep_nesting)
{
    /* 1000 levels of arrays inside a request: refused, no crash. */
    const int depth = 1000;
    size_t cap = (size_t)depth * 2 + 64;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t n = 0;
    n += (size_t)sprintf(b, "{\"event\":\"say\",\"message\":");
    for (int i = 0; i < depth; i++)
        b[n++] = '[';
    for (int i = 0; i < depth; i++)
        b[n++] = ']';
    b[n++] = '}';
    expect_invalid(b, n);

    /* 1000 '{' in a row, unterminated. */
    memset(b, '{', (size_t)depth);
    expect_invalid(b, (size_t)depth);

    /* 1000 nested objects, terminated. */
    free(b);
    b = malloc((size_t)depth * 16 + 64);
    ck_assert_ptr_nonnull(b);
    n = (size_t)sprintf(b, "{\"event\":\"say\"");
    for (int i = 0; i < depth; i++)
        n += (size_t)sprintf(b + n, ",\"a\":{\"b\":0");
    for (int i = 0; i < depth; i++)
        b[n++] = '}';
    b[n++] = '}';
    expect_invalid(b, n);
    free(b);
}
END_TEST

START_TEST(test_json_event_with_nul)
{
    /* PROTOCOL.md: `event` names the verb.  "say\u0000x" is not "say";
     * it must not be dispatched as say (an invalid request or an unknown
     * verb are both fine). */
    struct request req;
    enum roomd_err err = parse_str("{\"event\":\"say\\u0000x\",\"message\":\"hi\"}", &req);
    bool as_say = err == ERR_NONE && strcmp(req.verb, "say") == 0;
    request_free(&req);
    ck_assert_msg(!as_say, "event \"say\\u0000x\" parsed as verb \"say\"");
    ck_assert(err == ERR_NONE || err == ERR_INVALID_REQUEST);
}
END_TEST

START_TEST(test_json_duplicate_keys)
{
    /* Issue 11 item 10: json-c keeps the last of two equal keys, so
     * {"event":"say","event":"roomView"} ran roomView.  A key twice in one
     * object, at any depth and however it is spelt, is an invalid request. */
    static const char *const duplicated[] = {
        "{\"event\":\"say\",\"event\":\"roomView\"}",
        "{\"event\":\"say\",\"message\":\"a\",\"message\":\"b\"}",
        "{\"event\":\"say\",\"\\u0065vent\":\"roomView\"}", /* the same key, escaped */
        "{\"event\":\"say\",\"message\":{\"a\":1,\"b\":2,\"a\":1}}",
        "{\"event\":\"say\",\"message\":[{\"a\":{\"x\":1,\"x\" : 2}}]}",
        "{\"event\":\"say\",\"m\":{\"a\":{},\"a\":{\"b\":1}}}", /* a dropped subtree */
        "{ \"event\" : \"say\" , \"event\"\t:\"say\" }",
    };
    char accepted[1024] = "";
    for (size_t i = 0; i < sizeof(duplicated) / sizeof(duplicated[0]); i++) {
        struct request req;
        if (parse_str(duplicated[i], &req) != ERR_INVALID_REQUEST) {
            size_t n = strlen(accepted);
            snprintf(accepted + n, sizeof(accepted) - n, " [%s]", duplicated[i]);
        }
        request_free(&req);
    }
    ck_assert_msg(accepted[0] == '\0', "duplicate keys accepted:%s", accepted);

    /* Equal keys in different objects, and strings equal to a key, are fine. */
    static const char *const distinct[] = {
        "{\"event\":\"say\",\"a\":{\"k\":1},\"b\":{\"k\":1}}",
        "{\"event\":\"say\",\"message\":[\"event\",\"event\"]}",
        "{\"event\":\"event\",\"message\":\"message\"}",
        "{\"event\":\"say\",\"message\":\"\\\"event\\\":1,\\\"event\\\":2\"}",
        "{\"event\":\"say\",\"m\":[{\"a\":1},{\"a\":1}]}",
    };
    for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++) {
        struct request req;
        ck_assert_msg(parse_str(distinct[i], &req) == ERR_NONE, "refused: %s", distinct[i]);
        request_free(&req);
    }
}
END_TEST

START_TEST(test_json_key_with_nul)
{
    /* json-c cuts a key at its NUL: "message\u0000x" would be "message". */
    INVALID("{\"event\":\"say\",\"message\\u0000x\":\"hi\"}");
    INVALID("{\"event\":\"say\",\"message\":{\"\\u0000\":1}}");
    /* A NUL in a value is JSON's business; request_text() refuses it where C needs a string. */
    struct request req;
    ck_assert_int_eq(parse_str("{\"event\":\"say\",\"message\":\"a\\u0000b\"}", &req), ERR_NONE);
    request_free(&req);
}
END_TEST

START_TEST(test_json_integer_beyond_64_bits)
{
    /* json-c would hold these as the nearest int64/uint64 (18446744073709551616 as
     * 18446744073709551615): not the number sent, so not accepted. */
    INVALID("{\"event\":\"say\",\"n\":18446744073709551616}");
    INVALID("{\"event\":\"say\",\"n\":-9223372036854775809}");
    INVALID("{\"event\":\"say\",\"n\":[99999999999999999999999]}");
    struct request req;
    ck_assert_int_eq(
        parse_str("{\"event\":\"say\",\"n\":[18446744073709551615,-9223372036854775808,1e300]}",
                  &req),
        ERR_NONE);
    request_free(&req);
}
END_TEST

START_TEST(test_text_with_nul)
{
    /* Issue 11 item 9: {"event":"paramDelete","key":"a\u0000zzz"} deleted "a".  An
     * argument used as a C string that holds a NUL is an invalid request. */
    struct request req;
    const char *text = "x";
    ck_assert_int_eq(parse_str("{\"event\":\"paramDelete\",\"key\":\"a\\u0000zzz\"}", &req),
                     ERR_NONE);
    ck_assert_int_eq(request_text(&req, "key", &text), ERR_INVALID_REQUEST);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(request_text(&req, "room", &text), ERR_NONE); /* absent */
    ck_assert_ptr_null(text);
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"silenceRoom\",\"room\":\"\\u0000\"}", &req), ERR_NONE);
    ck_assert_int_eq(request_text(&req, "room", &text), ERR_INVALID_REQUEST);
    request_free(&req);

    ck_assert_int_eq(parse_str("{\"event\":\"silenceRoom\",\"room\":\"lobby\"}", &req), ERR_NONE);
    ck_assert_int_eq(request_text(&req, "room", &text), ERR_NONE);
    ck_assert_str_eq(text, "lobby");
    request_free(&req);
}
END_TEST

/* request_param()'s answer for the JSON request S (key and value freed). */
static enum roomd_err param_err(const char *s)
{
    struct request req;
    char *k, *v;
    ck_assert_int_eq(parse_str(s, &req), ERR_NONE);
    enum roomd_err err = request_param(&req, &k, &v);
    free(k);
    free(v);
    request_free(&req);
    return err;
}

START_TEST(test_param_with_nul)
{
    ck_assert_int_eq(param_err("{\"event\":\"paramAdd\",\"key\":\"a\\u0000b\",\"value\":\"v\"}"),
                     ERR_INVALID_REQUEST);
    ck_assert_int_eq(param_err("{\"event\":\"paramAdd\",\"key\":\"\\u0000\",\"value\":\"v\"}"),
                     ERR_INVALID_REQUEST);
    ck_assert_int_eq(param_err("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":\"v\\u0000w\"}"),
                     ERR_INVALID_REQUEST);
    /* A non-string value is stored as its JSON text, where the NUL stays escaped. */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":[\"\\u0000\"]}", "k",
                 "[\"\\u0000\"]");
    ck_assert_int_eq(param_err("{\"event\":\"paramAdd\",\"value\":\"v\"}"), ERR_KEY_REQUIRED);
}
END_TEST

/* ---- request_param (paramAdd) ---- */

START_TEST(test_param_line)
{
    expect_param("paramAdd k=v", "k", "v");
    expect_param("paramAdd k v", "k", "v");
    expect_param("paramAdd k=v w=x", "k", "v w=x");
    expect_param("paramAdd k v=w", "k", "v=w");
    expect_param("paramAdd k", "k", "");
    expect_param("paramAdd k=", "k", "");
    expect_param("paramAdd k ", "k", "");
    expect_param("paramAdd k==v", "k", "=v");
    expect_param("paramAdd k  v", "k", " v");
    expect_param("paramAdd key=caf\xc3\xa9", "key", "caf\xc3\xa9");
}
END_TEST

START_TEST(test_param_line_no_key)
{
    expect_no_param("paramAdd =v");
    expect_no_param("paramAdd");
    expect_no_param("paramAdd ");
    expect_no_param("paramAdd =");
}
END_TEST

START_TEST(test_param_json)
{
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":\"v\"}", "k", "v");
    /* A string value is kept as is, spaces, '=' and escapes included. */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":\"a b=c \\\"q\\\"\"}", "k",
                 "a b=c \"q\"");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":\"5\"}", "k", "5");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":\"\"}", "k", "");
    /* Keys may hold what a line cannot. */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"a b=c\",\"value\":\"v\"}", "a b=c", "v");
    /* No value: "". */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\"}", "k", "");
}
END_TEST

START_TEST(test_param_json_non_string_value)
{
    /* A non-string value is stored as its JSON text. */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":5}", "k", "5");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":-12}", "k", "-12");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":true}", "k", "true");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":false}", "k", "false");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":[1,\"a\"]}", "k", "[1,\"a\"]");
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":{\"a\":\"b/c\"}}", "k",
                 "{\"a\":\"b/c\"}");
}
END_TEST

START_TEST(test_param_json_null_value)
{
    /* null is a non-string value too: its JSON text is "null". */
    expect_param("{\"event\":\"paramAdd\",\"key\":\"k\",\"value\":null}", "k", "null");
}
END_TEST

START_TEST(test_param_json_no_key)
{
    expect_no_param("{\"event\":\"paramAdd\",\"value\":\"v\"}");
    expect_no_param("{\"event\":\"paramAdd\",\"key\":\"\",\"value\":\"v\"}");
    expect_no_param("{\"event\":\"paramAdd\",\"key\":5,\"value\":\"v\"}");
    expect_no_param("{\"event\":\"paramAdd\",\"key\":null,\"value\":\"v\"}");
}
END_TEST

static Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("verb_line");
    tcase_add_test(tc, test_verb_and_arg);
    tcase_add_test(tc, test_arg_keeps_spaces);
    tcase_add_test(tc, test_verb_alone);
    tcase_add_test(tc, test_verb_utf8_arg);
    tcase_add_test(tc, test_nul_in_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_json_request);
    tcase_add_test(tc, test_json_non_string_field);
    tcase_add_test(tc, test_json_invalid);
    tcase_add_test(tc, test_json_duplicate_keys);
    tcase_add_test(tc, test_json_key_with_nul);
    tcase_add_test(tc, test_json_integer_beyond_64_bits);
    tcase_add_test(tc, test_text_with_nul);
    tcase_add_test(tc, test_param_with_nul);
    tcase_add_test(tc, test_json_rfc8259_only);
    tcase_add_test(tc, test_json_missing_event);
    tcase_add_test(tc, test_json_non_string_event);
    tcase_add_test(tc, test_json_trailing_garbage);
    tcase_add_test(tc, test_json_non_object);
    tcase_add_test(tc, test_json_deep_nesting);
    tcase_add_test(tc, test_json_event_with_nul);
    suite_add_tcase(s, tc);

    tc = tcase_create("param");
    tcase_add_test(tc, test_param_line);
    tcase_add_test(tc, test_param_line_no_key);
    tcase_add_test(tc, test_param_json);
    tcase_add_test(tc, test_param_json_non_string_value);
    tcase_add_test(tc, test_param_json_null_value);
    tcase_add_test(tc, test_param_json_no_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(request_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
