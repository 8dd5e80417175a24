/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Bounded storage of the series that policies reference, and nothing else.
 *
 * Every stored series has a ring buffer sized when the store is made, from the longest range a
 * policy uses (plus `offset`, and at least the 5m lookback of instant queries) divided by the
 * shortest scrape interval. The number of stored series is capped as well, so the memory bound
 * is known (and reported) before the first scrape. Series are keyed by metric name + label set;
 * each scrape target gets an `instance` label (a label of that name in the exposition becomes
 * `exported_instance`, as Prometheus does) and an `up` series: a failed scrape appends up=0 and
 * staleness markers, never an error.
 *
 * A scrape is atomic: samples are staged while the exposition is parsed and committed by
 * series_store_end_scrape(success=true) at one timestamp; a scrape that fails half-way (a limit,
 * a syntax error) commits nothing but up=0. A series that was in the previous scrape and is not
 * in this one gets a staleness marker, so instant queries stop seeing it at once (PromQL
 * staleness); otherwise an instant query sees the latest sample up to `lookback` (5m) old.
 *
 * Timestamps are the caller's clock in microseconds (the time of the scrape); timestamps in the
 * exposition are ignored, which keeps an exporter with a wrong clock from confusing windows.
 */

#include <regex.h>

#include "expfmt.h"
#include "macros.h"

typedef struct LabelPair {
        const char *name, *value;
} LabelPair;

/* A label set: the metric name apart (NULL once an operation dropped it), the other pairs sorted
 * by name. */
typedef struct LabelSet {
        const char *metric;
        const LabelPair *pairs;
        size_t n;
} LabelSet;

const char *label_set_get(const LabelSet *l, const char *name) _pure_;

typedef enum MatchOp {
        MATCH_EQ,
        MATCH_NE,
        MATCH_RE,
        MATCH_NRE,
        _MATCH_OP_MAX,
        _MATCH_OP_INVALID = -EINVAL,
} MatchOp;

const char *match_op_to_string(MatchOp op) _const_;

#define MATCHER_REGEX_MAX 1024

typedef struct Matcher {
        char *name;  /* "__name__" for the metric name */
        char *value;
        MatchOp op;
        bool re_ready;
        regex_t re;  /* MATCH_RE/NRE: POSIX ERE, fully anchored like PromQL's */
} Matcher;

/* Returns 0, or -EINVAL with a message (a bad or too long regex). */
int matcher_init(Matcher *m, const char *name, MatchOp op, const char *value, char *msg, size_t msg_size);
void matcher_done(Matcher *m);
/* value NULL: the label is absent, which PromQL matches like "". */
bool matcher_matches(const Matcher *m, const char *value);

typedef struct Selector {
        unsigned id;          /* index in the policy's selector table */
        char *metric;         /* the metric name when fixed by the selector, else NULL */
        Matcher *matchers;    /* all of them, the metric name one included */
        size_t n_matchers;
        uint64_t history;     /* usec of past this selector needs: longest range + offset */
        char *text;           /* canonical form, e.g. errors_total{code="500"} */
} Selector;

bool selector_matches(const Selector *s, const LabelSet *l);

/* A staleness marker, as Prometheus's StaleNaN (a NaN with a special payload). */
#define SERIES_STALE_BITS UINT64_C(0x7ff0000000000002)
double series_stale_value(void) _const_;
bool series_is_stale_value(double v) _const_;

typedef struct SeriesSample {
        uint64_t t; /* usec */
        double v;
} SeriesSample;

typedef struct Series Series;
typedef struct SeriesStore SeriesStore;

typedef struct SeriesStoreOptions {
        uint64_t min_interval;    /* shortest scrape (or sample) interval, usec; sizes the rings */
        uint64_t lookback;        /* instant-query lookback; 0: 5m */
        size_t min_samples;       /* samples a series must be able to hold at least (a rollout's
                                   * min_samples counts them), besides what the ranges need */
        size_t max_series;        /* stored series; 0: 4096 */
        size_t max_ignored;       /* remembered "not referenced" series; 0: max_series */
        size_t max_label_bytes;   /* label text of one stored series; 0: 2048 */
        size_t max_labels;        /* labels of one series; 0: 32 */
        uint64_t memory_budget;   /* ring memory of all series; 0: 64 MiB. Caps max_series. */
        char **targets;           /* instance label of each scrape target (may be NULL: none) */
} SeriesStoreOptions;

/* The store keeps pointers to the selectors: they must outlive it (they belong to the Policy). */
int series_store_new(Selector *const *selectors, size_t n_selectors, const SeriesStoreOptions *o,
                     SeriesStore **ret, char *msg, size_t msg_size);
SeriesStore *series_store_free(SeriesStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SeriesStore *, series_store_free);

/* Scraping: begin, feed expfmt_parse() with series_store_expfmt_callbacks and the store as
 * userdata, end with whether the scrape (transfer + parse) succeeded. */
int series_store_begin_scrape(SeriesStore *s, unsigned target);
int series_store_end_scrape(SeriesStore *s, unsigned target, uint64_t now, bool success);
extern const ExpfmtCallbacks series_store_expfmt_callbacks;
bool series_store_wants(const SeriesStore *s, const char *name, size_t len);

/* Direct append, outside any scrape (tests, `policy test`): v may be series_stale_value(). The
 * labels need not be sorted. Samples not after the series' last one are dropped. */
int series_store_append(SeriesStore *s, const char *metric, const LabelPair *pairs, size_t n, uint64_t t, double v);

/* Forget every sample (not the series), e.g. when a new version starts serving. */
void series_store_clear(SeriesStore *s);

/* Reading, for the evaluator. */
const Series *series_store_iterate(const SeriesStore *s, unsigned selector_id, size_t *iter);
uint64_t series_store_lookback(const SeriesStore *s) _pure_;
const LabelSet *series_labels(const Series *x) _pure_;
size_t series_n_samples(const Series *x) _pure_;
SeriesSample series_sample(const Series *x, size_t i); /* 0 = oldest; v may be a staleness marker */
/* Indices [*first, *last) of the samples with from < t <= to. */
void series_window(const Series *x, int64_t from, uint64_t to, size_t *first, size_t *last);
/* What an instant selector sees at t: the latest sample in (t - lookback, t] unless stale. */
bool series_instant(const Series *x, uint64_t t, uint64_t lookback, double *ret);

typedef struct SeriesStoreStats {
        size_t series;            /* stored */
        size_t ignored;           /* remembered as not referenced */
        size_t max_series;        /* after the memory budget */
        size_t capacity;          /* samples per ring */
        uint64_t memory_bound;    /* bytes: rings + series + labels at their limits */
        uint64_t memory_used;     /* bytes now */
        uint64_t dropped_series;  /* new series refused: max_series or a label limit */
        uint64_t dropped_samples; /* out of order, or duplicate within a scrape */
} SeriesStoreStats;

void series_store_stats(const SeriesStore *s, SeriesStoreStats *ret);
