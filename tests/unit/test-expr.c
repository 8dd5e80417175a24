/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <inttypes.h>
#include <math.h>

#include "expr.h"
#include "series.h"

#define S(x) ((uint64_t) (x) * USEC_PER_SEC)

/* ---------------------------------------------------------------------------------------------
 * Parsing
 */

static void expect_compile_error(const char *text, size_t offset, const char *message) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        ExprError err = {};
        const Expr *x;

        assert_int_equal(expr_env_new(&e), 0);
        assert_int_equal(expr_env_define(e, "acc", "accuracy(tp, tn, fp, fn)"), 0);
        assert_int_equal(expr_env_define(e, "cyc_a", "cyc_b + 1"), 0);
        assert_int_equal(expr_env_define(e, "cyc_b", "cyc_a * 2"), 0);
        assert_int_equal(expr_env_define(e, "bad", "rate(x)"), 0);
        assert_int_equal(expr_env_define(e, "alias", "errors_total{code=\"500\"}"), 0);
        if (expr_compile(e, text, &x, &err) >= 0)
                fail_msg("'%s' compiled, expected error at %zu: %s", text, offset, message);
        if (err.offset != offset || !streq(err.message, message))
                fail_msg("'%s'\nexpected %zu: %s\n     got %zu: %s", text, offset, message, err.offset, err.message);
}

static void test_parse_errors(void **state) {
        expect_compile_error("", 0, "empty expression");
        expect_compile_error("rate(x)", 5, "rate() needs a range, e.g. rate(x[5m]); got an instant vector");
        expect_compile_error("x +", 3, "unexpected end of input, expected a number, a metric, a function or '('");
        expect_compile_error("1 < 2", 2, "comparisons between scalars must use the bool modifier");
        expect_compile_error("foo(x)", 0, "unknown function 'foo'");
        expect_compile_error("x{a=~\"(\"}", 2,
                             "invalid regular expression \"(\": Unmatched ( or \\(");
        expect_compile_error("x[5m] + 1", 0,
                             "binary expression must contain only scalar and instant vector types (a range needs a "
                             "function such as rate())");
        expect_compile_error("sum(1)", 4, "expected type instant vector in aggregation expression, got scalar");
        expect_compile_error("x and 1", 2, "set operator 'and' not allowed in binary scalar expression");
        expect_compile_error("5x", 1,
                             "unknown unit 'x' (durations: ms s m h d w y; sizes: B KB MB GB TB KiB MiB GiB TiB; or %)");
        expect_compile_error("x{a=\"b\"", 7, "unexpected end of input, expected ',' or '}'");
        expect_compile_error("(x", 2, "unexpected end of input, expected ')'");
        expect_compile_error("a b", 2, "unexpected 'b', expected an operator or end of input");
        expect_compile_error("x + bool 1", 4, "bool modifier can only be used on comparison operators");
        expect_compile_error("x[0s]", 2, "duration must be greater than 0");
        expect_compile_error("x[5]", 2, "unexpected number '5', expected a duration like 5m");
        expect_compile_error("{}", 0, "a selector needs a metric name or a matcher that does not match the empty string");
        expect_compile_error("{a=\"\"}", 0,
                             "a selector needs a metric name or a matcher that does not match the empty string");
        expect_compile_error("x{a=\"b\"} * on(a) group_left y", 17,
                             "group_left/group_right (many-to-one matching) are not supported");
        expect_compile_error("cyc_a", 0, "definition cycle: cyc_a → cyc_b → cyc_a");
        expect_compile_error("1 + bad", 4, "definition 'bad' is invalid: rate() needs a range, e.g. rate(x[5m]); got an instant vector");
        expect_compile_error("acc{a=\"b\"}", 3, "'acc' is a definition: label matchers apply to metrics only");
        expect_compile_error("rate(acc[5m])", 8,
                             "'acc' is an expression, not a metric: a range needs a metric selector (subqueries are "
                             "not supported)");
        expect_compile_error("baseline(baseline(x))", 9, "baseline() cannot be nested");
        expect_compile_error("baseline(x[5m])", 9, "baseline() needs an instant value, e.g. baseline(rate(x[5m]))");
        expect_compile_error("accuracy(a, b, c)", 0, "accuracy() takes four arguments: tp, tn, fp, fn");
        expect_compile_error("histogram_quantile(x, y)", 19, "expected type scalar in argument 1 of histogram_quantile(), got instant vector");
        expect_compile_error("sum by (a) x", 11, "unexpected 'x', expected '('");
        expect_compile_error("x == \"s\"", 5, "string literals are only allowed as label values");
        expect_compile_error("x{a=\"\\q\"}", 5, "invalid escape sequence in string");
        expect_compile_error("x @ 5", 2, "unexpected character '@'");
        expect_compile_error("and", 0, "unexpected keyword 'and'");
        expect_compile_error("sum", 0, "'sum' is an aggregation: write sum(x) or sum by (label) (x)");
        expect_compile_error("x offset -5m", 9, "unexpected '-', expected a duration like 5m");
        {
                char deep[400];
                size_t n = 0;
                for (int i = 0; i < 100; i++)
                        deep[n++] = '(';
                deep[n++] = '1';
                for (int i = 0; i < 100; i++)
                        deep[n++] = ')';
                deep[n] = 0;
                expect_compile_error(deep, 32, "expression nested too deeply (limit 64)");
        }
        {
                _cleanup_free_ char *big = malloc(EXPR_TEXT_MAX + 10);
                memset(big, '1', EXPR_TEXT_MAX + 9);
                big[EXPR_TEXT_MAX + 9] = 0;
                expect_compile_error(big, EXPR_TEXT_MAX, "expression longer than 4096 bytes");
        }
}

