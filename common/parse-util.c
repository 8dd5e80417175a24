/* SPDX-License-Identifier: Apache-2.0 */

#include <locale.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>

#include "parse-util.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

int parse_uint64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !is_digit(*s))
                return -EINVAL;
        for (; is_digit(*s); s++)
                if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t) (*s - '0'), &v))
                        return -ERANGE;
        if (*s)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_unsigned(const char *s, unsigned *ret) {
        uint64_t v;
        int r = parse_uint64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* strtod() obeys LC_NUMERIC; a daemon started under de_DE would read "0.5" as 0. Always parse in
 * the C locale. */
static locale_t c_locale(void) {
        static locale_t loc = (locale_t) 0;
        if (loc == (locale_t) 0)
                loc = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        return loc;
}

static int parse_double_prefix(const char *s, double *ret, size_t *ret_len) {
        char *end = NULL;
        double v;

        /* Only plain decimal notation: no hex floats, no "inf"/"nan" spelled as words here, no
         * leading whitespace. */
        if (!s || !(is_digit(*s) || ((*s == '-' || *s == '+' || *s == '.') && (is_digit(s[1]) || s[1] == '.'))))
                return -EINVAL;
        if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'X')))
                return -EINVAL;
        errno = 0;
        v = strtod_l(s, &end, c_locale());
        if (end == s)
                return -EINVAL;
        if (errno == ERANGE && isinf(v))
                return -ERANGE;
        *ret = v;
        *ret_len = (size_t) (end - s);
        return 0;
}

int parse_double(const char *s, double *ret) {
        size_t n;
        double v;
        int r = parse_double_prefix(s, &v, &n);
        if (r < 0)
                return r;
        if (s[n])
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_percent(const char *s, double *ret) {
        size_t n;
        double v;
        int r = parse_double_prefix(s, &v, &n);
        if (r < 0)
                return r;
        if (!streq(s + n, "%"))
                return -EINVAL;
        *ret = v / 100.0;
        return 0;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* Longest first, so "ms" is not read as "m" followed by garbage. */
        {"ms", USEC_PER_MSEC}, {"us", 1}, {"s", USEC_PER_SEC}, {"m", 60 * USEC_PER_SEC},
        {"h", 3600 * USEC_PER_SEC}, {"d", 86400 * USEC_PER_SEC}, {"w", 7 * 86400 * USEC_PER_SEC},
        {"y", 365 * 86400 * USEC_PER_SEC},
};

/* Prometheus duration grammar: one or more "<integer><unit>" in any order ("1h30m", "90s"). */
int parse_duration_prefix(const char *s, uint64_t *ret_usec, size_t *ret_len) {
        const char *p = s;
        uint64_t total = 0;
        unsigned parts = 0;

        if (!s)
                return -EINVAL;
        while (is_digit(*p)) {
                uint64_t v = 0, part;
                const char *q = p;
                size_t i;

                for (; is_digit(*q); q++)
                        if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t) (*q - '0'), &v))
                                return -ERANGE;
                for (i = 0; i < ELEMENTSOF(duration_units); i++)
                        if (strneq(q, duration_units[i].suffix, strlen(duration_units[i].suffix)))
                                break;
                if (i >= ELEMENTSOF(duration_units)) {
                        /* A bare "0" is a valid duration; any other number needs a unit. */
                        if (parts == 0 && v == 0 && q == p + 1) {
                                p = q;
                                parts++;
                                break;
                        }
                        return -EINVAL;
                }
                if (MUL_OVERFLOW(v, duration_units[i].usec, &part) || ADD_OVERFLOW(total, part, &total))
                        return -ERANGE;
                p = q + strlen(duration_units[i].suffix);
                parts++;
        }
        if (parts == 0)
                return -EINVAL;
        *ret_usec = total;
        *ret_len = (size_t) (p - s);
        return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec) {
        uint64_t v;
        size_t n;
        int r = parse_duration_prefix(s, &v, &n);
        if (r < 0)
                return r;
        if (s[n])
                return -EINVAL;
        *ret_usec = v;
        return 0;
}

