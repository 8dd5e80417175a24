/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "expfmt.h"
#include "fileio.h"
#include "http.h"
#include "log.h"
#include "manager.h"
#include "scrape.h"
#include "stats.h"

struct Scraper {
        Manager *manager;
        char *model;
        const ScrapeTarget *target;
        unsigned index;
        SeriesStore *store;
        char *file_path; /* file:// targets */
        ExpfmtLimits limits;

        sd_event_source *timer;
        uint64_t next;        /* CLOCK_BOOTTIME of the next scrape */
        HttpRequest *request; /* in flight */
        uint64_t started_realtime, started_boottime;

        bool up, ever;
        uint64_t scrapes, failures, last_duration;
        size_t last_bytes, last_samples;
        char last_error[256];

        ScrapeDoneFn done;
        void *userdata;
};

/* FNV-1a over model, NUL, url: cheap and stable across restarts and builds. */
uint64_t scrape_offset(const char *model, const char *url, uint64_t every) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (const char *p = model; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
        h = (h ^ 0) * UINT64_C(0x100000001b3);
        for (const char *p = url; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
        return every > 0 ? h % every : 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

char *scrape_file_path(const char *url) {
        const char *p = startswith(url, "file://");
        _cleanup_free_ char *path = NULL;
        size_t n = 0;

        if (!p)
                return NULL;
        if (startswith(p, "localhost/"))
                p += strlen("localhost");
        if (*p != '/')
                return NULL;
        path = malloc(strlen(p) + 1);
        if (!path)
                return NULL;
        for (; *p && *p != '?' && *p != '#'; p++) {
                if (*p == '%') {
                        int a = unhex(p[1]), b = a >= 0 ? unhex(p[2]) : -1;
                        if (a < 0 || b < 0 || (a == 0 && b == 0))
                                return NULL;
                        path[n++] = (char) (a * 16 + b);
                        p += 2;
                } else
                        path[n++] = *p;
        }
        path[n] = 0;
        return TAKE_PTR(path);
}

static uint64_t now_clock(Manager *m, clockid_t clock) {
        uint64_t t = 0;

        if (sd_event_now(m->event, clock, &t) < 0) {
                struct timespec ts;
                (void) clock_gettime(clock, &ts);
                t = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
        }
        return t;
}

static void scrape_report(Scraper *s, bool ok) {
        if (ok && !s->up) {
                /* Quiet at start-up: a thousand targets coming up are not news; recoveries are. */
                if (s->ever)
                        log_info("Model %s: scrape target %s is up again.", s->model, s->target->url);
                else
                        log_debug("Model %s: scrape target %s is up.", s->model, s->target->url);
        } else if (!ok && (s->up || !s->ever))
                log_warning("Model %s: scraping %s failed: %s (up == 0 until it recovers).", s->model,
                            s->target->url, s->last_error);
        s->up = ok;
        s->ever = true;
}

/* Feed the store with one exposition (or nothing, for a failed transfer) and report. */
static void scrape_complete(Scraper *s, bool ok, StatsScrapeError why, const char *body, size_t size,
                            const char *content_type) {
        ExpfmtStats st = {};
        int r;

        s->request = NULL;
        s->scrapes++;
        s->last_bytes = size;
        s->last_samples = 0;
        s->last_duration = now_clock(s->manager, CLOCK_BOOTTIME) - s->started_boottime;
        stats_count(STATS_SCRAPES);

        (void) series_store_begin_scrape(s->store, s->index);
        if (ok) {
                ExpfmtError err = {};

                r = expfmt_parse(expfmt_format_from_content_type(content_type), body, size, &s->limits,
                                 &series_store_expfmt_callbacks, s->store, &st, &err);
                if (r < 0) {
                        ok = false;
                        why = r == -E2BIG ? STATS_SCRAPE_LIMIT : STATS_SCRAPE_PARSE;
                        if (r == -EINVAL || r == -E2BIG)
                                snprintf(s->last_error, sizeof(s->last_error), "line %u, column %u: %s",
                                         err.line, err.column, err.message);
                        else
                                snprintf(s->last_error, sizeof(s->last_error),
                                         "cannot store the samples: %s", strerror(-r));
                } else
                        s->last_samples = st.samples - st.skipped;
        }
        (void) series_store_end_scrape(s->store, s->index, s->started_realtime, ok);
        if (ok)
                s->last_error[0] = 0;
        else {
                s->failures++;
                stats_count_scrape_error(why);
        }
        scrape_report(s, ok);
        if (s->done)
                s->done(s, ok, s->userdata);
}

static void on_http_done(HttpRequest *req, int error, long status, const char *body, size_t size,
                         const char *reason, void *userdata) {
        Scraper *s = userdata;
        StatsScrapeError why = STATS_SCRAPE_TRANSPORT;
        bool ok = false;

        if (error == -ETIMEDOUT) {
                why = STATS_SCRAPE_TIMEOUT;
                snprintf(s->last_error, sizeof(s->last_error), "timed out: %s", reason);
        } else if (error == -EFBIG) {
                why = STATS_SCRAPE_TOO_LARGE;
                snprintf(s->last_error, sizeof(s->last_error), "%s", reason);
        } else if (error < 0)
                snprintf(s->last_error, sizeof(s->last_error), "%s", reason);
        else if (status != 200) {
                why = STATS_SCRAPE_STATUS;
                snprintf(s->last_error, sizeof(s->last_error), "HTTP status %ld", status);
        } else
                ok = true;
        scrape_complete(s, ok, why, body, ok ? size : 0, ok ? http_request_content_type(req) : NULL);
}

static void scrape_file(Scraper *s) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        struct stat st;
        int r;

        /* O_NONBLOCK: a FIFO put there must not block the loop (it is refused below anyway). */
        fd = open(s->file_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                r = -errno;
        else if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        else
                r = read_full_fd(fd, s->target->max_body, &buf, &size);
        if (r < 0) {
                snprintf(s->last_error, sizeof(s->last_error), "%s: %s", s->file_path,
                         r == -EBADFD  ? "not a regular file"
                         : r == -EFBIG ? "larger than max_body"
                                       : strerror(-r));
                scrape_complete(s, false, r == -EFBIG ? STATS_SCRAPE_TOO_LARGE : STATS_SCRAPE_FILE, NULL, 0,
                                NULL);
                return;
        }
        scrape_complete(s, true, STATS_SCRAPE_FILE, buf, size, NULL);
}

static int scrape_start(Scraper *s) {
        HttpRequestSpec spec = {
                .url = s->target->url,
                .accept = SCRAPE_ACCEPT,
                .tls = &s->target->tls,
                .timeout = s->target->timeout,
                .max_body = s->target->max_body,
                .gzip = true,
                .done = on_http_done,
                .userdata = s,
        };
        int r;

        if (s->request) {
                log_debug("Model %s: the previous scrape of %s is still running; skipping one.", s->model,
                          s->target->url);
                return 0;
        }
        s->started_realtime = now_clock(s->manager, CLOCK_REALTIME);
        s->started_boottime = now_clock(s->manager, CLOCK_BOOTTIME);
        if (s->file_path) {
                scrape_file(s);
                return 0;
        }
        r = http_request_start(s->manager->http, &spec, &s->request);
        if (r < 0) {
                snprintf(s->last_error, sizeof(s->last_error), "cannot start the request: %s", strerror(-r));
                scrape_complete(s, false, STATS_SCRAPE_TRANSPORT, NULL, 0, NULL);
        }
        return 0;
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Scraper *s = userdata;
        uint64_t every = s->target->every;

        /* Keep the phase: the next slot after now, skipping the ones missed (a suspended machine, a
         * busy loop), never a burst of catch-up scrapes. */
        s->next += every;
        if (s->next <= usec)
                s->next += ((usec - s->next) / every + 1) * every;
        (void) sd_event_source_set_time(source, s->next);
        (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        return scrape_start(s);
}

int scraper_trigger(Scraper *s) {
        return scrape_start(s);
}

int scraper_new(Manager *m, const char *model, const ScrapeTarget *target, unsigned index,
                SeriesStore *store, ScrapeDoneFn done, void *userdata, Scraper **ret) {
        _cleanup_(scraper_freep) Scraper *s = NULL;
        uint64_t now;
        int r;

        assert_return(m && model && target && target->url && target->every > 0 && store && ret, -EINVAL);
        s = calloc(1, sizeof(Scraper));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->target = target;
        s->index = index;
        s->store = store;
        s->done = done;
        s->userdata = userdata;
        s->model = strdup(model);
        if (!s->model)
                return -ENOMEM;
        if (startswith(target->url, "file:")) {
                s->file_path = scrape_file_path(target->url);
                if (!s->file_path)
                        return -EINVAL;
        }
        s->limits = EXPFMT_LIMITS_DEFAULT;
        s->limits.max_body = target->max_body;
        s->limits.max_series = target->max_series;
        /* The parser's scratch space is two lines: at the default 64 KiB a line, every scrape would
         * map and unmap 130 KiB (above malloc's mmap threshold). 16 KiB is still four times the
         * longest label value plus its names. */
        s->limits.max_line = SCRAPE_MAX_LINE;

        now = now_clock(m, CLOCK_BOOTTIME);
        s->next = now + scrape_offset(model, target->url, target->every);
        /* Accuracy: a twentieth of the interval, at most half a second, lets sd-event serve many
         * targets in one wake-up without changing what a scrape every N seconds means. */
        r = sd_event_add_time(m->event, &s->timer, CLOCK_BOOTTIME, s->next,
                              MIN(target->every / 20, 500 * USEC_PER_MSEC), on_timer, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->timer, "scrape");
        *ret = TAKE_PTR(s);
        return 0;
}

Scraper *scraper_free(Scraper *s) {
        if (!s)
                return NULL;
        http_request_cancel(s->request);
        sd_event_source_disable_unref(s->timer);
        free(s->file_path);
        free(s->model);
        free(s);
        return NULL;
}

void scraper_info(const Scraper *s, ScraperInfo *ret) {
        *ret = (ScraperInfo){
                .url = s->target->url,
                .up = s->up,
                .scrapes = s->scrapes,
                .failures = s->failures,
                .last_duration = s->last_duration,
                .last_bytes = s->last_bytes,
                .last_samples = s->last_samples,
                .last_error = s->last_error[0] ? s->last_error : NULL,
        };
}
