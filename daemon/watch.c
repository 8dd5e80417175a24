/* SPDX-License-Identifier: Apache-2.0 */

/* Scraping, rules and probation per model. (Being wired to policies/ — see watch.h.) */

#include "watch.h"

int model_watch_start(Model *model) {
        return 0;
}

void model_watch_stop(Model *model) {
}

int model_watch_activated(Model *model, const char *version, const char *from, ActivationKind kind) {
        return 0;
}
