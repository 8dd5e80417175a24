/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <math.h>

#include "expfmt.h"
#include "fileio.h"

typedef struct Collect {
        unsigned n;
        unsigned want_calls;
        const char *only; /* want() says yes to this name only */
        char names[64][128];
        char labels[64][256];
        double values[64];
        int64_t ts[64];
        bool has_ts[64];
        ExpfmtType types[64];
        bool created[64];
        int stop_at; /* return -ECANCELED at this sample (1-based), 0: never */
        unsigned meta;
} Collect;

static int on_sample(const ExpfmtSample *s, void *userdata) {
        Collect *c = userdata;
        size_t off = 0;

        if (c->stop_at && (int) c->n + 1 == c->stop_at)
                return -ECANCELED;
        if (c->n < 64) {
                snprintf(c->names[c->n], sizeof(c->names[0]), "%s", s->name);
                assert_int_equal(strlen(s->name), s->name_len);
                c->labels[c->n][0] = 0;
                for (size_t i = 0; i < s->n_labels; i++) {
                        assert_int_equal(strlen(s->labels[i].value), s->labels[i].value_len);
                        off += (size_t) snprintf(c->labels[c->n] + off, sizeof(c->labels[0]) - off, "%s%s=%s",
                                                 i ? "," : "", s->labels[i].name, s->labels[i].value);
                }
                c->values[c->n] = s->value;
                c->ts[c->n] = s->timestamp_ms;
                c->has_ts[c->n] = s->has_timestamp;
                c->types[c->n] = s->type;
                c->created[c->n] = s->created;
        }
        c->n++;
        return 0;
}

static bool on_want(const char *name, size_t len, void *userdata) {
        Collect *c = userdata;
        c->want_calls++;
        return !c->only || (strlen(c->only) == len && memcmp(c->only, name, len) == 0);
}

static int on_meta(ExpfmtMeta kind, const char *name, size_t name_len, const char *text, size_t text_len,
                   void *userdata) {
        Collect *c = userdata;
        c->meta++;
        return 0;
}

static const ExpfmtCallbacks cbs = {.sample = on_sample, .metadata = on_meta};
static const ExpfmtCallbacks cbs_want = {.sample = on_sample, .want = on_want};

static int parse(ExpfmtFormat f, const char *text, Collect *c, ExpfmtError *e) {
        return expfmt_parse(f, text, strlen(text), NULL, &cbs, c, NULL, e);
}

static void expect_error(ExpfmtFormat f, const char *text, int r_expected, const char *error) {
        Collect c = {};
        ExpfmtError e = {};
        char got[256];
        int r = parse(f, text, &c, &e);

        snprintf(got, sizeof(got), "%u:%u: %s", e.line, e.column, e.message);
        if (r != r_expected || !streq(got, error))
                fail_msg("input %s\nexpected %d \"%s\"\n     got %d \"%s\"", text, r_expected, error, r, got);
}

static void test_basic(void **state) {
        Collect c = {};
        ExpfmtError e = {};

        assert_int_equal(parse(EXPFMT_TEXT,
                               "# HELP foo Some help \\n with escapes\n"
                               "# TYPE foo counter\n"
                               "foo 1\n"
                               "foo{a=\"b\"} 2.5 1700000000000\n"
                               "  bar{ x = \"1\" , y=\"2\", } -3e2\n"
                               "baz NaN\n"
                               "baz{q=\"\"} +Inf\n"
                               "baz{q=\"x\"} -Inf -5\n"
                               "\n"
                               "# a plain comment\n"
                               "#nospace comment\n",
                               &c, &e),
                         0);
        assert_int_equal(c.n, 6);
        assert_int_equal(c.meta, 2);
        assert_string_equal(c.names[0], "foo");
        assert_int_equal(c.types[0], EXPFMT_COUNTER);
        assert_false(c.has_ts[0]);
        assert_string_equal(c.labels[1], "a=b");
        assert_true(c.values[1] == 2.5);
        assert_true(c.has_ts[1]);
        assert_true(c.ts[1] == INT64_C(1700000000000));
        assert_string_equal(c.names[2], "bar");
        assert_int_equal(c.types[2], EXPFMT_UNTYPED);
        assert_string_equal(c.labels[2], "x=1,y=2");
        assert_true(c.values[2] == -300);
        assert_true(isnan(c.values[3]));
        assert_true(isinf(c.values[4]) && c.values[4] > 0);
        assert_string_equal(c.labels[4], "q=");
        assert_true(isinf(c.values[5]) && c.values[5] < 0);
        assert_true(c.ts[5] == -5);
}

