/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A streaming parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
 *
 * Pure: no I/O, no logging, one allocation per call (a scratch buffer the size of the longest
 * allowed line). The caller gets one callback per sample; a `want` callback, asked with the
 * sample's metric name before its labels are even looked at, lets it skip the lines of every
 * metric no policy references at the cost of a memchr() for the end of the line.
 *
 * What is checked: the line grammar of both formats (HELP/TYPE/UNIT, label escapes, quoted UTF-8
 * metric and label names, `{"my.metric", a="b"}`, NaN/±Inf, timestamps: integer milliseconds in
 * 0.0.4, float seconds in OpenMetrics), duplicate label names, `le` on histogram buckets and
 * `quantile` on summary samples, `# EOF` (OpenMetrics: required, nothing may follow), UTF-8 of
 * label values. Exemplars (`# {…} v [ts]`, OpenMetrics) are checked for shape and ignored;
 * `_created` samples are reported like others (flagged). Lines skipped through `want` are only
 * checked for their length and counted against max_series: what we do not use, we do not judge.
 *
 * Limits (ExpfmtLimits) make a hostile or broken target cost bounded time and memory; exceeding
 * one is an error (-E2BIG) that names the limit, never a crash or a partial silent result.
 */

#include "macros.h"

typedef enum ExpfmtFormat {
        EXPFMT_TEXT,        /* text/plain; version=0.0.4 */
        EXPFMT_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
        _EXPFMT_FORMAT_MAX,
        _EXPFMT_FORMAT_INVALID = -EINVAL,
} ExpfmtFormat;

typedef enum ExpfmtType {
        EXPFMT_UNTYPED,     /* "untyped" (0.0.4), "unknown" (OpenMetrics), or no TYPE line */
        EXPFMT_COUNTER,
        EXPFMT_GAUGE,
        EXPFMT_HISTOGRAM,
        EXPFMT_GAUGEHISTOGRAM,
        EXPFMT_SUMMARY,
        EXPFMT_INFO,
        EXPFMT_STATESET,
        _EXPFMT_TYPE_MAX,
        _EXPFMT_TYPE_INVALID = -EINVAL,
} ExpfmtType;

typedef enum ExpfmtMeta {
        EXPFMT_META_HELP,
        EXPFMT_META_TYPE,
        EXPFMT_META_UNIT,
        _EXPFMT_META_MAX,
} ExpfmtMeta;

typedef struct ExpfmtLimits {
        size_t max_body;      /* bytes of the whole exposition */
        size_t max_line;      /* bytes of one line, without its '\n' */
        size_t max_labels;    /* label pairs of one sample */
        size_t max_name;      /* bytes of a metric or label name */
        size_t max_value;     /* bytes of a label value, decoded */
        size_t max_series;    /* sample lines in one exposition (skipped ones included) */
} ExpfmtLimits;

#define EXPFMT_LIMITS_DEFAULT                                                                              \
        ((ExpfmtLimits){                                                                                   \
                .max_body = 16 * 1024 * 1024,                                                              \
                .max_line = 64 * 1024,                                                                     \
                .max_labels = 64,                                                                          \
                .max_name = 1024,                                                                          \
                .max_value = 4096,                                                                         \
                .max_series = 100000,                                                                      \
        })

/* Names and values are NUL-terminated copies (escapes decoded) that live until the callback
 * returns. A NUL byte anywhere in a name or value is refused, so the C string is the whole
 * value; the lengths save the callee a strlen(). */
typedef struct ExpfmtLabel {
        const char *name;
        const char *value;
        size_t name_len, value_len;
} ExpfmtLabel;

typedef struct ExpfmtSample {
        const char *name;          /* the sample's metric name, e.g. "foo_bucket" */
        size_t name_len;
        const ExpfmtLabel *labels; /* in exposition order */
        size_t n_labels;
        double value;
        bool has_timestamp;
        int64_t timestamp_ms;      /* OpenMetrics seconds are converted */
        ExpfmtType type;           /* of the family the sample belongs to (UNTYPED when none) */
        bool created;              /* an OpenMetrics/0.0.4 "<family>_created" sample */
        unsigned line;
} ExpfmtSample;

typedef struct ExpfmtCallbacks {
        /* Asked once per sample line before anything else is parsed (the answer for the same name
         * on consecutive lines is reused); false skips the line. NULL: every sample is wanted. */
        bool (*want)(const char *name, size_t len, void *userdata);
        /* A negative return stops parsing, and expfmt_parse() returns it. */
        int (*sample)(const ExpfmtSample *s, void *userdata);
        /* HELP text is given as written (escapes not decoded); TYPE as its keyword; UNIT as is. */
        int (*metadata)(ExpfmtMeta kind, const char *name, size_t name_len, const char *text, size_t text_len,
                        void *userdata);
} ExpfmtCallbacks;

typedef struct ExpfmtError {
        unsigned line, column; /* 1-based; column counts bytes */
        char message[192];
} ExpfmtError;

typedef struct ExpfmtStats {
        size_t lines;
        size_t samples;        /* sample lines, skipped or not */
        size_t skipped;        /* sample lines skipped through want() */
} ExpfmtStats;

/* Returns 0; -EINVAL for a syntax error, -E2BIG for an exceeded limit (both fill *ret_error when
 * given), -ENOMEM, or a callback's negative return. limits NULL: EXPFMT_LIMITS_DEFAULT. */
int expfmt_parse(ExpfmtFormat format, const char *data, size_t size, const ExpfmtLimits *limits,
                 const ExpfmtCallbacks *cb, void *userdata, ExpfmtStats *ret_stats, ExpfmtError *ret_error);

/* From an HTTP Content-Type: OpenMetrics for application/openmetrics-text, text otherwise
 * (including NULL, e.g. for file:// targets). */
ExpfmtFormat expfmt_format_from_content_type(const char *content_type) _pure_;

const char *expfmt_type_to_string(ExpfmtType t) _const_;
const char *expfmt_format_to_string(ExpfmtFormat f) _const_;

/* Parse a Prometheus float ("1.5", "-Inf", "NaN", "1e-3"), locale-independent. The fast path
 * covers what exporters print; anything else goes through strtod in the C locale. */
int expfmt_parse_float(const char *s, size_t len, double *ret);
