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

        uint32_t id; /* in the scheduler */
        bool registered;
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

/*
 * One timer for all targets. A timer per target would make every re-arm reshuffle sd-event's
 * priority queues, and a reshuffle touches the event sources of a dozen other targets: memory of
 * models scraped seconds ago, which is cold. Here the schedule is a binary min-heap in one small
 * array that is in use a hundred times a second. Entries name a scraper by slot and generation,
 * so freeing a scraper only clears its slot; its stale entry is dropped when it comes up.
 */
typedef struct ScheduleEntry {
        uint64_t due;
        uint32_t id, gen;
} ScheduleEntry;

typedef struct ScheduleSlot {
        Scraper *scraper;
        uint32_t gen;
} ScheduleSlot;

static struct {
        sd_event *event;
        sd_event_source *timer;
        ScheduleEntry *heap;
        size_t n_heap, alloc_heap;
        ScheduleSlot *slots;
        uint32_t n_slots, alloc_slots;
        uint32_t *free_ids;
        uint32_t n_free;
        size_t n_scrapers;
} sched;

/* sd-event may fire the one timer this much late, to serve several targets in one wake-up. */
#define SCHEDULE_ACCURACY (250 * USEC_PER_MSEC)

static bool entry_less(const ScheduleEntry *a, const ScheduleEntry *b) {
        return a->due < b->due;
}

static int heap_push(ScheduleEntry e) {
        size_t i;

        if (sched.n_heap >= sched.alloc_heap) {
                size_t n = MAX(sched.alloc_heap * 2, (size_t) 64);
                ScheduleEntry *h = reallocarray(sched.heap, n, sizeof(ScheduleEntry));
                if (!h)
                        return -ENOMEM;
                sched.heap = h;
                sched.alloc_heap = n;
        }
        i = sched.n_heap++;
        while (i > 0 && entry_less(&e, &sched.heap[(i - 1) / 2])) {
                sched.heap[i] = sched.heap[(i - 1) / 2];
                i = (i - 1) / 2;
        }
        sched.heap[i] = e;
        return 0;
}

static ScheduleEntry heap_pop(void) {
        ScheduleEntry top = sched.heap[0], last = sched.heap[--sched.n_heap];
        size_t i = 0;

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= sched.n_heap)
                        break;
                if (c + 1 < sched.n_heap && entry_less(&sched.heap[c + 1], &sched.heap[c]))
                        c++;
                if (!entry_less(&sched.heap[c], &last))
                        break;
                sched.heap[i] = sched.heap[c];
                i = c;
        }
        if (sched.n_heap > 0)
                sched.heap[i] = last;
        return top;
}

static void schedule_arm(void) {
        if (!sched.timer)
                return;
        if (sched.n_heap == 0) {
                (void) sd_event_source_set_enabled(sched.timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(sched.timer, sched.heap[0].due);
        (void) sd_event_source_set_enabled(sched.timer, SD_EVENT_ONESHOT);
}

static int schedule_add(Scraper *s) {
        if (heap_push((ScheduleEntry){.due = s->next, .id = s->id, .gen = sched.slots[s->id].gen}) < 0)
                return -ENOMEM;
        return 0;
}

static int on_schedule(sd_event_source *source, uint64_t usec, void *userdata) {
        /* Everything due by now, the targets sd-event's accuracy let us gather, in one go. */
        while (sched.n_heap > 0 && sched.heap[0].due <= usec) {
                ScheduleEntry e = heap_pop();
                Scraper *s = e.id < sched.n_slots && sched.slots[e.id].gen == e.gen
                                     ? sched.slots[e.id].scraper
                                     : NULL;
                uint64_t every;

                if (!s)
                        continue; /* freed since */
                /* Keep the phase: the next slot after now, skipping the ones missed (a suspended
                 * machine, a busy loop), never a burst of catch-up scrapes. */
                every = s->target->every;
                s->next += every;
                if (s->next <= usec)
                        s->next += ((usec - s->next) / every + 1) * every;
                if (schedule_add(s) < 0)
                        log_error("Model %s: out of memory; %s is no longer scraped.", s->model,
                                  s->target->url);
                (void) scrape_start(s);
        }
        schedule_arm();
        return 0;
}

static int schedule_register(Manager *m, Scraper *s) {
        uint32_t id;
        int r;

        if (!sched.timer) {
                r = sd_event_add_time(m->event, &sched.timer, CLOCK_BOOTTIME, USEC_INFINITY,
                                      SCHEDULE_ACCURACY, on_schedule, NULL);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(sched.timer, "scrape-schedule");
                sched.event = sd_event_ref(m->event);
        } else if (sched.event != m->event)
                return -EXDEV; /* one loop per process */

        if (sched.n_free > 0)
                id = sched.free_ids[--sched.n_free];
        else {
                if (sched.n_slots >= sched.alloc_slots) {
                        uint32_t n = MAX(sched.alloc_slots * 2, (uint32_t) 64);
                        ScheduleSlot *a = reallocarray(sched.slots, n, sizeof(ScheduleSlot));
                        uint32_t *f;

                        if (!a)
                                return -ENOMEM;
                        sched.slots = a;
                        f = reallocarray(sched.free_ids, n, sizeof(uint32_t));
                        if (!f)
                                return -ENOMEM;
                        sched.free_ids = f;
                        sched.alloc_slots = n;
                }
                id = sched.n_slots++;
                sched.slots[id].gen = 0;
        }
        sched.slots[id].scraper = s;
        sched.slots[id].gen++;
        s->id = id;
        r = schedule_add(s);
        if (r < 0) {
                sched.slots[id].scraper = NULL;
                sched.free_ids[sched.n_free++] = id;
                return r;
        }
        sched.n_scrapers++;
        schedule_arm();
        return 0;
}

static void schedule_unregister(Scraper *s) {
        sched.slots[s->id].scraper = NULL;
        sched.slots[s->id].gen++;
        sched.free_ids[sched.n_free++] = s->id;
        if (--sched.n_scrapers > 0)
                return;
        /* The last one: give everything back (tests make and free many managers). */
        sched.timer = sd_event_source_disable_unref(sched.timer);
        sched.event = sd_event_unref(sched.event);
        sched.heap = mfree(sched.heap);
        sched.slots = mfree(sched.slots);
        sched.free_ids = mfree(sched.free_ids);
        sched.n_heap = sched.alloc_heap = 0;
        sched.n_slots = sched.alloc_slots = sched.n_free = 0;
}

bool scraper_in_flight(const Scraper *s) {
        return s->request != NULL;
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
        r = schedule_register(m, s);
        if (r < 0)
                return r;
        s->registered = true;
        *ret = TAKE_PTR(s);
        return 0;
}

Scraper *scraper_free(Scraper *s) {
        if (!s)
                return NULL;
        http_request_cancel(s->request);
        if (s->registered)
                schedule_unregister(s);
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
