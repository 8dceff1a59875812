/* check_line.c -- unit tests of line_scan(), the TCP line framing.
 *
 * PROTOCOL.md: requests end in "\n", a "\r" before it is dropped, empty
 * lines are ignored and not counted, a line over max_line answers
 * "request too long" and the rest of it is skipped, and a telnet break
 * (ff f4 ff fd 06) or a line holding only Ctrl-D ends the connection. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define MAX 16

struct scan {
    enum line_scan r;
    size_t line_len;
    size_t consumed;
};

static struct scan scan(const char *buf, size_t len, size_t max, int skipping)
{
    struct scan s;
    s.line_len = (size_t)-1;
    s.consumed = (size_t)-1;
    s.r = line_scan(buf, len, max, skipping, &s.line_len, &s.consumed);
    return s;
}

#define SCAN(lit, max, skipping) scan((lit), sizeof(lit) - 1, (max), (skipping))

/* A buffer of N 'x' bytes followed by TAIL. */
static char *xs(size_t n, const char *tail, size_t *len)
{
    size_t tl = strlen(tail);
    char *b = malloc(n + tl + 1);
    ck_assert_ptr_nonnull(b);
    memset(b, 'x', n);
    memcpy(b + n, tail, tl + 1);
    *len = n + tl;
    return b;
}

