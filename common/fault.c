/* SPDX-License-Identifier: Apache-2.0 */

#include <signal.h>

#include "fault.h"
#include "fileio.h"

#if ENABLE_FAULT_INJECTION
int fault_point(const char *name) {
        static unsigned counter = 0;
        static int target = -1;      /* -1: not parsed yet, 0: none */
        static bool kill_mode = false;
        const char *e;

        if (target < 0) {
                unsigned n = 0;
                char mode[16] = "";

                target = 0;
                e = getenv("MODELKEEPER_FAULT");
                if (e && sscanf(e, "%u:%15s", &n, mode) == 2 && n > 0) {
                        target = (int) n;
                        kill_mode = streq(mode, "kill");
                }
        }
        counter++;

        e = getenv("MODELKEEPER_FAULT_TRACE");
        if (e) {
                _cleanup_close_ int fd = open(e, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
                if (fd >= 0)
                        dprintf(fd, "%u %s\n", counter, name);
        }

        if (target > 0 && counter == (unsigned) target) {
                if (kill_mode)
                        (void) raise(SIGKILL);
                return -EIO;
        }
        return 0;
}
#endif