static double eval_scalar(const char *text) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        ExprError err = {};
        ExprContext c;
        ExprValue v;
        const Expr *x;

        assert_int_equal(expr_env_new(&e), 0);
        if (expr_compile(e, text, &x, &err) < 0)
                fail_msg("'%s': %zu: %s", text, err.offset, err.message);
        assert_int_equal(expr_type(x), EXPR_SCALAR);
        expr_context_init(&c, NULL, 0);
        assert_int_equal(expr_eval(x, &c, &v), 0);
        expr_context_done(&c);
        return v.scalar;
}

static void test_literals(void **state) {
        assert_true(eval_scalar("5m") == 300);
        assert_true(eval_scalar("1h30m") == 5400);
        assert_true(eval_scalar("500ms") == 0.5);
        assert_true(eval_scalar("6GiB") == 6.0 * 1024 * 1024 * 1024);
        assert_true(eval_scalar("500MB") == 500e6);
        assert_true(eval_scalar("99%") == 0.99);
        assert_true(eval_scalar("1e3") == 1000);
        assert_true(eval_scalar(".5") == 0.5);
        assert_true(eval_scalar("0") == 0);
        assert_true(eval_scalar("0.5") == 0.5);
        assert_true(eval_scalar("10 % 3") == 1);
        assert_true(eval_scalar("5%3") == 2);
        assert_true(eval_scalar("50% * 2") == 1);
        assert_true(eval_scalar("2 ^ 3 ^ 2") == 512); /* right-associative */
        assert_true(eval_scalar("-2 ^ 2") == -4);      /* ^ binds tighter than unary minus */
        assert_true(eval_scalar("2 * 3 + 4 * 5") == 26);
        assert_true(eval_scalar("10 - 4 - 3") == 3);
        assert_true(eval_scalar("1 < bool 2") == 1);
        assert_true(eval_scalar("2 <= bool 1") == 0);
        assert_true(eval_scalar("1 + 1 == bool 2") == 1);
        assert_true(isinf(eval_scalar("1 / 0")) && eval_scalar("1 / 0") > 0);
        assert_true(isinf(eval_scalar("-1 / 0")) && eval_scalar("-1 / 0") < 0);
        assert_true(isnan(eval_scalar("0 / 0")));
        assert_true(isnan(eval_scalar("NaN")));
        assert_true(isinf(eval_scalar("Inf")));
        assert_true(eval_scalar("accuracy(90, 5, 3, 2)") == 0.95);
        assert_true(eval_scalar("redundancy(90, 5, 3, 2)") == 0.92);
        assert_true(eval_scalar("scalar(vector(3))") == 3);
        assert_true(eval_scalar("1 # a comment\n + 2") == 3);
}

