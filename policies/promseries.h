/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * promtool's expanding series notation, and `modelkeeperctl policy test`: a model's rules and
 * rollout run over written series with a simulated clock, printing the timeline of decisions.
 *
 * Notation (as promtool's unit tests, see Prometheus's "Unit testing for rules"):
 *     'a+bxn'  a, a+b, a+2b, … a+nb  (n+1 values)     '1+1x3'  → 1 2 3 4
 *     'a-bxn'  a, a-b, … a-nb                           '1-2x4'  → 1 -1 -3 -5 -7
 *     'axn'    a repeated n+1 times (a+0xn)             '1x3'    → 1 1 1 1
 *     '_'      no sample at this step; '_xn' n of them  '1 _x3 stale' → 1 _ _ _ stale
 *     'stale'  a staleness marker
 * Numbers may be negative, fractional, in exponent form, Inf/+Inf/-Inf or NaN.
 *
 * The series file (YAML):
 *
 *     interval: 1m               # between input samples (default 1m)
 *     evaluation_interval: 1m    # between rule evaluations (default: interval)
 *     duration: 30m              # simulated time (default: up to the last input sample)
 *     activations:               # optional: versions put on probation at these times
 *       - {at: 5m, version: "43"}
 *     hold:                      # optional: windows in which the model is held
 *       - {from: 10m, until: 20m}
 *     input_series:
 *       - series: 'errors_total{code="500"}'
 *         values: '0+1x30'
 *
 * Output, one line per event, times from the start of the simulation:
 *     5m activate 43: baseline acc = 0.95
 *     5m activate 43: probation, 5 rounds every 1m, threshold 1, on_no_data inconclusive
 *     6m rule accuracy-floor: inactive -> pending (value 0.85)
 *     16m rule accuracy-floor: pending -> firing (value 0.85)
 *     16m rule accuracy-floor: action rollback
 *     6m rollout 43 round 1: pass (passed 1/5, failed 0/1, inconclusive 0)
 *     6m   check accuracy: pass, value 0.951, min 0.94
 *     10m rollout 43: promote (5 good rounds)
 */

#include "config.h"
#include "series.h"

typedef enum PromPointKind {
        PROM_POINT_VALUE,
        PROM_POINT_MISSING,
        PROM_POINT_STALE,
} PromPointKind;

typedef struct PromPoint {
        PromPointKind kind;
        double value;
} PromPoint;

#define PROMSERIES_POINTS_MAX 100000

/* Expand a values string. On error returns -EINVAL (or -E2BIG past max points) with the byte
 * offset and a message. */
int promseries_expand(const char *text, size_t max_points, PromPoint **ret, size_t *ret_n, size_t *ret_offset,
                      char *msg, size_t msg_size);

/* Parse 'name{label="value", …}' (exposition syntax, quoted UTF-8 names allowed). The pairs and
 * their strings are one allocation, freed with free(*ret_pairs); *ret_metric likewise. */
int promseries_parse_series(const char *text, char **ret_metric, LabelPair **ret_pairs, size_t *ret_n,
                            char *msg, size_t msg_size);

/* Run m's rules and rollout over the series file (its bytes, path for errors). On success
 * *ret_lines is the timeline (a strv). Errors in the file are "path:line:col: message". */
int policy_test_run(const ModelConfig *m, const char *path, const char *text, size_t size, char ***ret_lines,
                    ConfigErrors *errors);
