/* check_registry.c -- unit tests of the room registry (registry.h).
 *
 * The registry is a global: a checked fixture initialises it before each
 * test and shuts it down after, so tests also pass with CK_FORK=no. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "registry.h"

#define NWORKERS 4

static void setup(void)
{
    ck_assert_int_eq(registry_init(NWORKERS), 0);
}

static void teardown(void)
{
    registry_shutdown();
}

/* Attributes {"id":ID}, for joins under an empty pattern. */
static json_object *attrs_of(const char *id)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, "id", json_object_new_string(id));
    return a;
}

static enum roomd_err join(const char *room, const char *id, uint64_t *uid)
{
    json_object *a = attrs_of(id);
    uint64_t u = 0;
    int64_t at = 0;
    enum roomd_err err = registry_join(room, id, a, 0, &u, &at);
    json_object_put(a);
    if (uid)
        *uid = u;
    return err;
}

static int64_t members_count(const char *room)
{
    json_object *st = registry_status(room, 0, 1000);
    ck_assert_ptr_nonnull(st);
    json_object *n;
    ck_assert(json_object_object_get_ex(st, "membersCount", &n));
    int64_t v = json_object_get_int64(n);
    json_object_put(st);
    return v;
}

/* ---- rooms ---- */

START_TEST(test_add)
{
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert_int_eq(registry_add("lobby"), 0);
    ck_assert_int_eq(registry_add("other"), 1);
    ck_assert_int_eq(registry_room_count(), 2);
}
END_TEST

START_TEST(test_lookup)
{
    uint64_t uid = 0, uid2 = 0;
    ck_assert(!registry_lookup("lobby", &uid));
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &uid));
    ck_assert_uint_ne(uid, 0);
    ck_assert(registry_lookup("lobby", NULL));
    ck_assert(registry_lookup("lobby", &uid2));
    ck_assert_uint_eq(uid, uid2);
    /* Names are exact and case-sensitive. */
    ck_assert(!registry_lookup("Lobby", NULL));
    ck_assert(!registry_lookup("lobby ", NULL));
    /* Adding again keeps the same room. */
    ck_assert_int_eq(registry_add("lobby"), 0);
    ck_assert(registry_lookup("lobby", &uid2));
    ck_assert_uint_eq(uid, uid2);
}
END_TEST

START_TEST(test_del)
{
    uint64_t uid = 0, deleted = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &uid));
    ck_assert(registry_del("lobby", &deleted));
    ck_assert_uint_eq(deleted, uid);
    ck_assert(!registry_lookup("lobby", NULL));
    ck_assert(!registry_del("lobby", &deleted));
    ck_assert(!registry_del("never", NULL));
    ck_assert_int_eq(registry_room_count(), 0);
    ck_assert_ptr_null(registry_status("lobby", 0, 10));
}
END_TEST

START_TEST(test_recreate_new_uid)
{
    uint64_t uid1 = 0, uid2 = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &uid1));
    ck_assert(registry_del("lobby", NULL));
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &uid2));
    ck_assert_uint_ne(uid1, uid2);
    /* The status of the old generation is gone; the new one is there. */
    ck_assert_ptr_null(registry_status("lobby", uid1, 10));
    json_object *st = registry_status("lobby", uid2, 10);
    ck_assert_ptr_nonnull(st);
    json_object_put(st);
}
END_TEST

START_TEST(test_room_names)
{
    /* Any UTF-8, spaces included. */
    const char *names[] = {"my room", "caf\xc3\xa9", "\xf0\x9f\x98\x80", "a/b"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(registry_add(names[i]), 1);
    for (size_t i = 0; i < 4; i++)
        ck_assert(registry_lookup(names[i], NULL));
    ck_assert_int_eq(registry_room_count(), 4);
}
END_TEST

START_TEST(test_list)
{
    json_object *l = registry_list();
    ck_assert(json_object_is_type(l, json_type_array));
    ck_assert_int_eq(json_object_array_length(l), 0);
    json_object_put(l);

    const char *names[] = {"a", "b", "c", "lobby", "my room"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(registry_add(names[i]), 1);
    ck_assert_int_eq(registry_room_count(), 5);

    l = registry_list();
    ck_assert_int_eq(json_object_array_length(l), 5);
    for (size_t i = 0; i < 5; i++) {
        int seen = 0;
        for (size_t j = 0; j < 5; j++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(l, j)), names[i]) == 0)
                seen++;
        ck_assert_msg(seen == 1, "%s listed %d times", names[i], seen);
    }
    json_object_put(l);

    ck_assert(registry_del("b", NULL));
    ck_assert_int_eq(registry_room_count(), 4);
    l = registry_list();
    ck_assert_int_eq(json_object_array_length(l), 4);
    json_object_put(l);
}
END_TEST

