/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>

#include "reason.h"

int reason_set(char **ret_reason, int error, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        if (!ret_reason)
                return error;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);

        if (s && strlen(s) > REASON_MAX)
                strcpy(s + REASON_MAX - 3, "...");
        free(*ret_reason);
        *ret_reason = s;
        return error;
}

char *reason_quote(char buf[static REASON_QUOTE_MAX], const char *s, size_t len) {
        static const char hex[] = "0123456789abcdef";
        size_t j = 0;

        for (size_t i = 0; i < len && i < REASON_QUOTE_INPUT_MAX; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
                        buf[j++] = (char) c;
                else {
                        buf[j++] = '\\';
                        buf[j++] = 'x';
                        buf[j++] = hex[c >> 4];
                        buf[j++] = hex[c & 15];
                }
        }
        if (len > REASON_QUOTE_INPUT_MAX) {
                memcpy(buf + j, "...", 3);
                j += 3;
        }
        buf[j] = 0;
        return buf;
}

char *reason_quote_str(char buf[static REASON_QUOTE_MAX], const char *s) {
        if (!s)
                return strcpy(buf, "(null)");
        return reason_quote(buf, s, strlen(s));
}
