/* SPDX-License-Identifier: Apache-2.0 */

#include <locale.h>
#include <math.h>
#include <stdarg.h>

#include "expfmt.h"
#include "parse-util.h"

/* Character classes, one table lookup per byte in the hot loops. */
enum {
        C_NAME_START = 1 << 0,  /* [a-zA-Z_:] */
        C_NAME = 1 << 1,        /* [a-zA-Z0-9_:] */
        C_LNAME_START = 1 << 2, /* [a-zA-Z_] */
        C_LNAME = 1 << 3,       /* [a-zA-Z0-9_] */
        C_BLANK = 1 << 4,       /* ' ', '\t' */
};

static uint8_t cls[256];

static void cls_init(void) {
        if (cls['a'])
                return;
        for (int c = 0; c < 256; c++) {
                bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                bool digit = c >= '0' && c <= '9';
                uint8_t v = 0;

                if (alpha || c == '_' || c == ':')
                        v |= C_NAME_START;
                if (alpha || digit || c == '_' || c == ':')
                        v |= C_NAME;
                if (alpha || c == '_')
                        v |= C_LNAME_START;
                if (alpha || digit || c == '_')
                        v |= C_LNAME;
                if (c == ' ' || c == '\t')
                        v |= C_BLANK;
                cls[c] = v;
        }
}

#define IS(c, k) (cls[(uint8_t) (c)] & (k))

static const char *const type_table[_EXPFMT_TYPE_MAX] = {
        [EXPFMT_UNTYPED] = "untyped",
        [EXPFMT_COUNTER] = "counter",
        [EXPFMT_GAUGE] = "gauge",
        [EXPFMT_HISTOGRAM] = "histogram",
        [EXPFMT_GAUGEHISTOGRAM] = "gaugehistogram",
        [EXPFMT_SUMMARY] = "summary",
        [EXPFMT_INFO] = "info",
        [EXPFMT_STATESET] = "stateset",
};

const char *expfmt_type_to_string(ExpfmtType t) {
        return (int) t >= 0 && t < _EXPFMT_TYPE_MAX ? type_table[t] : NULL;
}

const char *expfmt_format_to_string(ExpfmtFormat f) {
        switch (f) {
        case EXPFMT_TEXT:
                return "text/0.0.4";
        case EXPFMT_OPENMETRICS:
                return "openmetrics/1.0";
        default:
                return NULL;
        }
}

ExpfmtFormat expfmt_format_from_content_type(const char *ct) {
        if (!ct)
                return EXPFMT_TEXT;
        while (*ct == ' ')
                ct++;
        return strncasecmp(ct, "application/openmetrics-text", 28) == 0 ? EXPFMT_OPENMETRICS : EXPFMT_TEXT;
}

/* ---------------------------------------------------------------------------------------------
 * Numbers
 */

