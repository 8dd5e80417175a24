/* SPDX-License-Identifier: Apache-2.0 */

/* The expression compiler and evaluator on arbitrary text, with definitions to refer to and a
 * small store with counters, histograms and staleness to evaluate against. */

#include <math.h>

#include "expr.h"
#include "series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        _cleanup_(series_store_freep) SeriesStore *s = NULL;
        _cleanup_free_ char *text = NULL;
        Selector *const *sel;
        const Expr *x;
        ExprError err;
        ExprContext c;
        ExprValue v;
        ExprVerdict verdict;
        char msg[256];
        size_t n;
        Arena a = {};

        if (size > EXPR_TEXT_MAX + 16)
                return 0;
        text = memdup_or_null(data, size);
        if (!text || expr_env_new(&e) < 0)
                return 0;
        expr_env_define(e, "acc", "accuracy(tp, tn, fp, fn)");
        expr_env_define(e, "err", "rate(errors_total[5m])");
        expr_env_define(e, "loop", "loop + 1");
        expr_env_define(e, "alias", "h_bucket");
        if (expr_compile(e, text, &x, &err) < 0)
                return 0;
        (void) expr_to_string(x, &a);
        arena_done(&a);

        sel = expr_env_selectors(e, &n);
        if (series_store_new(sel, n, &(SeriesStoreOptions){.min_interval = 15 * USEC_PER_SEC}, &s, msg, sizeof(msg)) < 0)
                return 0;
        for (unsigned i = 0; i < 8; i++) {
                static const char *const les[] = {"0.1", "1", "+Inf"};
                uint64_t t = i * 15 * USEC_PER_SEC;
                LabelPair p = {"code", i % 2 ? "500" : "200"};

                series_store_append(s, "errors_total", &p, 1, t, i == 5 ? 1 : i * 10.0);
                series_store_append(s, "tp", NULL, 0, t, 90 + i);
                series_store_append(s, "tn", NULL, 0, t, 5);
                series_store_append(s, "fp", NULL, 0, t, i == 3 ? NAN : 3);
                series_store_append(s, "fn", NULL, 0, t, 0);
                series_store_append(s, "up", NULL, 0, t, i == 6 ? series_stale_value() : 1);
                for (unsigned k = 0; k < 3; k++) {
                        LabelPair le = {"le", les[k]};
                        series_store_append(s, "h_bucket", &le, 1, t, (double) (k + 1) * i);
                }
        }
        expr_context_init(&c, s, 7 * 15 * USEC_PER_SEC);
        if (expr_eval(x, &c, &v) >= 0)
                (void) expr_value_to_string(&v, &c.arena);
        (void) expr_eval_condition(x, &c, &verdict, NULL);
        (void) expr_samples_since(x, &c, 0);
        expr_context_done(&c);
        return 0;
}