static void test_escapes(void **state) {
        Collect c = {};
        ExpfmtError e = {};

        assert_int_equal(parse(EXPFMT_TEXT, "m{a=\"x\\\\y\\\"z\\nw\",b=\"ünï\"} 1\n", &c, &e), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.labels[0], "a=x\\y\"z\nw,b=ünï");

        /* the UTF-8 forms: quoted metric name first in the braces, quoted label names */
        memset(&c, 0, sizeof(c));
        assert_int_equal(parse(EXPFMT_TEXT,
                               "{\"my.metric\", a=\"b\"} 1\n"
                               "{\"my.metric\"} 2\n"
                               "{\"my\\\"q\",\"my.label\"=\"v\",} 3\n"
                               "# TYPE \"my.counter\" counter\n"
                               "{\"my.counter\"} 4\n",
                               &c, &e),
                         0);
        assert_int_equal(c.n, 4);
        assert_string_equal(c.names[0], "my.metric");
        assert_string_equal(c.labels[0], "a=b");
        assert_string_equal(c.labels[1], "");
        assert_string_equal(c.names[2], "my\"q");
        assert_string_equal(c.labels[2], "my.label=v");
        assert_int_equal(c.types[3], EXPFMT_COUNTER);
}

static void test_errors(void **state) {
        expect_error(EXPFMT_TEXT, "foo\n", -EINVAL, "1:4: expected a value, got end of line");
        expect_error(EXPFMT_TEXT, "ok 1\nfoo{a=\"b\" 1\n", -EINVAL, "2:11: expected ',' or '}' after a label value");
        expect_error(EXPFMT_TEXT, "foo{a=b} 1\n", -EINVAL, "1:7: expected '\"' to start the value of label 'a'");
        expect_error(EXPFMT_TEXT, "foo{a=\"\\q\"} 1\n", -EINVAL, "1:8: invalid escape sequence '\\q' in label value");
        expect_error(EXPFMT_TEXT, "foo{a=\"x} 1\n", -EINVAL, "1:7: unterminated quoted label value");
        expect_error(EXPFMT_TEXT, "foo 1 2 3\n", -EINVAL, "1:9: unexpected text after the timestamp");
        expect_error(EXPFMT_TEXT, "foo bar\n", -EINVAL, "1:5: invalid value 'bar'");
        expect_error(EXPFMT_TEXT, "foo 1 1.5\n", -EINVAL, "1:7: invalid timestamp '1.5' (expected integer milliseconds)");
        expect_error(EXPFMT_TEXT, "foo{a=\"1\",a=\"2\"} 1\n", -EINVAL, "1:11: duplicate label name 'a'");
        expect_error(EXPFMT_TEXT, "foo{1a=\"1\"} 1\n", -EINVAL, "1:5: expected a label name or '}'");
        expect_error(EXPFMT_TEXT, "foo{a=\"1\"}1\n", -EINVAL, "1:11: expected a blank before the value");
        expect_error(EXPFMT_TEXT, "9foo 1\n", -EINVAL, "1:1: expected a metric name, '#' or an empty line");
        expect_error(EXPFMT_TEXT, "# TYPE foo countr\n", -EINVAL, "1:12: invalid metric type 'countr'");
        expect_error(EXPFMT_TEXT, "# TYPE foo gaugehistogram\n", -EINVAL, "1:12: invalid metric type 'gaugehistogram'");
        expect_error(EXPFMT_TEXT, "# TYPE foo counter extra\n", -EINVAL, "1:20: unexpected text after the metric type");
        expect_error(EXPFMT_TEXT, "# TYPE h histogram\nh_bucket{x=\"1\"} 1\n", -EINVAL,
                     "2:1: histogram bucket 'h_bucket' without an 'le' label");
        expect_error(EXPFMT_TEXT, "# TYPE h histogram\nh_bucket{le=\"abc\"} 1\n", -EINVAL, "2:1: invalid 'le' value \"abc\"");
        expect_error(EXPFMT_TEXT, "# TYPE s summary\ns 1\n", -EINVAL, "2:1: summary sample 's' without a 'quantile' label");
        expect_error(EXPFMT_TEXT, "{a=\"b\"} 1\n", -EINVAL, "1:2: expected a quoted metric name after '{'");
        expect_error(EXPFMT_TEXT, "{\"a\"=\"b\"} 1\n", -EINVAL, "1:1: metric name missing before the labels");
        expect_error(EXPFMT_TEXT, "foo{a=\"\xff\"} 1\n", -EINVAL, "1:7: label value is not valid UTF-8");
        /* exemplars are OpenMetrics only */
        expect_error(EXPFMT_TEXT, "foo 1 # {a=\"b\"} 1\n", -EINVAL, "1:7: invalid timestamp '#' (expected integer milliseconds)");
        expect_error(EXPFMT_OPENMETRICS, "foo 1\n", -EINVAL, "1:0: missing '# EOF' at the end of OpenMetrics text");
        expect_error(EXPFMT_OPENMETRICS, "foo 1\n# EOF\nbar 2\n", -EINVAL, "3:1: unexpected content after # EOF");
        expect_error(EXPFMT_OPENMETRICS, "foo_total 1 # {a=\"b\" 1\n# EOF\n", -EINVAL,
                     "1:22: expected ',' or '}' after a label value");
        expect_error(EXPFMT_OPENMETRICS, "foo 1 1e999x\n# EOF\n", -EINVAL, "1:7: invalid timestamp '1e999x'");
        expect_error(EXPFMT_OPENMETRICS, "# TYPE foo_seconds gauge\n# UNIT foo_seconds bytes\n# EOF\n", -EINVAL,
                     "2:8: metric name 'foo_seconds' does not end with its unit '_bytes'");
        expect_error(EXPFMT_OPENMETRICS, "# TYPE foo untyped\n# EOF\n", -EINVAL, "1:12: invalid metric type 'untyped'");
}

