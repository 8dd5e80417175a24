/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A plain driver for libFuzzer targets, so that `meson test` replays a corpus without clang:
 * every regular file of the directory given as argv[1] is fed to LLVMFuzzerTestOneInput once.
 */

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
        _cleanup_close_ int dfd = -EBADF;
        struct dirent **names = NULL;
        int n, count = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
                return 1;
        }
        dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                fprintf(stderr, "%s: %m\n", argv[1]);
                return 1;
        }
        n = scandir(argv[1], &names, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "%s: %m\n", argv[1]);
                return 1;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_close_ int fd = openat(dfd, names[i]->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                _cleanup_free_ uint8_t *buf = NULL;
                struct stat st;

                if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                        ssize_t k;

                        buf = malloc((size_t) st.st_size + 1);
                        if (!buf)
                                return 1;
                        k = read(fd, buf, (size_t) st.st_size);
                        if (k != st.st_size) {
                                fprintf(stderr, "%s: short read\n", names[i]->d_name);
                                return 1;
                        }
                        (void) LLVMFuzzerTestOneInput(buf, (size_t) k);
                        count++;
                }
                free(names[i]);
        }
        free(names);
        printf("%d inputs replayed\n", count);
        return 0;
}
