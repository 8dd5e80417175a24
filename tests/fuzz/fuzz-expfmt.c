/* SPDX-License-Identifier: Apache-2.0 */

/* The exposition parser on arbitrary bytes: the first byte picks the format and whether a
 * want() filter skips some names; small limits make the limit paths reachable. */

#include "expfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_sample(const ExpfmtSample *s, void *userdata) {
        size_t *n = userdata;

        /* Touch everything the callee is promised. */
        *n += strlen(s->name) == s->name_len;
        for (size_t i = 0; i < s->n_labels; i++)
                *n += strlen(s->labels[i].name) + strlen(s->labels[i].value) == s->labels[i].name_len + s->labels[i].value_len;
        return 0;
}

static bool want(const char *name, size_t len, void *userdata) {
        return len % 2 == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ExpfmtLimits l = {.max_body = 1 << 20, .max_line = 512, .max_labels = 8, .max_name = 64, .max_value = 128,
                          .max_series = 1000};
        ExpfmtCallbacks cb = {.sample = on_sample};
        ExpfmtError e;
        ExpfmtStats st;
        size_t n = 0;

        if (size < 1)
                return 0;
        if (data[0] & 2)
                cb.want = want;
        (void) expfmt_parse(data[0] & 1 ? EXPFMT_OPENMETRICS : EXPFMT_TEXT, (const char *) data + 1, size - 1, &l, &cb,
                            &n, &st, &e);
        return 0;
}