START_TEST(test_many_rooms)
{
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof(name), "room-%d", i);
        ck_assert_int_eq(registry_add(name), 1);
    }
    ck_assert_int_eq(registry_room_count(), 500);
    json_object *l = registry_list();
    ck_assert_int_eq(json_object_array_length(l), 500);
    json_object_put(l);
}
END_TEST

/* ---- members ---- */

START_TEST(test_join_leave)
{
    uint64_t uid = 0, room_uid = 0;
    int64_t at = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &room_uid));

    int64_t before = now_ms();
    json_object *a = attrs_of("c1");
    ck_assert_int_eq(registry_join("lobby", "c1", a, 2, &uid, &at), ERR_NONE);
    json_object_put(a);
    int64_t after = now_ms();
    ck_assert_uint_eq(uid, room_uid);
    ck_assert_int_ge(at, before);
    ck_assert_int_le(at, after);
    ck_assert_int_eq(members_count("lobby"), 1);

    ck_assert_int_eq(join("lobby", "c2", NULL), ERR_NONE);
    ck_assert_int_eq(members_count("lobby"), 2);

    ck_assert(registry_leave("lobby", uid, "c1"));
    ck_assert_int_eq(members_count("lobby"), 1);
    ck_assert(!registry_leave("lobby", uid, "c1")); /* not a member any more */
    ck_assert(!registry_leave("lobby", uid, "nobody"));
    ck_assert(!registry_leave("nowhere", uid, "c2"));
    ck_assert(registry_leave("lobby", uid, "c2"));
    ck_assert_int_eq(members_count("lobby"), 0);

    /* A member may come back. */
    ck_assert_int_eq(join("lobby", "c1", NULL), ERR_NONE);
    ck_assert_int_eq(members_count("lobby"), 1);
}
END_TEST

START_TEST(test_status)
{
    uint64_t uid = 0;
    int64_t at1 = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    json_object *a = attrs_of("c1");
    int64_t before = now_ms();
    ck_assert_int_eq(registry_join("lobby", "c1", a, 0, &uid, &at1), ERR_NONE);
    json_object_put(a);
    ck_assert_int_eq(join("lobby", "c2", NULL), ERR_NONE);

    json_object *st = registry_status("lobby", 0, 1000);
    ck_assert_ptr_nonnull(st);
    json_object *v, *members, *m, *f;
    ck_assert(json_object_object_get_ex(st, "room", &v));
    ck_assert_str_eq(json_object_get_string(v), "lobby");
    ck_assert(json_object_object_get_ex(st, "membersCount", &v));
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_int_eq(json_object_get_int64(v), 2);
    ck_assert(json_object_object_get_ex(st, "members", &members));
    ck_assert(json_object_is_type(members, json_type_object));
    ck_assert_int_eq(json_object_object_length(members), 2);
    const char *ids[] = {"c1", "c2"};
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(json_object_object_get_ex(members, ids[i], &m), "%s missing", ids[i]);
        ck_assert(json_object_object_get_ex(m, "id", &f));
        ck_assert_str_eq(json_object_get_string(f), ids[i]);
        ck_assert(json_object_object_get_ex(m, "joinedAt", &f));
        ck_assert(json_object_is_type(f, json_type_int));
        ck_assert_int_ge(json_object_get_int64(f), before);
        ck_assert_int_eq(json_object_object_length(m), 2);
    }
    json_object_object_get_ex(members, "c1", &m);
    json_object_object_get_ex(m, "joinedAt", &f);
    ck_assert_int_eq(json_object_get_int64(f), at1);
    ck_assert_int_eq(json_object_object_length(st), 3);
    json_object_put(st);

    /* With the right generation, and with a wrong one. */
    st = registry_status("lobby", uid, 10);
    ck_assert_ptr_nonnull(st);
    json_object_put(st);
    ck_assert_ptr_null(registry_status("lobby", uid + 1000, 10));
    ck_assert_ptr_null(registry_status("nowhere", 0, 10));

    /* An empty room. */
    ck_assert_int_eq(registry_add("empty"), 1);
    st = registry_status("empty", 0, 10);
    ck_assert(json_object_object_get_ex(st, "membersCount", &v));
    ck_assert_int_eq(json_object_get_int64(v), 0);
    ck_assert(json_object_object_get_ex(st, "members", &members));
    ck_assert_int_eq(json_object_object_length(members), 0);
    json_object_put(st);
}
END_TEST

