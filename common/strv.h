/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "macros.h"

/* NULL-terminated arrays of strings (argv-like). */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
size_t strv_length(char *const *l) _pure_;
char **strv_copy(char *const *l);
bool strv_contains(char *const *l, const char *s) _pure_;
/* Append a copy of s; on failure l is unchanged. */
int strv_extend(char ***l, const char *s);
/* Append s, taking ownership (freed on failure). */
int strv_consume(char ***l, char *s);
