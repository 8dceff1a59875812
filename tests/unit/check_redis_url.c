/* check_redis_url.c -- unit tests of src/redis/: URL parsing with users and
 * passwords, the password-free form for logs, and the shard map. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/shard.h"
#include "redis/url.h"

static int parse(const char *url, struct redis_endpoint *ep)
{
    char err[128];
    return redis_url_parse(url, strlen(url), ep, err, sizeof(err));
}

START_TEST(test_plain_and_socket)
{
    struct redis_endpoint ep;
    ck_assert_int_eq(parse("redis://10.0.0.5:6380/2", &ep), 0);
    ck_assert_str_eq(ep.host, "10.0.0.5");
    ck_assert_int_eq(ep.port, 6380);
    ck_assert_int_eq(ep.db, 2);
    ck_assert_str_eq(ep.password, "");
    ck_assert_int_eq(parse("redis://localhost", &ep), 0);
    ck_assert_int_eq(ep.port, 6379);
    ck_assert_int_eq(parse("redis:///run/redis.sock", &ep), 0);
    ck_assert_str_eq(ep.socket, "/run/redis.sock");
    ck_assert_int_eq(parse("redis://h:0", &ep), -1);
    ck_assert_int_eq(parse("redis://h:99999", &ep), -1);
    ck_assert_int_eq(parse("redis://h/x", &ep), -1);
    ck_assert_int_eq(parse("redis://", &ep), -1);
    ck_assert_int_eq(parse("http://h", &ep), -1);
}
END_TEST

START_TEST(test_user_and_password)
{
    struct redis_endpoint ep;
    ck_assert_int_eq(parse("redis://:s3cret@h:7000", &ep), 0);
    ck_assert_str_eq(ep.user, "");
    ck_assert_str_eq(ep.password, "s3cret");
    ck_assert_str_eq(ep.shown, "redis://:***@h:7000");
    ck_assert_int_eq(parse("redis://chat:p:w@h/1", &ep), 0); /* a colon in the password */
    ck_assert_str_eq(ep.user, "chat");
    ck_assert_str_eq(ep.password, "p:w");
    ck_assert_str_eq(ep.shown, "redis://chat:***@h:6379/1");
    ck_assert_ptr_null(strstr(ep.shown, "p:w"));
}
END_TEST

START_TEST(test_list_and_shown)
{
    struct redis_endpoint eps[4];
    char err[128], out[256];
    ck_assert_int_eq(redis_url_list("redis://a:1, redis://:pw@b:2", eps, 4, err, sizeof(err)), 2);
    ck_assert_str_eq(eps[1].host, "b");
    ck_assert_str_eq(eps[1].password, "pw");
    ck_assert_int_eq(redis_url_list("redis://a:1,nonsense", eps, 4, err, sizeof(err)), -1);
    ck_assert_int_eq(redis_url_list("redis://a,redis://b,redis://c", eps, 2, err, sizeof(err)), -1);
    ck_assert_str_eq(
        redis_url_shown("redis://u:pw1@a:1,redis://:pw2@b,redis://c", out, sizeof(out)),
        "redis://u:***@a:1,redis://:***@b,redis://c");
    ck_assert_str_eq(redis_url_shown("memory", out, sizeof(out)), "memory");
}
END_TEST

START_TEST(test_shard_map)
{
    /* FNV-1a 64 reference vectors. */
    ck_assert_uint_eq(redis_shard_fnv1a64("", 0), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(redis_shard_fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
    /* roomd-redis(7)'s worked example. */
    ck_assert_uint_eq(redis_shard_fnv1a64("lobby", 5), 0x1ccae3b6ef72f533ULL);
    ck_assert_int_eq(redis_shard_of("lobby", 4), 2);
    ck_assert_int_eq(redis_shard_of("lobby", 2), 1);
    ck_assert_int_eq(redis_shard_of("defaultRoom", 4), 0);
    ck_assert_int_eq(redis_shard_of("anything", 1), 0);
    /* Consistency: from n to n+1 shards a room stays or moves to the new one. */
    int moved = 0;
    for (int i = 0; i < 10000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "room%d", i);
        int a = redis_shard_of(name, 4), b = redis_shard_of(name, 5);
        ck_assert(a >= 0 && a < 4);
        ck_assert(b == a || b == 4);
        moved += b == 4;
    }
    ck_assert(moved > 1500 && moved < 2500); /* about 1/5 */
}
END_TEST

static Suite *redis_url_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, test_plain_and_socket);
    tcase_add_test(tc, test_user_and_password);
    tcase_add_test(tc, test_list_and_shown);
    suite_add_tcase(s, tc);
    tc = tcase_create("shard");
    tcase_add_test(tc, test_shard_map);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(redis_url_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
