/* SPDX-License-Identifier: Apache-2.0 */

#include <openssl/evp.h>

#include "fileio.h"
#include "hash.h"

void hex_encode(const uint8_t *data, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[data[i] >> 4];
                out[2 * i + 1] = hex[data[i] & 15];
        }
        out[2 * n] = 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int hex_decode(const char *s, uint8_t *out, size_t n) {
        if (strlen(s) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int a = unhex(s[2 * i]), b = unhex(s[2 * i + 1]);
                if (a < 0 || b < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (a << 4 | b);
        }
        return 0;
}

bool sha256_hex_is_valid(const char *s) {
        if (!s || strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

int sha256_buffer(const void *data, size_t n, uint8_t out[static SHA256_DIGEST_SIZE]) {
        unsigned len = 0;

        if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != SHA256_DIGEST_SIZE)
                return -EIO;
        return 0;
}

int sha256_fd(int fd, uint8_t out[static SHA256_DIGEST_SIZE], uint64_t *ret_size) {
        EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        const size_t bufsize = 1024 * 1024;
        uint64_t total = 0;
        unsigned len = 0;
        int r = -EIO;

        buf = malloc(bufsize);
        ctx = EVP_MD_CTX_new();
        if (!buf || !ctx) {
                r = -ENOMEM;
                goto out;
        }
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                goto out;
        for (;;) {
                ssize_t k = read(fd, buf, bufsize);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (k == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t) k) != 1)
                        goto out;
                total += (uint64_t) k;
        }
        if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != SHA256_DIGEST_SIZE)
                goto out;
        if (ret_size)
                *ret_size = total;
        r = 0;
out:
        EVP_MD_CTX_free(ctx);
        return r;
}
