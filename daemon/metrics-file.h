/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The daemon's own figures as a Prometheus textfile (daemon.metrics_textfile, for
 * node_exporter's textfile collector or any scraper of files): the counters of stats.h plus
 * gauges — models by state, rule states and the rules pending or firing, scrape targets up and
 * down, stored series, agent jobs (the watch keeps running totals, so writing the file does not
 * visit every model). Written every 15 s and at a clean stop, replaced by a rename so that a
 * reader never sees half a file; not fsync'd, as it is rewritten anyway and a sync would stall
 * the loop.
 */

#include "macros.h"

typedef struct Manager Manager;

#define METRICS_FILE_INTERVAL (15 * USEC_PER_SEC)

/* After the configuration was (re)loaded: start, move or stop writing. */
int metrics_file_setup(Manager *m);
/* Write once more (if configured) and stop. */
void metrics_file_stop(Manager *m);

/* The whole text, for the file and for tests. */
int metrics_render(Manager *m, char **ret, size_t *ret_size);
