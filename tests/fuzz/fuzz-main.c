/* SPDX-License-Identifier: Apache-2.0 */

/* A plain driver for fuzz targets without libFuzzer: replay every regular file of the directory
 * given as argv[1] (the corpus) through LLVMFuzzerTestOneInput(), so `meson test` runs them. */

#include <dirent.h>
#include <fcntl.h>

#include "fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char *argv[]) {
        DIR *d;
        struct dirent *de;
        unsigned n = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
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

                if (de->d_name[0] == '.')
                        continue;
                if (read_full_file_at(dirfd(d), de->d_name, 16 * MIB, true, &buf, &size) < 0)
                        continue; /* directories, symlinks */
                (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
                n++;
        }
        closedir(d);
        printf("%u inputs replayed\n", n);
        return 0;
}
