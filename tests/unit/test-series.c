/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <math.h>

#include "expr.h"
#include "series.h"
#include "strv.h"

#define S(x) ((uint64_t) (x) * USEC_PER_SEC)

typedef struct Fixture {
        ExprEnv *env;
        const Expr *rate, *up, *y, *z;
        SeriesStore *store;
} Fixture;

static void fixture(Fixture *f, SeriesStoreOptions *o) {
        ExprError e;
        Selector *const *sel;
        size_t n;
        char msg[256];

        *f = (Fixture){};
        assert_int_equal(expr_env_new(&f->env), 0);
        assert_int_equal(expr_compile(f->env, "rate(x_total[10m])", &f->rate, &e), 0);
        assert_int_equal(expr_compile(f->env, "up", &f->up, &e), 0);
        assert_int_equal(expr_compile(f->env, "y{a=\"b\"}", &f->y, &e), 0);
        assert_int_equal(expr_compile(f->env, "{__name__=~\"z_.*\"}", &f->z, &e), 0);
        sel = expr_env_selectors(f->env, &n);
        assert_int_equal(n, 4);
        assert_int_equal(expr_env_max_history(f->env), S(600));
        assert_int_equal(series_store_new(sel, n, o, &f->store, msg, sizeof(msg)), 0);
}

static void fixture_done(Fixture *f) {
        series_store_free(f->store);
        expr_env_free(f->env);
}

static int scrape(SeriesStore *s, unsigned target, uint64_t now, const char *text) {
        ExpfmtError e;
        int r;

        assert_int_equal(series_store_begin_scrape(s, target), 0);
        r = text ? expfmt_parse(EXPFMT_TEXT, text, strlen(text), NULL, &series_store_expfmt_callbacks, s, NULL, &e)
                 : -EIO;
        assert_int_equal(series_store_end_scrape(s, target, now, r >= 0), 0);
        return r;
}

/* Evaluate and return the value of the only element, or NAN when empty (asserting <= 1 element). */
static double eval1(Fixture *f, const Expr *x, uint64_t now, size_t *ret_n) {
        ExprContext c;
        ExprValue v;
        double d;

        expr_context_init(&c, f->store, now);
        assert_int_equal(expr_eval(x, &c, &v), 0);
        if (ret_n)
                *ret_n = v.n;
        d = v.n > 0 ? v.samples[0].value : NAN;
        expr_context_done(&c);
        return d;
}

static void test_scrape_and_labels(void **state) {
        char *targets[] = {(char *) "127.0.0.1:8080", NULL};
        SeriesStoreOptions o = {.min_interval = S(15), .targets = targets};
        SeriesStoreStats st;
        Fixture f;
        ExprContext c;
        ExprValue v;
        size_t n;

        fixture(&f, &o);
        assert_true(series_store_wants(f.store, "x_total", 7));
        assert_true(series_store_wants(f.store, "y", 1));
        assert_true(series_store_wants(f.store, "z_anything", 10)); /* through the name regex */
        assert_false(series_store_wants(f.store, "w", 1));
        assert_false(series_store_wants(f.store, "up", 2)); /* ours, never the target's */

        assert_int_equal(scrape(f.store, 0, S(100),
                                "x_total{instance=\"exporter\"} 10\n"
                                "y{a=\"b\"} 1\n"
                                "y{a=\"c\"} 2\n"
                                "up 0\n"
                                "w 5\n"),
                         0);
        series_store_stats(f.store, &st);
        assert_int_equal(st.series, 3);  /* up, x_total, y{a="b"} */
        assert_int_equal(st.ignored, 1); /* y{a="c"}: wanted name, no selector matches */
        assert_true(st.memory_bound >= st.memory_used);
        assert_int_equal(st.capacity, 600 / 15 + 2);

        expr_context_init(&c, f.store, S(100));
        assert_int_equal(expr_eval(f.up, &c, &v), 0);
        assert_int_equal(v.n, 1);
        assert_true(v.samples[0].value == 1.0); /* the exposition's "up 0" is not ours */
        assert_string_equal(label_set_get(&v.samples[0].labels, "instance"), "127.0.0.1:8080");
        expr_context_done(&c);

        assert_true(eval1(&f, f.y, S(100), &n) == 1.0);
        assert_int_equal(n, 1);
        fixture_done(&f);
}