START_TEST(test_status_limit)
{
    char id[16];
    ck_assert_int_eq(registry_add("big"), 1);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        ck_assert_int_eq(join("big", id, NULL), ERR_NONE);
    }
    const long limits[] = {0, 1, 2, 5, 6, 1000};
    const int listed[] = {0, 1, 2, 5, 5, 5};
    for (int i = 0; i < 6; i++) {
        json_object *st = registry_status("big", 0, limits[i]);
        ck_assert_ptr_nonnull(st);
        json_object *members, *n;
        ck_assert(json_object_object_get_ex(st, "members", &members));
        ck_assert_msg(json_object_object_length(members) == listed[i], "limit %ld listed %d",
                      limits[i], json_object_object_length(members));
        ck_assert(json_object_object_get_ex(st, "membersCount", &n));
        ck_assert_int_eq(json_object_get_int64(n), 5);
        json_object_put(st);
    }
}
END_TEST

START_TEST(test_join_already_member)
{
    uint64_t uid = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert_int_eq(join("lobby", "c1", &uid), ERR_NONE);
    ck_assert_int_eq(join("lobby", "c1", NULL), ERR_ALREADY_IN_ROOM);
    ck_assert_int_eq(members_count("lobby"), 1);
    /* The failed join did not disturb the membership. */
    ck_assert(registry_leave("lobby", uid, "c1"));
    ck_assert_int_eq(members_count("lobby"), 0);
}
END_TEST

START_TEST(test_join_unknown_room)
{
    ck_assert_int_eq(join("nowhere", "c1", NULL), ERR_ROOM_NOT_FOUND);
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_del("lobby", NULL));
    ck_assert_int_eq(join("lobby", "c1", NULL), ERR_ROOM_NOT_FOUND);
}
END_TEST

START_TEST(test_leave_stale_uid)
{
    uint64_t old_uid = 0, new_uid = 0;
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert_int_eq(join("lobby", "c1", &old_uid), ERR_NONE);
    ck_assert(registry_del("lobby", NULL));
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert_int_eq(join("lobby", "c1", &new_uid), ERR_NONE);
    ck_assert_uint_ne(old_uid, new_uid);

    /* Leaving the deleted generation does not touch the new room. */
    ck_assert(!registry_leave("lobby", old_uid, "c1"));
    ck_assert_int_eq(members_count("lobby"), 1);
    ck_assert(registry_leave("lobby", new_uid, "c1"));
    ck_assert_int_eq(members_count("lobby"), 0);

    /* A re-created room starts empty. */
    ck_assert_int_eq(join("lobby", "c2", NULL), ERR_NONE);
    ck_assert(registry_del("lobby", NULL));
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert_int_eq(members_count("lobby"), 0);
}
END_TEST

/* ---- patterns ---- */

