/* SPDX-License-Identifier: Apache-2.0 */

/* Scraping: the phase of targets, file:// paths, and a Scraper feeding a series store on the
 * daemon's loop — good files, broken ones (up == 0, never a crash), limits, a FIFO that must not
 * block, a refused connection, and the timer. */

#include <sys/stat.h>

#include "test-util.h"

#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "rules.h"
#include "scrape.h"
#include "stats.h"
#include "store-layout.h"

static void test_offset(void **state) {
        const uint64_t every = 10 * USEC_PER_SEC;
        unsigned per_second[10] = {};
        char name[16];

        assert_int_equal(scrape_offset("m", "http://a/metrics", every),
                         scrape_offset("m", "http://a/metrics", every));
        assert_int_not_equal(scrape_offset("m", "http://a/metrics", every),
                             scrape_offset("n", "http://a/metrics", every));
        assert_int_equal(scrape_offset("m", "x", 0), 0);
        /* A thousand models alike spread over the interval: no second gets twice its share. */
        for (unsigned i = 0; i < 1000; i++) {
                uint64_t o;

                snprintf(name, sizeof(name), "m%04u", i);
                o = scrape_offset(name, "http://127.0.0.1:8080/metrics", every);
                assert_true(o < every);
                per_second[o / USEC_PER_SEC]++;
        }
        for (unsigned i = 0; i < 10; i++)
                assert_true(per_second[i] > 50 && per_second[i] < 200);
}

static void test_file_path(void **state) {
        static const struct {
                const char *url, *path;
        } cases[] = {
                {"file:///var/lib/eval/metrics.prom", "/var/lib/eval/metrics.prom"},
                {"file://localhost/var/x.prom", "/var/x.prom"},
                {"file:///a%20b/c%2Fd.prom", "/a b/c/d.prom"},
                {"file:///a.prom?x=1", "/a.prom"},
                {"file://host/a.prom", NULL},
                {"file://a.prom", NULL},
                {"file:///a%00b", NULL},
                {"file:///a%zz", NULL},
                {"file:///a%2", NULL},
                {"http://x/metrics", NULL},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *p = scrape_file_path(cases[i].url);
                if (cases[i].path)
                        assert_string_equal(p, cases[i].path);
                else
                        assert_null(p);
        }
}

typedef struct Ctx {
        char *dir, *file;
        Manager *manager;
        ModelConfig *config;
        Policy *policy;
        SeriesStore *store;
        Scraper *scraper;
        unsigned done, ok;
} Ctx;

static void on_done(Scraper *s, bool success, void *userdata) {
        Ctx *c = userdata;
        c->done++;
        c->ok += success;
}

static void ctx_new(Ctx *c, const char *url, const char *extra) {
        _cleanup_free_ char *text = NULL, *path = NULL, *file_url = NULL;
        ConfigErrors e = {};
        PolicyError pe = {};
        char msg[256];

        *c = (Ctx){.dir = test_mkdtemp()};
        c->file = path_join(c->dir, "metrics.prom");
        assert_int_equal(manager_new(&c->manager), 0);
        /* url NULL: the file:// target c->file. */
        assert_true(asprintf(&file_url, "file://%s", c->file) > 0);
        assert_true(asprintf(&text,
                             "model: m\nmetrics:\n  scrape: {url: \"%s\", every: 1s%s}\n"
                             "rules:\n  - {name: x, when: x > 1, action: log}\n"
                             "  - {name: down, when: up == 0, action: log}\n",
                             url ?: file_url, extra) > 0);
        path = path_join(c->dir, "m.yaml");
        if (model_config_load(path, text, strlen(text), NULL, &c->config, &e) < 0)
                fail_msg("%s", e.lines[0]);
        assert_int_equal(policy_new(c->config, &c->policy, &pe), 0);
        assert_int_equal(policy_new_store(c->policy, &c->store, msg, sizeof(msg)), 0);
        assert_int_equal(scraper_new(c->manager, "m", &c->config->metrics.targets[0], 0, c->store, on_done,
                                     c, &c->scraper),
                         0);
}

static void ctx_done(Ctx *c) {
        scraper_free(c->scraper);
        series_store_free(c->store);
        policy_free(c->policy);
        model_config_free(c->config);
        manager_free(c->manager);
        (void) rm_rf_at(AT_FDCWD, c->dir);
        free(c->file);
        free(c->dir);
}

static void write_metrics(Ctx *c, const char *text) {
        _cleanup_free_ char *tmp = NULL;

        assert_true(asprintf(&tmp, "%s.tmp", c->file) > 0);
        {
                FILE *f = fopen(tmp, "w");
                assert_non_null(f);
                fputs(text, f);
                assert_int_equal(fclose(f), 0);
        }
        assert_int_equal(rename(tmp, c->file), 0);
}

/* States of the rules x (x > 1) and down (up == 0) a little after the last scrape. */
static void expect_rules(Ctx *c, RuleState x, RuleState down) {
        const RuleEvent *ev;
        size_t n;

        assert_int_equal(
                policy_eval_rules(c->policy, c->store, now_realtime_usec() + USEC_PER_SEC, true, &ev, &n),
                0);
        assert_int_equal(n, 2);
        assert_int_equal(ev[0].to, x);
        assert_int_equal(ev[1].to, down);
}

