/* SPDX-License-Identifier: Apache-2.0 */

/* Parse throughput of policies/expfmt.c: reads a file, parses it REPEAT times in memory and
 * prints MB/s, for bench/expfmt.sh. Not installed.
 *
 *   expfmt-bench FILE [REPEAT] [--want NAME]   (--want: the daemon's case, one referenced name)
 */

#include <time.h>

#include "expfmt.h"
#include "fileio.h"

static int on_sample(const ExpfmtSample *s, void *userdata) {
        double *sum = userdata;
        *sum += s->value + (double) s->n_labels;
        return 0;
}

static const char *wanted = NULL;

static bool want(const char *name, size_t len, void *userdata) {
        return strlen(wanted) == len && memcmp(wanted, name, len) == 0;
}

int main(int argc, char **argv) {
        _cleanup_free_ char *text = NULL;
        ExpfmtCallbacks cb = {.sample = on_sample};
        ExpfmtLimits l = EXPFMT_LIMITS_DEFAULT;
        struct timespec a, b;
        unsigned repeat = 20;
        size_t size;
        double sum = 0, secs;
        ExpfmtStats st = {};
        int r;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE [REPEAT] [--want NAME]\n", argv[0]);
                return 2;
        }
        if (argc >= 3)
                repeat = (unsigned) atoi(argv[2]);
        if (argc >= 5 && streq(argv[3], "--want")) {
                wanted = argv[4];
                cb.want = want;
        }
        r = read_full_file(argv[1], 1024 * 1024 * 1024, &text, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        l.max_body = size;
        l.max_series = SIZE_MAX;

        clock_gettime(CLOCK_MONOTONIC, &a);
        for (unsigned i = 0; i < repeat; i++) {
                ExpfmtError e;
                r = expfmt_parse(EXPFMT_TEXT, text, size, &l, &cb, &sum, &st, &e);
                if (r < 0) {
                        fprintf(stderr, "%s:%u:%u: %s\n", argv[1], e.line, e.column, e.message);
                        return 1;
                }
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        secs = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
        printf("%.1f MB/s (%zu bytes x %u in %.3f s, %zu samples per pass, %zu skipped; checksum %g)\n",
               (double) size * repeat / secs / 1e6, size, repeat, secs, st.samples, st.skipped, sum);
        return 0;
}
