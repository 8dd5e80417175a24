/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A plain driver for libFuzzer targets, so that `meson test` replays a corpus without clang:
 * every regular file of the directory given as argv[1] is read and passed to
 * LLVMFuzzerTestOneInput() once.
 */

#include <dirent.h>
#include <stdio.h>

#include "fileio.h"
#include "macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char *argv[]) {
        DIR *d;
        struct dirent *de;
        unsigned n = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
                return 2;
        }
        d = opendir(argv[1]);
        if (!d) {
                fprintf(stderr, "%s: %m\n", argv[1]);
                return 1;
        }
        while ((de = readdir(d))) {
                _cleanup_free_ char *buf = NULL;
                size_t size = 0;
                int r;

                if (de->d_name[0] == '.')
                        continue;
                r = read_full_file_at(dirfd(d), de->d_name, 64 * 1024 * 1024, true, &buf, &size);
                if (r == -EISDIR || r == -ELOOP)
                        continue;
                if (r < 0) {
                        fprintf(stderr, "%s/%s: %s\n", argv[1], de->d_name, strerror(-r));
                        closedir(d);
                        return 1;
                }
                (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
                n++;
        }
        closedir(d);
        printf("%u inputs replayed from %s\n", n, argv[1]);
        return 0;
}
