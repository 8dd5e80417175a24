/* SPDX-License-Identifier: Apache-2.0 */

#include <signal.h>

#include "fault.h"
#include "fileio.h"

#if ENABLE_FAULT_INJECTION
static bool fault_enabled = false;

void fault_setup(const char *verb) {
        const char *v = getenv("MODELKEEPER_FAULT_VERB");
        fault_enabled = !v || streq(v, verb);
}

int fault_point(const char *name) {
        static unsigned counter = 0;
        static int target = -1;      /* -1: not parsed yet, 0: none */
        static char mode[16] = "";
        const char *e;

        if (!fault_enabled)
                return 0;

        if (target < 0) {
                unsigned n = 0;

                target = 0;
                e = getenv("MODELKEEPER_FAULT");
                if (e && sscanf(e, "%u:%15s", &n, mode) == 2 && n > 0)
                        target = (int) n;
        }
        counter++;

        e = getenv("MODELKEEPER_FAULT_TRACE");
        if (e) {
                _cleanup_close_ int fd = open(e, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0)
                        dprintf(fd, "%u %s\n", counter, name);
        }

        if (target > 0 && counter == (unsigned) target) {
                if (streq(mode, "kill"))
                        (void) raise(SIGKILL);
                if (streq(mode, "pause")) {
                        (void) sleep(60);
                        return 0;
                }
                return -EIO;
        }
        return 0;
}
#endif
