/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Strict field access for JSON documents that come from the network (release and root
 * documents): exact JSON types, no unknown fields, no NUL bytes inside strings, ranges on
 * numbers. Every refusal is -EBADMSG with a reason of the form "<where>: <what>", <where>
 * being a path such as "predicate.files[2].name". Pure: no I/O, no logging.
 */

#include <jansson.h>

#include "macros.h"

/* Parse flags for untrusted documents: a key given twice is an error (not "last one wins"),
 * and \u0000 is let through the parser so the field checks can name the field that has it. */
#define JSON_STRICT_LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

/* o must be an object whose keys are all in allowed (a NULL-terminated list). */
int json_strict_object(json_t *o, const char *where, const char *const *allowed, char **ret_reason);

/* A string field: missing → -ENOENT when !required (no reason set), else -EBADMSG. Refused: not
 * a string, embedded NUL, longer than max bytes, shorter than min bytes. */
int json_strict_string(json_t *o, const char *key, const char *where, bool required, size_t min, size_t max,
                       const char **ret, char **ret_reason);

/* An integer field within [min, max] (JSON reals such as 1.0 are refused). */
int json_strict_uint(json_t *o, const char *key, const char *where, bool required, uint64_t min,
                     uint64_t max, uint64_t *ret, char **ret_reason);

/* Largest integer every JSON implementation represents exactly (2^53 - 1). */
#define JSON_SAFE_INTEGER_MAX ((UINT64_C(1) << 53) - 1)
