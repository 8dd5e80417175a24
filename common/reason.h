/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Refusal reasons. The verification code in common/ (keys, dsse, release) never logs; it
 * returns a negative errno and, through an optional "char **ret_reason", one line that says
 * precisely which check failed. The daemon puts that line verbatim into the journal's REASON=
 * field, so it must be short, free of control characters and never contain unescaped text
 * chosen by whoever wrote the document.
 */

#include <stdarg.h>

#include "macros.h"

/* Longest reason we produce; fits the agent → daemon wire (WIRE_REASON_MAX). */
#define REASON_MAX 1000

/* Sets *ret_reason (when ret_reason is not NULL) to the formatted text, truncated to
 * REASON_MAX bytes, and returns error (a negative errno), so that
 *     return reason_set(ret_reason, -EBADMSG, "…");
 * works. An allocation failure leaves *ret_reason NULL and still returns error. */
int reason_set(char **ret_reason, int error, const char *fmt, ...) _printf_(3, 4);

/* For quoting untrusted text in a reason: printable ASCII is copied, everything else
 * (control characters, quotes, backslashes, bytes >= 0x80) becomes \xNN; at most
 * REASON_QUOTE_INPUT_MAX input bytes are shown, then "...". Returns buf. */
#define REASON_QUOTE_INPUT_MAX 64
#define REASON_QUOTE_MAX       (REASON_QUOTE_INPUT_MAX * 4 + 4)
char *reason_quote(char buf[static REASON_QUOTE_MAX], const char *s, size_t len);
/* The same for a NUL-terminated string (NULL gives "(null)"). */
char *reason_quote_str(char buf[static REASON_QUOTE_MAX], const char *s);

/* Quote into a temporary that lives until the end of the enclosing block:
 *     reason_set(r, -EBADMSG, "unknown field '%s'", QUOTE(key)); */
#define QUOTE(s)        reason_quote_str((char[REASON_QUOTE_MAX]){}, (s))
#define QUOTE_N(s, len) reason_quote((char[REASON_QUOTE_MAX]){}, (s), (len))