static void test_canonical(void **state) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        ExprError err;
        const Expr *x;
        Arena a = {};
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"rate(errors_total{code=\"500\", a!~\"x\"}[5m])", "rate(errors_total{a!~\"x\", code=\"500\"}[5m])"},
                {"sum by (b, a) (x) / ignoring(z) y offset 1m", "(sum by (a, b) (x) / ignoring(z) y offset 1m)"},
                {"{\"my.metric\", \"a.b\"=\"c\"}", "{\"my.metric\", \"a.b\"=\"c\"}"},
                {"{__name__=\"up\"} == 1", "(up == 1)"},
                {"acc > 0.9", "(((tp + tn) / (((tp + tn) + fp) + fn)) > 0.9)"},
                {"-x", "-(x)"},
                {"x > bool 99%", "(x > bool 0.99)"},
                {"baseline(acc) - 0.01", "(baseline(((tp + tn) / (((tp + tn) + fp) + fn))) - 0.01)"},
        };

        assert_int_equal(expr_env_new(&e), 0);
        assert_int_equal(expr_env_define(e, "acc", "accuracy(tp, tn, fp, fn)"), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *s;
                if (expr_compile(e, cases[i].in, &x, &err) < 0)
                        fail_msg("%s: %s", cases[i].in, err.message);
                s = expr_to_string(x, &a);
                if (!streq(s, cases[i].out))
                        fail_msg("%s\nexpected %s\n     got %s", cases[i].in, cases[i].out, s);
        }
        assert_int_equal(expr_env_n_baselines(e), 1);
        assert_string_equal(expr_env_baseline_key(e, 0), "((tp + tn) / (((tp + tn) + fp) + fn))");
        arena_done(&a);
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation against a store
 */

typedef struct World {
        ExprEnv *env;
        SeriesStore *store;
        const Expr *x[64];
        size_t n;
} World;

/* Compile all expressions first (the store is made for their selectors), then add data. */
static void world_new(World *w, const char *const *exprs, uint64_t interval) {
        Selector *const *sel;
        ExprError err;
        char msg[256];
        size_t n;

        *w = (World){};
        assert_int_equal(expr_env_new(&w->env), 0);
        assert_int_equal(expr_env_define(w->env, "acc", "accuracy(tp, tn, fp, fn)"), 0);
        for (; exprs[w->n]; w->n++)
                if (expr_compile(w->env, exprs[w->n], &w->x[w->n], &err) < 0)
                        fail_msg("%s: %zu: %s", exprs[w->n], err.offset, err.message);
        sel = expr_env_selectors(w->env, &n);
        assert_int_equal(series_store_new(sel, n, &(SeriesStoreOptions){.min_interval = interval}, &w->store, msg,
                                          sizeof(msg)),
                         0);
}

static void world_done(World *w) {
        series_store_free(w->store);
        expr_env_free(w->env);
}

static void add(World *w, const char *metric, const char *l1, const char *v1, uint64_t t, double v) {
        LabelPair p = {l1, v1};
        assert_int_equal(series_store_append(w->store, metric, &p, l1 ? 1 : 0, t, v), 0);
}

