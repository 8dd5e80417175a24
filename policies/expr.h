/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The policy expression language: a small, safe PromQL subset (DESIGN.md §6).
 *
 *   selectors        name, name{l="v", l!="v", l=~"re", l!~"re"}, {"utf8.name", l="v"},
 *                    name[5m], name offset 1m; regexes are POSIX ERE, fully anchored
 *   functions        rate, increase (PromQL's extrapolation and counter resets),
 *                    avg_over_time, min_over_time, max_over_time, sum_over_time,
 *                    count_over_time, last_over_time, histogram_quantile, abs, clamp_min,
 *                    clamp_max, scalar, vector
 *   aggregations     sum, avg, min, max, count  [by (…) | without (…)]
 *   operators        ^  * / %  + -  == != < <= > >= [bool]  and unless  or
 *                    with on(…)/ignoring(…) one-to-one matching
 *   literals         1, 0.5, 1e-3, Inf, NaN, 5m (= 300), 1h30m, 6GiB, 500MB, 99% (= 0.99)
 *   ours             baseline(x), accuracy(tp, tn, fp, fn), redundancy(tp, tn, fp, fn), and the
 *                    names of metrics.define
 *
 * Semantics follow PromQL: a comparison without `bool` filters, missing data is an empty vector
 * (distinct from 0), division by zero is IEEE (±Inf, NaN), arithmetic drops the metric name.
 * A `%` written right after a number with nothing operand-like after it is a percentage ("99%",
 * "x > 99%"); anywhere else it is the modulo operator ("a % 2", "5%3").
 *
 * Compilation is separate from evaluation: expressions compile once per policy into an
 * environment (ExprEnv) that owns the syntax trees, the selector table (what the series store
 * keeps) and the list of baseline(…) arguments. Errors carry the byte offset into the text.
 * Limits: 4096 bytes of text, nesting depth 64, definitions nested 16 deep, regexes 1024 bytes.
 */

#include "arena.h"
#include "series.h"

typedef enum ExprType {
        EXPR_SCALAR,
        EXPR_VECTOR,
        EXPR_MATRIX, /* a range selector: only as the argument of a range function */
        _EXPR_TYPE_MAX,
        _EXPR_TYPE_INVALID = -EINVAL,
} ExprType;

const char *expr_type_to_string(ExprType t) _const_;

#define EXPR_TEXT_MAX       4096
#define EXPR_DEPTH_MAX      64
#define EXPR_DEFINE_DEPTH   16
#define EXPR_SELECTORS_MAX  1024
#define EXPR_EVAL_MEMORY    (64 * 1024 * 1024)

typedef struct Expr Expr;
typedef struct ExprEnv ExprEnv;

typedef struct ExprError {
        size_t offset; /* byte offset into the text that was compiled */
        char message[256];
} ExprError;

int expr_env_new(ExprEnv **ret);
ExprEnv *expr_env_free(ExprEnv *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExprEnv *, expr_env_free);

/* Register a definition (metrics.define). It is compiled on first use; cycles and errors are
 * reported where it is referenced (and by expr_env_check_defines()). */
int expr_env_define(ExprEnv *e, const char *name, const char *text);
/* Compile every definition; the first error (with the failing definition's index) is returned. */
int expr_env_check_defines(ExprEnv *e, size_t *ret_index, ExprError *err);
int expr_env_compile_define(ExprEnv *e, size_t index, ExprError *err);

int expr_compile(ExprEnv *e, const char *text, const Expr **ret, ExprError *err);

ExprType expr_type(const Expr *x) _pure_;
/* Canonical text (definitions expanded, fully parenthesised), allocated in the arena. */
char *expr_to_string(const Expr *x, Arena *a);

Selector *const *expr_env_selectors(const ExprEnv *e, size_t *ret_n);
/* The longest history (range + offset) any selector needs, usec. */
uint64_t expr_env_max_history(const ExprEnv *e) _pure_;

/* Whether x contains a baseline(…) anywhere. */
bool expr_has_baseline(const Expr *x) _pure_;

/* baseline(x): each distinct argument gets an index; its key is the canonical text of x. */
size_t expr_env_n_baselines(const ExprEnv *e) _pure_;
const char *expr_env_baseline_key(const ExprEnv *e, size_t i);
const Expr *expr_env_baseline_arg(const ExprEnv *e, size_t i);

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 */

typedef struct ExprSample {
        LabelSet labels;
        double value;
} ExprSample;

typedef struct ExprValue {
        ExprType type; /* EXPR_SCALAR or EXPR_VECTOR */
        double scalar;
        ExprSample *samples;
        size_t n;
} ExprValue;

/* The value of one baseline(x) argument, stored at an activation. Vectors keep their labels (the
 * metric name dropped); a scalar is stored as a vector of one sample without labels. */
typedef struct ExprSnapshot {
        bool present;          /* false: nothing was known (no data at the activation) */
        ExprSample *samples;   /* owned: labels and strings live in `mem` */
        size_t n;
        void *mem;
} ExprSnapshot;

void expr_snapshot_done(ExprSnapshot *s);
int expr_snapshot_from_value(const ExprValue *v, ExprSnapshot *ret);

typedef struct ExprContext {
        const SeriesStore *store;   /* NULL: every selector is empty */
        uint64_t now;               /* usec, the caller's clock */
        const ExprSnapshot *const *baselines; /* by baseline index; NULL entries: no data */
        size_t n_baselines;
        Arena arena;                /* results live here until the caller resets it */
        ExprError err;              /* evaluation errors (offset is the node's) */
        unsigned depth;
} ExprContext;

/* Initialise with the limit EXPR_EVAL_MEMORY; expr_context_done() frees all results. */
void expr_context_init(ExprContext *c, const SeriesStore *store, uint64_t now);
void expr_context_done(ExprContext *c);

/* Returns 0, or -EINVAL (a runtime error such as many-to-many matching, message in c->err),
 * -E2BIG (the memory limit), -ENOMEM. */
int expr_eval(const Expr *x, ExprContext *c, ExprValue *ret);

typedef enum ExprVerdict {
        EXPR_NO_DATA,
        EXPR_FALSE,
        EXPR_TRUE,
        _EXPR_VERDICT_MAX,
} ExprVerdict;

const char *expr_verdict_to_string(ExprVerdict v) _const_;

/* A condition, as rollout checks without bounds read it: a comparison holds when every
 * element of `lhs op bool rhs` is 1 (no element: no data); `and` needs both, `or` either; any
 * other expression holds when every element is non-zero. *ret_value: the left operand's first
 * value (NaN when none), for the log. */
int expr_eval_condition(const Expr *x, ExprContext *c, ExprVerdict *ret, double *ret_value);

/* For min_samples: the smallest, over the selectors x references (outside baseline()), of the
 * largest number of samples a matching series has in (since, now]. SIZE_MAX when x references
 * no series. */
size_t expr_samples_since(const Expr *x, const ExprContext *c, uint64_t since);

/* Format a value for logs: "no data", "0.93", "{code=\"500\"} 0.93, … (3 series)". */
char *expr_value_to_string(const ExprValue *v, Arena *a);
int expr_format_number(double v, char *buf, size_t size);
/* Six significant digits (whole numbers exact): for messages, not for re-parsing. */
int expr_format_short(double v, char *buf, size_t size);