START_TEST(test_pattern_join)
{
    uint64_t uid = 0;
    int64_t at = 0;
    ck_assert_int_eq(registry_add("vip"), 1);
    json_object *pat = json_tokener_parse("{\"authenticated\":true,\"level\":3}");
    ck_assert_int_eq(registry_set_pattern("vip", pat), ERR_NONE);
    json_object_put(pat);

    json_object *p = registry_pattern("vip");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(json_object_to_json_string_ext(p, ROOMD_JSON_FLAGS),
                     "{\"authenticated\":true,\"level\":3}");
    json_object_put(p);

    json_object *ok =
        json_tokener_parse("{\"id\":\"c1\",\"authenticated\":true,\"level\":3,\"extra\":\"x\"}");
    json_object *bad_type = json_tokener_parse("{\"id\":\"c2\",\"authenticated\":\"true\","
                                               "\"level\":3}");
    json_object *bad_value = json_tokener_parse("{\"id\":\"c3\",\"authenticated\":true,"
                                                "\"level\":4}");
    json_object *missing = json_tokener_parse("{\"id\":\"c4\",\"authenticated\":true}");
    ck_assert_int_eq(registry_join("vip", "c2", bad_type, 0, &uid, &at), ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(registry_join("vip", "c3", bad_value, 0, &uid, &at), ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(registry_join("vip", "c4", missing, 0, &uid, &at), ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(members_count("vip"), 0);
    ck_assert_int_eq(registry_join("vip", "c1", ok, 0, &uid, &at), ERR_NONE);
    ck_assert_int_eq(members_count("vip"), 1);

    /* Checked at join only: a new pattern moves nobody. */
    pat = json_tokener_parse("{\"level\":99}");
    ck_assert_int_eq(registry_set_pattern("vip", pat), ERR_NONE);
    json_object_put(pat);
    ck_assert_int_eq(members_count("vip"), 1);
    ck_assert_int_eq(registry_join("vip", "c3", bad_value, 0, &uid, &at), ERR_NOT_AUTHORIZED);

    /* Clearing lets anybody in. */
    ck_assert_int_eq(registry_set_pattern("vip", NULL), ERR_NONE);
    p = registry_pattern("vip");
    ck_assert_int_eq(json_object_object_length(p), 0);
    json_object_put(p);
    ck_assert_int_eq(registry_join("vip", "c3", bad_value, 0, &uid, &at), ERR_NONE);
    ck_assert_int_eq(members_count("vip"), 2);

    json_object_put(ok);
    json_object_put(bad_type);
    json_object_put(bad_value);
    json_object_put(missing);
}
END_TEST

START_TEST(test_pattern_errors)
{
    ck_assert_ptr_null(registry_pattern("nowhere"));
    json_object *pat = json_tokener_parse("{\"k\":\"v\"}");
    ck_assert_int_eq(registry_set_pattern("nowhere", pat), ERR_ROOM_NOT_FOUND);
    json_object_put(pat);

    ck_assert_int_eq(registry_add("lobby"), 1);
    pat = json_tokener_parse("{\"k\":\"v\"}");
    ck_assert_int_eq(registry_set_pattern("lobby", pat), ERR_NONE);
    json_object_put(pat);
    /* A non-scalar value is refused and the old pattern stays. */
    pat = json_tokener_parse("{\"a\":1,\"k\":[1]}");
    ck_assert_int_eq(registry_set_pattern("lobby", pat), ERR_INVALID_REQUEST);
    json_object_put(pat);
    json_object *p = registry_pattern("lobby");
    ck_assert_str_eq(json_object_to_json_string_ext(p, ROOMD_JSON_FLAGS), "{\"k\":\"v\"}");
    json_object_put(p);

    /* A re-created room has no pattern. */
    ck_assert(registry_del("lobby", NULL));
    ck_assert_int_eq(registry_add("lobby"), 1);
    p = registry_pattern("lobby");
    ck_assert_int_eq(json_object_object_length(p), 0);
    json_object_put(p);
}
END_TEST

START_TEST(test_check_listen)
{
    uint64_t uid = 0, room_uid = 0;
    json_object *yes = json_tokener_parse("{\"role\":\"mod\"}");
    json_object *no = json_tokener_parse("{\"role\":\"user\"}");
    ck_assert_int_eq(registry_check_listen("nowhere", yes, &uid), ERR_ROOM_NOT_FOUND);

    ck_assert_int_eq(registry_add("mods"), 1);
    ck_assert(registry_lookup("mods", &room_uid));
    ck_assert_int_eq(registry_check_listen("mods", no, &uid), ERR_NONE);
    ck_assert_uint_eq(uid, room_uid);

    json_object *pat = json_tokener_parse("{\"role\":\"mod\"}");
    ck_assert_int_eq(registry_set_pattern("mods", pat), ERR_NONE);
    json_object_put(pat);
    uid = 0;
    ck_assert_int_eq(registry_check_listen("mods", no, &uid), ERR_NOT_AUTHORIZED);
    ck_assert_int_eq(registry_check_listen("mods", yes, &uid), ERR_NONE);
    ck_assert_uint_eq(uid, room_uid);
    /* Listening is not membership. */
    ck_assert_int_eq(members_count("mods"), 0);

    json_object_put(yes);
    json_object_put(no);
}
END_TEST

/* ---- per-worker recipients ---- */

START_TEST(test_recipients)
{
    uint64_t uid = 0, got = 0;
    bool want[NWORKERS];
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &uid));

    memset(want, 1, sizeof(want));
    got = 0;
    ck_assert(registry_recipient_workers("lobby", &got, want));
    ck_assert_uint_eq(got, uid);
    for (int w = 0; w < NWORKERS; w++)
        ck_assert_msg(!want[w], "worker %d wanted with no recipients", w);

    registry_recipients_add("lobby", uid, 1, 1);
    registry_recipients_add("lobby", uid, 3, 1);
    registry_recipients_add("lobby", uid, 3, 1);
    got = uid;
    ck_assert(registry_recipient_workers("lobby", &got, want));
    ck_assert(!want[0]);
    ck_assert(want[1]);
    ck_assert(!want[2]);
    ck_assert(want[3]);

    registry_recipients_add("lobby", uid, 1, -1);
    registry_recipients_add("lobby", uid, 3, -1);
    got = 0;
    ck_assert(registry_recipient_workers("lobby", &got, want));
    ck_assert(!want[1]);
    ck_assert(want[3]); /* one of two left */
    registry_recipients_add("lobby", uid, 3, -1);
    ck_assert(registry_recipient_workers("lobby", &got, want));
    for (int w = 0; w < NWORKERS; w++)
        ck_assert(!want[w]);

    /* Wrong generation or missing room. */
    got = uid + 1000;
    ck_assert(!registry_recipient_workers("lobby", &got, want));
    got = 0;
    ck_assert(!registry_recipient_workers("nowhere", &got, want));
}
END_TEST

START_TEST(test_recipients_stale)
{
    uint64_t old_uid = 0, new_uid = 0, got;
    bool want[NWORKERS];
    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &old_uid));
    registry_recipients_add("lobby", old_uid, 2, 1);
    ck_assert(registry_del("lobby", NULL));
    /* Counting against a deleted room is harmless. */
    registry_recipients_add("lobby", old_uid, 2, -1);
    got = old_uid;
    ck_assert(!registry_recipient_workers("lobby", &got, want));

    ck_assert_int_eq(registry_add("lobby"), 1);
    ck_assert(registry_lookup("lobby", &new_uid));
    /* A stale uid does not count into the new generation. */
    registry_recipients_add("lobby", old_uid, 2, 1);
    got = 0;
    ck_assert(registry_recipient_workers("lobby", &got, want));
    ck_assert_uint_eq(got, new_uid);
    for (int w = 0; w < NWORKERS; w++)
        ck_assert(!want[w]);
    got = old_uid;
    ck_assert(!registry_recipient_workers("lobby", &got, want));
}
END_TEST

