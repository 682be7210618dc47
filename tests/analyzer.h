/* For the clang static analyser only (make check-static); empty in every compiled build. cmocka's
 * assert_* report a failure through functions that longjmp out of the test, which the analyser cannot
 * see, so it follows each failed assert onwards (a NULL checked by assert_non_null, then used). Here
 * each assert ends in a noreturn call instead, so only paths where the asserts hold are analysed.
 * The Makefile forces this header into every test object (-include). Tested by `make check-static`
 * (tests/ without it: some twenty findings, all after a failed assert). */
#ifndef KY_TESTS_ANALYZER_H
#define KY_TESTS_ANALYZER_H
#ifdef __clang_analyzer__
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

_Noreturn void ky_analyzer_fail(void);   /* declared only: analysis never links */
_Noreturn void ky_analyzer_fail_msg(const char *fmt, ...);   /* its arguments stay read */
#define KY_AN_CHECK_(c) ((c) ? (void)0 : ky_analyzer_fail())

#undef assert_true
#undef assert_false
#undef assert_non_null
#undef assert_null
#undef assert_int_equal
#undef assert_int_not_equal
#undef assert_ptr_equal
#undef assert_ptr_not_equal
#undef assert_float_equal
#undef assert_float_not_equal
#undef assert_string_equal
#undef assert_string_not_equal
#undef assert_memory_equal
#undef assert_memory_not_equal
#undef assert_in_range
#undef assert_return_code
#undef fail
#undef fail_msg
#undef skip
#define assert_true(c) KY_AN_CHECK_(c)
#define assert_false(c) KY_AN_CHECK_(!(c))
#define assert_non_null(p) KY_AN_CHECK_((p) != NULL)
#define assert_null(p) KY_AN_CHECK_((p) == NULL)
#define assert_int_equal(a, b) KY_AN_CHECK_((uintmax_t)(a) == (uintmax_t)(b))
#define assert_int_not_equal(a, b) KY_AN_CHECK_((uintmax_t)(a) != (uintmax_t)(b))
#define assert_ptr_equal(a, b) KY_AN_CHECK_((const void *)(a) == (const void *)(b))
#define assert_ptr_not_equal(a, b) KY_AN_CHECK_((const void *)(a) != (const void *)(b))
#define assert_float_equal(a, b, e) KY_AN_CHECK_(__builtin_fabs((double)(a) - (double)(b)) <= (double)(e))
#define assert_float_not_equal(a, b, e) KY_AN_CHECK_(__builtin_fabs((double)(a) - (double)(b)) > (double)(e))
#define assert_string_equal(a, b) KY_AN_CHECK_(strcmp((a), (b)) == 0)
#define assert_string_not_equal(a, b) KY_AN_CHECK_(strcmp((a), (b)) != 0)
#define assert_memory_equal(a, b, n) KY_AN_CHECK_(memcmp((a), (b), (n)) == 0)
#define assert_memory_not_equal(a, b, n) KY_AN_CHECK_(memcmp((a), (b), (n)) != 0)
#define assert_in_range(v, lo, hi) KY_AN_CHECK_((uintmax_t)(v) >= (uintmax_t)(lo) && (uintmax_t)(v) <= (uintmax_t)(hi))
#define assert_return_code(rc, err) KY_AN_CHECK_((intmax_t)(rc) >= 0)
#define fail() ky_analyzer_fail()
#define fail_msg(...) ky_analyzer_fail_msg(__VA_ARGS__)
#define skip() ky_analyzer_fail()
#endif
#endif
