/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <math.h>

#include "promseries.h"
#include "rules.h"
#include "strv.h"

static void expect_expand(const char *in, const char *out) {
        _cleanup_free_ PromPoint *p = NULL;
        char msg[256], got[1024] = "";
        size_t n, off, len = 0;

        if (promseries_expand(in, 0, &p, &n, &off, msg, sizeof(msg)) < 0)
                fail_msg("'%s': %zu: %s", in, off, msg);
        for (size_t i = 0; i < n; i++) {
                char b[32];
                if (p[i].kind == PROM_POINT_MISSING)
                        snprintf(b, sizeof(b), "_");
                else if (p[i].kind == PROM_POINT_STALE)
                        snprintf(b, sizeof(b), "stale");
                else
                        snprintf(b, sizeof(b), "%g", p[i].value);
                len += (size_t) snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "", b);
        }
        if (!streq(got, out))
                fail_msg("'%s'\nexpected %s\n     got %s", in, out, got);
}

static void expect_expand_error(const char *in, int r_expected, size_t offset, const char *message) {
        PromPoint *p = NULL;
        char msg[256] = "";
        size_t n, off = 999;
        int r = promseries_expand(in, 100, &p, &n, &off, msg, sizeof(msg));

        if (r != r_expected || off != offset || !streq(msg, message))
                fail_msg("'%s'\nexpected %d %zu: %s\n     got %d %zu: %s", in, r_expected, offset, message, r, off, msg);
        assert_null(p);
}

static void test_expand(void **state) {
        /* the examples of promtool's documentation */
        expect_expand("-2+4x3", "-2 2 6 10");
        expect_expand(" 1-2x4", "1 -1 -3 -5 -7");
        expect_expand(" 1x4", "1 1 1 1 1");
        expect_expand(" 1 _x3 stale", "1 _ _ _ stale");
        expect_expand("0+10x3", "0 10 20 30");
        expect_expand("_", "_");
        expect_expand("1.5e3+5e2x2 7", "1500 2000 2500 7");
        expect_expand("1e-1-1e-1x1", "0.1 0");
        expect_expand("Inf -Inf NaN", "inf -inf nan");
        expect_expand("", "");
        expect_expand("3x0", "3");

        expect_expand_error("1+2", -EINVAL, 1, "expected 'x<count>' after '1+2'");
        expect_expand_error("1 abc", -EINVAL, 2, "invalid number 'abc'");
        expect_expand_error("1x", -EINVAL, 0, "invalid number '1x'");
        expect_expand_error("stalex2", -EINVAL, 0, "'stale' cannot be repeated");
        expect_expand_error("1+x3", -EINVAL, 2, "invalid increment");
        expect_expand_error("1++2x3", -EINVAL, 2, "invalid increment");
        expect_expand_error("0+1x100", -E2BIG, 0, "more than 100 points");
        expect_expand_error("_x101", -E2BIG, 0, "more than 100 points");
        expect_expand_error("1x99999999999999999999999", -EINVAL, 2, "invalid repetition count");
}

static void test_parse_series(void **state) {
        _cleanup_free_ char *metric = NULL;
        _cleanup_free_ LabelPair *p = NULL;
        char msg[256];
        size_t n;

        assert_int_equal(promseries_parse_series("x{a=\"b\", c=\"d\\\"\"}", &metric, &p, &n, msg, sizeof(msg)), 0);
        assert_string_equal(metric, "x");
        assert_int_equal(n, 2);
        assert_string_equal(p[1].name, "c");
        assert_string_equal(p[1].value, "d\"");
        free(metric);
        free(p);
        assert_int_equal(promseries_parse_series("{\"my.metric\"}", &metric, &p, &n, msg, sizeof(msg)), 0);
        assert_string_equal(metric, "my.metric");
        assert_int_equal(n, 0);
        free(metric);
        free(p);
        metric = NULL;
        p = NULL;
        assert_int_equal(promseries_parse_series("x{a=b}", &metric, &p, &n, msg, sizeof(msg)), -EINVAL);
        assert_string_equal(msg, "expected '\"' to start the value of label 'a'");
        assert_int_equal(promseries_parse_series("x 1", &metric, &p, &n, msg, sizeof(msg)), -EINVAL);
        assert_string_equal(msg, "expected a series like name{label=\"value\"}");
}

static ModelConfig *load_model(const char *text) {
        ConfigErrors e = {};
        ModelConfig *m = NULL;

        policies_install_config_validator();
        assert_int_equal(model_config_load("/etc/mk/models.d/m.yaml", text, strlen(text), NULL, &m, &e), 0);
        config_errors_done(&e);
        return m;
}

static const char model[] = "model: m\n"
                            "metrics:\n"
                            "  define:\n"
                            "    err: rate(errors_total[2m])\n"
                            "rollout:\n"
                            "  interval: 1m\n"
                            "  iterations: 2\n"
                            "  threshold: 1\n"
                            "  checks:\n"
                            "    - {name: errors, expr: err, max: baseline(err) * 2}\n"
                            "rules:\n"
                            "  - {name: too-many-errors, when: err > 1, for: 2m, action: rollback, cooldown: 5m}\n"
                            "  - {name: down, when: up == 0, action: log}\n";

static void expect_timeline(const char *model_text, const char *series, const char *const *expected) {
        _cleanup_(model_config_freep) ModelConfig *m = load_model(model_text);
        _cleanup_(strv_freep) char **lines = NULL;
        ConfigErrors e = {};
        int r;

        r = policy_test_run(m, "series.yaml", series, strlen(series), &lines, &e);
        for (size_t i = 0; i < e.n; i++)
                print_message("%s\n", e.lines[i]);
        assert_int_equal(r, 0);
        for (size_t i = 0; lines[i] || expected[i]; i++)
                if (!streq_ptr(lines[i], expected[i])) {
                        for (size_t k = 0; lines[k]; k++)
                                print_message("  %s\n", lines[k]);
                        fail_msg("line %zu: expected '%s', got '%s'", i, strna(expected[i]), strna(lines[i]));
                }
        config_errors_done(&e);
}

