/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The small vocabulary every file uses: scoped cleanup, ownership hand-over, and a few
 * helpers. Modelled on systemd's src/fundamental/macro-fundamental.h and src/basic/macro.h.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(x)        __attribute__((__cleanup__(x)))
#define _unused_            __attribute__((__unused__))
#define _noreturn_          __attribute__((__noreturn__))
#define _printf_(a, b)      __attribute__((__format__(printf, a, b)))
#define _warn_unused_result_ __attribute__((__warn_unused_result__))
#define _pure_              __attribute__((__pure__))
#define _const_             __attribute__((__const__))
#define _likely_(x)         (__builtin_expect(!!(x), 1))
#define _unlikely_(x)       (__builtin_expect(!!(x), 0))
#define _fallthrough_       __attribute__((__fallthrough__))
#define _sentinel_          __attribute__((__sentinel__))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define XCONCATENATE(x, y) x##y
#define CONCATENATE(x, y)  XCONCATENATE(x, y)
#define UNIQ_T(x, uniq)    CONCATENATE(__unique_prefix_, CONCATENATE(x, uniq))
#define UNIQ               __COUNTER__

/* Unique temporaries (via __COUNTER__), so MIN(MAX(a, b), c) nests without shadowing. */
#define MIN(a, b) __MIN(UNIQ, (a), UNIQ, (b))
#define __MIN(aq, a, bq, b)                                                                                \
        __extension__({                                                                                    \
                const __typeof__(a) UNIQ_T(A, aq) = (a);                                                   \
                const __typeof__(b) UNIQ_T(B, bq) = (b);                                                   \
                UNIQ_T(A, aq) < UNIQ_T(B, bq) ? UNIQ_T(A, aq) : UNIQ_T(B, bq);                             \
        })
#define MAX(a, b) __MAX(UNIQ, (a), UNIQ, (b))
#define __MAX(aq, a, bq, b)                                                                                \
        __extension__({                                                                                    \
                const __typeof__(a) UNIQ_T(A, aq) = (a);                                                   \
                const __typeof__(b) UNIQ_T(B, bq) = (b);                                                   \
                UNIQ_T(A, aq) > UNIQ_T(B, bq) ? UNIQ_T(A, aq) : UNIQ_T(B, bq);                             \
        })
#define CLAMP(x, lo, hi)                                                                                   \
        __extension__({                                                                                    \
                const __typeof__(x) _x = (x);                                                              \
                const __typeof__(lo) _lo = (lo);                                                           \
                const __typeof__(hi) _hi = (hi);                                                           \
                _x < _lo ? _lo : _x > _hi ? _hi : _x;                                                      \
        })

/* Take ownership out of a variable that has a cleanup attached. */
#define TAKE_PTR(p)                                                                                        \
        __extension__({                                                                                    \
                __typeof__(p) _p = (p);                                                                    \
                (p) = NULL;                                                                                \
                _p;                                                                                        \
        })
#define TAKE_FD(fd)                                                                                        \
        __extension__({                                                                                    \
                int _fd = (fd);                                                                            \
                (fd) = -EBADF;                                                                             \
                _fd;                                                                                       \
        })

/* free() that returns NULL of the same type: p = mfree(p); */
#define mfree(p)                                                                                           \
        __extension__({                                                                                    \
                free(p);                                                                                   \
                (__typeof__(p)) NULL;                                                                      \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                /* close() may fail with EINTR, but the fd is gone on Linux either way: never retry. */
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline FILE *safe_fclose(FILE *f) {
        if (f)
                (void) fclose(f);
        return NULL;
}
static inline void fclosep(FILE **f) {
        safe_fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Define a cleanup helper "<func>p" for a type whose destructor is "func(x)". */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                            \
        static inline void func##p(type *p) {                                                              \
                if (*p)                                                                                    \
                        func(*p);                                                                          \
        }                                                                                                  \
        struct __useless_struct_to_allow_trailing_semicolon__

#define streq(a, b)        (strcmp((a), (b)) == 0)
#define strneq(a, b, n)    (strncmp((a), (b), (n)) == 0)
#define isempty(s)         (!(s) || !(s)[0])
#define strna(s)           ((s) ?: "n/a")
#define strempty(s)        ((s) ?: "")
#define yes_no(b)          ((b) ? "yes" : "no")

/* Copy n bytes and add a NUL, so text read from files can be used as a C string too. */
static inline void *memdup_or_null(const void *p, size_t n) {
        char *c = malloc(n + 1);
        if (!c)
                return NULL;
        if (n > 0)
                memcpy(c, p, n);
        c[n] = 0;
        return c;
}

/* asprintf() that returns the string, or NULL when out of memory. */
_printf_(1, 2) static inline char *xasprintf(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

/* streq() that accepts NULL: equal when both are NULL or both the same string. */
static inline bool streq_ptr(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static inline const char *startswith(const char *s, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

static inline const char *endswith(const char *s, const char *suffix) {
        size_t sl = strlen(s), xl = strlen(suffix);
        return sl >= xl && memcmp(s + sl - xl, suffix, xl) == 0 ? s + sl - xl : NULL;
}

/* Turn a libc-style -1/errno return into a negative errno. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
#define RET_NERRNO(expr)                                                                                   \
        __extension__({                                                                                    \
                __typeof__(expr) _r = (expr);                                                              \
                _r < 0 ? negative_errno() : (int) _r;                                                      \
        })

/* Overflow-checked arithmetic for sizes that come from files and servers. */
#define ADD_OVERFLOW(a, b, res) __builtin_add_overflow((a), (b), (res))
#define MUL_OVERFLOW(a, b, res) __builtin_mul_overflow((a), (b), (res))

#define USEC_PER_SEC  ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define NSEC_PER_USEC ((uint64_t) 1000ULL)
#define USEC_INFINITY ((uint64_t) UINT64_MAX)

#define KIB ((uint64_t) 1024ULL)
#define MIB (KIB * 1024ULL)
#define GIB (MIB * 1024ULL)

#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)

/* Use for code paths that must never be reached; aborts in every build type. */
#define assert_not_reached()                                                                               \
        do {                                                                                               \
                fprintf(stderr, "Code should not be reached at %s:%d, function %s()\n", __FILE__,          \
                        __LINE__, __func__);                                                               \
                abort();                                                                                   \
        } while (0)

/* Programming errors: always checked (not compiled out by NDEBUG). */
#define assert_se(expr)                                                                                    \
        do {                                                                                               \
                if (_unlikely_(!(expr))) {                                                                 \
                        fprintf(stderr, "Assertion '%s' failed at %s:%d, function %s()\n", #expr,          \
                                __FILE__, __LINE__, __func__);                                             \
                        abort();                                                                           \
                }                                                                                          \
        } while (0)

/* For public entry points: programming errors return -EINVAL instead of crashing. */
#define assert_return(expr, r)                                                                             \
        do {                                                                                               \
                if (_unlikely_(!(expr)))                                                                   \
                        return (r);                                                                        \
        } while (0)
