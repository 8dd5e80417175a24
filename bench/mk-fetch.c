/* SPDX-License-Identifier: Apache-2.0 */

/*
 * mk-fetch [--cafile F] [--size N] URL OUT — download URL into OUT through fetch_file() while
 * computing its SHA-256 in the same pass (what the install pipeline does, minus sealing), and
 * print the hex digest. Not installed: bench/fetch.sh compares it with curl + sha256sum.
 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>

#include "fetch.h"
#include "fileio.h"
#include "hash.h"

typedef struct Out {
        int fd;
        EVP_MD_CTX *md;
} Out;

static int out_write(void *userdata, const void *buf, size_t n) {
        Out *o = userdata;

        if (EVP_DigestUpdate(o->md, buf, n) != 1)
                return -EIO;
        return loop_write(o->fd, buf, n);
}

static int out_restart(void *userdata) {
        Out *o = userdata;

        if (ftruncate(o->fd, 0) < 0 || lseek(o->fd, 0, SEEK_SET) < 0)
                return -errno;
        return EVP_DigestInit_ex(o->md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"cafile", required_argument, NULL, 'c'},
                {"size", required_argument, NULL, 's'},
                {},
        };
        _cleanup_free_ char *reason = NULL;
        uint64_t size = FETCH_SIZE_UNKNOWN;
        TlsOptions tls = {};
        FetchOptions opts;
        FetchStats st;
        Out o = {.fd = -EBADF};
        uint8_t d[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        unsigned len;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        tls.ca_file = optarg;
                        break;
                case 's':
                        size = strtoull(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: %s [--cafile F] [--size N] URL OUT\n", argv[0]);
                return 2;
        }

        fetch_options_init(&opts);
        opts.tls = &tls;
        opts.max_file_size = UINT64_MAX / 2;

        o.fd = open(argv[optind + 1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o.fd < 0) {
                fprintf(stderr, "open %s: %m\n", argv[optind + 1]);
                return 1;
        }
        o.md = EVP_MD_CTX_new();
        if (!o.md || EVP_DigestInit_ex(o.md, EVP_sha256(), NULL) != 1)
                return 1;

        r = fetch_file(argv[optind], &opts, size, 0, &(StreamWriter){out_write, &o},
                       &(FetchCallbacks){.restart = out_restart, .userdata = &o}, &st, &reason);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[optind], reason ?: strerror(-r));
                return 1;
        }
        if (EVP_DigestFinal_ex(o.md, d, &len) != 1 || close(o.fd) < 0)
                return 1;
        EVP_MD_CTX_free(o.md);
        hex_encode(d, sizeof(d), hex);
        printf("%s\n", hex);
        fprintf(stderr, "%" PRIu64 " bytes, %u attempt(s)\n", st.bytes_received, st.attempts);
        return 0;
}