static void test_openmetrics(void **state) {
        Collect c = {};
        ExpfmtError e = {};

        assert_int_equal(parse(EXPFMT_OPENMETRICS,
                               "# TYPE foo counter\n"
                               "# UNIT foo_seconds seconds\n"
                               "# HELP foo help\n"
                               "# TYPE foo counter\n"
                               "foo_total{a=\"1\"} 17 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879602.123\n"
                               "foo_created{a=\"1\"} 1520430000.123\n"
                               "# TYPE h histogram\n"
                               "h_bucket{le=\"0.5\"} 1 # {id=\"x\"} 0.3\n"
                               "h_bucket{le=\"+Inf\"} 2\n"
                               "h_count 2\n"
                               "h_sum 1.1\n"
                               "# TYPE s summary\n"
                               "s{quantile=\"0.9\"} 3\n"
                               "s_count 5\n"
                               "# TYPE st stateset\n"
                               "st{st=\"a\"} 1\n"
                               "# EOF\n",
                               &c, &e),
                         0);
        assert_int_equal(c.n, 9);
        assert_string_equal(c.names[0], "foo_total");
        assert_int_equal(c.types[0], EXPFMT_COUNTER);
        assert_true(c.has_ts[0]);
        assert_true(c.ts[0] == INT64_C(1520879607789));
        assert_true(c.created[1]);
        assert_int_equal(c.types[2], EXPFMT_HISTOGRAM);
        assert_string_equal(c.labels[3], "le=+Inf");
        assert_int_equal(c.types[6], EXPFMT_SUMMARY);
        assert_int_equal(c.types[8], EXPFMT_STATESET);

        /* # EOF without a final newline, and with one */
        memset(&c, 0, sizeof(c));
        assert_int_equal(parse(EXPFMT_OPENMETRICS, "a 1\n# EOF", &c, &e), 0);
        assert_int_equal(parse(EXPFMT_OPENMETRICS, "# EOF\n", &c, &e), 0);
        /* in text, "# EOF" is a comment and text may follow */
        memset(&c, 0, sizeof(c));
        assert_int_equal(parse(EXPFMT_TEXT, "# EOF\na 1\n", &c, &e), 0);
        assert_int_equal(c.n, 1);
}

