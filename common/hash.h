/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "macros.h"

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE    65

void hex_encode(const uint8_t *data, size_t n, char *out /* 2n+1 */);
/* Lower- or upper-case hex; exactly 2n characters. */
int hex_decode(const char *s, uint8_t *out, size_t n);
bool sha256_hex_is_valid(const char *s) _pure_;

int sha256_buffer(const void *data, size_t n, uint8_t out[static SHA256_DIGEST_SIZE]);
/* SHA-256 of a file's content, read from the fd (from its current offset to the end). */
int sha256_fd(int fd, uint8_t out[static SHA256_DIGEST_SIZE], uint64_t *ret_size);