static const struct {
        const char *suffix;
        double factor;
} size_units[] = {
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
        {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
        {"K", 1024.0},   {"M", 1048576.0},   {"G", 1073741824.0},   {"T", 1099511627776.0},
        {"B", 1.0},
};

int parse_size_suffix(const char *s, double *ret_factor, size_t *ret_len) {
        for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
                if (strneq(s, size_units[i].suffix, strlen(size_units[i].suffix))) {
                        *ret_factor = size_units[i].factor;
                        *ret_len = strlen(size_units[i].suffix);
                        return 0;
                }
        return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret_bytes) {
        double v, factor = 1.0, bytes;
        size_t n, m = 0;
        int r;

        if (!s || !is_digit(*s)) /* no signs: a size is never negative */
                return -EINVAL;
        r = parse_double_prefix(s, &v, &n);
        if (r < 0)
                return r;
        if (s[n]) {
                r = parse_size_suffix(s + n, &factor, &m);
                if (r < 0 || s[n + m])
                        return -EINVAL;
        }
        bytes = v * factor;
        if (!isfinite(bytes) || bytes >= 18446744073709551616.0)
                return -ERANGE;
        if (bytes != floor(bytes))
                return -EINVAL; /* "1.5B" is not a number of bytes */
        *ret_bytes = (uint64_t) bytes;
        return 0;
}

char *format_duration(char buf[static FORMAT_DURATION_MAX], uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                {"d", 86400 * USEC_PER_SEC}, {"h", 3600 * USEC_PER_SEC}, {"m", 60 * USEC_PER_SEC},
                {"s", USEC_PER_SEC},         {"ms", USEC_PER_MSEC},      {"us", 1},
        };
        size_t off = 0;

        if (usec == USEC_INFINITY) {
                snprintf(buf, FORMAT_DURATION_MAX, "infinity");
                return buf;
        }
        if (usec == 0) {
                snprintf(buf, FORMAT_DURATION_MAX, "0s");
                return buf;
        }
        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(units) && usec > 0; i++) {
                uint64_t n = usec / units[i].usec;
                if (n == 0)
                        continue;
                off += (size_t) snprintf(buf + off, FORMAT_DURATION_MAX - off, "%" PRIu64 "%s", n, units[i].suffix);
                usec -= n * units[i].usec;
                if (off >= FORMAT_DURATION_MAX - 24)
                        break;
        }
        return buf;
}

char *format_bytes(char buf[static FORMAT_BYTES_MAX], uint64_t bytes) {
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
        double v = (double) bytes;
        size_t i = 0;

        while (v >= 1024.0 && i < ELEMENTSOF(units) - 1) {
                v /= 1024.0;
                i++;
        }
        if (i == 0)
                snprintf(buf, FORMAT_BYTES_MAX, "%" PRIu64 "B", bytes);
        else
                snprintf(buf, FORMAT_BYTES_MAX, "%.1f%s", v, units[i]);
        return buf;
}

bool name_is_valid(const char *s, size_t max) {
        size_t n = 0;

        if (isempty(s) || s[0] == '.' || s[0] == '-')
                return false;
        for (const char *p = s; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit(*p) || *p == '.' ||
                      *p == '_' || *p == '-'))
                        return false;
        return n <= max;
}

bool utf8_is_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *end = p + len;

        while (p < end) {
                unsigned c = *p, n;
                uint32_t cp;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        n = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3;
                        cp = c & 0x07;
                } else
                        return false;
                if ((size_t) (end - p) <= n)
                        return false;
                for (unsigned i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, surrogates and values beyond Unicode are invalid. */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n + 1;
        }
        return true;
}

bool filename_is_safe(const char *s) {
        size_t n;

        if (isempty(s) || streq(s, ".") || streq(s, ".."))
                return false;
        n = strlen(s);
        if (n > 255)
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p == '/' || *p < 0x20 || *p == 0x7f)
                        return false;
        return utf8_is_valid(s, n);
}