static void test_limits(void **state) {
        ExpfmtLimits l = EXPFMT_LIMITS_DEFAULT;
        ExpfmtError e = {};
        Collect c = {};
        char big[600];
        int r;

        l.max_body = 10;
        r = expfmt_parse(EXPFMT_TEXT, "foo 1\nbar 2\n", 12, &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_string_equal(e.message, "body of 12 bytes exceeds the limit of 10");

        l = EXPFMT_LIMITS_DEFAULT;
        l.max_line = 100;
        memset(big, 'a', sizeof(big));
        memcpy(big + 200, " 1\n", 4);
        r = expfmt_parse(EXPFMT_TEXT, big, strlen(big), &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_int_equal(e.line, 1);
        assert_string_equal(e.message, "line of 202 bytes exceeds the limit of 100");

        l = EXPFMT_LIMITS_DEFAULT;
        l.max_labels = 2;
        r = expfmt_parse(EXPFMT_TEXT, "a{x=\"1\",y=\"2\",z=\"3\"} 1\n", 23, &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_string_equal(e.message, "more than 2 labels");
        assert_int_equal(e.column, 15);

        l = EXPFMT_LIMITS_DEFAULT;
        l.max_name = 3;
        r = expfmt_parse(EXPFMT_TEXT, "abcd 1\n", 7, &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_string_equal(e.message, "metric name of 4 bytes exceeds the limit of 3");
        r = expfmt_parse(EXPFMT_TEXT, "a{long=\"1\"} 1\n", 14, &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_string_equal(e.message, "label name of 4 bytes exceeds the limit of 3");

        l = EXPFMT_LIMITS_DEFAULT;
        l.max_value = 3;
        r = expfmt_parse(EXPFMT_TEXT, "a{x=\"abc\"} 1\na{x=\"abcd\"} 1\n", 27, &l, &cbs, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_int_equal(e.line, 2);
        assert_string_equal(e.message, "label value of 4 bytes exceeds the limit of 3");

        /* max_series counts skipped lines too */
        l = EXPFMT_LIMITS_DEFAULT;
        l.max_series = 2;
        memset(&c, 0, sizeof(c));
        c.only = "nothing";
        r = expfmt_parse(EXPFMT_TEXT, "a 1\nb 2\nc 3\n", 12, &l, &cbs_want, &c, NULL, &e);
        assert_int_equal(r, -E2BIG);
        assert_int_equal(e.line, 3);
        assert_string_equal(e.message, "more than 2 samples in one exposition");
}

static void test_want_and_stop(void **state) {
        Collect c = {.only = "keep"};
        ExpfmtStats st;
        ExpfmtError e;
        const char *text = "keep 1\nskip{broken 2\nskip 3\nskip 4\nkeep{a=\"b\"} 5\nkeep 6\n";

        /* A skipped line is not parsed: its broken labels do not matter. */
        assert_int_equal(expfmt_parse(EXPFMT_TEXT, text, strlen(text), NULL, &cbs_want, &c, &st, &e), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(st.samples, 6);
        assert_int_equal(st.skipped, 3);
        /* consecutive equal names ask want() once: keep, skip, keep */
        assert_int_equal(c.want_calls, 3);

        memset(&c, 0, sizeof(c));
        c.stop_at = 2;
        assert_int_equal(expfmt_parse(EXPFMT_TEXT, "a 1\nb 2\nc 3\n", 12, NULL, &cbs, &c, NULL, &e), -ECANCELED);
        assert_int_equal(c.n, 1);
}

static void test_float(void **state) {
        static const struct {
                const char *s;
                double v;
        } ok[] = {
                {"0", 0},        {"1", 1},         {"-1.5", -1.5},    {".5", 0.5},       {"1.", 1},
                {"1e3", 1000},   {"1E-3", 0.001},  {"+2", 2},         {"0.1", 0.1},      {"123456789012345678901234", 123456789012345678901234.0},
                {"3.14159265358979323846", 3.14159265358979323846}, {"1e-30", 1e-30}, {"2.2250738585072014e-308", 2.2250738585072014e-308},
        };
        static const char *const bad[] = {"", "-", "e3", "1e", "1x", "0x10", "--1", "1.2.3", "in", "+NaN", " 1"};
        double v;

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                assert_int_equal(expfmt_parse_float(ok[i].s, strlen(ok[i].s), &v), 0);
                if (v != ok[i].v)
                        fail_msg("%s: got %.17g want %.17g", ok[i].s, v, ok[i].v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (expfmt_parse_float(bad[i], strlen(bad[i]), &v) >= 0)
                        fail_msg("'%s' parsed", bad[i]);
        assert_int_equal(expfmt_parse_float("Inf", 3, &v), 0);
        assert_true(isinf(v) && v > 0);
        assert_int_equal(expfmt_parse_float("-inf", 4, &v), 0);
        assert_true(isinf(v) && v < 0);
        assert_int_equal(expfmt_parse_float("+Infinity", 9, &v), 0);
        assert_true(isinf(v) && v > 0);
        assert_int_equal(expfmt_parse_float("NaN", 3, &v), 0);
        assert_true(isnan(v));

        assert_int_equal(expfmt_format_from_content_type(NULL), EXPFMT_TEXT);
        assert_int_equal(expfmt_format_from_content_type("text/plain; version=0.0.4"), EXPFMT_TEXT);
        assert_int_equal(expfmt_format_from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                         EXPFMT_OPENMETRICS);
}

/* The real files from Prometheus's own test data. */
static unsigned count_sample_lines(const char *t, size_t n) {
        unsigned k = 0;
        const char *p = t, *e = t + n;

        while (p < e) {
                const char *nl = memchr(p, '\n', (size_t) (e - p));
                const char *le = nl ?: e;
                if (le > p && *p != '#')
                        k++;
                p = nl ? nl + 1 : e;
        }
        return k;
}

static int count_cb(const ExpfmtSample *s, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_real_files(void **state) {
        static const struct {
                const char *name;
                ExpfmtFormat format;
        } files[] = {
                {"alltypes.237mfs.prom.txt", EXPFMT_TEXT},
                {"alltypes.237mfs.nometa.prom.txt", EXPFMT_TEXT},
                {"metrics-test.prom", EXPFMT_TEXT},
                {"alltypes.5mfs.om.txt", EXPFMT_OPENMETRICS},
                {"1histogram.om.txt", EXPFMT_OPENMETRICS},
        };
        static const ExpfmtCallbacks cb = {.sample = count_cb};
        const char *d = test_shared_data();
        unsigned tested = 0;

        if (!d)
                skip();
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                ExpfmtError e = {};
                ExpfmtStats st;
                unsigned n = 0;
                size_t size;
                int r;

                assert_true(asprintf(&path, "%s/prometheus/%s", d, files[i].name) > 0);
                if (read_full_file(path, 64 * 1024 * 1024, &text, &size) < 0)
                        continue;
                r = expfmt_parse(files[i].format, text, size, NULL, &cb, &n, &st, &e);
                if (r < 0)
                        fail_msg("%s:%u:%u: %s", files[i].name, e.line, e.column, e.message);
                assert_int_equal(n, count_sample_lines(text, size));
                assert_int_equal(st.samples, n);
                /* the other format must not accept OpenMetrics-only syntax silently */
                if (files[i].format == EXPFMT_OPENMETRICS && strstr(text, " # {"))
                        assert_true(expfmt_parse(EXPFMT_TEXT, text, size, NULL, &cb, &n, NULL, &e) < 0);
                tested++;
        }
        if (tested == 0)
                skip();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic),      cmocka_unit_test(test_escapes), cmocka_unit_test(test_errors),
                cmocka_unit_test(test_openmetrics), cmocka_unit_test(test_limits), cmocka_unit_test(test_want_and_stop),
                cmocka_unit_test(test_float),      cmocka_unit_test(test_real_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
