/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <math.h>

#include "config.h"
#include "rules.h"

#define S(x) ((uint64_t) (x) * USEC_PER_SEC)
#define M(x) ((uint64_t) (x) * 60 * USEC_PER_SEC)

static ModelConfig *load_model(const char *text) {
        ConfigErrors e = {};
        ModelConfig *m = NULL;
        int r;

        policies_install_config_validator();
        r = model_config_load("/etc/modelkeeper/models.d/m.yaml", text, strlen(text), NULL, &m, &e);
        for (size_t i = 0; i < e.n; i++)
                print_message("%s\n", e.lines[i]);
        assert_int_equal(r, 0);
        config_errors_done(&e);
        return m;
}

static void expect_model_error(const char *text, const char *error) {
        ConfigErrors e = {};
        ModelConfig *m = NULL;
        int r;

        policies_install_config_validator();
        r = model_config_load("/etc/modelkeeper/models.d/m.yaml", text, strlen(text), NULL, &m, &e);
        assert_true(r < 0);
        assert_null(m);
        assert_true(e.n >= 1);
        if (!streq(e.lines[0], error))
                fail_msg("expected\n  %s\ngot\n  %s", error, e.lines[0]);
        config_errors_done(&e);
}

typedef struct Sim {
        ModelConfig *m;
        Policy *p;
        SeriesStore *s;
} Sim;

static void sim_new(Sim *x, const char *yaml) {
        PolicyError pe = {};
        char msg[256];

        x->m = load_model(yaml);
        if (policy_new(x->m, &x->p, &pe) < 0)
                fail_msg("%s: %s", pe.what, pe.message);
        assert_int_equal(policy_new_store_with_interval(x->p, S(15), &x->s, msg, sizeof(msg)), 0);
}

static void sim_done(Sim *x) {
        series_store_free(x->s);
        policy_free(x->p);
        model_config_free(x->m);
}

static void put(Sim *x, const char *metric, uint64_t t, double v) {
        assert_int_equal(series_store_append(x->s, metric, NULL, 0, t, v), 0);
}

static const RuleEvent *eval_rule(Sim *x, uint64_t t, bool may_act) {
        const RuleEvent *ev;
        size_t n;

        assert_int_equal(policy_eval_rules(x->p, x->s, t, may_act, &ev, &n), 0);
        assert_int_equal(n, policy_n_rules(x->p));
        return &ev[0];
}

#define EXPECT(ev, f, t, d)                                                                                \
        do {                                                                                               \
                const RuleEvent *_e = (ev);                                                                \
                if (_e->from != (f) || _e->to != (t) || _e->decision != (d))                               \
                        fail_msg("got %s -> %s (%s), expected %s -> %s (%s)", rule_state_to_string(_e->from), \
                                 rule_state_to_string(_e->to), rule_decision_to_string(_e->decision),      \
                                 rule_state_to_string(f), rule_state_to_string(t), rule_decision_to_string(d)); \
        } while (0)

static const char rule_model[] = "model: m\n"
                                 "rules:\n"
                                 "  - {name: hot, when: temp > 80, for: 2m, keep_firing_for: 1m, cooldown: 10m,"
                                 " action: rollback}\n";