/* ---- threads ---- */

#define NTHREADS 4
#define ROUNDS 1000
static const char *const thread_rooms[] = {"t-a", "t-b", "t-c"};

struct thread_arg {
    int n;
    int failures;
};

static void *churn(void *p)
{
    struct thread_arg *ta = p;
    char id[32];
    snprintf(id, sizeof(id), "conn-%d", ta->n);
    json_object *attrs = attrs_of(id);
    for (int i = 0; i < ROUNDS; i++) {
        const char *room = thread_rooms[(i + ta->n) % 3];
        uint64_t uid = 0;
        int64_t at = 0;
        if (registry_join(room, id, attrs, ta->n, &uid, &at) != ERR_NONE) {
            ta->failures++;
            continue;
        }
        registry_recipients_add(room, uid, ta->n, 1);
        json_object *st = registry_status(room, 0, 10);
        if (!st)
            ta->failures++;
        json_object_put(st);
        bool want[NWORKERS];
        uint64_t u = 0;
        if (!registry_recipient_workers(room, &u, want) || !want[ta->n])
            ta->failures++;
        registry_recipients_add(room, uid, ta->n, -1);
        if (!registry_leave(room, uid, id))
            ta->failures++;
    }
    json_object_put(attrs);
    return NULL;
}

START_TEST(test_threads)
{
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(registry_add(thread_rooms[i]), 1);
    pthread_t th[NTHREADS];
    struct thread_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i].n = i;
        args[i].failures = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_msg(args[i].failures == 0, "thread %d: %d failures", i, args[i].failures);
    }
    bool want[NWORKERS];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(members_count(thread_rooms[i]), 0);
        uint64_t u = 0;
        ck_assert(registry_recipient_workers(thread_rooms[i], &u, want));
        for (int w = 0; w < NWORKERS; w++)
            ck_assert(!want[w]);
    }
    ck_assert_int_eq(registry_room_count(), 3);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("rooms");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_lookup);
    tcase_add_test(tc, test_del);
    tcase_add_test(tc, test_recreate_new_uid);
    tcase_add_test(tc, test_room_names);
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_many_rooms);
    suite_add_tcase(s, tc);

    tc = tcase_create("members");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_join_leave);
    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_status_limit);
    tcase_add_test(tc, test_join_already_member);
    tcase_add_test(tc, test_join_unknown_room);
    tcase_add_test(tc, test_leave_stale_uid);
    suite_add_tcase(s, tc);

    tc = tcase_create("patterns");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pattern_join);
    tcase_add_test(tc, test_pattern_errors);
    tcase_add_test(tc, test_check_listen);
    suite_add_tcase(s, tc);

    tc = tcase_create("recipients");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_recipients);
    tcase_add_test(tc, test_recipients_stale);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
