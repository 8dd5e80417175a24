/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One scrape target of one model (metrics.scrape): a re-armed one-shot CLOCK_BOOTTIME timer,
 * the transfer (the daemon's async HTTP client for http(s)://, a bounded read for file://), and
 * feeding the model's SeriesStore atomically (series_store_begin_scrape → expfmt_parse →
 * series_store_end_scrape at the scrape's start time).
 *
 * A failed scrape — transport error, timeout, a status other than 200, a body over max_body, a
 * malformed exposition, an exceeded limit — commits nothing but up == 0 and staleness markers;
 * it is counted (stats.h) and logged once when the target goes down and once when it comes back,
 * not at every attempt.
 *
 * The first scrape of a target is delayed by an offset in [0, every) derived from a hash of the
 * model and the URL (as Prometheus does), so that a thousand models configured alike do not
 * scrape in lockstep, and a restart keeps each target's phase.
 */

#include "config.h"
#include "macros.h"
#include "series.h"

typedef struct Manager Manager;
typedef struct Scraper Scraper;

/* Called after every scrape, successful or not, once the store has been fed. */
typedef void (*ScrapeDoneFn)(Scraper *s, bool success, void *userdata);

/* The Accept header: OpenMetrics preferred, the 0.0.4 text format understood, anything else
 * parsed as 0.0.4 text (what Prometheus does). */
#define SCRAPE_ACCEPT \
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"

/* The longest exposition line accepted from a scrape target. */
#define SCRAPE_MAX_LINE (16 * 1024)

/* target and store are borrowed and must outlive the scraper; index is the target's index in
 * the store. */
int scraper_new(Manager *m, const char *model, const ScrapeTarget *target, unsigned index,
                SeriesStore *store, ScrapeDoneFn done, void *userdata, Scraper **ret);
Scraper *scraper_free(Scraper *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Scraper *, scraper_free);

/* The phase of a target in [0, every): stable for a model and URL. */
uint64_t scrape_offset(const char *model, const char *url, uint64_t every) _pure_;
/* The path of a file:// URL ("file:///p" or "file://localhost/p", %XX decoded); NULL otherwise or
 * when the result is not an absolute path without NUL bytes. */
char *scrape_file_path(const char *url);

typedef struct ScraperInfo {
        const char *url;
        bool up;
        uint64_t scrapes, failures;
        uint64_t last_duration; /* usec */
        size_t last_bytes, last_samples;
        const char *last_error; /* NULL when the last scrape succeeded */
} ScraperInfo;

void scraper_info(const Scraper *s, ScraperInfo *ret);
/* Scrape now (tests, `modelkeeperctl` later); does nothing while a scrape is in flight. */
int scraper_trigger(Scraper *s);