static void test_timeline(void **state) {
        /* errors_total rises 30/min (0.5/s) until 4m, then 120/min (2/s): the rule fires after
         * 2m of rate > 1; the version activated at 4m sees its rate double the baseline. */
        static const char series[] = "interval: 1m\n"
                                     "duration: 9m\n"
                                     "activations:\n"
                                     "  - {at: 4m, version: \"43\"}\n"
                                     "hold:\n"
                                     "  - {from: 8m, until: 9m}\n"
                                     "input_series:\n"
                                     "  - series: errors_total\n"
                                     "    values: '0+30x4 240+120x5'\n"
                                     "  - series: up\n"
                                     "    values: '1x6 0 0 1'\n";
        static const char *const expected[] = {
                "4m activate 43: baseline rate(errors_total[2m]) = 0.5",
                "4m activate 43: probation, 2 rounds every 1m, threshold 1, on_no_data inconclusive",
                "5m rule too-many-errors: inactive -> pending (value 2)",
                "5m rollout 43 round 1: fail (passed 0/2, failed 1/1, inconclusive 0)",
                "5m   check errors: fail, value 2, max 1; 2 above max 1",
                "5m rollout 43: rollback (1 failed round (threshold 1))",
                "7m rule too-many-errors: pending -> firing (value 2)",
                "7m rule too-many-errors: action rollback",
                "7m rule down: inactive -> firing (value 0)",
                "7m rule down: action log",
                "9m rule down: firing -> inactive (no data)",
                NULL,
        };

        expect_timeline(model, series, expected);
}

static void test_timeline_promote_and_hold(void **state) {
        static const char series[] = "interval: 30s\n"
                                     "evaluation_interval: 1m\n"
                                     "activations:\n"
                                     "  - {at: 2m, version: \"44\"}\n"
                                     "hold:\n"
                                     "  - {from: 0s, until: 3m}\n"
                                     "input_series:\n"
                                     "  - series: errors_total{code=\"500\"}\n"
                                     "    values: '0+30x10'\n"
                                     "  - series: up\n"
                                     "    values: '1 _ stale _x2 1x5'\n";
        static const char *const expected[] = {
                "1m rule down: inactive -> firing (value 0)",
                "1m rule down: model held, not acting (log)",
                "2m activate 44: baseline rate(errors_total[2m]) = 1",
                "2m activate 44: probation, 2 rounds every 1m, threshold 1, on_no_data inconclusive",
                "2m rule down: firing -> inactive (no data)",
                "3m rollout 44 round 1: pass (passed 1/2, failed 0/1, inconclusive 0)",
                "3m   check errors: pass, value 1, max 2",
                "4m rollout 44 round 2: pass (passed 2/2, failed 0/1, inconclusive 0)",
                "4m   check errors: pass, value 1, max 2",
                "4m rollout 44: promote (2 good rounds)",
                NULL,
        };
        (void) series;
        (void) expected;
        {
                /* up is stale from 1m on ("1 _ stale"): "up == 0" is no data, not firing; give it 0 */
                static const char s2[] = "interval: 30s\n"
                                         "evaluation_interval: 1m\n"
                                         "activations:\n"
                                         "  - {at: 2m, version: \"44\"}\n"
                                         "hold:\n"
                                         "  - {from: 0s, until: 3m}\n"
                                         "input_series:\n"
                                         "  - series: errors_total{code=\"500\"}\n"
                                         "    values: '0+30x10'\n"
                                         "  - series: up\n"
                                         "    values: '1 _ 0 stale _ 1x5'\n";
                expect_timeline(model, s2, expected);
        }
}

static void test_series_file_errors(void **state) {
        _cleanup_(model_config_freep) ModelConfig *m = load_model(model);
        static const struct {
                const char *text, *error;
        } cases[] = {
                {"input_series:\n  - series: x\n    values: '1 2 abc'\n",
                 "series.yaml:3:18: invalid values: invalid number 'abc'"},
                {"input_series:\n  - series: 'x{a=b}'\n    values: '1'\n",
                 "series.yaml:2:14: invalid series: expected '\"' to start the value of label 'a'"},
                {"interval: 5\ninput_series: []\n", "series.yaml:1:11: expected a duration like 1m"},
                {"intervals: 5m\ninput_series: []\n", "series.yaml:1:1: unknown key 'intervals' in a series file"},
                {"interval: 1m\n", "series.yaml:1:1: expected a list 'input_series' of {series, values}"},
                {"activations:\n  - {at: 2m}\ninput_series: []\n",
                 "series.yaml:2:5: an activation needs 'at' (a duration) and 'version'"},
                {"input_series: [\n", "series.yaml:2:1: did not find expected node content while parsing a flow node"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ConfigErrors e = {};
                char **lines = NULL;

                assert_true(policy_test_run(m, "series.yaml", cases[i].text, strlen(cases[i].text), &lines, &e) < 0);
                assert_null(lines);
                assert_true(e.n >= 1);
                if (!streq(e.lines[0], cases[i].error))
                        fail_msg("case %zu: expected\n  %s\ngot\n  %s", i, cases[i].error, e.lines[0]);
                config_errors_done(&e);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_expand),
                cmocka_unit_test(test_parse_series),
                cmocka_unit_test(test_timeline),
                cmocka_unit_test(test_timeline_promote_and_hold),
                cmocka_unit_test(test_series_file_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