static void test_staleness_and_failure(void **state) {
        char *targets[] = {(char *) "a:1", NULL};
        SeriesStoreOptions o = {.min_interval = S(15), .targets = targets};
        Fixture f;
        size_t n;

        fixture(&f, &o);
        assert_int_equal(scrape(f.store, 0, S(0), "y{a=\"b\"} 1\nx_total 1\n"), 0);
        assert_true(eval1(&f, f.y, S(10), &n) == 1.0);
        /* missing from the next scrape: stale at once, not after the 5m lookback */
        assert_int_equal(scrape(f.store, 0, S(15), "x_total 2\n"), 0);
        assert_true(isnan(eval1(&f, f.y, S(16), &n)));
        assert_int_equal(n, 0);
        /* … but still seen at a time before the staleness marker */
        assert_true(eval1(&f, f.y, S(14), &n) == 1.0);
        /* back again */
        assert_int_equal(scrape(f.store, 0, S(30), "x_total 3\ny{a=\"b\"} 7\n"), 0);
        assert_true(eval1(&f, f.y, S(30), &n) == 7.0);

        /* a scrape that fails half-way commits nothing: up=0, everything stale */
        assert_int_equal(scrape(f.store, 0, S(45), "x_total 4\ny{a=\"b\"} 8\ny{a=\"c\" 9\n"), -EINVAL);
        assert_true(eval1(&f, f.up, S(45), &n) == 0.0);
        assert_true(isnan(eval1(&f, f.y, S(45), &n)));
        /* a transfer failure (no body) too */
        assert_int_equal(scrape(f.store, 0, S(60), NULL), -EIO);
        assert_true(eval1(&f, f.up, S(60), &n) == 0.0);
        /* and the last good value is still there, before the marker */
        assert_true(eval1(&f, f.y, S(44), &n) == 7.0);
        assert_int_equal(scrape(f.store, 0, S(75), "y{a=\"b\"} 9\n"), 0);
        assert_true(eval1(&f, f.up, S(75), &n) == 1.0);
        assert_true(eval1(&f, f.y, S(75), &n) == 9.0);
        fixture_done(&f);
}

static void test_lookback_and_ring(void **state) {
        SeriesStoreOptions o = {.min_interval = S(60)};
        LabelPair ab = {"a", "b"};
        Fixture f;
        size_t n, first, last, iter = 0;
        const Series *s;

        fixture(&f, &o);
        /* capacity: 600s / 60s + 2 = 12 samples */
        for (unsigned i = 0; i < 30; i++)
                assert_int_equal(series_store_append(f.store, "y", &ab, 1, S(60 * i), (double) i), 0);
        s = series_store_iterate(f.store, 3 - 1, &iter); /* y{a="b"} is selector 2 */
        assert_non_null(s);
        assert_int_equal(series_n_samples(s), 12);
        assert_true(series_sample(s, 0).v == 18.0);
        assert_true(series_sample(s, 11).v == 29.0);
        series_window(s, (int64_t) S(60 * 20), S(60 * 25), &first, &last);
        assert_int_equal(last - first, 5); /* (20m, 25m] */
        assert_true(series_sample(s, first).v == 21.0);

        /* lookback 5m: the last sample is seen for 5m, then nothing */
        assert_true(eval1(&f, f.y, S(60 * 29 + 299), &n) == 29.0);
        assert_true(isnan(eval1(&f, f.y, S(60 * 29 + 300), &n)));
        /* out of order is dropped, equal time replaces */
        assert_int_equal(series_store_append(f.store, "y", &ab, 1, S(60), 100), 0);
        assert_int_equal(series_store_append(f.store, "y", &ab, 1, S(60 * 29), 42), 0);
        assert_true(eval1(&f, f.y, S(60 * 29), &n) == 42.0);
        {
                SeriesStoreStats st;
                series_store_stats(f.store, &st);
                assert_int_equal(st.dropped_samples, 1);
        }
        /* staleness marker through the direct API */
        assert_int_equal(series_store_append(f.store, "y", &ab, 1, S(60 * 30), series_stale_value()), 0);
        assert_true(isnan(eval1(&f, f.y, S(60 * 30), &n)));
        assert_true(series_is_stale_value(series_stale_value()));
        assert_false(series_is_stale_value(NAN));

        series_store_clear(f.store);
        assert_true(isnan(eval1(&f, f.y, S(60 * 29), &n)));
        fixture_done(&f);
}

