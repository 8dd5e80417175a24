/* SPDX-License-Identifier: Apache-2.0 */

/* The daemon's own figures: decision entries counted through the log hook, refusal reasons,
 * job duration histograms, and a rendering that is valid exposition text. */

#include "test-util.h"

#include "expfmt.h"
#include "log.h"
#include "stats.h"

typedef struct Found {
        const char *name;
        const char *label, *value; /* one label to match, or NULL */
        double result;
        unsigned hits;
} Found;

static int on_sample(const ExpfmtSample *s, void *userdata) {
        Found *f = userdata;

        if (!streq(s->name, f->name))
                return 0;
        if (f->label) {
                bool match = false;
                for (size_t i = 0; i < s->n_labels; i++)
                        match = match ||
                                (streq(s->labels[i].name, f->label) && streq(s->labels[i].value, f->value));
                if (!match)
                        return 0;
        }
        f->result = s->value;
        f->hits++;
        return 0;
}

static char *render(void) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        assert_int_equal(stats_render(f), 0);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* The value of one sample in the rendering; fails unless exactly one matches. */
static double value_of(const char *name, const char *label, const char *value) {
        _cleanup_free_ char *text = render();
        Found f = {.name = name, .label = label, .value = value};
        ExpfmtCallbacks cb = {.sample = on_sample};
        ExpfmtError err = {};

        assert_int_equal(expfmt_parse(EXPFMT_TEXT, text, strlen(text), NULL, &cb, &f, NULL, &err), 0);
        if (f.hits != 1)
                fail_msg("%s{%s=\"%s\"}: %u matches in\n%s", name, strempty(label), strempty(value), f.hits,
                         text);
        return f.result;
}

static void test_events(void **state) {
        stats_reset();
        stats_observe_event(MK_MESSAGE_ROLLBACK, "rollback", "accuracy-floor");
        stats_observe_event(MK_MESSAGE_ROLLBACK, "rollback", NULL);
        stats_observe_event(MK_MESSAGE_ROLLBACK, "rollback", NULL);
        stats_observe_event(MK_MESSAGE_QUARANTINED, "quarantine", NULL);
        stats_observe_event(MK_MESSAGE_QUARANTINED, "unquarantine", NULL); /* a release, not counted */
        stats_observe_event(MK_MESSAGE_ACTIVATED, "activate", NULL);
        stats_observe_event(MK_MESSAGE_VERIFIED, "verify", NULL);
        stats_observe_event(MK_MESSAGE_PROMOTED, "promote", NULL);
        stats_observe_event(MK_MESSAGE_RECOMPRESSED, "recompress", NULL);
        stats_observe_event(MK_MESSAGE_CONFIG_REFUSED, NULL, NULL);
        stats_observe_event(MK_MESSAGE_RULE, "log", "r"); /* not a counter of its own */
        stats_observe_event(NULL, NULL, NULL);

        assert_int_equal(stats_get(STATS_ROLLBACKS_POLICY), 1);
        assert_int_equal(stats_get(STATS_ROLLBACKS_OTHER), 2);
        assert_int_equal(stats_get(STATS_QUARANTINES), 1);
        assert_int_equal(stats_get(STATS_ACTIVATIONS), 1);
        assert_int_equal(stats_get(STATS_UPDATES), 1);
        assert_int_equal(stats_get(STATS_PROMOTIONS), 1);
        assert_int_equal(stats_get(STATS_RECOMPRESSIONS), 1);
        assert_int_equal(stats_get(STATS_CONFIG_REFUSALS), 1);
        assert_true(value_of("modelkeeper_rollbacks_total", "trigger", "policy") == 1);
        assert_true(value_of("modelkeeper_rollbacks_total", "trigger", "other") == 2);
        assert_true(value_of("modelkeeper_quarantines_total", NULL, NULL) == 1);
}

static void test_log_hook(void **state) {
        stats_reset();
        stats_install();
        /* Counted whatever the log level: a decision is a decision even when not printed. */
        log_set_max_level(LOG_ERR);
        log_event(LOG_NOTICE, 0,
                  &(LogFields){.message_id = MK_MESSAGE_ROLLBACK,
                               .model = "m",
                               .version = "1",
                               .rule = "r",
                               .action = "rollback"},
                  "rolled back");
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_PROMOTED, .model = "m", .action = "promote"},
                  "promoted");
        log_info("not a decision entry");
        log_set_max_level(LOG_INFO);
        log_set_event_hook(NULL, NULL);
        assert_int_equal(stats_get(STATS_ROLLBACKS_POLICY), 1);
        assert_int_equal(stats_get(STATS_PROMOTIONS), 1);
}