/* Evaluate expression i at t and render "labels=value" sorted, for exact comparison. */
static char *render(World *w, size_t i, uint64_t t) {
        ExprContext c;
        ExprValue v;
        char *lines[64], *out;
        size_t n = 0, len = 1;

        expr_context_init(&c, w->store, t);
        if (expr_eval(w->x[i], &c, &v) < 0)
                fail_msg("eval %zu: %s", i, c.err.message);
        if (v.type == EXPR_SCALAR) {
                char b[64];
                expr_format_number(v.scalar, b, sizeof(b));
                expr_context_done(&c);
                return strdup(b);
        }
        for (size_t k = 0; k < v.n && n < 64; k++) {
                char b[64], *l = NULL;
                size_t off = 0;
                char ls[512] = "";

                for (size_t j = 0; j < v.samples[k].labels.n; j++)
                        off += (size_t) snprintf(ls + off, sizeof(ls) - off, "%s%s=%s", j ? "," : "",
                                                 v.samples[k].labels.pairs[j].name, v.samples[k].labels.pairs[j].value);
                expr_format_number(v.samples[k].value, b, sizeof(b));
                assert_true(asprintf(&l, "%s{%s}=%s", v.samples[k].labels.metric ?: "", ls, b) > 0);
                lines[n++] = l;
                len += strlen(l) + 1;
        }
        expr_context_done(&c);
        /* sort */
        for (size_t a = 1; a < n; a++)
                for (size_t b = a; b > 0 && strcmp(lines[b - 1], lines[b]) > 0; b--) {
                        char *tmp = lines[b];
                        lines[b] = lines[b - 1];
                        lines[b - 1] = tmp;
                }
        out = calloc(1, len);
        for (size_t k = 0; k < n; k++) {
                if (k)
                        strcat(out, " ");
                strcat(out, lines[k]);
                free(lines[k]);
        }
        return out;
}

#define assert_render(w, i, t, expected)                                                                   \
        do {                                                                                               \
                _cleanup_free_ char *_s = render(w, i, t);                                                  \
                if (!streq(_s, expected))                                                                  \
                        fail_msg("expr %zu at %" PRIu64 "s:\nexpected %s\n     got %s", (size_t) (i),     \
                                 (uint64_t) (t) / USEC_PER_SEC, expected, _s);                             \
        } while (0)

static double value_of(World *w, size_t i, uint64_t t) {
        ExprContext c;
        ExprValue v;
        double d;

        expr_context_init(&c, w->store, t);
        assert_int_equal(expr_eval(w->x[i], &c, &v), 0);
        assert_int_equal(v.n, 1);
        d = v.samples[0].value;
        expr_context_done(&c);
        return d;
}

static void assert_near(double a, double b) {
        if (!(fabs(a - b) <= 1e-9 * MAX(1.0, fabs(b))))
                fail_msg("%.17g != %.17g", a, b);
}

static void test_rate_increase(void **state) {
        static const char *const exprs[] = {
                "rate(c[1m])", "increase(c[1m])", "rate(d[5m])", "increase(e[5m])", "rate(e[5m])", "rate(f[5m])",
                "increase(c[10s])", NULL,
        };
        World w;

        world_new(&w, exprs, S(15));
        /* c: a counter reset at 45s (20 -> 5) */
        add(&w, "c", NULL, NULL, S(0), 0);
        add(&w, "c", NULL, NULL, S(15), 10);
        add(&w, "c", NULL, NULL, S(30), 20);
        add(&w, "c", NULL, NULL, S(45), 5);
        add(&w, "c", NULL, NULL, S(60), 15);
        /* window (0, 60]: 10 20 5 15 → 5 + 20 (reset) = 25 over 45s; to the start 15s (< 1.1 × 15),
         * zero point 45 × 10/25 = 18s (not nearer): × (45 + 15) / 45 */
        assert_near(value_of(&w, 1, S(60)), 25.0 * 60.0 / 45.0);
        assert_near(value_of(&w, 0, S(60)), 25.0 * 60.0 / 45.0 / 60.0);
        /* one sample in (50, 60]: no rate */
        assert_render(&w, 6, S(60), "");

        /* d: every 60s, +60 each: rate 1/s exactly */
        for (unsigned i = 0; i <= 5; i++)
                add(&w, "d", NULL, NULL, S(60 * i), 60.0 * i);
        assert_near(value_of(&w, 2, S(300)), 1.0);

        /* e: starts late in the window: extrapolated by half an interval at the start */
        add(&w, "e", NULL, NULL, S(180), 10);
        add(&w, "e", NULL, NULL, S(240), 20);
        add(&w, "e", NULL, NULL, S(300), 30);
        /* 20 over 120s; start gap 180s > 66s → 30s; zero point 60s is not nearer: × 150/120 */
        assert_near(value_of(&w, 3, S(300)), 25.0);
        assert_near(value_of(&w, 4, S(300)), 25.0 / 300.0);

        /* f: the zero point limits extrapolation: 1 → 3 → 5 with samples from 240s */
        add(&w, "f", NULL, NULL, S(240), 1);
        add(&w, "f", NULL, NULL, S(270), 3);
        add(&w, "f", NULL, NULL, S(300), 5);
        /* 4 over 60s; gap 240s → 15s; zero point 60 × 1/4 = 15s: equal, so 15; × 75/60 → 5 / 300s */
        assert_near(value_of(&w, 5, S(300)), 5.0 / 300.0);
        world_done(&w);
}

