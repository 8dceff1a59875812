/* check_config.c -- unit tests of the settings table (config.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct roomd_config cfg;
static char err[512];
static char path[64];

static void setup(void)
{
    config_init(&cfg);
    memset(err, 0, sizeof(err));
    path[0] = '\0';
}

static void teardown(void)
{
    config_free(&cfg);
    if (path[0])
        unlink(path);
}

/* Write TEXT to a fresh temporary file; its name in PATH. */
static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/check_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

#define ASSERT_ERR_HAS(needle)                                                                     \
    ck_assert_msg(strstr(err, (needle)) != NULL, "error '%s' does not mention '%s'", err, (needle))

START_TEST(test_defaults)
{
    ck_assert_int_eq(cfg.port, 5000);
    ck_assert_int_eq(cfg.websocket_port, 8080);
    ck_assert_str_eq(cfg.admin_bind, "127.0.0.1");
    ck_assert_int_eq(cfg.max_line, 65536);
    ck_assert_int_eq(cfg.output_limit, 8388608);
    ck_assert_int_eq(cfg.say_rate, 100);
    ck_assert_int_eq(cfg.say_burst, 200);
    ck_assert(cfg.announcements);
    ck_assert_str_eq(cfg.default_room, "defaultRoom");
    ck_assert_str_eq(cfg.starting_rooms, "defaultRoom");
    ck_assert_str_eq(cfg.welcome_message, "Hello! Welcome to the roomd api");
    ck_assert_int_eq(cfg.max_room_name, 256);
    ck_assert_str_eq(cfg.store, "memory");
    ck_assert_str_eq(cfg.token_secret, "");
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_set_basic)
{
    ck_assert_int_eq(config_set(&cfg, "port", "6000", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 6000);
    ck_assert_int_eq(config_set(&cfg, "max_line", "1024", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.max_line, 1024);
    ck_assert_int_eq(config_set(&cfg, "welcome_message", "hi there", err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.welcome_message, "hi there");
    ck_assert_int_eq(config_set(&cfg, "default_room", "", err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.default_room, "");
    /* The last value wins. */
    ck_assert_int_eq(config_set(&cfg, "port", "6001", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 6001);
    ck_assert_int_eq(config_set(&cfg, "port", "0", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 0);
}
END_TEST

START_TEST(test_set_dashes)
{
    ck_assert_int_eq(config_set(&cfg, "max-line", "2048", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.max_line, 2048);
    ck_assert_int_eq(config_set(&cfg, "websocket-port", "9090", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.websocket_port, 9090);
    ck_assert_int_eq(config_set(&cfg, "welcome-message", "yo", err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.welcome_message, "yo");
}
END_TEST

START_TEST(test_set_unknown_key)
{
    ck_assert_int_eq(config_set(&cfg, "no_such_key", "1", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("no_such_key");
    ck_assert_int_eq(config_set(&cfg, "Port", "1", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("Port");
    ck_assert_int_eq(config_set(&cfg, "", "1", err, sizeof(err)), -1);
    /* A very long key is unknown, not a crash. */
    char longkey[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_int_eq(config_set(&cfg, longkey, "1", err, sizeof(err)), -1);
    ck_assert_int_eq(cfg.port, 5000);
}
END_TEST

START_TEST(test_set_bad_number)
{
    const char *bad[] = {"abc", "12x", "", " ", "1.5", "0x10", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(config_set(&cfg, "port", bad[i], err, sizeof(err)) == -1,
                      "port '%s' accepted", bad[i]);
        ASSERT_ERR_HAS("port");
    }
    ck_assert_int_eq(config_set(&cfg, "max-line", "lots", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("max_line");
    ck_assert_int_eq(cfg.port, 5000);
    ck_assert_int_eq(cfg.max_line, 65536);
}
END_TEST

START_TEST(test_set_out_of_range)
{
    ck_assert_int_eq(config_set(&cfg, "port", "65536", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("port");
    ck_assert_int_eq(config_set(&cfg, "port", "-1", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("port");
    ck_assert_int_eq(config_set(&cfg, "port", "65535", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 65535);
    ck_assert_int_eq(config_set(&cfg, "max_line", "15", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("max_line");
    ck_assert_int_eq(config_set(&cfg, "output_limit", "1", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("output_limit");
    ck_assert_int_eq(config_set(&cfg, "max_room_name", "0", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("max_room_name");
    ck_assert_int_eq(cfg.max_line, 65536);
    ck_assert_int_eq(cfg.output_limit, 8388608);
}
END_TEST

START_TEST(test_set_bool)
{
    const char *yes[] = {"true", "yes", "1", "TRUE", "Yes"};
    const char *no[] = {"false", "no", "0", "FALSE", "No"};
    for (size_t i = 0; i < 5; i++) {
        cfg.announcements = true;
        ck_assert_int_eq(config_set(&cfg, "announcements", no[i], err, sizeof(err)), 0);
        ck_assert_msg(!cfg.announcements, "'%s' is not false", no[i]);
        ck_assert_int_eq(config_set(&cfg, "announcements", yes[i], err, sizeof(err)), 0);
        ck_assert_msg(cfg.announcements, "'%s' is not true", yes[i]);
    }
    ck_assert_int_eq(config_set(&cfg, "announcements", "maybe", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("announcements");
    ck_assert_int_eq(config_set(&cfg, "announcements", "", err, sizeof(err)), -1);
    ck_assert_int_eq(config_set(&cfg, "announcements", "2", err, sizeof(err)), -1);
    ck_assert(cfg.announcements);
}
END_TEST

START_TEST(test_load_file)
{
    write_file("# roomd test configuration\n"
               "\n"
               "   # an indented comment\n"
               "port=6100\n"
               "  websocket_port   =   6200  \n"
               "\t\n"
               "welcome_message = \"Hello,  quoted = world\"\n"
               "default-room = lobby\n"
               "announcements = no\n"
               "max_line = 4096\r\n"
               "starting_rooms = a,b,c\n");
    ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "load: %s", err);
    ck_assert_int_eq(cfg.port, 6100);
    ck_assert_int_eq(cfg.websocket_port, 6200);
    ck_assert_str_eq(cfg.welcome_message, "Hello,  quoted = world");
    ck_assert_str_eq(cfg.default_room, "lobby");
    ck_assert(!cfg.announcements);
    ck_assert_int_eq(cfg.max_line, 4096);
    ck_assert_str_eq(cfg.starting_rooms, "a,b,c");
    /* Untouched keys keep their defaults. */
    ck_assert_str_eq(cfg.admin_bind, "127.0.0.1");
    ck_assert_int_eq(cfg.say_rate, 100);
}
END_TEST

START_TEST(test_load_file_empty_value)
{
    write_file("default_room =\nwelcome_message = \"\"\n");
    ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "load: %s", err);
    ck_assert_str_eq(cfg.default_room, "");
    ck_assert_str_eq(cfg.welcome_message, "");
}
END_TEST

START_TEST(test_load_file_bad_value_line)
{
    write_file("# comment\n"
               "port = 6100\n"
               "\n"
               "max_line = huge\n"
               "say_rate = 5\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    char where[96];
    snprintf(where, sizeof(where), "%s:4", path);
    ASSERT_ERR_HAS(where);
    ASSERT_ERR_HAS("max_line");
    /* Lines before the bad one were applied; the file stops there. */
    ck_assert_int_eq(cfg.port, 6100);
    ck_assert_int_eq(cfg.say_rate, 100);
}
END_TEST

START_TEST(test_load_file_unknown_key_line)
{
    write_file("port = 6100\nbogus_key = 1\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    char where[96];
    snprintf(where, sizeof(where), "%s:2", path);
    ASSERT_ERR_HAS(where);
    ASSERT_ERR_HAS("bogus_key");
}
END_TEST

START_TEST(test_load_file_no_equals)
{
    write_file("\n\njust some words\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    char where[96];
    snprintf(where, sizeof(where), "%s:3", path);
    ASSERT_ERR_HAS(where);
}
END_TEST

START_TEST(test_load_missing_file)
{
    ck_assert_int_eq(config_load_file(&cfg, "/nonexistent/roomd-check.conf", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("/nonexistent/roomd-check.conf");
}
END_TEST

START_TEST(test_validate_store)
{
    ck_assert_int_eq(config_set(&cfg, "store", "redis://127.0.0.1:6379", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&cfg, "store", "mongodb://x", err, sizeof(err)), 0);
    err[0] = '\0';
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ASSERT_ERR_HAS("store");
    ck_assert_int_eq(config_set(&cfg, "store", "memory", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_validate_other)
{
    ck_assert_int_eq(config_set(&cfg, "log_level", "loud", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ASSERT_ERR_HAS("log_level");
    ck_assert_int_eq(config_set(&cfg, "log_level", "debug", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);

    ck_assert_int_eq(config_set(&cfg, "max_room_name", "4", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ASSERT_ERR_HAS("default_room");
    ck_assert_int_eq(config_set(&cfg, "default_room", "", err, sizeof(err)), 0);
    /* The starting room "defaultRoom" is longer than 4 bytes too. */
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ASSERT_ERR_HAS("starting_rooms");
    ASSERT_ERR_HAS("defaultRoom");
    ck_assert_int_eq(config_set(&cfg, "starting_rooms", "abc, d", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
}
END_TEST

/* roomd -c DIRECTORY started on the defaults: a read error is an error. */
START_TEST(test_load_directory_is_an_error)
{
    ck_assert_int_eq(config_load_file(&cfg, "/tmp", err, sizeof(err)), -1);
    ASSERT_ERR_HAS("/tmp");
    ASSERT_ERR_HAS("directory");
}
END_TEST

/* roomd.conf(5): a number is decimal digits; strtol() alone takes more. */
START_TEST(test_number_with_plus_or_blanks_refused)
{
    const char *bad[] = {"+5", " 5", "\t5", "-", "+", "- 5", "5 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(config_set(&cfg, "port", bad[i], err, sizeof(err)) == -1,
                      "port '%s' accepted", bad[i]);
        ASSERT_ERR_HAS("port");
    }
    ck_assert_int_eq(cfg.port, 5000);
    write_file("# a comment\nport = +5\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    ASSERT_ERR_HAS(":2:");
    ASSERT_ERR_HAS("port");
}
END_TEST

/* "Lines are at most 4095 bytes": a longer one is refused, not cut. */
START_TEST(test_over_long_line_refused)
{
    static char text[8192];
    int n = snprintf(text, sizeof(text), "port = 6000\nwelcome_message = ");
    memset(text + n, 'w', 4095 - 18);
    strcpy(text + n + 4095 - 18, "\n");
    /* Exactly 4095 bytes: fine. */
    write_file(text);
    ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "load: %s", err);
    ck_assert_int_eq(strlen(cfg.welcome_message), 4095 - 18);
    unlink(path);
    /* One more: line 2 is refused. */
    strcpy(text + n + 4095 - 18, "w\n");
    write_file(text);
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    ASSERT_ERR_HAS(":2:");
    ASSERT_ERR_HAS("4095");
}
END_TEST

/* Every key's error names the file and the line, checks across keys too. */
START_TEST(test_validate_errors_name_file_and_line)
{
    static const char *const files[] = {
        "port = 6000\n\nstore = mongodb://x\n",
        "port = 6000\n\nlog_level = loud\n",
        "max_room_name = 8\n\ndefault_room = a-long-room\nstarting_rooms = a\n",
        "port = 6000\n\nstarting_rooms = a,,b\n",
        "port = 6000\n\nstarting_rooms = a,\n",
        "port = 6000\n\nstarting_rooms = ok, bad\tname\n",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        config_free(&cfg);
        config_init(&cfg);
        write_file(files[i]);
        ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "load: %s", err);
        err[0] = '\0';
        ck_assert_msg(config_validate(&cfg, err, sizeof(err)) == -1, "file %zu passed", i);
        char want[128];
        snprintf(want, sizeof(want), "%s:3: ", path);
        ASSERT_ERR_HAS(want);
        unlink(path);
        path[0] = '\0';
    }
    /* An empty list is no rooms, not an empty name. */
    ck_assert_int_eq(config_set(&cfg, "starting_rooms", "", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&cfg, "default_room", "", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&cfg, "store", "memory", err, sizeof(err)), 0);
    ck_assert_msg(config_validate(&cfg, err, sizeof(err)) == 0, "validate: %s", err);
}
END_TEST

START_TEST(test_free_and_reinit)
{
    config_free(&cfg);
    ck_assert_ptr_null(cfg.welcome_message);
    ck_assert_ptr_null(cfg.default_room);
    config_free(&cfg); /* twice is harmless */
    config_init(&cfg);
    ck_assert_str_eq(cfg.welcome_message, "Hello! Welcome to the roomd api");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("set");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_set_basic);
    tcase_add_test(tc, test_set_dashes);
    tcase_add_test(tc, test_set_unknown_key);
    tcase_add_test(tc, test_set_bad_number);
    tcase_add_test(tc, test_set_out_of_range);
    tcase_add_test(tc, test_set_bool);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_file_empty_value);
    tcase_add_test(tc, test_load_file_bad_value_line);
    tcase_add_test(tc, test_load_file_unknown_key_line);
    tcase_add_test(tc, test_load_file_no_equals);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_load_directory_is_an_error);
    tcase_add_test(tc, test_number_with_plus_or_blanks_refused);
    tcase_add_test(tc, test_over_long_line_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_validate_store);
    tcase_add_test(tc, test_validate_other);
    tcase_add_test(tc, test_free_and_reinit);
    tcase_add_test(tc, test_validate_errors_name_file_and_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