static void test_file_targets(void **state) {
        Ctx c;
        ScraperInfo si;

        stats_reset();
        ctx_new(&c, NULL, "");

        write_metrics(&c, "# TYPE x gauge\nx{a=\"1\"} 5\nunrelated_total 3\n");
        assert_int_equal(scraper_trigger(c.scraper), 0);
        assert_int_equal(c.done, 1);
        assert_int_equal(c.ok, 1);
        scraper_info(c.scraper, &si);
        assert_true(si.up);
        assert_null(si.last_error);
        assert_int_equal(si.last_samples, 1); /* unrelated_total skipped by name */
        expect_rules(&c, RULE_FIRING, RULE_INACTIVE);

        /* Broken: nothing committed but up == 0 and staleness. */
        write_metrics(&c, "x{a=\"1\" 5\n");
        assert_int_equal(scraper_trigger(c.scraper), 0);
        assert_int_equal(c.done, 2);
        assert_int_equal(c.ok, 1);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_non_null(strstr(si.last_error, "line 1, column"));
        assert_int_equal(stats_get_scrape_errors(STATS_SCRAPE_PARSE), 1);
        expect_rules(&c, RULE_INACTIVE, RULE_FIRING);

        /* Back. */
        write_metrics(&c, "x{a=\"1\"} 7\n");
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_true(si.up);
        expect_rules(&c, RULE_FIRING, RULE_INACTIVE);

        /* Missing. */
        assert_int_equal(unlink(c.file), 0);
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_non_null(strstr(si.last_error, "No such file"));
        assert_int_equal(stats_get_scrape_errors(STATS_SCRAPE_FILE), 1);

        /* A FIFO: refused at once, not read (a read would block the loop). */
        assert_int_equal(mkfifo(c.file, 0600), 0);
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_non_null(strstr(si.last_error, "not a regular file"));
        assert_int_equal(stats_get(STATS_SCRAPES), 5);
        ctx_done(&c);
}

static void test_limits(void **state) {
        _cleanup_free_ char *big = NULL;
        Ctx c;
        ScraperInfo si;

        stats_reset();
        ctx_new(&c, NULL, ", max_body: 1KiB, max_series: 3");
        big = malloc(2048);
        assert_non_null(big);
        memset(big, '#', 2047);
        big[0] = '\n';
        big[2047] = 0;
        write_metrics(&c, big);
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_non_null(strstr(si.last_error, "larger than max_body"));
        assert_int_equal(stats_get_scrape_errors(STATS_SCRAPE_TOO_LARGE), 1);

        /* max_series counts every sample line, skipped ones too. */
        write_metrics(&c, "a 1\nb 2\nc 3\nx 4\n");
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_int_equal(stats_get_scrape_errors(STATS_SCRAPE_LIMIT), 1);
        write_metrics(&c, "a 1\nx 4\n");
        assert_int_equal(scraper_trigger(c.scraper), 0);
        scraper_info(c.scraper, &si);
        assert_true(si.up);

        /* A line longer than the scrape limit. */
        {
                _cleanup_free_ char *line = malloc(SCRAPE_MAX_LINE + 16);
                assert_non_null(line);
                memset(line, 'a', SCRAPE_MAX_LINE + 8);
                memcpy(line + SCRAPE_MAX_LINE + 8, " 1\n", 4);
                ctx_done(&c);
                ctx_new(&c, NULL, "");
                write_metrics(&c, line);
                assert_int_equal(scraper_trigger(c.scraper), 0);
                scraper_info(c.scraper, &si);
                assert_false(si.up);
                assert_non_null(strstr(si.last_error, "exceeds the limit"));
        }
        ctx_done(&c);
}

static void run_until(Ctx *c, unsigned done, uint64_t timeout) {
        sd_event *e = c->manager->event;
        uint64_t end = now_realtime_usec() + timeout;

        while (c->done < done && now_realtime_usec() < end)
                assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        assert_true(c->done >= done);
}

static void test_timer_and_refused_connection(void **state) {
        Ctx c;
        ScraperInfo si;

        stats_reset();
        /* Port 1 on loopback: nothing listens, the connection is refused at once. */
        ctx_new(&c, "http://127.0.0.1:1/metrics", ", timeout: 900ms");
        /* The first scrape comes within one interval (its phase), the next one interval later. */
        run_until(&c, 2, 5 * USEC_PER_SEC);
        assert_int_equal(c.ok, 0);
        scraper_info(c.scraper, &si);
        assert_false(si.up);
        assert_non_null(si.last_error);
        assert_int_equal(stats_get_scrape_errors(STATS_SCRAPE_TRANSPORT), c.done);
        expect_rules(&c, RULE_INACTIVE, RULE_FIRING);
        ctx_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_offset),
                cmocka_unit_test(test_file_path),
                cmocka_unit_test(test_file_targets),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_timer_and_refused_connection),
        };

        log_setup();
        policies_install_config_validator();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
