/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A plain driver for libFuzzer targets: replay every regular file of the corpus directories given
 * as arguments through LLVMFuzzerTestOneInput(), so `meson test` runs the corpus without clang.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_dir(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        unsigned n = 0;

        if (!d) {
                fprintf(stderr, "%s: %m\n", path);
                return -1;
        }
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL, *buf = NULL;
                struct stat st;
                size_t size;

                if (de->d_name[0] == '.')
                        continue;
                p = path_join(path, de->d_name);
                if (!p || stat(p, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (read_full_file(p, 64 * 1024 * 1024, &buf, &size) < 0) {
                        fprintf(stderr, "%s: cannot read\n", p);
                        closedir(d);
                        return -1;
                }
                LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
                n++;
        }
        closedir(d);
        printf("%s: %u inputs\n", path, n);
        return 0;
}

int main(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (run_dir(argv[i]) < 0)
                        return 1;
        return 0;
}
