/* check_history.c -- unit tests of a room's stream (history.h): numbering,
 * the ring, since, the ttl and the history_memory cap.
 *
 * The defaults come from the running configuration, so each test installs
 * one (config_swap) and puts the old one back after. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "history.h"
#include "msg.h"

static struct roomd_config cfg;
static struct roomd_config *saved;

static void setup(void)
{
    config_init(&cfg);
    saved = config_swap(&cfg);
}

static void teardown(void)
{
    config_swap(saved);
    config_free(&cfg);
}

/* A chat message as verbs.c makes it (unnumbered). */
static struct msg *chat(const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "{\"message\":\"%s\",\"room\":\"r\",\"from\":0,\"context\":\"user\","
                     "\"sentAt\":1}",
                     text);
    return msg_new_text(buf, (size_t)n);
}

/* Number and keep TEXT; the offset it got. */
static uint64_t keep(struct history *h, const char *text)
{
    struct msg *m = chat(text);
    pthread_mutex_lock(&h->lock);
    struct msg *n = history_keep(h, m);
    pthread_mutex_unlock(&h->lock);
    msg_unref(m);
    ck_assert_ptr_nonnull(n);
    uint64_t off = n->offset;
    msg_unref(n);
    return off;
}

static void free_all(struct msg **ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        msg_unref(ms[i]);
    free(ms);
}

START_TEST(test_numbered_copy)
{
    struct msg *m = chat("hi");
    struct msg *n = history_number(m, 42);
    ck_assert_ptr_nonnull(n);
    const char *want = "{\"message\":\"hi\",\"room\":\"r\",\"from\":0,\"context\":\"user\","
                       "\"sentAt\":1,\"offset\":42}";
    ck_assert_uint_eq(n->len, strlen(want));
    ck_assert(memcmp(n->data, want, n->len) == 0);
    ck_assert(memcmp(n->data + n->len, "\r\n", 2) == 0);
    ck_assert_uint_eq(n->offset, 42);
    msg_unref(n);
    msg_unref(m);
}
END_TEST

START_TEST(test_offsets_and_since)
{
    struct history h;
    ck_assert_int_eq(history_init(&h), 0);
    ck_assert_uint_eq(strlen(h.epoch), HISTORY_EPOCH_LEN);
    for (uint64_t i = 1; i <= 5; i++)
        ck_assert_uint_eq(keep(&h, "m"), i);
    struct history_position pos, since;
    history_position(&h, &pos);
    ck_assert_uint_eq(pos.offset, 5);
    since = pos;
    since.offset = 2;
    struct msg **ms;
    size_t n;
    ck_assert(history_since(&h, &since, &ms, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(ms[0]->offset, 3);
    ck_assert_uint_eq(ms[2]->offset, 5);
    free_all(ms, n);
    since.offset = 5; /* at the top: nothing missed */
    ck_assert(history_since(&h, &since, &ms, &n));
    ck_assert_uint_eq(n, 0);
    since.offset = 6; /* past the top */
    ck_assert(!history_since(&h, &since, &ms, &n));
    strcpy(since.epoch, "000000000000");
    since.offset = 2;
    ck_assert(!history_since(&h, &since, &ms, &n));
    history_destroy(&h);
}
END_TEST

START_TEST(test_size_bounds_the_ring)
{
    cfg.history_size = 3;
    struct history h;
    history_init(&h);
    for (int i = 0; i < 10; i++)
        keep(&h, "m");
    ck_assert_uint_eq(h.n, 3);
    struct msg **ms;
    size_t n;
    history_last(&h, -1, &ms, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(ms[0]->offset, 8);
    free_all(ms, n);
    history_last(&h, 1, &ms, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(ms[0]->offset, 10);
    free_all(ms, n);
    struct history_position since;
    history_position(&h, &since);
    since.offset = 6; /* 7 is gone */
    ck_assert(!history_since(&h, &since, &ms, &n));
    since.offset = 7;
    ck_assert(history_since(&h, &since, &ms, &n));
    ck_assert_uint_eq(n, 3);
    free_all(ms, n);
    history_configure(&h, 1, -1); /* shrinking trims at once */
    ck_assert_uint_eq(h.n, 1);
    history_destroy(&h);
}
END_TEST

START_TEST(test_off_and_on_again_is_a_new_epoch)
{
    struct history h;
    history_init(&h);
    keep(&h, "a");
    char first[HISTORY_EPOCH_LEN + 1];
    strcpy(first, h.epoch);
    history_configure(&h, 0, -1);
    struct msg *m = chat("unnumbered");
    pthread_mutex_lock(&h.lock);
    ck_assert_ptr_null(history_keep(&h, m));
    pthread_mutex_unlock(&h.lock);
    msg_unref(m);
    history_configure(&h, -1, -1);
    ck_assert_uint_eq(keep(&h, "b"), 1);
    ck_assert_str_ne(h.epoch, first);
    history_destroy(&h);
}
END_TEST

START_TEST(test_memory_cap_drops_largest_first)
{
    cfg.history_size = 100000;
    struct history big, small;
    history_init(&big);
    history_init(&small);
    struct history_stats st;
    for (int i = 0; i < 10; i++)
        keep(&small, "s");
    history_stats(&st);
    cfg.history_memory = (long)st.bytes * 20; /* room for about 200 messages */
    for (int i = 0; i < 1000; i++)
        keep(&big, "b");
    history_stats(&st);
    ck_assert_uint_le(st.bytes, (uint64_t)cfg.history_memory);
    ck_assert_uint_eq(small.n, 10); /* the largest paid */
    ck_assert_uint_gt(big.n, 0);
    ck_assert_uint_eq(big.ring[(big.head + big.n - 1) % big.cap].offset, 1000);
    history_destroy(&big);
    history_destroy(&small);
    history_stats(&st);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(st.messages, 0);
}
END_TEST

START_TEST(test_parse_since)
{
    struct history_position p;
    const char *good[] = {"{\"epoch\":\"0123456789ab\",\"offset\":0}",
                          "{\"epoch\":\"x\",\"offset\":9}"};
    const char *bad[] = {"{\"epoch\":1,\"offset\":1}",
                         "{\"epoch\":\"e\",\"offset\":-1}",
                         "{\"epoch\":\"e\",\"offset\":1.5}",
                         "{\"epoch\":\"e\"}",
                         "{\"offset\":1}",
                         "\"e:1\"",
                         "[1]",
                         "{\"epoch\":\"e\",\"offset\":\"1\"}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_object *o = json_tokener_parse(good[i]);
        ck_assert_msg(history_parse_since(o, &p), "%s", good[i]);
        json_object_put(o);
    }
    ck_assert_str_eq(p.epoch, ""); /* no epoch looks like "x" */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_object *o = json_tokener_parse(bad[i]);
        ck_assert_msg(!history_parse_since(o, &p), "%s", bad[i]);
        json_object_put(o);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_numbered_copy);
    tcase_add_test(tc, test_offsets_and_since);
    tcase_add_test(tc, test_size_bounds_the_ring);
    tcase_add_test(tc, test_off_and_on_again_is_a_new_epoch);
    tcase_add_test(tc, test_memory_cap_drops_largest_first);
    tcase_add_test(tc, test_parse_since);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