static void test_over_time_and_staleness(void **state) {
        static const char *const exprs[] = {
                "avg_over_time(g[5m])", "min_over_time(g[5m])", "max_over_time(g[5m])", "sum_over_time(g[5m])",
                "count_over_time(g[5m])", "last_over_time(g[5m])", "g", "g offset 2m", NULL,
        };
        World w;

        world_new(&w, exprs, S(60));
        add(&w, "g", "a", "1", S(0), 4);
        add(&w, "g", "a", "1", S(60), 8);
        add(&w, "g", "a", "1", S(120), series_stale_value());
        add(&w, "g", "a", "1", S(180), 2);
        add(&w, "g", "a", "1", S(240), 6);
        /* (0, 300]: 8, (stale), 2, 6 — staleness markers are not samples */
        assert_render(&w, 0, S(300), "{a=1}=5.333333333333333");
        assert_render(&w, 1, S(300), "{a=1}=2");
        assert_render(&w, 2, S(300), "{a=1}=8");
        assert_render(&w, 3, S(300), "{a=1}=16");
        assert_render(&w, 4, S(300), "{a=1}=3");
        assert_render(&w, 5, S(300), "g{a=1}=6");
        assert_render(&w, 6, S(300), "g{a=1}=6");
        assert_render(&w, 6, S(150), "");                /* stale since 120s */
        assert_render(&w, 7, S(300), "g{a=1}=2");        /* at 180s */
        assert_render(&w, 6, S(240 + 300), "");          /* beyond the 5m lookback */
        world_done(&w);
}

static void test_operators(void **state) {
        static const char *const exprs[] = {
                /* 0 */ "x + y",
                /* 1 */ "x > 2",
                /* 2 */ "x > bool 2",
                /* 3 */ "2 < x",
                /* 4 */ "x and y",
                /* 5 */ "x or y",
                /* 6 */ "x unless y",
                /* 7 */ "x / on(a) z",
                /* 8 */ "x * ignoring(b) z",
                /* 9 */ "missing + 1",
                /* 10 */ "missing > 1",
                /* 11 */ "x / 0",
                /* 12 */ "-x",
                /* 13 */ "x == x",
                /* 14 */ "x - x > bool 0",
                NULL,
        };
        World w;

        world_new(&w, exprs, S(15));
        add(&w, "x", "a", "1", S(0), 1);
        add(&w, "x", "a", "2", S(0), 3);
        add(&w, "x", "a", "3", S(0), 5);
        add(&w, "y", "a", "1", S(0), 10);
        add(&w, "y", "a", "2", S(0), 20);
        add(&w, "y", "a", "4", S(0), 40);
        {
                LabelPair p[2] = {{"a", "1"}, {"b", "x"}};
                assert_int_equal(series_store_append(w.store, "z", p, 2, S(0), 2), 0);
        }

        assert_render(&w, 0, S(0), "{a=1}=11 {a=2}=23");
        assert_render(&w, 1, S(0), "x{a=2}=3 x{a=3}=5");
        assert_render(&w, 2, S(0), "{a=1}=0 {a=2}=1 {a=3}=1");
        assert_render(&w, 3, S(0), "x{a=2}=3 x{a=3}=5");
        assert_render(&w, 4, S(0), "x{a=1}=1 x{a=2}=3");
        assert_render(&w, 5, S(0), "x{a=1}=1 x{a=2}=3 x{a=3}=5 y{a=4}=40");
        assert_render(&w, 6, S(0), "x{a=3}=5");
        assert_render(&w, 7, S(0), "{a=1}=0.5");
        assert_render(&w, 8, S(0), "{a=1}=2");
        assert_render(&w, 9, S(0), "");
        assert_render(&w, 10, S(0), "");
        assert_render(&w, 11, S(0), "{a=1}=+Inf {a=2}=+Inf {a=3}=+Inf");
        assert_render(&w, 12, S(0), "{a=1}=-1 {a=2}=-3 {a=3}=-5");
        assert_render(&w, 13, S(0), "x{a=1}=1 x{a=2}=3 x{a=3}=5");
        assert_render(&w, 14, S(0), "{a=1}=0 {a=2}=0 {a=3}=0");
        world_done(&w);
}