START_TEST(test_lf_line)
{
    struct scan s = SCAN("roomView\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 8);
    ck_assert_uint_eq(s.consumed, 9);
}
END_TEST

START_TEST(test_crlf_line)
{
    struct scan s = SCAN("roomView\r\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 8);
    ck_assert_uint_eq(s.consumed, 10);
}
END_TEST

START_TEST(test_first_of_several)
{
    /* Only the first line is returned; nothing of the next is lost. */
    const char buf[] = "say a\nsay b\r\nsay c";
    struct scan s = SCAN(buf, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 5);
    ck_assert_uint_eq(s.consumed, 6);

    s = scan(buf + 6, sizeof(buf) - 1 - 6, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 5);
    ck_assert_uint_eq(s.consumed, 7);

    s = scan(buf + 13, sizeof(buf) - 1 - 13, MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
    ck_assert_uint_eq(s.consumed, 0);
}
END_TEST

START_TEST(test_bare_lf_keeps_next_char)
{
    /* The original lost a character after a bare LF; not here. */
    const char buf[] = "a\nbc\n";
    struct scan s = SCAN(buf, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.consumed, 2);
    s = scan(buf + s.consumed, sizeof(buf) - 1 - 2, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 2);
    ck_assert_uint_eq(s.consumed, 3);
}
END_TEST

START_TEST(test_inner_cr_kept)
{
    /* Only a CR right before the LF is dropped. */
    struct scan s = SCAN("a\rb\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 3);
    ck_assert_uint_eq(s.consumed, 4);
}
END_TEST

START_TEST(test_empty_lf)
{
    struct scan s = SCAN("\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 1);

    s = SCAN("\nroomView\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 1);
}
END_TEST

START_TEST(test_empty_crlf)
{
    struct scan s = SCAN("\r\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 2);
}
END_TEST

START_TEST(test_lone_cr_is_empty)
{
    /* "\r" alone on its line is an empty line. */
    struct scan s = SCAN("\r\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    s = SCAN("\r\nquit\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 2);
}
END_TEST

START_TEST(test_partial)
{
    struct scan s = SCAN("roomVi", MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
    ck_assert_uint_eq(s.consumed, 0);

    s = SCAN("roomView\r", MAX, 0); /* the LF has not arrived yet */
    ck_assert_int_eq(s.r, LINE_NONE);
    ck_assert_uint_eq(s.consumed, 0);

    s = scan("", 0, MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
    ck_assert_uint_eq(s.consumed, 0);
}
END_TEST

START_TEST(test_exactly_max)
{
    size_t len;
    char *b = xs(MAX, "\n", &len);
    struct scan s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, MAX);
    ck_assert_uint_eq(s.consumed, MAX + 1);
    free(b);

    /* The CR does not count. */
    b = xs(MAX, "\r\n", &len);
    s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, MAX);
    ck_assert_uint_eq(s.consumed, MAX + 2);
    free(b);

    /* A max-length line still waiting for its CRLF is not too long yet. */
    b = xs(MAX, "\r", &len);
    s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
    ck_assert_uint_eq(s.consumed, 0);
    free(b);

    b = xs(MAX, "", &len);
    s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
    free(b);
}
END_TEST

START_TEST(test_max_plus_one)
{
    size_t len;
    char *b = xs(MAX + 1, "\n", &len);
    struct scan s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_TOO_LONG);
    ck_assert_uint_eq(s.consumed, MAX + 2); /* the whole line, LF included */
    free(b);

    b = xs(MAX + 1, "\r\n", &len);
    s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_TOO_LONG);
    ck_assert_uint_eq(s.consumed, MAX + 3);
    free(b);
}
END_TEST

START_TEST(test_unterminated_too_long)
{
    /* Already longer than max (even with a CR to come): reply now, drain
     * everything, the caller then skips to the end of the line. */
    size_t len;
    char *b = xs(MAX + 2, "", &len);
    struct scan s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_TOO_LONG);
    ck_assert_uint_eq(s.consumed, len);
    free(b);

    b = xs(10 * MAX, "", &len);
    s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_TOO_LONG);
    ck_assert_uint_eq(s.consumed, len);
    free(b);
}
END_TEST

START_TEST(test_skipping_unterminated)
{
    /* More of the overlong line, still no LF: all dropped, no reply. */
    size_t len;
    char *b = xs(3 * MAX, "", &len);
    struct scan s = scan(b, len, MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, len);
    free(b);

    s = SCAN("abc", MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 3);
}
END_TEST

START_TEST(test_skipping_drops_to_newline)
{
    /* The tail up to and including the LF goes; the next line survives. */
    const char buf[] = "tail of a long line\r\nroomView\n";
    struct scan s = SCAN(buf, MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, strlen("tail of a long line\r\n"));

    s = scan(buf + s.consumed, sizeof(buf) - 1 - s.consumed, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 8);

    /* A short tail, and a bare LF, are dropped the same way. */
    s = SCAN("x\nquit\n", MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 2);
    s = SCAN("\nquit\n", MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, 1);
}
END_TEST

START_TEST(test_skipping_whole_cycle)
{
    /* Too long (unterminated), then skip, then back to normal. */
    size_t len;
    char *b = xs(MAX + 5, "", &len);
    struct scan s = scan(b, len, MAX, 0);
    ck_assert_int_eq(s.r, LINE_TOO_LONG);
    ck_assert_uint_eq(s.consumed, len);
    free(b);

    b = xs(MAX * 4, "\nsay hi\n", &len);
    s = scan(b, len, MAX, 1);
    ck_assert_int_eq(s.r, LINE_EMPTY);
    ck_assert_uint_eq(s.consumed, MAX * 4 + 1);
    s = scan(b + s.consumed, len - s.consumed, MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    ck_assert_uint_eq(s.line_len, 6);
    free(b);
}
END_TEST

static const char telnet_break[] = "\xff\xf4\xff\xfd\x06";

START_TEST(test_telnet_break)
{
    struct scan s = scan(telnet_break, 5, MAX, 0);
    ck_assert_int_eq(s.r, LINE_BREAK);

    /* With a line ending after it. */
    s = SCAN("\xff\xf4\xff\xfd\x06\r\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_BREAK);

    /* Typed in the middle of a line that has no LF yet. */
    s = SCAN("say hel\xff\xf4\xff\xfd\x06", MAX, 0);
    ck_assert_int_eq(s.r, LINE_BREAK);
}
END_TEST

START_TEST(test_telnet_break_partial)
{
    /* Only part of the sequence so far: not a break, wait for more. */
    struct scan s = scan(telnet_break, 3, MAX, 0);
    ck_assert_int_eq(s.r, LINE_NONE);
}
END_TEST

START_TEST(test_ctrl_d)
{
    struct scan s = SCAN("\x04\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_BREAK);
    s = SCAN("\x04\r\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_BREAK);
    /* Ctrl-D with other text on the line is just a line. */
    s = SCAN("say \x04\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
    s = SCAN("\x04\x04\n", MAX, 0);
    ck_assert_int_eq(s.r, LINE_OK);
}
END_TEST

START_TEST(test_telnet_break_while_skipping)
{
    /* PROTOCOL.md: a telnet break ends the connection.  Nothing exempts a
     * client whose previous line was too long: the Ctrl-C telnet sends
     * while an overlong line is being skipped must still be seen. */
    struct scan s = SCAN("rest of an overlong line\xff\xf4\xff\xfd\x06", MAX, 1);
    ck_assert_int_eq(s.r, LINE_BREAK);
}
END_TEST

static Suite *line_suite(void)
{
    Suite *s = suite_create("line_scan");
    TCase *tc = tcase_create("lines");
    tcase_add_test(tc, test_lf_line);
    tcase_add_test(tc, test_crlf_line);
    tcase_add_test(tc, test_first_of_several);
    tcase_add_test(tc, test_bare_lf_keeps_next_char);
    tcase_add_test(tc, test_inner_cr_kept);
    tcase_add_test(tc, test_empty_lf);
    tcase_add_test(tc, test_empty_crlf);
    tcase_add_test(tc, test_lone_cr_is_empty);
    tcase_add_test(tc, test_partial);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_exactly_max);
    tcase_add_test(tc, test_max_plus_one);
    tcase_add_test(tc, test_unterminated_too_long);
    tcase_add_test(tc, test_skipping_unterminated);
    tcase_add_test(tc, test_skipping_drops_to_newline);
    tcase_add_test(tc, test_skipping_whole_cycle);
    suite_add_tcase(s, tc);

    tc = tcase_create("break");
    tcase_add_test(tc, test_telnet_break);
    tcase_add_test(tc, test_telnet_break_partial);
    tcase_add_test(tc, test_ctrl_d);
    tcase_add_test(tc, test_telnet_break_while_skipping);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(line_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
