/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <inttypes.h>
#include <time.h>

#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "metrics-file.h"
#include "model.h"
#include "stats.h"
#include "watch.h"

/* One daemon, one file: the writer's state lives here rather than in the Manager. */
static struct {
        Manager *manager;
        char *path;
        sd_event_source *timer;
        bool failing;
} writer;

/* Label values in the text format: backslash, double quote and newline escaped. */
static void put_label_value(FILE *f, const char *v) {
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        fputc('\\', f);
                if (*v == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*v, f);
        }
}

static void put_alert(const Model *model, const char *rule, RuleState state, void *userdata) {
        FILE *f = userdata;

        fprintf(f, "modelkeeper_rule_alerts{model=\"%s\",rule=\"", model->name);
        put_label_value(f, rule);
        fprintf(f, "\",state=\"%s\"} 1\n", rule_state_to_string(state));
}

int metrics_render(Manager *m, char **ret, size_t *ret_size) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0, by_state[_MODEL_STATE_MAX] = {};
        WatchTotals t;
        FILE *f;
        int r;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        r = stats_render(f);

        for (size_t i = 0; i < m->n_models; i++)
                by_state[model_get_state(m->models[i])]++;
        watch_totals(&t);

        fputs("# HELP modelkeeper_models Models, by state.\n# TYPE modelkeeper_models gauge\n", f);
        for (size_t k = 0; k < _MODEL_STATE_MAX; k++)
                fprintf(f, "modelkeeper_models{state=\"%s\"} %zu\n", model_state_to_string((ModelState) k),
                        by_state[k]);

        fputs("# HELP modelkeeper_rules Policy rules of all models, by state.\n# TYPE modelkeeper_rules "
              "gauge\n",
              f);
        for (size_t k = 0; k < _RULE_STATE_MAX; k++)
                fprintf(f, "modelkeeper_rules{state=\"%s\"} %u\n", rule_state_to_string((RuleState) k),
                        t.rules[k]);

        /* As Prometheus's ALERTS: one series per rule that is pending or firing. */
        fputs("# HELP modelkeeper_rule_alerts Rules that are pending or firing.\n"
              "# TYPE modelkeeper_rule_alerts gauge\n",
              f);
        watch_foreach_alert(put_alert, f);

        fprintf(f,
                "# HELP modelkeeper_scrape_targets Scrape targets, by whether the last scrape worked.\n"
                "# TYPE modelkeeper_scrape_targets gauge\n"
                "modelkeeper_scrape_targets{state=\"up\"} %zu\n"
                "modelkeeper_scrape_targets{state=\"down\"} %zu\n"
                "# HELP modelkeeper_stored_series Series kept for the policies.\n"
                "# TYPE modelkeeper_stored_series gauge\n"
                "modelkeeper_stored_series %zu\n"
                "# HELP modelkeeper_series_memory_bytes Memory of the stored series: used now, and the "
                "bound.\n"
                "# TYPE modelkeeper_series_memory_bytes gauge\n"
                "modelkeeper_series_memory_bytes{kind=\"used\"} %" PRIu64 "\n"
                "modelkeeper_series_memory_bytes{kind=\"bound\"} %" PRIu64 "\n"
                "# HELP modelkeeper_jobs Agent jobs, running and queued.\n"
                "# TYPE modelkeeper_jobs gauge\n"
                "modelkeeper_jobs{state=\"running\"} %u\n"
                "modelkeeper_jobs{state=\"queued\"} %u\n",
                t.targets, t.targets - t.targets_up, t.series, t.memory_used, t.memory_bound,
                job_runner_running(m->jobs), job_runner_pending(m->jobs));

        if (fclose(f) != 0 || r < 0)
                return -ENOMEM;
        if (ret_size)
                *ret_size = size;
        *ret = TAKE_PTR(text);
        return 0;
}

static uint64_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Replace the file atomically for its readers (temporary name, rename), without fsync: these are
 * figures of the moment, rewritten every 15 s, and an fsync would stall the event loop for as long
 * as the disk takes. */
static int write_replace_at(int dfd, const char *name, const char *data, size_t size) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        tmp = xasprintf(".#%s.tmp", name);
        if (!tmp)
                return -ENOMEM;
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, size);
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        return r;
}

static int metrics_file_write(void) {
        _cleanup_free_ char *text = NULL, *dir = NULL;
        _cleanup_close_ int dfd = -EBADF;
        uint64_t t0 = now_monotonic(), t_render;
        const char *base;
        size_t size = 0;
        int r;

        r = metrics_render(writer.manager, &text, &size);
        if (r < 0)
                return log_oom();
        t_render = now_monotonic() - t0;
        dir = path_dirname(writer.path);
        if (!dir)
                return log_oom();
        base = strrchr(writer.path, '/');
        base = base ? base + 1 : writer.path;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = dfd < 0 ? -errno : write_replace_at(dfd, base, text, size);
        if (r < 0) {
                /* Once, not every 15 s. */
                if (!writer.failing)
                        log_warning_errno(r, "Cannot write the metrics textfile %s: %m", writer.path);
                writer.failing = true;
                return r;
        }
        if (writer.failing)
                log_info("Metrics textfile %s written again.", writer.path);
        writer.failing = false;
        log_debug("Metrics textfile %s written (%zu bytes, rendered in %" PRIu64 " us, written in %" PRIu64
                  " us).",
                  writer.path, size, t_render, now_monotonic() - t0 - t_render);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) sd_event_source_set_time_relative(s, METRICS_FILE_INTERVAL);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        (void) metrics_file_write();
        return 0;
}

int metrics_file_setup(Manager *m) {
        const char *path = m->config ? m->config->daemon.metrics_textfile : NULL;
        int r;

        if (!path) {
                writer.timer = sd_event_source_disable_unref(writer.timer);
                writer.path = mfree(writer.path);
                writer.manager = NULL;
                return 0;
        }
        writer.manager = m;
        if (!streq_ptr(writer.path, path)) {
                free(writer.path);
                writer.path = strdup(path);
                if (!writer.path)
                        return log_oom();
                writer.failing = false;
        }
        if (!writer.timer) {
                /* The first file soon after start, when the models have been looked at once. */
                r = sd_event_add_time_relative(m->event, &writer.timer, CLOCK_BOOTTIME, USEC_PER_SEC,
                                               USEC_PER_SEC, on_timer, NULL);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the metrics textfile timer: %m");
        }
        return 0;
}

void metrics_file_stop(Manager *m) {
        if (writer.manager == m && writer.path)
                (void) metrics_file_write();
        writer.timer = sd_event_source_disable_unref(writer.timer);
        writer.path = mfree(writer.path);
        writer.manager = NULL;
}