static void test_matching_errors(void **state) {
        static const char *const exprs[] = {"x + on() y", "y + on() x", NULL};
        World w;
        ExprContext c;
        ExprValue v;

        world_new(&w, exprs, S(15));
        add(&w, "x", "a", "1", S(0), 1);
        add(&w, "x", "a", "2", S(0), 2);
        add(&w, "y", "a", "1", S(0), 1);
        expr_context_init(&c, w.store, S(0));
        assert_int_equal(expr_eval(w.x[0], &c, &v), -EINVAL);
        assert_string_equal(c.err.message, "multiple matches for labels on the left hand-side of '+' (many-to-one "
                                           "matching must be explicit, and group_left is not supported)");
        assert_int_equal(expr_eval(w.x[1], &c, &v), -EINVAL);
        assert_string_equal(c.err.message, "found duplicate series for the match group on the right hand-side of '+' "
                                           "(many-to-many matching is not allowed)");
        expr_context_done(&c);
        world_done(&w);
}

static void test_aggregations(void **state) {
        static const char *const exprs[] = {
                "sum(m)", "sum by (job) (m)", "avg without (inst) (m)", "min by (job) (m)", "max(m) by (job)",
                "count by (job) (m)", "sum by (nothing) (m)", "sum(nothing)", NULL,
        };
        World w;
        LabelPair p[2];

        world_new(&w, exprs, S(15));
#define M(job, inst, v)                                                                                    \
        p[0] = (LabelPair){"inst", inst};                                                                  \
        p[1] = (LabelPair){"job", job};                                                                    \
        assert_int_equal(series_store_append(w.store, "m", p, 2, S(0), v), 0)
        M("a", "1", 1);
        M("a", "2", 3);
        M("b", "1", 10);
        M("b", "2", NAN);
#undef M
        assert_render(&w, 0, S(0), "{}=NaN");
        assert_render(&w, 1, S(0), "{job=a}=4 {job=b}=NaN");
        assert_render(&w, 2, S(0), "{job=a}=2 {job=b}=NaN");
        assert_render(&w, 3, S(0), "{job=a}=1 {job=b}=10"); /* NaN loses to any number */
        assert_render(&w, 4, S(0), "{job=a}=3 {job=b}=10");
        assert_render(&w, 5, S(0), "{job=a}=2 {job=b}=2");
        assert_render(&w, 6, S(0), "{}=NaN");
        assert_render(&w, 7, S(0), "");
        world_done(&w);
}