static void test_refusals(void **state) {
        static const struct {
                int error;
                const char *reason;
        } cases[] = {
                {-EKEYREJECTED, "signature"},
                {-ENOKEY, "signature"},
                {-ESTALE, "expired"},
                {-ERANGE, "downgrade"},
                {-EEXIST, "version_reuse"},
                {-EXDEV, "wrong_target"},
                {-ETIME, "clock"},
                {-EFBIG, "too_large"},
                {-ENOSPC, "no_space"},
                {-EBADMSG, "malformed"},
                {-EIO, "other"},
                {0, "other"},
        };

        stats_reset();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_string_equal(stats_refusal_reason(cases[i].error), cases[i].reason);
        stats_count_refusal(-ERANGE);
        stats_count_refusal(-ERANGE);
        stats_count_refusal(-EKEYREJECTED);
        stats_count_refusal(-ENOKEY);
        assert_true(value_of("modelkeeper_release_refusals_total", "reason", "downgrade") == 2);
        assert_true(value_of("modelkeeper_release_refusals_total", "reason", "signature") == 2);
}

static void test_jobs(void **state) {
        char verb[32];

        stats_reset();
        stats_job_finished("import", 50 * USEC_PER_MSEC, 0);     /* le 0.1 */
        stats_job_finished("import", 2 * USEC_PER_SEC, 0);       /* le 5 */
        stats_job_finished("import", 7200 * USEC_PER_SEC, -EIO); /* only +Inf */
        stats_job_finished("gc", 300 * USEC_PER_MSEC, 0);
        assert_true(value_of("modelkeeper_job_duration_seconds_count", "verb", "import") == 3);
        assert_true(value_of("modelkeeper_job_duration_seconds_count", "verb", "gc") == 1);
        assert_true(value_of("modelkeeper_job_failed_total", "verb", "import") == 1);
        assert_true(value_of("modelkeeper_job_failed_total", "verb", "gc") == 0);
        {
                /* Cumulative buckets, up to +Inf = count. */
                _cleanup_free_ char *text = render();
                assert_non_null(strstr(
                        text, "modelkeeper_job_duration_seconds_bucket{verb=\"import\",le=\"0.1\"} 1\n"));
                assert_non_null(
                        strstr(text, "modelkeeper_job_duration_seconds_bucket{verb=\"gc\",le=\"0.1\"} 0\n"));
                assert_non_null(strstr(
                        text, "modelkeeper_job_duration_seconds_bucket{verb=\"import\",le=\"1\"} 1\n"));
                assert_non_null(strstr(
                        text, "modelkeeper_job_duration_seconds_bucket{verb=\"import\",le=\"5\"} 2\n"));
                assert_non_null(strstr(
                        text, "modelkeeper_job_duration_seconds_bucket{verb=\"import\",le=\"3600\"} 2\n"));
                assert_non_null(strstr(
                        text, "modelkeeper_job_duration_seconds_bucket{verb=\"import\",le=\"+Inf\"} 3\n"));
        }

        /* The label set stays bounded: odd verbs and the 17th verb on are "other". */
        stats_job_finished("Bad Verb\"", USEC_PER_SEC, 0);
        for (unsigned i = 0; i < 20; i++) {
                snprintf(verb, sizeof(verb), "verb%u", i);
                stats_job_finished(verb, USEC_PER_SEC, 0);
        }
        assert_true(value_of("modelkeeper_job_duration_seconds_count", "verb", "other") == 1 + 20 - 14);
}

static void test_render_is_valid(void **state) {
        _cleanup_free_ char *text = NULL;
        ExpfmtCallbacks cb = {};
        ExpfmtStats st = {};
        ExpfmtError err = {};

        stats_reset();
        stats_count(STATS_SCRAPES);
        stats_count_scrape_error(STATS_SCRAPE_TIMEOUT);
        stats_count_refusal(-ESTALE);
        stats_job_finished("activate", USEC_PER_SEC, 0);
        text = render();
        assert_int_equal(expfmt_parse(EXPFMT_TEXT, text, strlen(text), NULL, &cb, NULL, &st, &err), 0);
        assert_true(st.samples > 20);
        assert_true(value_of("modelkeeper_scrape_errors_total", "reason", "timeout") == 1);
        assert_true(value_of("modelkeeper_scrape_errors_total", "reason", "parse") == 0);
        assert_true(value_of("modelkeeper_scrapes_total", NULL, NULL) == 1);
        /* Every family announced once. */
        assert_null(strstr(strstr(text, "# TYPE modelkeeper_rollbacks_total") + 1,
                           "# TYPE modelkeeper_rollbacks_total"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_events),          cmocka_unit_test(test_log_hook),
                cmocka_unit_test(test_refusals),        cmocka_unit_test(test_jobs),
                cmocka_unit_test(test_render_is_valid),
        };

        log_setup();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
