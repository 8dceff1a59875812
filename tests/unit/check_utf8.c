/* check_utf8.c -- unit tests of utf8_valid() (strict RFC 3629 UTF-8). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Validate a string literal, embedded NULs included (sizeof - 1). */
#define VALID(lit) utf8_valid((lit), sizeof(lit) - 1)

START_TEST(test_empty)
{
    ck_assert(utf8_valid("", 0));
    /* A length of 0 ignores whatever the pointer holds. */
    ck_assert(utf8_valid("\xff", 0));
}
END_TEST

START_TEST(test_ascii)
{
    ck_assert(VALID("hello, world"));
    ck_assert(VALID("roomChange lobby\r"));
    ck_assert(VALID("\x01\x1f\x7f"));
    /* NUL is U+0000, valid UTF-8 (rejecting it is request.c's job). */
    ck_assert(VALID("a\0b"));
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    ck_assert(utf8_valid(all, sizeof(all)));
}
END_TEST

START_TEST(test_two_byte)
{
    ck_assert(VALID("\xc2\x80"));         /* U+0080, lowest */
    ck_assert(VALID("caf\xc3\xa9"));      /* é */
    ck_assert(VALID("\xdf\xbf"));         /* U+07FF, highest */
    ck_assert(VALID("\xd0\x9f\xd1\x80")); /* Пр */
}
END_TEST

START_TEST(test_three_byte)
{
    ck_assert(VALID("\xe0\xa0\x80"));             /* U+0800, lowest */
    ck_assert(VALID("\xe2\x82\xac"));             /* € */
    ck_assert(VALID("\xed\x9f\xbf"));             /* U+D7FF, just below surrogates */
    ck_assert(VALID("\xee\x80\x80"));             /* U+E000, just above surrogates */
    ck_assert(VALID("\xef\xbf\xbf"));             /* U+FFFF */
    ck_assert(VALID("\xe6\x97\xa5\xe6\x9c\xac")); /* 日本 */
}
END_TEST

START_TEST(test_four_byte)
{
    ck_assert(VALID("\xf0\x90\x80\x80")); /* U+10000, lowest */
    ck_assert(VALID("\xf0\x9f\x98\x80")); /* 😀 */
    ck_assert(VALID("\xf3\xbf\xbf\xbf"));
    ck_assert(VALID("\xf4\x8f\xbf\xbf")); /* U+10FFFF, highest */
    ck_assert(VALID("a\xf0\x9f\x98\x80z"));
}
END_TEST

START_TEST(test_mixed)
{
    ck_assert(VALID("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 z"));
}
END_TEST

START_TEST(test_overlong)
{
    ck_assert(!VALID("\xc0\x80"));         /* NUL in 2 bytes */
    ck_assert(!VALID("\xc0\xaf"));         /* '/' in 2 bytes */
    ck_assert(!VALID("\xc1\xbf"));         /* U+007F in 2 bytes */
    ck_assert(!VALID("\xe0\x80\x80"));     /* NUL in 3 bytes */
    ck_assert(!VALID("\xe0\x9f\xbf"));     /* U+07FF in 3 bytes */
    ck_assert(!VALID("\xf0\x80\x80\x80")); /* NUL in 4 bytes */
    ck_assert(!VALID("\xf0\x8f\xbf\xbf")); /* U+FFFF in 4 bytes */
    ck_assert(!VALID("ok\xc0\x80ok"));
}
END_TEST

START_TEST(test_surrogates)
{
    ck_assert(!VALID("\xed\xa0\x80"));             /* U+D800 */
    ck_assert(!VALID("\xed\xaf\xbf"));             /* U+DBFF */
    ck_assert(!VALID("\xed\xb0\x80"));             /* U+DC00 */
    ck_assert(!VALID("\xed\xbf\xbf"));             /* U+DFFF */
    ck_assert(!VALID("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair */
}
END_TEST

START_TEST(test_above_max)
{
    ck_assert(!VALID("\xf4\x90\x80\x80")); /* U+110000 */
    ck_assert(!VALID("\xf4\xbf\xbf\xbf"));
}
END_TEST

START_TEST(test_f5_to_ff)
{
    for (int c = 0xf5; c <= 0xff; c++) {
        char buf[4] = {(char)c, (char)0x80, (char)0x80, (char)0x80};
        ck_assert_msg(!utf8_valid(buf, 1), "byte %02x alone accepted", c);
        ck_assert_msg(!utf8_valid(buf, 4), "byte %02x + continuations accepted", c);
    }
    ck_assert(!VALID("\xfe\xff"));
    ck_assert(!VALID("abc\xff"));
}
END_TEST

START_TEST(test_truncated)
{
    ck_assert(!VALID("\xc3"));
    ck_assert(!VALID("abc\xc3"));
    ck_assert(!VALID("\xe2"));
    ck_assert(!VALID("\xe2\x82"));
    ck_assert(!VALID("\xf0"));
    ck_assert(!VALID("\xf0\x9f"));
    ck_assert(!VALID("\xf0\x9f\x98"));
    ck_assert(!VALID("ok\xf0\x9f\x98"));
    /* LEN is honoured: a complete sequence cut by the length is truncated. */
    ck_assert(!utf8_valid("\xc3\xa9", 1));
    ck_assert(!utf8_valid("\xe2\x82\xac", 2));
    ck_assert(!utf8_valid("\xf0\x9f\x98\x80", 3));
    ck_assert(utf8_valid("a\xc3\xa9", 1));
    /* A lead byte followed by something other than a continuation. */
    ck_assert(!VALID("\xc3"
                     "A"));
    ck_assert(!VALID("\xe2\x82"
                     "A"));
    ck_assert(!VALID("\xf0\x9f\x98"
                     "A"));
    ck_assert(!VALID("\xe2\x82\xc3\xa9"));
}
END_TEST

START_TEST(test_stray_continuation)
{
    ck_assert(!VALID("\x80"));
    ck_assert(!VALID("\xbf"));
    ck_assert(!VALID("a\x80"
                     "b"));
    ck_assert(!VALID("\xc3\xa9\xa9")); /* one continuation too many */
    ck_assert(!VALID("\xe2\x82\xac\x80"));
    for (int c = 0x80; c <= 0xbf; c++) {
        char b = (char)c;
        ck_assert_msg(!utf8_valid(&b, 1), "continuation %02x alone accepted", c);
    }
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("valid");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_ascii);
    tcase_add_test(tc, test_two_byte);
    tcase_add_test(tc, test_three_byte);
    tcase_add_test(tc, test_four_byte);
    tcase_add_test(tc, test_mixed);
    suite_add_tcase(s, tc);
    tc = tcase_create("invalid");
    tcase_add_test(tc, test_overlong);
    tcase_add_test(tc, test_surrogates);
    tcase_add_test(tc, test_above_max);
    tcase_add_test(tc, test_f5_to_ff);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_stray_continuation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