static void test_histogram_quantile(void **state) {
        static const char *const exprs[] = {
                "histogram_quantile(0.5, h_bucket)",
                "histogram_quantile(0.25, h_bucket)",
                "histogram_quantile(0.9, h_bucket)",
                "histogram_quantile(0.6, h_bucket)",
                "histogram_quantile(0.5, sum by (le) (rate(h_bucket[2m])))",
                "histogram_quantile(1.5, h_bucket)",
                "histogram_quantile(-1, h_bucket)",
                NULL,
        };
        World w;
        LabelPair p[2];

        world_new(&w, exprs, S(60));
        /* two services with the same distribution, and counts doubling over a minute */
#define B(svc, le, t, v)                                                                                   \
        p[0] = (LabelPair){"le", le};                                                                      \
        p[1] = (LabelPair){"svc", svc};                                                                    \
        assert_int_equal(series_store_append(w.store, "h_bucket", p, 2, S(t), v), 0)
        B("a", "0.1", 0, 5);
        B("a", "0.5", 0, 10);
        B("a", "1", 0, 15);
        B("a", "+Inf", 0, 20);
        B("a", "0.1", 60, 10);
        B("a", "0.5", 60, 20);
        B("a", "1", 60, 30);
        B("a", "+Inf", 60, 40);
        B("b", "0.1", 60, 10);
        B("b", "0.5", 60, 20);
        B("b", "1", 60, 30);
        B("b", "+Inf", 60, 40);
#undef B
        /* counts 10/20/30/40: q=0.5 → rank 20 in (0.1, 0.5] at its top → 0.5 */
        assert_render(&w, 0, S(60), "{svc=a}=0.5 {svc=b}=0.5");
        /* rank 10 in the first bucket, from 0 → 0.1 */
        assert_render(&w, 1, S(60), "{svc=a}=0.1 {svc=b}=0.1");
        /* rank 36 falls in +Inf: the second highest bound */
        assert_render(&w, 2, S(60), "{svc=a}=1 {svc=b}=1");
        /* rank 24: 0.5 + 0.5 × 4/10 */
        assert_render(&w, 3, S(60), "{svc=a}=0.7 {svc=b}=0.7");
        /* only svc=a has two samples in (-60s, 60s]: its increase has the same shape */
        assert_render(&w, 4, S(60), "{}=0.5");
        assert_render(&w, 5, S(60), "{svc=a}=+Inf {svc=b}=+Inf");
        assert_render(&w, 6, S(60), "{svc=a}=-Inf {svc=b}=-Inf");
        world_done(&w);
}

