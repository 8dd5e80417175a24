/* SPDX-License-Identifier: Apache-2.0 */

#include <locale.h>
#include <math.h>

#include "test-util.h"

#include "parse-util.h"

static void test_durations(void **state) {
        uint64_t u;

        assert_int_equal(parse_duration("15m", &u), 0);
        assert_int_equal(u, 15 * 60 * USEC_PER_SEC);
        assert_int_equal(parse_duration("1h30m", &u), 0);
        assert_int_equal(u, 90 * 60 * USEC_PER_SEC);
        assert_int_equal(parse_duration("500ms", &u), 0);
        assert_int_equal(u, 500 * USEC_PER_MSEC);
        assert_int_equal(parse_duration("1m30s", &u), 0);
        assert_int_equal(u, 90 * USEC_PER_SEC);
        assert_int_equal(parse_duration("0", &u), 0);
        assert_int_equal(u, 0);
        assert_int_equal(parse_duration("2d", &u), 0);
        assert_int_equal(u, 2 * 86400 * USEC_PER_SEC);

        assert_int_equal(parse_duration("", &u), -EINVAL);
        assert_int_equal(parse_duration("15", &u), -EINVAL);
        assert_int_equal(parse_duration("m", &u), -EINVAL);
        assert_int_equal(parse_duration("1.5h", &u), -EINVAL);
        assert_int_equal(parse_duration("-1s", &u), -EINVAL);
        assert_int_equal(parse_duration("1h ", &u), -EINVAL);
        assert_int_equal(parse_duration("10x", &u), -EINVAL);
        assert_int_equal(parse_duration("99999999999999999999s", &u), -ERANGE);
        assert_int_equal(parse_duration("999999999999y", &u), -ERANGE);
}

static void test_sizes(void **state) {
        uint64_t u;

        assert_int_equal(parse_size("4096", &u), 0);
        assert_int_equal(u, 4096);
        assert_int_equal(parse_size("2GiB", &u), 0);
        assert_int_equal(u, 2 * GIB);
        assert_int_equal(parse_size("500MB", &u), 0);
        assert_int_equal(u, 500000000);
        assert_int_equal(parse_size("1.5KiB", &u), 0);
        assert_int_equal(u, 1536);
        assert_int_equal(parse_size("6G", &u), 0);
        assert_int_equal(u, 6 * GIB);

        assert_int_equal(parse_size("", &u), -EINVAL);
        assert_int_equal(parse_size("-1", &u), -EINVAL);
        assert_int_equal(parse_size("1.5B", &u), -EINVAL);
        assert_int_equal(parse_size("2 GiB", &u), -EINVAL);
        assert_int_equal(parse_size("2GiBs", &u), -EINVAL);
        assert_int_equal(parse_size("0x10", &u), -EINVAL);
        assert_int_equal(parse_size("99999999999TiB", &u), -ERANGE);
}

static void test_numbers_locale_independent(void **state) {
        double d;

        /* A locale with a decimal comma must not change how "0.5" reads. */
        (void) setlocale(LC_NUMERIC, "de_DE.UTF-8");
        assert_int_equal(parse_double("0.5", &d), 0);
        assert_true(d == 0.5);
        assert_int_equal(parse_double("1e-3", &d), 0);
        assert_true(fabs(d - 0.001) < 1e-15);
        assert_int_equal(parse_double("0,5", &d), -EINVAL);
        assert_int_equal(parse_double("nan", &d), -EINVAL);
        assert_int_equal(parse_double(" 1", &d), -EINVAL);
        assert_int_equal(parse_percent("99%", &d), 0);
        assert_true(fabs(d - 0.99) < 1e-12);
        assert_int_equal(parse_percent("99", &d), -EINVAL);
        (void) setlocale(LC_NUMERIC, "C");
}

static void test_format(void **state) {
        char b[FORMAT_DURATION_MAX], c[FORMAT_BYTES_MAX];

        assert_string_equal(format_duration(b, 90 * 60 * USEC_PER_SEC), "1h30m");
        assert_string_equal(format_duration(b, 0), "0s");
        assert_string_equal(format_duration(b, 1500 * USEC_PER_MSEC), "1s500ms");
        assert_string_equal(format_bytes(c, 1536), "1.5KiB");
        assert_string_equal(format_bytes(c, 12), "12B");
}

static void test_names(void **state) {
        assert_true(name_is_valid("digits-mlp", 64));
        assert_true(name_is_valid("a.b_c-1", 64));
        assert_false(name_is_valid("", 64));
        assert_false(name_is_valid(".hidden", 64));
        assert_false(name_is_valid("-opt", 64));
        assert_false(name_is_valid("a/b", 64));
        assert_false(name_is_valid("a b", 64));
        assert_false(name_is_valid("abc", 2));

        assert_true(filename_is_safe("model.safetensors"));
        assert_true(filename_is_safe("Gewichte-ä.bin"));
        assert_false(filename_is_safe("/etc/passwd"));
        assert_false(filename_is_safe(".."));
        assert_false(filename_is_safe("."));
        assert_false(filename_is_safe("a/b"));
        assert_false(filename_is_safe("a\nb"));
        assert_false(filename_is_safe("a\x7f"));
        assert_false(filename_is_safe("\xc0\xaf")); /* overlong '/' */
        assert_false(filename_is_safe("\xed\xa0\x80")); /* surrogate */
        assert_false(filename_is_safe(""));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_durations),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_numbers_locale_independent),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