static locale_t c_locale(void) {
        static locale_t loc = (locale_t) 0;
        if (loc == (locale_t) 0)
                loc = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        return loc;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool word_ieq(const char *s, size_t len, const char *w) {
        return strlen(w) == len && strncasecmp(s, w, len) == 0;
}

int expfmt_parse_float(const char *s, size_t len, double *ret) {
        const char *p = s, *e = s + len;
        bool neg = false, any = false;
        uint64_t mant = 0;
        int digits = 0, exp10 = 0;
        char buf[128];

        if (len == 0)
                return -EINVAL;
        if (*p == '+' || *p == '-') {
                neg = *p == '-';
                p++;
        }
        if (p < e && !(*p >= '0' && *p <= '9') && *p != '.') {
                size_t n = (size_t) (e - p);
                if (word_ieq(p, n, "inf") || word_ieq(p, n, "infinity")) {
                        *ret = neg ? -INFINITY : INFINITY;
                        return 0;
                }
                if (p == s && word_ieq(p, n, "nan")) {
                        *ret = NAN;
                        return 0;
                }
                return -EINVAL;
        }

        /* Clinger's fast path: a mantissa that fits 2^53 times an exact power of ten up to 1e22
         * is correctly rounded by one IEEE multiplication or division. */
        for (; p < e && *p >= '0' && *p <= '9'; p++, any = true)
                if (mant < (UINT64_C(1) << 53) / 10 - 1) {
                        mant = mant * 10 + (uint64_t) (*p - '0');
                        if (mant)
                                digits++;
                } else {
                        exp10++;
                        digits = 99; /* too many significant digits: slow path */
                }
        if (p < e && *p == '.') {
                p++;
                for (; p < e && *p >= '0' && *p <= '9'; p++, any = true)
                        if (mant < (UINT64_C(1) << 53) / 10 - 1) {
                                mant = mant * 10 + (uint64_t) (*p - '0');
                                exp10--;
                        } else
                                digits = 99;
        }
        if (!any)
                return -EINVAL;
        if (p < e && (*p == 'e' || *p == 'E')) {
                bool eneg = false;
                int ev = 0;
                const char *d;

                p++;
                if (p < e && (*p == '+' || *p == '-')) {
                        eneg = *p == '-';
                        p++;
                }
                d = p;
                for (; p < e && *p >= '0' && *p <= '9'; p++)
                        if (ev < 100000)
                                ev = ev * 10 + (*p - '0');
                if (p == d)
                        return -EINVAL;
                exp10 += eneg ? -ev : ev;
        }
        if (p != e)
                return -EINVAL;

        if (digits < 99 && exp10 >= -22 && exp10 <= 22) {
                double v = (double) mant;
                v = exp10 >= 0 ? v * pow10_exact[exp10] : v / pow10_exact[-exp10];
                *ret = neg ? -v : v;
                return 0;
        }

        /* Slow path: the C library, in the C locale, on a NUL-terminated copy. */
        if (len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        {
                char *end = NULL;
                double v = strtod_l(buf, &end, c_locale());
                if (end != buf + len)
                        return -EINVAL;
                *ret = v;
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The parser
 */

typedef struct Parser {
        ExpfmtFormat format;
        ExpfmtLimits lim;
        const ExpfmtCallbacks *cb;
        void *userdata;
        ExpfmtError *err;
        ExpfmtStats stats;

        unsigned lineno;
        const char *line;

        char *scratch; /* decoded names and values of the current line */
        size_t scratch_size, scratch_used;
        ExpfmtLabel *labels;
        size_t n_labels;

        char *family; /* the current metric family (from HELP/TYPE/UNIT) */
        size_t family_len;
        ExpfmtType family_type;

        char *last_name; /* the want() answer for the last name asked */
        size_t last_name_len;
        bool last_want, last_valid;
} Parser;

static int fail(Parser *P, int r, const char *at, const char *fmt, ...) _printf_(4, 5);
static int fail(Parser *P, int r, const char *at, const char *fmt, ...) {
        va_list ap;

        if (P->err) {
                P->err->line = P->lineno;
                P->err->column = at && P->line && at >= P->line ? (unsigned) (at - P->line) + 1 : 0;
                va_start(ap, fmt);
                vsnprintf(P->err->message, sizeof(P->err->message), fmt, ap);
                va_end(ap);
        }
        return r;
}

static const char *skip_blanks(const char *p, const char *e) {
        while (p < e && IS(*p, C_BLANK))
                p++;
        return p;
}

static char *scratch_put(Parser *P, const char *s, size_t n) {
        char *d;

        /* Cannot overflow: decoded text is never longer than the line it comes from, and the
         * scratch buffer holds two lines' worth (one NUL per token at most doubles it). */
        assert_se(P->scratch_used + n + 1 <= P->scratch_size);
        d = P->scratch + P->scratch_used;
        memcpy(d, s, n);
        d[n] = 0;
        P->scratch_used += n + 1;
        return d;
}

/* A double-quoted string at *pp (pointing at the quote). Escapes: \\ \" \n, as in both formats. */
static int parse_quoted(Parser *P, const char **pp, const char *e, size_t max, const char *what, const char **ret,
                        size_t *ret_len) {
        const char *start = *pp, *s = *pp + 1;
        char *out = P->scratch + P->scratch_used, *o = out;
        bool high = false;

        for (;;) {
                const char *q = s;

                while (q < e && *q != '"' && *q != '\\' && *q != 0) {
                        high |= (uint8_t) *q >= 0x80;
                        q++;
                }
                memcpy(o, s, (size_t) (q - s));
                o += q - s;
                if (q >= e)
                        return fail(P, -EINVAL, start, "unterminated quoted %s", what);
                if (*q == 0)
                        return fail(P, -EINVAL, q, "NUL byte in %s", what);
                if (*q == '"') {
                        s = q + 1;
                        break;
                }
                /* backslash */
                if (q + 1 >= e)
                        return fail(P, -EINVAL, start, "unterminated quoted %s", what);
                switch (q[1]) {
                case '\\':
                        *o++ = '\\';
                        break;
                case '"':
                        *o++ = '"';
                        break;
                case 'n':
                        *o++ = '\n';
                        break;
                default:
                        return fail(P, -EINVAL, q, "invalid escape sequence '\\%c' in %s", q[1], what);
                }
                s = q + 2;
        }
        *o = 0;
        if ((size_t) (o - out) > max)
                return fail(P, -E2BIG, start, "%s of %zu bytes exceeds the limit of %zu", what, (size_t) (o - out),
                            max);
        if (high && !utf8_is_valid(out, (size_t) (o - out)))
                return fail(P, -EINVAL, start, "%s is not valid UTF-8", what);
        P->scratch_used += (size_t) (o - out) + 1;
        *pp = s;
        *ret = out;
        *ret_len = (size_t) (o - out);
        return 0;
}

static size_t scan_name(const char *p, const char *e) {
        const char *q = p;

        if (q >= e || !IS(*q, C_NAME_START))
                return 0;
        for (q++; q < e && IS(*q, C_NAME); q++)
                ;
        return (size_t) (q - p);
}

static size_t scan_label_name(const char *p, const char *e) {
        const char *q = p;

        if (q >= e || !IS(*q, C_LNAME_START))
                return 0;
        for (q++; q < e && IS(*q, C_LNAME); q++)
                ;
        return (size_t) (q - p);
}

/* A metric name, bare or quoted, at *pp. The result is NUL-terminated in scratch. */
static int parse_metric_name(Parser *P, const char **pp, const char *e, const char **ret, size_t *ret_len) {
        const char *p = *pp;
        size_t n;

        if (p < e && *p == '"') {
                int r = parse_quoted(P, pp, e, P->lim.max_name, "metric name", ret, ret_len);
                if (r < 0)
                        return r;
                if (*ret_len == 0)
                        return fail(P, -EINVAL, p, "empty metric name");
                return 0;
        }
        n = scan_name(p, e);
        if (n == 0)
                return fail(P, -EINVAL, p, "expected a metric name");
        if (n > P->lim.max_name)
                return fail(P, -E2BIG, p, "metric name of %zu bytes exceeds the limit of %zu", n, P->lim.max_name);
        *ret = scratch_put(P, p, n);
        *ret_len = n;
        *pp = p + n;
        return 0;
}

static bool want_name(Parser *P, const char *name, size_t len) {
        if (!P->cb || !P->cb->want)
                return true;
        if (P->last_valid && len == P->last_name_len && memcmp(name, P->last_name, len) == 0)
                return P->last_want;
        P->last_want = P->cb->want(name, len, P->userdata);
        if (len <= P->lim.max_name) {
                memcpy(P->last_name, name, len);
                P->last_name_len = len;
                P->last_valid = true;
        } else
                P->last_valid = false;
        return P->last_want;
}

/* Label pairs up to and including '}'. *pp points after '{' (or after a quoted metric name and
 * its separator). store=false parses an exemplar's labels for shape only. */
static int parse_labels(Parser *P, const char **pp, const char *e, bool store) {
        const char *p = *pp;
        size_t n = 0;
        int r;

        for (;;) {
                const char *name, *value, *at;
                size_t name_len, value_len, k;

                p = skip_blanks(p, e);
                if (p < e && *p == '}') {
                        p++;
                        break;
                }
                at = p;
                if (p < e && *p == '"') {
                        r = parse_quoted(P, &p, e, P->lim.max_name, "label name", &name, &name_len);
                        if (r < 0)
                                return r;
                        if (name_len == 0)
                                return fail(P, -EINVAL, at, "empty label name");
                } else {
                        k = scan_label_name(p, e);
                        if (k == 0)
                                return fail(P, -EINVAL, p, p < e ? "expected a label name or '}'"
                                                                 : "expected a label name or '}', got end of line");
                        if (k > P->lim.max_name)
                                return fail(P, -E2BIG, p, "label name of %zu bytes exceeds the limit of %zu", k,
                                            P->lim.max_name);
                        name = scratch_put(P, p, k);
                        name_len = k;
                        p += k;
                }
                p = skip_blanks(p, e);
                if (p >= e || *p != '=')
                        return fail(P, -EINVAL, p, "expected '=' after label name '%s'", name);
                p = skip_blanks(p + 1, e);
                if (p >= e || *p != '"')
                        return fail(P, -EINVAL, p, "expected '\"' to start the value of label '%s'", name);
                r = parse_quoted(P, &p, e, P->lim.max_value, "label value", &value, &value_len);
                if (r < 0)
                        return r;

                if (n >= P->lim.max_labels)
                        return fail(P, -E2BIG, at, "more than %zu labels", P->lim.max_labels);
                if (store) {
                        for (size_t i = 0; i < n; i++)
                                if (P->labels[i].name_len == name_len && memcmp(P->labels[i].name, name, name_len) == 0)
                                        return fail(P, -EINVAL, at, "duplicate label name '%s'", name);
                        P->labels[n] = (ExpfmtLabel){name, value, name_len, value_len};
                }
                n++;

                p = skip_blanks(p, e);
                if (p < e && *p == ',') {
                        p++;
                        continue;
                }
                if (p < e && *p == '}') {
                        p++;
                        break;
                }
                return fail(P, -EINVAL, p, "expected ',' or '}' after a label value");
        }
        if (store)
                P->n_labels = n;
        *pp = p;
        return 0;
}

static size_t token_len(const char *p, const char *e) {
        const char *q = p;
        while (q < e && !IS(*q, C_BLANK))
                q++;
        return (size_t) (q - p);
}

static int parse_timestamp(Parser *P, const char *p, size_t n, int64_t *ret) {
        if (P->format == EXPFMT_OPENMETRICS) {
                double s;
                if (expfmt_parse_float(p, n, &s) < 0 || !isfinite(s))
                        return fail(P, -EINVAL, p, "invalid timestamp '%.*s'", (int) MIN(n, (size_t) 64), p);
                if (!(fabs(s) < 9.2e15))
                        return fail(P, -EINVAL, p, "timestamp '%.*s' out of range", (int) MIN(n, (size_t) 64), p);
                *ret = (int64_t) (s * 1000.0);
                return 0;
        } else {
                const char *q = p, *e = p + n;
                bool neg = false;
                uint64_t v = 0;

                if (q < e && *q == '-') {
                        neg = true;
                        q++;
                }
                if (q >= e)
                        return fail(P, -EINVAL, p, "invalid timestamp '%.*s'", (int) MIN(n, (size_t) 64), p);
                for (; q < e; q++) {
                        if (*q < '0' || *q > '9')
                                return fail(P, -EINVAL, p, "invalid timestamp '%.*s' (expected integer milliseconds)",
                                            (int) MIN(n, (size_t) 64), p);
                        if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t) (*q - '0'), &v) ||
                            v > (uint64_t) INT64_MAX)
                                return fail(P, -EINVAL, p, "timestamp '%.*s' out of range", (int) MIN(n, (size_t) 64),
                                            p);
                }
                *ret = neg ? -(int64_t) v : (int64_t) v;
                return 0;
        }
}

/* OpenMetrics exemplar: "# {labels} value [timestamp]". Checked for shape, then dropped. */
static int parse_exemplar(Parser *P, const char *p, const char *e) {
        size_t n;
        double v;
        int64_t ts;
        int r;

        /* p at '#' */
        p++;
        p = skip_blanks(p, e);
        if (p >= e || *p != '{')
                return fail(P, -EINVAL, p, "expected '{' to start an exemplar");
        p++;
        r = parse_labels(P, &p, e, false);
        if (r < 0)
                return r;
        p = skip_blanks(p, e);
        n = token_len(p, e);
        if (n == 0 || expfmt_parse_float(p, n, &v) < 0)
                return fail(P, -EINVAL, p, "invalid exemplar value");
        p = skip_blanks(p + n, e);
        if (p < e) {
                n = token_len(p, e);
                r = parse_timestamp(P, p, n, &ts);
                if (r < 0)
                        return r;
                p = skip_blanks(p + n, e);
                if (p < e)
                        return fail(P, -EINVAL, p, "unexpected text after the exemplar");
        }
        return 0;
}

static const char *label_value(const Parser *P, const char *name) {
        for (size_t i = 0; i < P->n_labels; i++)
                if (streq(P->labels[i].name, name))
                        return P->labels[i].value;
        return NULL;
}

static int parse_sample(Parser *P, const char *p, const char *e) {
        ExpfmtSample s = {.line = P->lineno};
        const char *start = p, *suffix = NULL;
        bool braces = false;
        size_t n;
        int r;

        P->scratch_used = 0;
        P->n_labels = 0;

        P->stats.samples++;
        if (P->stats.samples > P->lim.max_series)
                return fail(P, -E2BIG, p, "more than %zu samples in one exposition", P->lim.max_series);

        if (*p == '{') {
                /* {"name", labels…} — the UTF-8 metric name form. The name comes first. */
                const char *q = skip_blanks(p + 1, e);

                braces = true;
                if (q >= e || *q != '"')
                        return fail(P, -EINVAL, q, "expected a quoted metric name after '{'");
                r = parse_metric_name(P, &q, e, &s.name, &s.name_len);
                if (r < 0)
                        return r;
                q = skip_blanks(q, e);
                if (q < e && *q == '=')
                        return fail(P, -EINVAL, start, "metric name missing before the labels");
                if (!want_name(P, s.name, s.name_len))
                        goto skip;
                if (q < e && *q == ',')
                        q++;
                else if (q < e && *q == '}') {
                        /* keep q at '}' so parse_labels sees the end */
                } else
                        return fail(P, -EINVAL, q, "expected ',' or '}' after the metric name");
                p = q;
        } else {
                n = scan_name(p, e);
                if (n == 0)
                        return fail(P, -EINVAL, p, "expected a metric name, '#' or an empty line");
                if (n > P->lim.max_name)
                        return fail(P, -E2BIG, p, "metric name of %zu bytes exceeds the limit of %zu", n,
                                    P->lim.max_name);
                if (!want_name(P, p, n))
                        goto skip;
                s.name = scratch_put(P, p, n);
                s.name_len = n;
                p += n;
                {
                        const char *q = skip_blanks(p, e);
                        if (q < e && *q == '{') {
                                braces = true;
                                p = q + 1;
                        }
                }
        }
        if (braces) {
                r = parse_labels(P, &p, e, true);
                if (r < 0)
                        return r;
        }

        if (p >= e || !IS(*p, C_BLANK))
                return fail(P, -EINVAL, p, p >= e ? "expected a value, got end of line" : "expected a blank before the value");
        p = skip_blanks(p, e);
        n = token_len(p, e);
        if (n == 0)
                return fail(P, -EINVAL, p, "expected a value, got end of line");
        if (expfmt_parse_float(p, n, &s.value) < 0)
                return fail(P, -EINVAL, p, "invalid value '%.*s'", (int) MIN(n, (size_t) 64), p);
        p = skip_blanks(p + n, e);
        if (p < e && !(*p == '#' && P->format == EXPFMT_OPENMETRICS)) {
                n = token_len(p, e);
                r = parse_timestamp(P, p, n, &s.timestamp_ms);
                if (r < 0)
                        return r;
                s.has_timestamp = true;
                p = skip_blanks(p + n, e);
        }
        if (p < e) {
                if (*p == '#' && P->format == EXPFMT_OPENMETRICS) {
                        r = parse_exemplar(P, p, e);
                        if (r < 0)
                                return r;
                } else
                        return fail(P, -EINVAL, p, "unexpected text after the %s", s.has_timestamp ? "timestamp" : "value");
        }

        /* Which family does it belong to? The sample name is the family name or that plus a
         * suffix the family's type allows. */
        s.type = EXPFMT_UNTYPED;
        if (P->family_len > 0 && s.name_len >= P->family_len && memcmp(s.name, P->family, P->family_len) == 0) {
                suffix = s.name + P->family_len;
                if (*suffix == 0 || streq(suffix, "_total") || streq(suffix, "_created") || streq(suffix, "_bucket") ||
                    streq(suffix, "_sum") || streq(suffix, "_count") || streq(suffix, "_gcount") ||
                    streq(suffix, "_gsum") || streq(suffix, "_info"))
                        s.type = P->family_type;
                else
                        suffix = NULL;
        }
        if (suffix) {
                s.created = streq(suffix, "_created");
                if ((s.type == EXPFMT_HISTOGRAM || s.type == EXPFMT_GAUGEHISTOGRAM) && streq(suffix, "_bucket")) {
                        const char *le = label_value(P, "le");
                        double v;

                        if (!le)
                                return fail(P, -EINVAL, start, "histogram bucket '%s' without an 'le' label", s.name);
                        if (expfmt_parse_float(le, strlen(le), &v) < 0)
                                return fail(P, -EINVAL, start, "invalid 'le' value \"%s\"", le);
                }
                if (s.type == EXPFMT_SUMMARY && *suffix == 0) {
                        const char *qv = label_value(P, "quantile");
                        double v;

                        if (!qv)
                                return fail(P, -EINVAL, start, "summary sample '%s' without a 'quantile' label", s.name);
                        if (expfmt_parse_float(qv, strlen(qv), &v) < 0)
                                return fail(P, -EINVAL, start, "invalid 'quantile' value \"%s\"", qv);
                }
        } else if (P->format == EXPFMT_TEXT && s.name_len > 8 && endswith(s.name, "_created"))
                s.created = true;

        s.labels = P->labels;
        s.n_labels = P->n_labels;
        if (P->cb && P->cb->sample) {
                r = P->cb->sample(&s, P->userdata);
                if (r < 0)
                        return r;
        }
        return 0;

skip:
        P->stats.skipped++;
        return 0;
}

static ExpfmtType parse_type_word(ExpfmtFormat f, const char *p, size_t n) {
        static const struct {
                const char *word;
                ExpfmtType type;
                bool text, om;
        } words[] = {
                {"counter", EXPFMT_COUNTER, true, true},
                {"gauge", EXPFMT_GAUGE, true, true},
                {"histogram", EXPFMT_HISTOGRAM, true, true},
                {"summary", EXPFMT_SUMMARY, true, true},
                {"untyped", EXPFMT_UNTYPED, true, false},
                {"unknown", EXPFMT_UNTYPED, false, true},
                {"gaugehistogram", EXPFMT_GAUGEHISTOGRAM, false, true},
                {"info", EXPFMT_INFO, false, true},
                {"stateset", EXPFMT_STATESET, false, true},
        };

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strlen(words[i].word) == n && memcmp(words[i].word, p, n) == 0 &&
                    (f == EXPFMT_OPENMETRICS ? words[i].om : words[i].text))
                        return words[i].type;
        return _EXPFMT_TYPE_INVALID;
}