static void test_accuracy_baseline_condition(void **state) {
        static const char *const exprs[] = {
                /* 0 */ "acc",
                /* 1 */ "redundancy(tp, tn, fp, fn)",
                /* 2 */ "acc < baseline(acc) - 0.01",
                /* 3 */ "baseline(acc)",
                /* 4 */ "acc > 0.9",
                /* 5 */ "acc > 0.99",
                /* 6 */ "missing > 1",
                /* 7 */ "acc > 0.9 and missing > 1",
                /* 8 */ "acc > 0.99 or acc > 0.9",
                /* 9 */ "up",
                /* 10 */ "baseline(0.5)",
                NULL,
        };
        World w;
        ExprContext c;
        ExprValue v;
        ExprVerdict verdict;
        ExprSnapshot snap = {}, snap2 = {};
        const ExprSnapshot *snaps[2];
        double first;

        world_new(&w, exprs, S(15));
        add(&w, "tp", "m", "x", S(0), 90);
        add(&w, "tn", "m", "x", S(0), 5);
        add(&w, "fp", "m", "x", S(0), 3);
        add(&w, "fn", "m", "x", S(0), 2);
        add(&w, "up", NULL, NULL, S(0), 1);
        add(&w, "up", NULL, NULL, S(15), 0);
        assert_render(&w, 0, S(0), "{m=x}=0.95");
        assert_render(&w, 1, S(0), "{m=x}=0.92");
        /* no snapshot: baseline() is no data, and so is the comparison */
        assert_render(&w, 2, S(0), "");
        assert_render(&w, 3, S(0), "");

        /* snapshot: the value of acc "before the switch" was 0.97 */
        {
                ExprSample s = {.labels = {.pairs = &(LabelPair){"m", "x"}, .n = 1}, .value = 0.97};
                ExprValue bv = {.type = EXPR_VECTOR, .samples = &s, .n = 1};
                assert_int_equal(expr_snapshot_from_value(&bv, &snap), 0);
                ExprValue sv = {.type = EXPR_SCALAR, .scalar = 0.5};
                assert_int_equal(expr_snapshot_from_value(&sv, &snap2), 0);
        }
        /* baseline keys: acc's expansion is index 0, 0.5 is index 1 */
        assert_int_equal(expr_env_n_baselines(w.env), 2);
        snaps[0] = &snap;
        snaps[1] = &snap2;
        expr_context_init(&c, w.store, S(0));
        c.baselines = snaps;
        c.n_baselines = 2;
        assert_int_equal(expr_eval(w.x[2], &c, &v), 0);
        assert_int_equal(v.n, 1);
        assert_near(v.samples[0].value, 0.95); /* 0.95 < 0.96: the filter keeps acc */
        assert_int_equal(expr_eval(w.x[10], &c, &v), 0);
        assert_int_equal(v.n, 1);
        assert_true(v.samples[0].value == 0.5);

        /* conditions */
        assert_int_equal(expr_eval_condition(w.x[2], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_TRUE);
        assert_int_equal(expr_eval_condition(w.x[4], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_TRUE);
        assert_near(first, 0.95);
        assert_int_equal(expr_eval_condition(w.x[5], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_FALSE); /* not "no data": the value exists */
        assert_int_equal(expr_eval_condition(w.x[6], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_NO_DATA);
        assert_true(isnan(first));
        assert_int_equal(expr_eval_condition(w.x[7], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_NO_DATA);
        assert_int_equal(expr_eval_condition(w.x[8], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_TRUE);
        c.now = S(15);
        assert_int_equal(expr_eval_condition(w.x[9], &c, &verdict, &first), 0);
        assert_int_equal(verdict, EXPR_FALSE); /* up == 0 */

        /* samples since: tp has 1 sample in (-1s, 15s], up 2 */
        assert_int_equal(expr_samples_since(w.x[0], &c, 0), 0); /* (0, 15]: the sample at 0 is not after 0 */
        assert_int_equal(expr_samples_since(w.x[9], &c, 0), 1);
        assert_int_equal(expr_samples_since(w.x[10], &c, 0), SIZE_MAX);
        expr_context_done(&c);
        expr_snapshot_done(&snap);
        expr_snapshot_done(&snap2);
        world_done(&w);
}

static void test_memory_limit(void **state) {
        static const char *const exprs[] = {"sum by (i) (x) + on(i) x", NULL};
        World w;
        ExprContext c;
        ExprValue v;
        char val[16];

        world_new(&w, exprs, S(15));
        for (unsigned i = 0; i < 2000; i++) {
                snprintf(val, sizeof(val), "%u", i);
                add(&w, "x", "i", val, S(0), i);
        }
        expr_context_init(&c, w.store, S(0));
        c.arena.limit = 64 * 1024;
        assert_int_equal(expr_eval(w.x[0], &c, &v), -E2BIG);
        assert_string_equal(c.err.message, "evaluation needs more than 65536 bytes of memory");
        expr_context_done(&c);
        expr_context_init(&c, w.store, S(0));
        assert_int_equal(expr_eval(w.x[0], &c, &v), 0);
        assert_int_equal(v.n, 2000);
        expr_context_done(&c);
        world_done(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_literals),
                cmocka_unit_test(test_canonical),
                cmocka_unit_test(test_rate_increase),
                cmocka_unit_test(test_over_time_and_staleness),
                cmocka_unit_test(test_operators),
                cmocka_unit_test(test_matching_errors),
                cmocka_unit_test(test_aggregations),
                cmocka_unit_test(test_histogram_quantile),
                cmocka_unit_test(test_accuracy_baseline_condition),
                cmocka_unit_test(test_memory_limit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
