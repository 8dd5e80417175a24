/* SPDX-License-Identifier: Apache-2.0 */

/* A plain driver for the fuzz targets, so `meson test` replays their corpus without libFuzzer:
 * every regular file of the directory given as argv[1] is fed to LLVMFuzzerTestOneInput(). */

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
        struct dirent *de;
        unsigned n = 0;
        DIR *d;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-DIRECTORY\n", argv[0]);
                return 2;
        }
        d = opendir(argv[1]);
        if (!d) {
                perror(argv[1]);
                return 1;
        }
        while ((de = readdir(d))) {
                char path[4096];
                struct stat st;
                uint8_t *buf;
                int fd;

                snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        continue;
                }
                buf = malloc((size_t) st.st_size + 1);
                if (!buf || read(fd, buf, (size_t) st.st_size) != st.st_size) {
                        fprintf(stderr, "cannot read %s\n", path);
                        return 1;
                }
                close(fd);
                LLVMFuzzerTestOneInput(buf, (size_t) st.st_size);
                free(buf);
                n++;
        }
        closedir(d);
        printf("%u inputs replayed\n", n);
        return 0;
}
