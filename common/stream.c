/* SPDX-License-Identifier: Apache-2.0 */

#include "fileio.h"
#include "stream.h"

int stream_fd_write(void *userdata, const void *buf, size_t n) {
        return loop_write((int) (intptr_t) userdata, buf, n);
}

ssize_t stream_fd_read(void *userdata, void *buf, size_t n) {
        for (;;) {
                ssize_t k = read((int) (intptr_t) userdata, buf, n);
                if (k >= 0)
                        return k;
                if (errno != EINTR)
                        return -errno;
        }
}

int stream_read_exact(const StreamReader *r, void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = stream_read(r, p, n);
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        return -EPIPE;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}
