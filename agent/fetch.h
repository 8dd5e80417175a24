/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent's transport (DESIGN.md §4.3): blocking downloads with libcurl's easy interface, one
 * job per process. Two entry points:
 *
 *   fetch_document() — a small document (release envelope, root document) into memory, with a
 *                      hard size cap enforced while receiving;
 *   fetch_file()     — a weight file streamed into a StreamWriter (→ SHA-256 → seal → staging
 *                      file), resumable with HTTP Range, never more than the signed size.
 *
 * Only https:// (peer and host verification always on, optional CA file, pinned public key,
 * client certificate) and file:// (air-gapped hosts) are accepted; redirects only to https, at
 * most 5. Retries are bounded, with exponential backoff and full jitter; permanent 4xx are not
 * retried; Retry-After is honoured (capped).
 *
 * Every failure returns a negative errno and, when ret_reason is given, a malloc'd one-line
 * REASON that names what went wrong (HTTP status, curl's error text, which check), fit to be
 * logged verbatim. Server-supplied text in it (status phrase, Location, Content-Range) is
 * reduced to printable ASCII and truncated.
 *
 * Retried: 408, 429, 5xx except 501/505, transport errors, timeouts, wrong Content-Range or
 * Content-Length. Never retried: other 4xx, TLS verification and local TLS setup errors, redirect
 * errors, more bytes than allowed, errors from the sink or a callback.
 *
 * errno classes (the same for documents and files):
 *   -EINVAL           bad URL or options (never retried)
 *   -EPROTONOSUPPORT  a scheme other than https/file, or a redirect to one (e.g. http://)
 *   -ELOOP            more redirects than allowed, or a file:// path whose final component is a symlink
 *   -ENOENT           HTTP 404/410, or a missing file:// path
 *   -EBADF            a file:// path that is not a regular file (directory, FIFO, device)
 *   -EACCES           HTTP 401/403, or the server rejected our client certificate (TLS alert)
 *   -EKEYREJECTED     the server's certificate failed verification, or the pinned key did not match
 *   -ENOKEY           our CA file / client certificate / key could not be loaded
 *   -EPROTO           any other unexpected HTTP status (other 4xx, 3xx without Location, 2xx ≠ 200/206)
 *   -EAGAIN           408/429/503 still failing after the last retry
 *   -EIO              other 5xx (501/505 at once, the rest after the last retry), or an
 *                     unclassified curl error
 *   -ETIMEDOUT        connect timeout, total timeout, or slower than the low-speed limit
 *   -ECONNREFUSED, -EHOSTUNREACH, -ECONNRESET  transport errors (connection cut mid-body: -ECONNRESET)
 *   -EBADMSG          a wrong Content-Range or HTTP 416, a size the server announced ≠ the expected one, a
 *                     Content-Encoding on a file, a 200 to a Range request without cb->restart
 *   -EFBIG            more bytes than expected_size / max_size (endless-data attack), never retried
 *   -ECANCELED        a callback asked to stop (its own negative errno is returned when it gave one)
 *   anything a StreamWriter or callback returned is passed through unchanged (never retried).
 */

#include "config.h"
#include "macros.h"
#include "stream.h"

#define FETCH_MAX_REDIRECTS     5U
#define FETCH_SIZE_UNKNOWN      UINT64_MAX
#define FETCH_PROGRESS_INTERVAL (100 * USEC_PER_MSEC)

/* Sleep usec microseconds between attempts. Returns 0, or a negative errno to give up (that errno
 * is then returned). Injectable so tests do not wait. */
typedef int (*FetchSleepFn)(void *userdata, uint64_t usec);

typedef struct FetchOptions {
        const TlsOptions *tls;      /* borrowed; NULL: system CA store, no pin, no client cert */
        uint64_t connect_timeout;   /* usec per attempt; 0: libcurl's default */
        uint64_t low_speed_limit;   /* bytes/s; below it for low_speed_time the attempt fails; 0: off */
        uint64_t low_speed_time;    /* usec, rounded up to whole seconds (libcurl's unit) */
        uint64_t timeout;           /* usec cap for one attempt; 0: none (documents: 5 min) */
        unsigned retries;           /* failed attempts retried in a row (see retry_reset_bytes) */
        uint64_t retry_reset_bytes; /* fetch_file(): a failed attempt that got the sink this much further
                                     * than ever before starts the retry count afresh; 0: never */
        uint64_t backoff_base;      /* usec; the n-th retry waits uniform[0, min(max, base·2ⁿ)] */
        uint64_t backoff_max;       /* usec */
        uint64_t retry_after_max;   /* usec; a longer Retry-After is cut to this */
        unsigned max_redirects;     /* clamped to FETCH_MAX_REDIRECTS */
        uint64_t max_file_size;     /* fetch_file() cap when expected_size is FETCH_SIZE_UNKNOWN */
        const char *proxy;          /* NULL: libcurl's default ($https_proxy, $no_proxy); "": none */
        FetchSleepFn sleep;         /* NULL: nanosleep */
        void *sleep_userdata;
} FetchOptions;

/* Defaults: connect 30 s, 1 KiB/s for 60 s, 5 retries (afresh after 64 MiB of progress), backoff
 * 1 s…60 s, Retry-After ≤ 5 min. */
void fetch_options_init(FetchOptions *o);
/* Defaults overridden by a model's source: section. Borrows s->tls (s must outlive o). */
void fetch_options_from_source(FetchOptions *o, const SourceConfig *s);

typedef struct FetchCallbacks {
        /* The server ignored our Range and sent the whole file from byte 0: the caller truncates
         * its sink and resets everything computed from it (hash, seal, staging file), then the
         * body follows from byte 0. Required when offset > 0 or after a cut with resume. */
        int (*restart)(void *userdata);
        /* done/total bytes of the whole file (total: expected_size or FETCH_SIZE_UNKNOWN), at
         * most every FETCH_PROGRESS_INTERVAL and once at the end. Negative: abort with it. */
        int (*progress)(void *userdata, uint64_t done, uint64_t total);
        void *userdata;
} FetchCallbacks;

/* What happened, filled on success and on failure (it describes the attempts, not a result). */
typedef struct FetchStats {
        unsigned attempts;       /* requests made (0 for file:// and nothing-to-do) */
        unsigned restarts;       /* times cb->restart() was called */
        long http_status;        /* last final HTTP status seen, 0 if none */
        unsigned http_version;   /* of that response: 11 (HTTP/1.1), 20 (HTTP/2), 0 if none */
        uint64_t bytes_received; /* body bytes delivered to the sink, over all attempts */
        uint64_t slept;          /* usec of backoff requested */
} FetchStats;

/*
 * GET a small document. On success *ret (NUL-terminated, malloc'd) and *ret_size. A body (or a
 * Content-Length) larger than max_size fails with -EFBIG as soon as it is seen. file:// URLs are
 * read locally (final component not followed if a symlink, regular files only), same cap.
 */
int fetch_document(const char *url, const FetchOptions *opts, size_t max_size, char **ret, size_t *ret_size,
                   FetchStats *ret_stats, char **ret_reason);

/*
 * Stream a file into sink, starting at byte offset (the caller already holds bytes [0, offset)).
 * Sends "Range: bytes=offset-" when offset > 0; a 206 must carry exactly
 * "bytes offset-(expected_size-1)/expected_size"; a 200 to a Range request calls cb->restart()
 * and continues from 0. A cut connection is resumed from the bytes already delivered on the next
 * attempt. The sink never receives more than expected_size bytes in total, and success means it
 * received exactly expected_size (or, when FETCH_SIZE_UNKNOWN, the size the server announced).
 * offset == expected_size returns 0 without a request. cb may be NULL when offset is 0 and no
 * progress is wanted (a later 200 after a cut then fails instead of restarting).
 */
int fetch_file(const char *url, const FetchOptions *opts, uint64_t expected_size, uint64_t offset,
               const StreamWriter *sink, const FetchCallbacks *cb, FetchStats *ret_stats, char **ret_reason);

/*
 * Pure helpers (no I/O), exposed for tests and fuzzing.
 */

/* "<base>/<relative>" where base is https://host[:port]/path or file:///path (a trailing '/' is
 * implied), and relative is a path of [A-Za-z0-9._~-] segments separated by single '/' (no '.',
 * '..', empty segments, '%', '?', '#'), or an absolute https:// URL with the same origin as base
 * whose path satisfies the same rules. Anything else — another host, scheme or port, userinfo,
 * escapes — is -EINVAL or -EXDEV (other origin). */
int fetch_join_url(const char *base, const char *relative, char **ret);

/* The delay before retry number attempt (0 = the first retry): full jitter, i.e. rnd reduced to
 * [0, min(cap, base·2^attempt)]. */
uint64_t fetch_backoff_usec(unsigned attempt, uint64_t base, uint64_t cap, uint64_t rnd) _const_;

/* Retry-After: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime), relative to now
 * (seconds since the epoch). A date in the past gives 0. -EINVAL when unparsable. */
int fetch_parse_retry_after(const char *value, int64_t now, uint64_t *ret_usec);

/* "bytes first-last/complete" (RFC 9110 §14.4); "*" as complete gives FETCH_SIZE_UNKNOWN.
 * -EINVAL for anything else, including last < first or last ≥ complete. */
int fetch_parse_content_range(const char *value, uint64_t *ret_first, uint64_t *ret_last,
                              uint64_t *ret_complete);

/* true for statuses worth retrying: 408, 429, 5xx (except 501, 505). */
bool fetch_http_status_is_transient(long status) _const_;