static int parse_comment(Parser *P, const char *p, const char *e, bool *ret_eof) {
        const char *kw, *name, *at;
        size_t n, name_len;
        ExpfmtMeta kind;
        int r;

        /* p at '#' */
        p++;
        if (P->format == EXPFMT_OPENMETRICS && e - p == 4 && memcmp(p, " EOF", 4) == 0) {
                *ret_eof = true;
                return 0;
        }
        if (p >= e || !IS(*p, C_BLANK))
                return 0; /* "#foo": a plain comment */
        p = skip_blanks(p, e);
        kw = p;
        n = token_len(p, e);
        if (n == 4 && memcmp(kw, "HELP", 4) == 0)
                kind = EXPFMT_META_HELP;
        else if (n == 4 && memcmp(kw, "TYPE", 4) == 0)
                kind = EXPFMT_META_TYPE;
        else if (n == 4 && memcmp(kw, "UNIT", 4) == 0)
                kind = EXPFMT_META_UNIT;
        else
                return 0; /* any other comment */
        p = skip_blanks(p + n, e);
        if (p == kw + n)
                return fail(P, -EINVAL, p, "expected a metric name after # %.4s", kw);

        P->scratch_used = 0;
        at = p;
        r = parse_metric_name(P, &p, e, &name, &name_len);
        if (r < 0)
                return r;
        if (p < e && !IS(*p, C_BLANK))
                return fail(P, -EINVAL, p, "invalid metric name in # %.4s", kw);
        p = skip_blanks(p, e);

        if (!(name_len == P->family_len && memcmp(name, P->family, name_len) == 0)) {
                /* A new family starts. */
                memcpy(P->family, name, name_len);
                P->family[name_len] = 0;
                P->family_len = name_len;
                P->family_type = EXPFMT_UNTYPED;
        }

        if (kind == EXPFMT_META_TYPE) {
                ExpfmtType t;
                size_t tn = token_len(p, e);

                t = parse_type_word(P->format, p, tn);
                if (t < 0)
                        return fail(P, -EINVAL, p, tn ? "invalid metric type '%.*s'" : "expected a metric type%.*s",
                                    (int) MIN(tn, (size_t) 32), p);
                if (skip_blanks(p + tn, e) != e)
                        return fail(P, -EINVAL, skip_blanks(p + tn, e), "unexpected text after the metric type");
                P->family_type = t;
        } else if (kind == EXPFMT_META_UNIT && P->format == EXPFMT_OPENMETRICS && p < e) {
                /* OpenMetrics: the metric name must end with _<unit>. */
                size_t un = (size_t) (e - p);
                if (!(name_len > un + 1 && name[name_len - un - 1] == '_' && memcmp(name + name_len - un, p, un) == 0))
                        return fail(P, -EINVAL, at, "metric name '%s' does not end with its unit '_%.*s'", name,
                                    (int) MIN(un, (size_t) 64), p);
        }

        if (P->cb && P->cb->metadata) {
                r = P->cb->metadata(kind, name, name_len, p, (size_t) (e - p), P->userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int expfmt_parse(ExpfmtFormat format, const char *data, size_t size, const ExpfmtLimits *limits,
                 const ExpfmtCallbacks *cb, void *userdata, ExpfmtStats *ret_stats, ExpfmtError *ret_error) {
        Parser P = {
                .format = format,
                .lim = limits ? *limits : EXPFMT_LIMITS_DEFAULT,
                .cb = cb,
                .userdata = userdata,
                .err = ret_error,
        };
        _cleanup_free_ void *mem = NULL;
        const char *p = data, *end = data + size;
        bool eof = false;
        size_t total;
        int r = 0;

        assert_return(format >= 0 && format < _EXPFMT_FORMAT_MAX, -EINVAL);
        assert_return(data || size == 0, -EINVAL);
        cls_init();

        if (ret_error)
                *ret_error = (ExpfmtError){};
        if (size > P.lim.max_body)
                return fail(&P, -E2BIG, NULL, "body of %zu bytes exceeds the limit of %zu", size, P.lim.max_body);
        if (P.lim.max_line == 0 || P.lim.max_line > SIZE_MAX / 4 || P.lim.max_labels > 100000)
                return -EINVAL;
        /* No name can be longer than its line. */
        P.lim.max_name = MIN(P.lim.max_name, P.lim.max_line);

        /* One allocation: scratch (2 lines), the label array, the family and last-name buffers. */
        P.scratch_size = 2 * P.lim.max_line + 16;
        total = P.scratch_size + (P.lim.max_labels + 1) * sizeof(ExpfmtLabel) + 2 * (P.lim.max_name + 1);
        mem = malloc(total);
        if (!mem)
                return -ENOMEM;
        P.labels = mem;
        P.scratch = (char *) (P.labels + P.lim.max_labels + 1);
        P.family = P.scratch + P.scratch_size;
        P.last_name = P.family + P.lim.max_name + 1;
        P.family[0] = 0;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *e = nl ?: end, *q;

                P.lineno++;
                P.line = p;
                P.stats.lines++;
                if ((size_t) (e - p) > P.lim.max_line) {
                        r = fail(&P, -E2BIG, NULL, "line of %zu bytes exceeds the limit of %zu", (size_t) (e - p),
                                 P.lim.max_line);
                        break;
                }
                q = skip_blanks(p, e);
                if (q == e) {
                        /* Empty lines are allowed in text, and tolerated in OpenMetrics. */
                } else if (eof) {
                        r = fail(&P, -EINVAL, q, "unexpected content after # EOF");
                        break;
                } else if (*q == '#') {
                        r = parse_comment(&P, q, e, &eof);
                        if (r < 0)
                                break;
                } else {
                        r = parse_sample(&P, q, e);
                        if (r < 0)
                                break;
                }
                p = nl ? nl + 1 : end;
        }
        if (r >= 0 && format == EXPFMT_OPENMETRICS && !eof) {
                P.line = NULL;
                r = fail(&P, -EINVAL, NULL, "missing '# EOF' at the end of OpenMetrics text");
        }
        if (r < 0)
                return r;
        if (ret_stats)
                *ret_stats = P.stats;
        return 0;
}
