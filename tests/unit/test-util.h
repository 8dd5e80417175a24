/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What every cmocka test needs, in the order cmocka.h needs it, plus small helpers. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "macros.h"

static inline char *test_mkdtemp(void) {
        char *t = strdup("/tmp/mk-test-XXXXXX");
        if (!t || !mkdtemp(t))
                abort();
        return t;
}

/* ../shared/testdata, or NULL when this checkout has none (then the test skips). */
static inline const char *test_shared_data(void) {
        const char *d = getenv("SHARED_TESTDATA");
        return d && access(d, F_OK) == 0 ? d : NULL;
}