static void test_rule_for_and_keep_firing(void **state) {
        Sim x;
        const RuleEvent *e;

        sim_new(&x, rule_model);
        put(&x, "temp", M(0), 70);
        EXPECT(eval_rule(&x, M(0), true), RULE_INACTIVE, RULE_INACTIVE, RULE_DECISION_NONE);
        put(&x, "temp", M(1), 90);
        e = eval_rule(&x, M(1), true);
        EXPECT(e, RULE_INACTIVE, RULE_PENDING, RULE_DECISION_NONE);
        assert_true(e->value == 90);
        assert_true(e->active_since == M(1));
        assert_string_equal(e->expr, "temp > 80");
        assert_int_equal(e->action->type, ACTION_ROLLBACK);
        put(&x, "temp", M(2), 91);
        EXPECT(eval_rule(&x, M(2), true), RULE_PENDING, RULE_PENDING, RULE_DECISION_NONE);
        put(&x, "temp", M(3), 92);
        /* for: 2m after 1m */
        EXPECT(eval_rule(&x, M(3), true), RULE_PENDING, RULE_FIRING, RULE_DECISION_ACT);
        put(&x, "temp", M(4), 93);
        EXPECT(eval_rule(&x, M(4), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_NONE); /* once per episode */
        /* condition gone: keep firing for 1m */
        put(&x, "temp", M(5), 50);
        e = eval_rule(&x, M(5), true);
        EXPECT(e, RULE_FIRING, RULE_FIRING, RULE_DECISION_NONE);
        assert_true(isnan(e->value));
        assert_int_equal(e->n_values, 0);
        put(&x, "temp", M(5) + S(30), 50);
        EXPECT(eval_rule(&x, M(5) + S(30), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_NONE);
        put(&x, "temp", M(6), 50);
        EXPECT(eval_rule(&x, M(6), true), RULE_FIRING, RULE_INACTIVE, RULE_DECISION_NONE);

        /* a pending rule whose condition goes away returns to inactive without firing */
        put(&x, "temp", M(7), 95);
        EXPECT(eval_rule(&x, M(7), true), RULE_INACTIVE, RULE_PENDING, RULE_DECISION_NONE);
        put(&x, "temp", M(8), 60);
        EXPECT(eval_rule(&x, M(8), true), RULE_PENDING, RULE_INACTIVE, RULE_DECISION_NONE);

        /* a keep_firing_for interrupted by the condition coming back restarts */
        put(&x, "temp", M(9), 95);
        eval_rule(&x, M(9), true);
        put(&x, "temp", M(11), 95);
        /* fires again at 11m but acted at 3m: cooldown (10m) until 13m, reported once */
        EXPECT(eval_rule(&x, M(11), true), RULE_PENDING, RULE_FIRING, RULE_DECISION_COOLDOWN);
        put(&x, "temp", M(12), 95);
        EXPECT(eval_rule(&x, M(12), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_NONE);
        put(&x, "temp", M(13), 95);
        EXPECT(eval_rule(&x, M(13), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_ACT);
        sim_done(&x);
}

static void test_rule_for_zero_held_error(void **state) {
        Sim x;
        const RuleEvent *e;

        sim_new(&x, "model: m\n"
                    "rules:\n"
                    "  - {name: down, when: up == 0, action: {recompress: int8}, cooldown: 0s}\n"
                    "  - {name: ratio, when: a / on() b > 1, action: log}\n"
                    "recompress: {profiles: {int8: {method: int8}}}\n");
        put(&x, "up", M(0), 0);
        /* for: 0 fires in the same evaluation, as Prometheus does; the model is held */
        e = eval_rule(&x, M(0), false);
        EXPECT(e, RULE_INACTIVE, RULE_FIRING, RULE_DECISION_HELD);
        assert_string_equal(e->action->profile, "int8");
        put(&x, "up", M(1), 0);
        EXPECT(eval_rule(&x, M(1), false), RULE_FIRING, RULE_FIRING, RULE_DECISION_NONE); /* reported once */
        /* released while still firing: act now */
        put(&x, "up", M(2), 0);
        EXPECT(eval_rule(&x, M(2), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_ACT);
        put(&x, "up", M(3), 1);
        EXPECT(eval_rule(&x, M(3), true), RULE_FIRING, RULE_INACTIVE, RULE_DECISION_NONE);
        put(&x, "up", M(4), 0);
        /* cooldown 0: a new episode acts at once */
        EXPECT(eval_rule(&x, M(4), true), RULE_INACTIVE, RULE_FIRING, RULE_DECISION_ACT);

        /* an evaluation error leaves the state as it was and says why */
        {
                LabelPair p[2] = {{"k", "1"}, {"k", "2"}};
                const RuleEvent *ev;
                size_t n;

                assert_int_equal(series_store_append(x.s, "a", &p[0], 1, M(4), 5), 0);
                assert_int_equal(series_store_append(x.s, "a", &p[1], 1, M(4), 5), 0);
                put(&x, "b", M(4), 1);
                assert_int_equal(policy_eval_rules(x.p, x.s, M(4), true, &ev, &n), 0);
                assert_int_equal(n, 2);
                assert_int_equal(ev[1].decision, RULE_DECISION_ERROR);
                assert_int_equal(ev[1].to, RULE_INACTIVE);
                assert_true(startswith(ev[1].message, "multiple matches for labels"));
        }
        policy_reset_rules(x.p);
        assert_int_equal(policy_rule_state(x.p, 0), RULE_INACTIVE);
        sim_done(&x);
}

static const char rollout_model[] = "model: m\n"
                                    "metrics:\n"
                                    "  define:\n"
                                    "    acc: accuracy(tp, tn, fp, fn)\n"
                                    "rollout:\n"
                                    "  interval: 1m\n"
                                    "  iterations: 3\n"
                                    "  threshold: 2\n"
                                    "  on_no_data: %s\n"
                                    "  min_samples: %u\n"
                                    "  checks:\n"
                                    "    - {name: accuracy, expr: acc, min: baseline(acc) - 0.01}\n"
                                    "    - {name: errors, expr: \"rate(errors_total[2m])\", max: 0.5}\n"
                                    "    - {name: alive, expr: up == 1}\n";

static void sim_rollout(Sim *x, const char *no_data, unsigned min_samples) {
        _cleanup_free_ char *y = NULL;
        assert_true(asprintf(&y, rollout_model, no_data, min_samples) > 0);
        sim_new(x, y);
}

/* One minute of healthy (or not) traffic at t: counters grow, accuracy as given. */
static void traffic(Sim *x, uint64_t t, double acc, double errors_per_s) {
        double total = (double) (t / USEC_PER_SEC) + 100;

        put(x, "tp", t, total * acc);
        put(x, "tn", t, 0);
        put(x, "fp", t, total * (1 - acc));
        put(x, "fn", t, 0);
        put(x, "errors_total", t, errors_per_s * (double) (t / USEC_PER_SEC));
        put(x, "up", t, 1);
}

static RolloutRound round_at(Sim *x, uint64_t t) {
        RolloutRound r;
        assert_int_equal(policy_rollout_eval(x->p, x->s, t, &r), 0);
        return r;
}

static void test_rollout_promote(void **state) {
        Sim x;
        RolloutRound r;

        sim_rollout(&x, "inconclusive", 1);
        assert_true(policy_has_rollout(x.p));
        for (unsigned i = 0; i <= 5; i++)
                traffic(&x, M(i), 0.96, 0.1);
        /* the previous version: acc 0.96 */
        assert_int_equal(policy_snapshot_baselines(x.p, x.s, M(5)), 1);
        assert_true(policy_baseline(x.p, 0)->present);
        assert_true(fabs(policy_baseline(x.p, 0)->samples[0].value - 0.96) < 1e-12);
        assert_int_equal(policy_rollout_start(x.p, "43", M(5)), 1);
        assert_int_equal(policy_rollout_phase(x.p), ROLLOUT_PROBATION);
        assert_true(policy_rollout_next(x.p) == M(6));

        r = round_at(&x, M(5) + S(30));
        assert_false(r.evaluated); /* not due */
        for (unsigned i = 6; i <= 8; i++) {
                traffic(&x, M(i), 0.955, 0.1);
                r = round_at(&x, M(i));
                assert_true(r.evaluated);
                assert_int_equal(r.round, i - 5);
                assert_int_equal(r.verdict, ROUND_PASS);
                assert_int_equal(r.n_checks, 3);
                assert_int_equal(r.checks[0].outcome, CHECK_PASS);
                assert_true(fabs(r.checks[0].min - 0.95) < 1e-12);
                assert_true(fabs(r.checks[1].value - 0.1) < 1e-9);
                assert_int_equal(r.checks[2].outcome, CHECK_PASS);
        }
        assert_int_equal(r.decision, ROLLOUT_PROMOTE);
        assert_string_equal(r.reason, "3 good rounds");
        assert_int_equal(policy_rollout_phase(x.p), ROLLOUT_PROMOTED);
        assert_true(policy_rollout_next(x.p) == USEC_INFINITY);
        sim_done(&x);
}

static void test_rollout_rollback(void **state) {
        Sim x;
        RolloutRound r;

        sim_rollout(&x, "inconclusive", 1);
        for (unsigned i = 0; i <= 5; i++)
                traffic(&x, M(i), 0.96, 0.1);
        policy_snapshot_baselines(x.p, x.s, M(5));
        policy_rollout_start(x.p, "43", M(5));

        traffic(&x, M(6), 0.90, 0.1); /* accuracy below 0.95 */
        r = round_at(&x, M(6));
        assert_int_equal(r.verdict, ROUND_FAIL);
        assert_int_equal(r.checks[0].outcome, CHECK_FAIL);
        assert_string_equal(r.checks[0].reason, "0.9 below min 0.95");
        assert_int_equal(r.decision, ROLLOUT_CONTINUE); /* threshold 2 */
        traffic(&x, M(7), 0.97, 0.1);
        r = round_at(&x, M(7));
        assert_int_equal(r.verdict, ROUND_PASS);
        traffic(&x, M(8), 0.97, 2.0); /* errors above max; failures are cumulative */
        r = round_at(&x, M(8));
        assert_int_equal(r.verdict, ROUND_FAIL);
        assert_int_equal(r.checks[1].outcome, CHECK_FAIL);
        assert_int_equal(r.failed, 2);
        assert_int_equal(r.decision, ROLLOUT_ROLLBACK);
        assert_string_equal(r.reason, "2 failed rounds (threshold 2)");
        assert_int_equal(policy_rollout_phase(x.p), ROLLOUT_FAILED);
        r = round_at(&x, M(9));
        assert_false(r.evaluated);
        sim_done(&x);
}

static void test_rollout_no_data(void **state) {
        Sim x;
        RolloutRound r;

        /* inconclusive: no data at all, bounded by `iterations` inconclusive rounds */
        sim_rollout(&x, "inconclusive", 1);
        policy_rollout_start(x.p, "43", M(0));
        for (unsigned i = 1; i <= 3; i++) {
                r = round_at(&x, M(i));
                assert_int_equal(r.verdict, ROUND_INCONCLUSIVE);
                assert_int_equal(r.checks[0].outcome, CHECK_NO_DATA);
                assert_int_equal(r.decision, ROLLOUT_CONTINUE);
        }
        r = round_at(&x, M(4));
        assert_int_equal(r.verdict, ROUND_FAIL);
        assert_string_equal(r.reason, "more than 3 inconclusive rounds count as failed");
        assert_int_equal(r.failed, 1);
        r = round_at(&x, M(5));
        assert_int_equal(r.decision, ROLLOUT_ROLLBACK);
        sim_done(&x);

        /* fail: no data fails at once (threshold 2 → two rounds) */
        sim_rollout(&x, "fail", 1);
        policy_rollout_start(x.p, "43", M(0));
        r = round_at(&x, M(1));
        assert_int_equal(r.verdict, ROUND_FAIL);
        r = round_at(&x, M(2));
        assert_int_equal(r.decision, ROLLOUT_ROLLBACK);
        sim_done(&x);

        /* pass: without a baseline the accuracy check passes, the others are judged */
        sim_rollout(&x, "pass", 1);
        policy_rollout_start(x.p, "43", M(0));
        for (unsigned i = 1; i <= 3; i++) {
                traffic(&x, M(i), 0.5, 0.1);
                r = round_at(&x, M(i));
                assert_int_equal(r.checks[0].outcome, CHECK_NO_DATA);
                assert_string_equal(r.checks[0].reason, "min (baseline(acc) - 0.01) has no data");
                assert_int_equal(r.verdict, ROUND_PASS);
        }
        assert_int_equal(r.decision, ROLLOUT_PROMOTE);
        sim_done(&x);

        /* min_samples: 3 samples since the activation before a check counts */
        sim_rollout(&x, "inconclusive", 3);
        traffic(&x, M(0), 0.96, 0.1);
        policy_snapshot_baselines(x.p, x.s, M(0));
        policy_rollout_start(x.p, "43", M(0));
        traffic(&x, M(1), 0.96, 0.1);
        r = round_at(&x, M(1));
        assert_int_equal(r.verdict, ROUND_INCONCLUSIVE);
        assert_string_equal(r.checks[0].reason, "1 of 3 samples since the activation");
        traffic(&x, M(1) + S(30), 0.96, 0.1);
        traffic(&x, M(2), 0.96, 0.1);
        r = round_at(&x, M(2));
        assert_int_equal(r.verdict, ROUND_PASS);
        sim_done(&x);

        /* More samples than the 5m lookback holds at this interval (22): the rings are sized for
         * min_samples too, or the count would stop short of it and every round be inconclusive. */
        sim_rollout(&x, "inconclusive", 30);
        traffic(&x, M(0), 0.96, 0.1);
        policy_snapshot_baselines(x.p, x.s, M(0));
        policy_rollout_start(x.p, "43", M(0));
        for (unsigned i = 1; i <= 29; i++)
                traffic(&x, S(15 * i), 0.96, 0.1);
        r = round_at(&x, M(8));
        assert_int_equal(r.verdict, ROUND_INCONCLUSIVE);
        assert_string_equal(r.checks[0].reason, "29 of 30 samples since the activation");
        traffic(&x, S(15 * 30), 0.96, 0.1);
        traffic(&x, M(9), 0.96, 0.1);
        r = round_at(&x, M(9));
        assert_int_equal(r.verdict, ROUND_PASS);
        sim_done(&x);
}

static void test_restart_during_probation(void **state) {
        Sim x, y;
        RolloutRound r;
        json_t *j;
        char *dump;

        sim_rollout(&x, "inconclusive", 1);
        sim_new(&y, "model: m\nrules:\n  - {name: r, when: up == 0, action: rollback}\n");
        json_decref(policy_state_to_json(y.p));
        sim_done(&y);

        for (unsigned i = 0; i <= 5; i++)
                traffic(&x, M(i), 0.96, 0.1);
        policy_snapshot_baselines(x.p, x.s, M(5));
        policy_rollout_start(x.p, "43", M(5));
        traffic(&x, M(6), 0.955, 0.1);
        r = round_at(&x, M(6));
        assert_int_equal(r.verdict, ROUND_PASS);
        traffic(&x, M(7), 0.90, 0.1);
        r = round_at(&x, M(7));
        assert_int_equal(r.verdict, ROUND_FAIL);

        j = policy_state_to_json(x.p);
        assert_non_null(j);
        dump = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(dump,
                            "{\"baselines\":[{\"expr\":\"((tp + tn) / (((tp + tn) + fp) + fn))\",\"present\":true,"
                            "\"samples\":[{\"labels\":{},\"value\":0.95999999999999996}]}],\"rollout\":{\"failed\":1,"
                            "\"inconclusive\":0,\"passed\":1,\"phase\":\"probation\",\"round\":2,\"started\":300000000,"
                            "\"version\":\"43\"},\"rules\":[]}");
        free(dump);
        sim_done(&x);

        /* "restart": a new policy, an empty store, the saved state */
        sim_rollout(&x, "inconclusive", 1);
        assert_int_equal(policy_state_from_json(x.p, j, M(20)), 0);
        json_decref(j);
        assert_int_equal(policy_rollout_phase(x.p), ROLLOUT_PROBATION);
        assert_string_equal(policy_rollout_version(x.p), "43");
        assert_true(policy_rollout_next(x.p) == M(21));
        assert_true(policy_baseline(x.p, 0)->present);
        for (unsigned i = 20; i <= 22; i++)
                traffic(&x, M(i), 0.955, 0.1);
        r = round_at(&x, M(21));
        assert_int_equal(r.round, 3);
        assert_int_equal(r.verdict, ROUND_PASS);
        assert_int_equal(r.passed, 2);
        r = round_at(&x, M(22));
        assert_int_equal(r.passed, 3);
        assert_int_equal(r.decision, ROLLOUT_PROMOTE);
        sim_done(&x);

        /* garbage is refused, and non-finite values round-trip */
        {
                json_t *bad = json_loads("{\"rollout\":{\"version\":\"1\",\"phase\":\"nope\"}}", 0, NULL);
                sim_rollout(&x, "inconclusive", 1);
                assert_int_equal(policy_state_from_json(x.p, bad, 0), -EINVAL);
                json_decref(bad);
                bad = json_loads("{\"baselines\":[{\"expr\":\"((tp + tn) / (((tp + tn) + fp) + fn))\",\"present\":true,"
                                 "\"samples\":[{\"labels\":{\"b\":\"2\",\"a\":\"1\"},\"value\":\"+Inf\"}]}]}",
                                 0, NULL);
                assert_int_equal(policy_state_from_json(x.p, bad, 0), 0);
                assert_true(isinf(policy_baseline(x.p, 0)->samples[0].value));
                assert_string_equal(policy_baseline(x.p, 0)->samples[0].labels.pairs[0].name, "a");
                json_decref(bad);
                sim_done(&x);
        }
}

static void test_cooldown_survives_restart(void **state) {
        Sim x;
        json_t *j;

        sim_new(&x, rule_model);
        put(&x, "temp", M(0), 90);
        eval_rule(&x, M(0), true);
        put(&x, "temp", M(2), 90);
        EXPECT(eval_rule(&x, M(2), true), RULE_PENDING, RULE_FIRING, RULE_DECISION_ACT);
        j = policy_state_to_json(x.p);
        sim_done(&x);

        sim_new(&x, rule_model);
        assert_int_equal(policy_state_from_json(x.p, j, M(3)), 0);
        json_decref(j);
        put(&x, "temp", M(3), 90);
        eval_rule(&x, M(3), true);
        put(&x, "temp", M(5), 90);
        EXPECT(eval_rule(&x, M(5), true), RULE_PENDING, RULE_FIRING, RULE_DECISION_COOLDOWN);
        put(&x, "temp", M(12), 90);
        EXPECT(eval_rule(&x, M(12), true), RULE_FIRING, RULE_FIRING, RULE_DECISION_ACT);
        sim_done(&x);
}

static void test_no_rollout(void **state) {
        Sim x;

        sim_new(&x, "model: m\n");
        assert_false(policy_has_rollout(x.p));
        assert_int_equal(policy_rollout_start(x.p, "7", 0), 0);
        assert_int_equal(policy_rollout_phase(x.p), ROLLOUT_PROMOTED);
        sim_done(&x);
}

static void test_validator_errors(void **state) {
        expect_model_error("model: m\nrules:\n  - {name: r, when: rate(x) > 1, action: log}\n",
                           "/etc/modelkeeper/models.d/m.yaml:3:26: in when: rate() needs a range, e.g. rate(x[5m]); "
                           "got an instant vector");
        expect_model_error("model: m\nrules:\n  - {name: r, when: \"x >\", action: log}\n",
                           "/etc/modelkeeper/models.d/m.yaml:3:25: in when: unexpected end of input, expected a number, "
                           "a metric, a function or '('");
        expect_model_error("model: m\nrules:\n  - {name: r, when: 1 > bool 0, action: log}\n",
                           "/etc/modelkeeper/models.d/m.yaml:3:21: in when: a rule condition must be an instant vector, "
                           "e.g. x > 0 (a comparison of two numbers needs at least one series)");
        expect_model_error("model: m\nmetrics:\n  define:\n    a: b + 1\n    b: a * 2\n",
                           "/etc/modelkeeper/models.d/m.yaml:4:8: in define: definition cycle: a → b → a");
        expect_model_error("model: m\nmetrics:\n  define:\n    a: sum(\n",
                           "/etc/modelkeeper/models.d/m.yaml:4:12: in define: unexpected end of input, expected a "
                           "number, a metric, a function or '('");
        expect_model_error("model: m\nrollout:\n  checks:\n    - {expr: x, min: \"baseline(x[5m])\"}\n",
                           "/etc/modelkeeper/models.d/m.yaml:4:32: in min: baseline() needs an instant value, e.g. "
                           "baseline(rate(x[5m]))");
        expect_model_error("model: m\nrollout:\n  checks:\n    - {expr: x, max: \"x[5m]\"}\n",
                           "/etc/modelkeeper/models.d/m.yaml:4:23: in max: a range like x[5m] has no value on its own: "
                           "wrap it in a function, e.g. rate(x[5m]) or avg_over_time(x[5m])");
        expect_model_error("model: m\nrollout:\n  checks:\n    - {expr: \"x{a=~\\\"(\\\"}\"}\n",
                           "/etc/modelkeeper/models.d/m.yaml:4:17: in condition: invalid regular expression \"(\": "
                           "Unmatched ( or \\(");
}

static void test_examples(void **state) {
        static const char *const files[] = {"triton-resnet50.yaml", "vllm-llama.yaml", "digits-mlp.yaml"};
        const char *top = getenv("TOP_SRCDIR");

        assert_non_null(top);
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                ConfigErrors e = {};
                ModelConfig *m = NULL;
                Policy *p = NULL;
                SeriesStore *s = NULL;
                PolicyError pe = {};
                SeriesStoreStats st;
                char msg[256];
                size_t size;
                int r;

                assert_true(asprintf(&path, "%s/policies/examples/%s", top, files[i]) > 0);
                assert_int_equal(config_read_file(path, &text, &size), 0);
                policies_install_config_validator();
                r = model_config_load(path, text, size, NULL, &m, &e);
                for (size_t k = 0; k < e.n; k++)
                        print_message("%s\n", e.lines[k]);
                assert_int_equal(r, 0);
                config_errors_done(&e);
                if (policy_new(m, &p, &pe) < 0)
                        fail_msg("%s: %s: %s", files[i], pe.what, pe.message);
                assert_int_equal(policy_new_store(p, &s, msg, sizeof(msg)), 0);
                series_store_stats(s, &st);
                assert_true(st.memory_bound > 0 && st.memory_bound < 128 * MIB);
                series_store_free(s);
                policy_free(p);
                model_config_free(m);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rule_for_and_keep_firing),
                cmocka_unit_test(test_rule_for_zero_held_error),
                cmocka_unit_test(test_rollout_promote),
                cmocka_unit_test(test_rollout_rollback),
                cmocka_unit_test(test_rollout_no_data),
                cmocka_unit_test(test_restart_during_probation),
                cmocka_unit_test(test_cooldown_survives_restart),
                cmocka_unit_test(test_no_rollout),
                cmocka_unit_test(test_validator_errors),
                cmocka_unit_test(test_examples),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
