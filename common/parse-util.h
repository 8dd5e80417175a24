/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Locale-independent parsers for the units users write: durations ("15m", "1h30m", "500ms"),
 * sizes ("2GiB", "500MB", "1024"), numbers ("0.99", "1e-3") and percentages ("99%").
 * All return 0 or -EINVAL/-ERANGE and write the output only on success.
 */

#include "macros.h"

int parse_uint64(const char *s, uint64_t *ret);
int parse_unsigned(const char *s, unsigned *ret);
int parse_double(const char *s, double *ret);
int parse_duration(const char *s, uint64_t *ret_usec);
int parse_size(const char *s, uint64_t *ret_bytes);
int parse_percent(const char *s, double *ret_fraction);

/* Prefix parsers for the expression language: consume the longest valid literal at s and say how
 * many bytes it took. */
int parse_duration_prefix(const char *s, uint64_t *ret_usec, size_t *ret_len);
int parse_size_suffix(const char *s, double *ret_factor, size_t *ret_len);

#define FORMAT_DURATION_MAX 64
#define FORMAT_BYTES_MAX    32
char *format_duration(char buf[static FORMAT_DURATION_MAX], uint64_t usec);
char *format_bytes(char buf[static FORMAT_BYTES_MAX], uint64_t bytes);

/* Strings that are safe as one path component and as a journal field: [A-Za-z0-9._-], no
 * leading '.', at most max bytes. */
bool name_is_valid(const char *s, size_t max) _pure_;
/* A file name from a release or a local directory: no '/', not "." or "..", no control
 * characters, valid UTF-8, at most 255 bytes. */
bool filename_is_safe(const char *s) _pure_;
bool utf8_is_valid(const char *s, size_t len) _pure_;