static void test_limits(void **state) {
        char *targets[] = {(char *) "t", NULL};
        SeriesStoreOptions o = {.min_interval = S(15), .targets = targets, .max_series = 16, .max_ignored = 2,
                                .max_label_bytes = 64};
        SeriesStoreStats st;
        Fixture f;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        char msg[256];

        fixture(&f, &o);
        /* 40 distinct referenced series: 16 fit (the up series counts too) */
        text = calloc(1, 40 * 64);
        for (unsigned i = 0; i < 40; i++)
                len += (size_t) sprintf(text + len, "x_total{i=\"%u\"} 1\n", i);
        len += (size_t) sprintf(text + len, "x_total{i=\"%s\"} 1\n",
                                "a-label-value-that-is-far-too-long-for-the-tiny-limit-of-this-test");
        assert_int_equal(scrape(f.store, 0, S(0), text), 0);
        series_store_stats(f.store, &st);
        assert_int_equal(st.series, 16);
        assert_int_equal(st.dropped_series, 40 - 15 + 1);

        /* ignored entries are bounded too: past the limit, nothing is remembered */
        assert_int_equal(scrape(f.store, 0, S(15), "y{a=\"1\"} 1\ny{a=\"2\"} 1\ny{a=\"3\"} 1\n"), 0);
        series_store_stats(f.store, &st);
        assert_int_equal(st.ignored, 2);

        /* forgotten once gone for longer than anything looks back */
        assert_int_equal(scrape(f.store, 0, S(15 + 600 + 300 + 1), ""), 0);
        series_store_stats(f.store, &st);
        assert_int_equal(st.series, 1); /* up */
        assert_int_equal(st.ignored, 0);
        fixture_done(&f);

        /* a memory budget that cannot hold 16 series is refused at load time */
        {
                ExprEnv *env;
                const Expr *x;
                ExprError e;
                Selector *const *sel;
                SeriesStore *s = NULL;
                size_t n;
                SeriesStoreOptions o2 = {.min_interval = S(1), .memory_budget = 1024 * 1024};

                assert_int_equal(expr_env_new(&env), 0);
                assert_int_equal(expr_compile(env, "avg_over_time(x[1d])", &x, &e), 0);
                sel = expr_env_selectors(env, &n);
                assert_int_equal(series_store_new(sel, n, &o2, &s, msg, sizeof(msg)), -E2BIG);
                assert_string_equal(msg, "a memory budget of 1048576 bytes holds only 0 series of 86402 samples (need 16)");
                o2.memory_budget = 0;
                assert_int_equal(series_store_new(sel, n, &o2, &s, msg, sizeof(msg)), 0);
                series_store_stats(s, &st);
                assert_int_equal(st.capacity, 86402);
                assert_true(st.max_series < 4096 && st.max_series >= 16);
                assert_true(st.memory_bound <= 64 * MIB + 4 * MIB);
                series_store_free(s);
                expr_env_free(env);
        }
}

static void test_matchers(void **state) {
        Matcher m;
        char msg[256];

        assert_int_equal(matcher_init(&m, "a", MATCH_RE, "foo|ba.", msg, sizeof(msg)), 0);
        assert_true(matcher_matches(&m, "foo"));
        assert_true(matcher_matches(&m, "bar"));
        assert_false(matcher_matches(&m, "foobar")); /* anchored */
        assert_false(matcher_matches(&m, NULL));
        matcher_done(&m);
        assert_int_equal(matcher_init(&m, "a", MATCH_NRE, ".*x", msg, sizeof(msg)), 0);
        assert_true(matcher_matches(&m, NULL));
        assert_false(matcher_matches(&m, "abx"));
        matcher_done(&m);
        assert_int_equal(matcher_init(&m, "a", MATCH_NE, "", msg, sizeof(msg)), 0);
        assert_false(matcher_matches(&m, NULL)); /* absent == "" */
        assert_true(matcher_matches(&m, "v"));
        matcher_done(&m);
        assert_int_equal(matcher_init(&m, "a", MATCH_RE, "(a", msg, sizeof(msg)), -EINVAL);
        assert_int_equal(matcher_init(&m, "a", MATCH_RE, "(a)\\1", msg, sizeof(msg)), -EINVAL);
        assert_string_equal(msg, "back-references are not supported in regular expressions");
        {
                char big[MATCHER_REGEX_MAX + 2];
                memset(big, 'a', sizeof(big) - 1);
                big[sizeof(big) - 1] = 0;
                assert_int_equal(matcher_init(&m, "a", MATCH_RE, big, msg, sizeof(msg)), -EINVAL);
                assert_string_equal(msg, "regular expression longer than 1024 bytes");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scrape_and_labels), cmocka_unit_test(test_staleness_and_failure),
                cmocka_unit_test(test_lookback_and_ring), cmocka_unit_test(test_limits),
                cmocka_unit_test(test_matchers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
