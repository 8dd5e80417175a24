/* SPDX-License-Identifier: Apache-2.0 */

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "fetch.h"
#include "fileio.h"
#include "log.h"

#define DOCUMENT_TIMEOUT_DEFAULT (5 * 60 * USEC_PER_SEC)
#define FILE_CHUNK_SIZE          (1 * MIB)
#define URL_MAX                  4096U
#define REASON_TEXT_MAX          200U

/* ---------------------------------------------------------------------------------------------
 * Options
 */

void fetch_options_init(FetchOptions *o) {
        assert_se(o);
        *o = (FetchOptions){
                .connect_timeout = 30 * USEC_PER_SEC,
                .low_speed_limit = 1024,
                .low_speed_time = 60 * USEC_PER_SEC,
                .retries = 5,
                .retry_reset_bytes = 64 * MIB,
                .backoff_base = 1 * USEC_PER_SEC,
                .backoff_max = 60 * USEC_PER_SEC,
                .retry_after_max = 5 * 60 * USEC_PER_SEC,
                .max_redirects = FETCH_MAX_REDIRECTS,
                .max_file_size = 64 * GIB,
        };
}

void fetch_options_from_source(FetchOptions *o, const SourceConfig *s) {
        fetch_options_init(o);
        if (!s)
                return;
        o->tls = &s->tls;
        o->connect_timeout = s->connect_timeout;
        o->low_speed_limit = s->low_speed_limit;
        o->low_speed_time = s->low_speed_time;
        o->retries = s->retries;
        if (s->retry_backoff > 0)
                o->backoff_base = s->retry_backoff;
        if (s->retry_backoff_max > 0)
                o->backoff_max = s->retry_backoff_max;
        if (s->max_file_size > 0)
                o->max_file_size = s->max_file_size;
}

/* ---------------------------------------------------------------------------------------------
 * Pure helpers
 */

uint64_t fetch_backoff_usec(unsigned attempt, uint64_t base, uint64_t cap, uint64_t rnd) {
        uint64_t ceiling = base;

        /* base·2^attempt, saturating at cap (and at UINT64_MAX before that). */
        for (unsigned i = 0; i < attempt && ceiling < cap; i++)
                if (MUL_OVERFLOW(ceiling, 2, &ceiling))
                        ceiling = UINT64_MAX;
        ceiling = MIN(ceiling, cap);
        if (ceiling == UINT64_MAX)
                return rnd;
        return rnd % (ceiling + 1);
}

bool fetch_http_status_is_transient(long status) {
        /* 501 Not Implemented and 505 HTTP Version Not Supported will not change by waiting. */
        return status == 408 || status == 429 ||
               (status >= 500 && status <= 599 && status != 501 && status != 505);
}

static const char *skip_ows(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* One or more decimal digits, overflow-checked. */
static int parse_digits(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++)
                if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t) (*s - '0'), &v))
                        return -ERANGE;
        *p = s;
        *ret = v;
        return 0;
}

int fetch_parse_content_range(const char *value, uint64_t *ret_first, uint64_t *ret_last,
                              uint64_t *ret_complete) {
        uint64_t first, last, complete;
        const char *p;

        assert_return(value, -EINVAL);

        p = skip_ows(value);
        if (strncasecmp(p, "bytes", 5) != 0 || p[5] != ' ')
                return -EINVAL;
        p += 6;
        if (parse_digits(&p, &first) < 0 || *p++ != '-')
                return -EINVAL;
        if (parse_digits(&p, &last) < 0 || *p++ != '/')
                return -EINVAL;
        if (*p == '*') {
                complete = FETCH_SIZE_UNKNOWN;
                p++;
        } else if (parse_digits(&p, &complete) < 0)
                return -EINVAL;
        if (*skip_ows(p) != 0)
                return -EINVAL;
        if (last < first || (complete != FETCH_SIZE_UNKNOWN && last >= complete))
                return -EINVAL;

        if (ret_first)
                *ret_first = first;
        if (ret_last)
                *ret_last = last;
        if (ret_complete)
                *ret_complete = complete;
        return 0;
}

int fetch_parse_retry_after(const char *value, int64_t now, uint64_t *ret_usec) {
        const char *p;
        uint64_t secs;

        assert_return(value, -EINVAL);
        assert_return(ret_usec, -EINVAL);

        p = skip_ows(value);
        if (*p >= '0' && *p <= '9') {
                /* delta-seconds; saturate rather than fail, the caller caps it anyway. */
                int r = parse_digits(&p, &secs);
                if (r == -ERANGE) {
                        for (; *p >= '0' && *p <= '9'; p++)
                                ;
                        secs = UINT64_MAX;
                } else if (r < 0)
                        return r;
                if (*skip_ows(p) != 0)
                        return -EINVAL;
        } else {
                /* An HTTP-date: RFC 9110 §5.6.7 wants recipients to accept all three historic
                 * forms, which is exactly what curl_getdate() parses (it does no I/O). */
                time_t t;

                if (*p == 0 || strlen(p) > 64)
                        return -EINVAL;
                t = curl_getdate(p, NULL);
                if (t == (time_t) -1)
                        return -EINVAL;
                secs = (int64_t) t > now ? (uint64_t) ((int64_t) t - now) : 0;
        }

        *ret_usec = secs > UINT64_MAX / USEC_PER_SEC ? UINT64_MAX : secs * USEC_PER_SEC;
        return 0;
}

static bool char_is_segment(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '~' || c == '-';
}

/* "seg/seg/…": non-empty segments of safe characters, never "." or "..". */
static bool relative_path_is_safe(const char *p) {
        if (isempty(p) || strlen(p) > URL_MAX)
                return false;
        for (;;) {
                size_t n = 0;

                while (char_is_segment(p[n]))
                        n++;
                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += n;
                if (*p == 0)
                        return true;
                if (*p != '/')
                        return false;
                p++;
        }
}

static bool char_is_authority(char c) {
        /* host (reg-name, IPv4, [IPv6]) and :port. No '@': credentials never go in a URL. */
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '-' || c == ':' || c == '[' || c == ']';
}

/* Split an https:// or file:// URL into the length of its origin ("scheme://authority") and
 * validate it. The path after the origin is checked by the caller. */
static int url_origin_length(const char *url, size_t *ret) {
        size_t n;

        if (strncasecmp(url, "https://", 8) == 0) {
                n = 8;
                while (char_is_authority(url[n]))
                        n++;
                if (n == 8 || (url[n] != 0 && url[n] != '/'))
                        return -EINVAL;
        } else if (strncasecmp(url, "file://", 7) == 0) {
                n = 7;
                if (url[n] != '/')
                        return -EINVAL;
        } else
                return -EPROTONOSUPPORT;

        *ret = n;
        return 0;
}

int fetch_join_url(const char *base, const char *relative, char **ret) {
        _cleanup_free_ char *joined = NULL;
        size_t origin, bl;
        int r;

        assert_return(base, -EINVAL);
        assert_return(relative, -EINVAL);
        assert_return(ret, -EINVAL);

        if (strlen(base) > URL_MAX || strlen(relative) > URL_MAX)
                return -EINVAL;
        r = url_origin_length(base, &origin);
        if (r < 0)
                return r;
        /* The base's path: "" or "/seg/…/" with safe segments (a trailing '/' is optional). */
        bl = strlen(base);
        if (base[origin] == 0) {
                if (origin == 7) /* "file://" names no path */
                        return -EINVAL;
        } else if (!streq(base + origin, "/")) {
                _cleanup_free_ char *path = strndup(base + origin + 1, bl - origin - 1);
                if (!path)
                        return -ENOMEM;
                if (path[0] && path[strlen(path) - 1] == '/')
                        path[strlen(path) - 1] = 0;
                if (!relative_path_is_safe(path)) /* also refuses "//" and "/a//" */
                        return -EINVAL;
        }

        if (strstr(relative, "://")) {
                size_t ro;

                /* An absolute URL is fine only on the base's own origin. */
                r = url_origin_length(relative, &ro);
                if (r < 0)
                        return r == -EPROTONOSUPPORT ? -EXDEV : r;
                if (ro != origin || strncasecmp(base, relative, origin) != 0)
                        return -EXDEV;
                if (relative[ro] != '/' || !relative_path_is_safe(relative + ro + 1))
                        return -EINVAL;
                joined = strdup(relative);
        } else {
                if (!relative_path_is_safe(relative))
                        return -EINVAL;
                bool slash = bl > 0 && base[bl - 1] == '/';
                if (asprintf(&joined, "%s%s%s", base, slash ? "" : "/", relative) < 0)
                        joined = NULL;
        }
        if (!joined)
                return -ENOMEM;
        *ret = TAKE_PTR(joined);
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The transfer
 */

typedef enum FetchKind {
        FETCH_DOCUMENT,
        FETCH_FILE,
} FetchKind;

typedef struct Transfer {
        FetchKind kind;
        const FetchOptions *opts;
        CURL *curl;
        char errbuf[CURL_ERROR_SIZE];
        char range[32];

        uint64_t expected; /* FETCH_FILE: the size we must end with, or FETCH_SIZE_UNKNOWN */
        uint64_t cap;      /* never hold more than this */
        uint64_t pos;      /* bytes the sink (or the document buffer) holds */
        bool asked_range;

        const StreamWriter *sink;
        const FetchCallbacks *cb;
        uint64_t last_progress;

        char *doc;
        size_t doc_alloc;

        /* The response being received; reset at each status line (redirects, 1xx). */
        long status;
        unsigned version;
        char status_text[64];
        char content_range[96];
        char content_encoding[64];
        char location[256];
        char retry_after[80];
        bool have_content_length, bad_content_length;
        uint64_t content_length;
        bool body_ok;
        uint64_t announced; /* total size the server announced (FETCH_SIZE_UNKNOWN: none) */

        /* Outcome of the attempt, set by the callbacks or by classify_curl(). */
        int error;
        bool permanent;
        char *reason;
        bool have_retry_after;
        uint64_t retry_after_usec;

        FetchStats stats;
} Transfer;

static void transfer_done(Transfer *t) {
        if (t->curl)
                curl_easy_cleanup(t->curl);
        t->curl = NULL;
        t->doc = mfree(t->doc);
        t->reason = mfree(t->reason);
}

/* Record why the attempt failed. The first failure wins: curl's own error after a callback
 * aborted the transfer (CURLE_WRITE_ERROR) is only a consequence. */
_printf_(4, 5) static int transfer_fail(Transfer *t, int error, bool permanent, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        if (t->error != 0)
                return t->error;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(t->reason);
        t->reason = s;
        t->error = error < 0 ? error : -EIO;
        t->permanent = permanent;
        return t->error;
}

/* Server-supplied text that goes into a REASON (and so into the journal): printable ASCII only,
 * bounded. */
static void sanitize_copy(char *dst, size_t size, const char *src, size_t n) {
        size_t j = 0;

        assert_se(size > 4);
        for (size_t i = 0; i < n && src[i]; i++) {
                if (j + 4 >= size) {
                        memcpy(dst + j, "...", 3);
                        j += 3;
                        break;
                }
                dst[j++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
        }
        dst[j] = 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        assert_se(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static uint64_t random_u64(void) {
        uint64_t v;

        /* Jitter needs no secrecy; never block or fail for it. */
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t) sizeof(v))
                return v;
        return now_usec() * UINT64_C(0x9E3779B97F4A7C15);
}

static int default_sleep(void *userdata, uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000,
        };

        while (nanosleep(&ts, &ts) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static void response_reset(Transfer *t) {
        t->status = 0;
        t->version = 0;
        t->status_text[0] = 0;
        t->content_range[0] = 0;
        t->content_encoding[0] = 0;
        t->location[0] = 0;
        t->retry_after[0] = 0;
        t->have_content_length = t->bad_content_length = false;
        t->content_length = 0;
        t->body_ok = false;
}

static const char *status_phrase(const Transfer *t) {
        return t->status_text[0] ? t->status_text : "";
}

static int http_status_to_errno(long status) {
        switch (status) {
        case 404:
        case 410:
                return -ENOENT;
        case 401:
        case 403:
                return -EACCES;
        case 408:
        case 429:
        case 503:
                return -EAGAIN;
        default:
                return status >= 500 && status <= 599 ? -EIO : -EPROTO;
        }
}

static int check_status_failure(Transfer *t) {
        bool transient = fetch_http_status_is_transient(t->status);

        if (transient && t->retry_after[0]) {
                uint64_t usec;

                if (fetch_parse_retry_after(t->retry_after, (int64_t) time(NULL), &usec) >= 0) {
                        t->have_retry_after = true;
                        t->retry_after_usec = usec;
                }
        }
        if (t->status >= 300 && t->status <= 399)
                return transfer_fail(t, -EPROTO, true, "HTTP %ld%s%s without a usable Location", t->status,
                                     t->status_text[0] ? " " : "", status_phrase(t));
        if (t->status == 416)
                return transfer_fail(t, -EBADMSG, false,
                                     "HTTP 416 Range Not Satisfiable for bytes=%" PRIu64
                                     "- (Content-Range '%s')",
                                     t->pos, t->content_range[0] ? t->content_range : "none");
        return transfer_fail(t, http_status_to_errno(t->status), !transient, "HTTP %ld%s%s%s", t->status,
                             t->status_text[0] ? " " : "", status_phrase(t),
                             t->have_retry_after ? " (with Retry-After)" : "");
}

/* The statuses libcurl follows when they carry a Location (not 300, 304, 305, 306). */
#define IN_SET_REDIRECT(s) ((s) == 301 || (s) == 302 || (s) == 303 || (s) == 307 || (s) == 308)

/* The headers of a final response are complete: decide whether its body is what we want. */
static int check_headers(Transfer *t) {
        if (t->status >= 100 && t->status <= 199)
                return 0; /* informational; the real status line follows */
        if (IN_SET_REDIRECT(t->status) && t->location[0])
                return 0; /* libcurl follows it (within CURLOPT_MAXREDIRS and CURLOPT_REDIR_PROTOCOLS_STR) */

        t->stats.http_status = t->status;
        t->stats.http_version = t->version;
        if (t->bad_content_length)
                return transfer_fail(t, -EBADMSG, false, "unparsable or conflicting Content-Length");

        if (t->kind == FETCH_DOCUMENT) {
                if (t->status != 200)
                        return check_status_failure(t);
                if (t->have_content_length && t->content_length > t->cap)
                        return transfer_fail(t, -EFBIG, true,
                                             "document is %" PRIu64
                                             " bytes (Content-Length), more than the limit of %" PRIu64,
                                             t->content_length, t->cap);
                t->body_ok = true;
                return 0;
        }

        if (t->content_encoding[0] && strcasecmp(t->content_encoding, "identity") != 0)
                /* We never ask for one; a server that applies one anyway would make sizes and
                 * digests meaningless. */
                return transfer_fail(t, -EBADMSG, true,
                                     "server applied Content-Encoding '%s' to the file; sizes must be exact",
                                     t->content_encoding);

        if (t->status == 206) {
                uint64_t first, last, complete;

                if (!t->asked_range)
                        return transfer_fail(t, -EBADMSG, false, "HTTP 206 to a request without Range");
                if (!t->content_range[0])
                        return transfer_fail(t, -EBADMSG, false, "HTTP 206 without Content-Range");
                if (fetch_parse_content_range(t->content_range, &first, &last, &complete) < 0)
                        return transfer_fail(t, -EBADMSG, false, "unparsable Content-Range '%s'",
                                             t->content_range);
                if (first != t->pos)
                        return transfer_fail(t, -EBADMSG, false,
                                             "Content-Range '%s' starts at byte %" PRIu64
                                             ", asked for %" PRIu64,
                                             t->content_range, first, t->pos);
                if (complete == FETCH_SIZE_UNKNOWN)
                        return transfer_fail(t, -EBADMSG, false,
                                             "Content-Range '%s' does not give the complete length",
                                             t->content_range);
                if (t->expected != FETCH_SIZE_UNKNOWN && complete != t->expected)
                        return transfer_fail(t, -EBADMSG, false,
                                             "Content-Range '%s' gives a complete length of %" PRIu64
                                             ", expected %" PRIu64,
                                             t->content_range, complete, t->expected);
                if (complete > t->cap)
                        return transfer_fail(t, -EFBIG, true,
                                             "Content-Range '%s' announces more than the limit of %" PRIu64
                                             " bytes",
                                             t->content_range, t->cap);
                if (last != complete - 1)
                        return transfer_fail(t, -EBADMSG, false,
                                             "Content-Range '%s' ends at byte %" PRIu64
                                             ", not at the last byte %" PRIu64,
                                             t->content_range, last, complete - 1);
                if (t->have_content_length && t->content_length != last - first + 1)
                        return transfer_fail(t, -EBADMSG, false,
                                             "Content-Length %" PRIu64 " does not match Content-Range '%s'",
                                             t->content_length, t->content_range);
                t->announced = complete;
        } else if (t->status == 200) {
                if (t->have_content_length) {
                        if (t->content_length > t->cap)
                                return transfer_fail(
                                        t, -EFBIG, true,
                                        "server announces %" PRIu64
                                        " bytes (Content-Length), more than the expected %" PRIu64,
                                        t->content_length, t->cap);
                        if (t->expected != FETCH_SIZE_UNKNOWN && t->content_length != t->expected)
                                return transfer_fail(t, -EBADMSG, false,
                                                     "server announces %" PRIu64
                                                     " bytes (Content-Length), expected %" PRIu64,
                                                     t->content_length, t->expected);
                        t->announced = t->content_length;
                }
                if (t->pos > 0) {
                        int r;

                        /* The server ignored Range (or a cut happened and now it does): the body
                         * starts at byte 0 again, so everything derived from the old bytes must go. */
                        if (!t->cb || !t->cb->restart)
                                return transfer_fail(
                                        t, -EBADMSG, true,
                                        "server ignored Range (HTTP 200) and the caller cannot restart");
                        log_debug("Server ignored Range from byte %" PRIu64 ", restarting from 0.", t->pos);
                        r = t->cb->restart(t->cb->userdata);
                        if (r < 0)
                                return transfer_fail(t, r, true,
                                                     "restarting the download from byte 0 failed: %s",
                                                     strerror(-r));
                        t->stats.restarts++;
                        t->pos = 0;
                }
        } else
                return check_status_failure(t);

        t->body_ok = true;
        return 0;
}

static void header_value(char *dst, size_t size, const char *v, size_t n) {
        while (n > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                n--;
        }
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
        sanitize_copy(dst, size, v, n);
}

static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nitems, l = n;
        const char *colon;

        while (l > 0 && (buffer[l - 1] == '\n' || buffer[l - 1] == '\r'))
                l--;

        if (l >= 5 && strncmp(buffer, "HTTP/", 5) == 0) {
                const char *p = memchr(buffer, ' ', l);
                uint64_t status;

                response_reset(t);
                /* "HTTP/1.1 200 OK", "HTTP/2 200" */
                if (l >= 6 && buffer[5] >= '0' && buffer[5] <= '9')
                        t->version = (unsigned) (buffer[5] - '0') * 10 +
                                     (l >= 8 && buffer[6] == '.' && buffer[7] >= '0' && buffer[7] <= '9'
                                              ? (unsigned) (buffer[7] - '0')
                                              : 0);
                if (!p || (size_t) (p + 1 - buffer) >= l) {
                        transfer_fail(t, -EPROTO, false, "malformed status line");
                        return 0;
                }
                p++;
                if (parse_digits(&p, &status) < 0 || status < 100 || status > 999) {
                        transfer_fail(t, -EPROTO, false, "malformed status line");
                        return 0;
                }
                t->status = (long) status;
                if ((size_t) (p - buffer) < l)
                        header_value(t->status_text, sizeof(t->status_text), p, l - (size_t) (p - buffer));
                return n;
        }

        if (l == 0)
                return check_headers(t) < 0 ? 0 : n;

        colon = memchr(buffer, ':', l);
        if (!colon)
                return n;
        size_t name = (size_t) (colon - buffer), vl = l - name - 1;
        const char *v = colon + 1;

#define IS(h) (name == strlen(h) && strncasecmp(buffer, h, name) == 0)
        if (IS("Content-Range"))
                header_value(t->content_range, sizeof(t->content_range), v, vl);
        else if (IS("Content-Encoding"))
                header_value(t->content_encoding, sizeof(t->content_encoding), v, vl);
        else if (IS("Location"))
                header_value(t->location, sizeof(t->location), v, vl);
        else if (IS("Retry-After"))
                header_value(t->retry_after, sizeof(t->retry_after), v, vl);
        else if (IS("Content-Length")) {
                char buf[32];
                const char *p = buf;
                uint64_t cl;

                header_value(buf, sizeof(buf), v, vl);
                if (parse_digits(&p, &cl) < 0 || *p != 0 ||
                    (t->have_content_length && cl != t->content_length))
                        t->bad_content_length = true;
                else {
                        t->have_content_length = true;
                        t->content_length = cl;
                }
        }
#undef IS
        return n;
}

static void maybe_progress(Transfer *t, bool final) {
        uint64_t now;
        int r;

        if (!t->cb || !t->cb->progress)
                return;
        now = now_usec();
        if (!final && t->last_progress != 0 && now - t->last_progress < FETCH_PROGRESS_INTERVAL)
                return;
        t->last_progress = now;
        r = t->cb->progress(t->cb->userdata, t->pos, t->expected);
        if (r < 0)
                transfer_fail(t, r, true, "cancelled by the progress callback: %s", strerror(-r));
}

static size_t write_cb(char *buffer, size_t size, size_t nitems, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nitems;
        uint64_t end;
        int r;

        if (!t->body_ok) {
                transfer_fail(t, -EPROTO, false, "body received before a valid final response");
                return 0;
        }
        if (n == 0)
                return 0;

        if (ADD_OVERFLOW(t->pos, (uint64_t) n, &end) || end > t->cap) {
                if (t->kind == FETCH_DOCUMENT)
                        transfer_fail(t, -EFBIG, true, "document exceeds the limit of %" PRIu64 " bytes",
                                      t->cap);
                else
                        transfer_fail(
                                t, -EFBIG, true, "server sent more than %s %" PRIu64 " bytes (endless data)",
                                t->expected != FETCH_SIZE_UNKNOWN ? "the expected" : "the limit of", t->cap);
                return 0;
        }

        if (t->kind == FETCH_DOCUMENT) {
                if (end + 1 > t->doc_alloc) {
                        size_t a = MIN(t->doc_alloc * 2, (size_t) t->cap + 1);

                        a = MAX(a, (size_t) end + 1);
                        char *d = realloc(t->doc, a);
                        if (!d) {
                                transfer_fail(t, -ENOMEM, true, "out of memory");
                                return 0;
                        }
                        t->doc = d;
                        t->doc_alloc = a;
                }
                memcpy(t->doc + t->pos, buffer, n);
                t->pos = end;
                t->stats.bytes_received += n;
                return n;
        }

        r = stream_write(t->sink, buffer, n);
        if (r < 0) {
                transfer_fail(t, r, true, "writing the download failed at byte %" PRIu64 ": %s", t->pos,
                              strerror(-r));
                return 0;
        }
        t->pos = end;
        t->stats.bytes_received += n;
        maybe_progress(t, false);
        return t->error < 0 ? 0 : n;
}

static int classify_curl(Transfer *t, CURLcode c) {
        const char *text = t->errbuf[0] ? t->errbuf : curl_easy_strerror(c);

        switch (c) {
        case CURLE_UNSUPPORTED_PROTOCOL:
                if (t->location[0])
                        return transfer_fail(t, -EPROTONOSUPPORT, true,
                                             "redirect to '%s' refused: only https is allowed (%s)",
                                             t->location, text);
                return transfer_fail(t, -EPROTONOSUPPORT, true, "unsupported protocol: %s", text);
        case CURLE_TOO_MANY_REDIRECTS:
                return transfer_fail(t, -ELOOP, true, "more than %u redirects (last to '%s')",
                                     MIN(t->opts->max_redirects, FETCH_MAX_REDIRECTS), t->location);
        case CURLE_URL_MALFORMAT:
                return transfer_fail(t, -EINVAL, true, "malformed URL: %s", text);
        case CURLE_PEER_FAILED_VERIFICATION:
                return transfer_fail(t, -EKEYREJECTED, true, "server certificate verification failed: %s",
                                     text);
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                return transfer_fail(t, -EKEYREJECTED, true,
                                     "server public key does not match the pinned key: %s", text);
        case CURLE_SSL_CACERT_BADFILE:
                return transfer_fail(
                        t, -ENOKEY, true, "cannot load the CA file '%s': %s",
                        t->opts->tls && t->opts->tls->ca_file ? t->opts->tls->ca_file : "(system)", text);
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
                return transfer_fail(t, -ENOKEY, true, "cannot use the client certificate or key: %s", text);
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
                /* A TLS alert is the peer's deliberate refusal (e.g. "certificate required",
                 * "unknown ca" for our client certificate); a reset is a network problem. */
                if (strstr(text, " alert "))
                        return transfer_fail(t, -EACCES, true, "server rejected the TLS session: %s", text);
                return transfer_fail(t, -ECONNRESET, false, "connection failed: %s", text);
        case CURLE_OPERATION_TIMEDOUT:
                return transfer_fail(t, -ETIMEDOUT, false, "timed out: %s", text);
        case CURLE_COULDNT_CONNECT:
                return transfer_fail(t, -ECONNREFUSED, false, "cannot connect: %s", text);
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return transfer_fail(t, -EHOSTUNREACH, false, "cannot resolve: %s", text);
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return transfer_fail(t, -ECONNRESET, false, "connection cut after %" PRIu64 " bytes: %s",
                                     t->pos, text);
        case CURLE_ABORTED_BY_CALLBACK:
                return transfer_fail(t, -ECANCELED, true, "cancelled: %s", text);
        case CURLE_OUT_OF_MEMORY:
                return transfer_fail(t, -ENOMEM, true, "out of memory in libcurl");
        case CURLE_FILESIZE_EXCEEDED:
                return transfer_fail(t, -EFBIG, true, "too large: %s", text);
        case CURLE_BAD_CONTENT_ENCODING:
                return transfer_fail(t, -EBADMSG, true, "bad content encoding: %s", text);
        case CURLE_WEIRD_SERVER_REPLY:
                return transfer_fail(t, -EPROTO, false, "malformed response: %s", text);
        default:
                return transfer_fail(t, -EIO, false, "transfer failed: %s (curl error %d)", text, (int) c);
        }
}

#define SETOPT(t, opt, val)                                                                            \
        do {                                                                                           \
                CURLcode _c = curl_easy_setopt((t)->curl, (opt), (val));                               \
                if (_c != CURLE_OK)                                                                    \
                        return transfer_fail((t), _c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL, true, \
                                             "cannot set %s: %s", #opt, curl_easy_strerror(_c));       \
        } while (0)

static long usec_to_msec_long(uint64_t usec) {
        uint64_t ms = usec / USEC_PER_MSEC + (usec % USEC_PER_MSEC != 0);
        return ms > LONG_MAX ? LONG_MAX : (long) ms;
}

static bool curl_initialized = false;

static int transfer_setup(Transfer *t, const char *url) {
        const FetchOptions *o = t->opts;
        uint64_t timeout = o->timeout;

        /* Once per process (it is reference-counted, and never undone: the agent exits after
         * its one job). The agent is single-threaded. */
        if (!curl_initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return transfer_fail(t, -EIO, true, "libcurl initialisation failed");
                curl_initialized = true;
        }
        t->curl = curl_easy_init();
        if (!t->curl)
                return transfer_fail(t, -ENOMEM, true, "cannot create a libcurl handle");

        SETOPT(t, CURLOPT_URL, url);
        SETOPT(t, CURLOPT_PROTOCOLS_STR, "https");
        SETOPT(t, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        SETOPT(t, CURLOPT_FOLLOWLOCATION, 1L);
        SETOPT(t, CURLOPT_MAXREDIRS, (long) MIN(o->max_redirects, FETCH_MAX_REDIRECTS));
        SETOPT(t, CURLOPT_NOSIGNAL, 1L);
        SETOPT(t, CURLOPT_ERRORBUFFER, t->errbuf);
        SETOPT(t, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(t, CURLOPT_HEADERDATA, t);
        SETOPT(t, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(t, CURLOPT_WRITEDATA, t);
        SETOPT(t, CURLOPT_USERAGENT, "modelkeeper/" PACKAGE_VERSION);
        /* Bytes as the server stored them: never decode, so sizes and digests are exact. */
        SETOPT(t, CURLOPT_HTTP_CONTENT_DECODING, 0L);
        SETOPT(t, CURLOPT_TCP_KEEPALIVE, 1L);

        SETOPT(t, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(t, CURLOPT_SSL_VERIFYHOST, 2L);
        SETOPT(t, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (o->tls) {
                if (o->tls->ca_file)
                        SETOPT(t, CURLOPT_CAINFO, o->tls->ca_file);
                if (o->tls->pinned_pubkey)
                        SETOPT(t, CURLOPT_PINNEDPUBLICKEY, o->tls->pinned_pubkey);
                if (o->tls->client_cert)
                        SETOPT(t, CURLOPT_SSLCERT, o->tls->client_cert);
                if (o->tls->client_key)
                        SETOPT(t, CURLOPT_SSLKEY, o->tls->client_key);
        }
        if (o->proxy)
                SETOPT(t, CURLOPT_PROXY, o->proxy);

        if (o->connect_timeout > 0)
                SETOPT(t, CURLOPT_CONNECTTIMEOUT_MS, usec_to_msec_long(o->connect_timeout));
        if (o->low_speed_limit > 0 && o->low_speed_time > 0) {
                uint64_t secs = (o->low_speed_time + USEC_PER_SEC - 1) / USEC_PER_SEC;
                SETOPT(t, CURLOPT_LOW_SPEED_LIMIT, (long) MIN(o->low_speed_limit, (uint64_t) LONG_MAX));
                SETOPT(t, CURLOPT_LOW_SPEED_TIME, (long) MIN(secs, (uint64_t) LONG_MAX));
        }
        if (timeout == 0 && t->kind == FETCH_DOCUMENT)
                timeout = DOCUMENT_TIMEOUT_DEFAULT;
        if (timeout > 0)
                SETOPT(t, CURLOPT_TIMEOUT_MS, usec_to_msec_long(timeout));
        if (t->kind == FETCH_FILE)
                /* Fewer, larger writes into the hash/seal pipeline (libcurl's maximum). */
                SETOPT(t, CURLOPT_BUFFERSIZE, (long) CURL_MAX_READ_SIZE);
        return 0;
}

static int transfer_attempt(Transfer *t) {
        CURLcode c;

        response_reset(t);
        t->error = 0;
        t->permanent = false;
        t->reason = mfree(t->reason);
        t->have_retry_after = false;
        t->announced = FETCH_SIZE_UNKNOWN;
        t->errbuf[0] = 0;

        if (t->kind == FETCH_DOCUMENT)
                t->pos = 0;
        t->asked_range = t->kind == FETCH_FILE && t->pos > 0;
        if (t->asked_range) {
                assert_se((size_t) snprintf(t->range, sizeof(t->range), "%" PRIu64 "-", t->pos) <
                          sizeof(t->range));
                SETOPT(t, CURLOPT_RANGE, t->range);
        } else
                SETOPT(t, CURLOPT_RANGE, (char *) NULL);

        t->stats.attempts++;
        c = curl_easy_perform(t->curl);
        if (t->error < 0)
                return t->error;
        if (c != CURLE_OK)
                return classify_curl(t, c);
        if (!t->body_ok)
                /* A final response without body calls no write callback, but headers did validate. */
                return transfer_fail(t, -EPROTO, false, "no final response");

        if (t->kind == FETCH_FILE) {
                uint64_t total = t->expected != FETCH_SIZE_UNKNOWN ? t->expected : t->announced;

                if (total != FETCH_SIZE_UNKNOWN && t->pos < total)
                        return transfer_fail(t, -ECONNRESET, false,
                                             "connection closed after %" PRIu64 " of %" PRIu64 " bytes",
                                             t->pos, total);
                if (total != FETCH_SIZE_UNKNOWN && t->pos > total)
                        return transfer_fail(t, -EFBIG, true,
                                             "received %" PRIu64 " bytes, more than %" PRIu64, t->pos,
                                             total);
                if (t->expected == FETCH_SIZE_UNKNOWN)
                        t->expected = t->pos;
                maybe_progress(t, true);
                if (t->error < 0)
                        return t->error;
        }
        return 0;
}

static int transfer_run(Transfer *t, const char *url) {
        const FetchOptions *o = t->opts;
        uint64_t high = t->pos; /* the most the sink ever held */
        unsigned attempt = 0;   /* failed attempts since the last real progress */
        int r;

        r = transfer_setup(t, url);
        if (r < 0)
                return r;

        for (;;) {
                uint64_t delay;
                bool progressed;

                r = transfer_attempt(t);
                if (r >= 0)
                        return 0;
                if (t->permanent)
                        return r;

                /* A long download over a link that drops now and then should not fail for drops
                 * that each moved it forward a lot: such an attempt starts the count of retries
                 * afresh. Progress is measured against the high-water mark, so a server that
                 * restarts us from 0 (200 to a Range) and cuts again gains nothing, and the
                 * number of fresh starts is bounded by cap / retry_reset_bytes. */
                progressed = t->kind == FETCH_FILE && o->retry_reset_bytes > 0 && t->pos > high &&
                             t->pos - high >= o->retry_reset_bytes;
                high = MAX(high, t->pos);
                if (progressed)
                        attempt = 0;
                else if (attempt >= o->retries)
                        return r;

                delay = fetch_backoff_usec(attempt, o->backoff_base, o->backoff_max, random_u64());
                if (!progressed)
                        attempt++;
                if (t->have_retry_after) {
                        uint64_t ra = MIN(t->retry_after_usec, o->retry_after_max);
                        delay = MAX(delay, ra);
                }
                log_debug("Attempt %u failed: %s; retrying in %" PRIu64 " ms%s.", t->stats.attempts,
                          strna(t->reason), delay / USEC_PER_MSEC,
                          t->kind == FETCH_FILE && t->pos > 0 ? " with Range" : "");
                t->stats.slept += delay;
                r = (o->sleep ?: default_sleep)(o->sleep_userdata, delay);
                if (r < 0) {
                        free(t->reason);
                        t->reason = NULL;
                        t->error = 0;
                        return transfer_fail(t, r, true, "cancelled while waiting to retry: %s",
                                             strerror(-r));
                }
        }
}

/* Hand the reason out, with the attempt count when there was more than one. */
static void transfer_reason(Transfer *t, int r, char **ret_reason) {
        char *s = NULL;

        if (!ret_reason)
                return;
        if (t->stats.attempts > 1) {
                if (asprintf(&s, "%s (after %u attempts)", t->reason ?: strerror(-r), t->stats.attempts) < 0)
                        s = NULL;
        } else
                s = strdup(t->reason ?: strerror(-r));
        *ret_reason = s;
}

/* ---------------------------------------------------------------------------------------------
 * file://
 */

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int file_url_to_path(const char *url, char **ret) {
        _cleanup_free_ char *path = NULL;
        const char *p = url + 7;
        size_t j = 0;

        if (startswith(p, "localhost/"))
                p += 9;
        if (*p != '/')
                return -EINVAL;
        path = malloc(strlen(p) + 1);
        if (!path)
                return -ENOMEM;
        for (; *p; p++) {
                if (*p == '%') {
                        int a = unhex(p[1]), b = a < 0 ? -1 : unhex(p[2]);
                        if (a < 0 || b < 0 || (a == 0 && b == 0))
                                return -EINVAL;
                        path[j++] = (char) (a * 16 + b);
                        p += 2;
                } else if (*p == '?' || *p == '#' || (unsigned char) *p < 0x20)
                        return -EINVAL;
                else
                        path[j++] = *p;
        }
        path[j] = 0;
        *ret = TAKE_PTR(path);
        return 0;
}

static int file_open(const char *url, int *ret_fd, struct stat *ret_st, char **reason) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        r = file_url_to_path(url, &path);
        if (r < 0) {
                *reason = strdup("malformed file:// URL (want file:///absolute/path, no host)");
                return r;
        }
        /* O_NONBLOCK: a FIFO planted in the repository must not hang us; it is refused below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                if (asprintf(reason, "cannot open '%s': %s", path,
                             r == -ELOOP ? "it is a symlink" : strerror(-r)) < 0)
                        *reason = NULL;
                return r;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                if (asprintf(reason, "'%s' is not a regular file", path) < 0)
                        *reason = NULL;
                return -EBADF;
        }
        *ret_fd = TAKE_FD(fd);
        *ret_st = st;
        return 0;
}

static int file_document(const char *url, size_t max_size, char **ret, size_t *ret_size, char **reason) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        r = file_open(url, &fd, &st, reason);
        if (r < 0)
                return r;
        if ((uint64_t) st.st_size > max_size) {
                if (asprintf(reason, "document is %" PRIu64 " bytes, more than the limit of %zu",
                             (uint64_t) st.st_size, max_size) < 0)
                        *reason = NULL;
                return -EFBIG;
        }
        r = read_full_fd(fd, max_size, ret, ret_size);
        if (r < 0) {
                if (asprintf(reason, "reading the document failed: %s",
                             r == -EFBIG ? "it grew beyond the limit" : strerror(-r)) < 0)
                        *reason = NULL;
                return r;
        }
        return 0;
}

static int file_stream(const char *url, uint64_t expected, uint64_t cap, uint64_t offset,
                       const StreamWriter *sink, const FetchCallbacks *cb, FetchStats *stats,
                       char **reason) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t pos = offset, size, last = 0;
        struct stat st;
        int r;

        r = file_open(url, &fd, &st, reason);
        if (r < 0)
                return r;
        size = (uint64_t) st.st_size;
        if (size > cap) {
                if (asprintf(reason, "file is %" PRIu64 " bytes, more than the expected %" PRIu64, size,
                             cap) < 0)
                        *reason = NULL;
                return -EFBIG;
        }
        if (expected != FETCH_SIZE_UNKNOWN && size != expected) {
                if (asprintf(reason, "file is %" PRIu64 " bytes, expected %" PRIu64, size, expected) < 0)
                        *reason = NULL;
                return -EBADMSG;
        }
        if (offset > size) {
                if (asprintf(reason, "resume offset %" PRIu64 " is beyond the file's %" PRIu64 " bytes",
                             offset, size) < 0)
                        *reason = NULL;
                return -EINVAL;
        }
        buf = malloc(FILE_CHUNK_SIZE);
        if (!buf)
                return -ENOMEM;

        while (pos < size) {
                ssize_t k = pread(fd, buf, (size_t) MIN(size - pos, FILE_CHUNK_SIZE), (off_t) pos);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : -EBADMSG;
                        if (asprintf(reason, "reading at byte %" PRIu64 " failed: %s", pos,
                                     k < 0 ? strerror(errno) : "the file shrank") < 0)
                                *reason = NULL;
                        return r;
                }
                r = stream_write(sink, buf, (size_t) k);
                if (r < 0) {
                        if (asprintf(reason, "writing the download failed at byte %" PRIu64 ": %s", pos,
                                     strerror(-r)) < 0)
                                *reason = NULL;
                        return r;
                }
                pos += (uint64_t) k;
                stats->bytes_received += (uint64_t) k;
                if (cb && cb->progress) {
                        uint64_t now = now_usec();
                        if (pos == size || last == 0 || now - last >= FETCH_PROGRESS_INTERVAL) {
                                last = now;
                                r = cb->progress(cb->userdata, pos, size);
                                if (r < 0) {
                                        if (asprintf(reason, "cancelled by the progress callback: %s",
                                                     strerror(-r)) < 0)
                                                *reason = NULL;
                                        return r;
                                }
                        }
                }
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 */

static int check_url(const char *url, bool *ret_file, char **ret_reason) {
        char clean[128];

        if (strlen(url) > URL_MAX) {
                if (ret_reason)
                        *ret_reason = strdup("URL too long");
                return -EINVAL;
        }
        if (strncasecmp(url, "https://", 8) == 0) {
                *ret_file = false;
                return 0;
        }
        if (strncasecmp(url, "file://", 7) == 0) {
                *ret_file = true;
                return 0;
        }
        sanitize_copy(clean, sizeof(clean), url, strlen(url));
        if (ret_reason &&
            asprintf(ret_reason, "only https:// and file:// URLs are accepted, not '%s'", clean) < 0)
                *ret_reason = NULL;
        return -EPROTONOSUPPORT;
}

int fetch_document(const char *url, const FetchOptions *opts, size_t max_size, char **ret, size_t *ret_size,
                   FetchStats *ret_stats, char **ret_reason) {
        Transfer t = {
                .kind = FETCH_DOCUMENT,
                .opts = opts,
                .cap = max_size,
                .expected = FETCH_SIZE_UNKNOWN,
        };
        bool is_file;
        int r;

        assert_return(url, -EINVAL);
        assert_return(opts, -EINVAL);
        assert_return(ret, -EINVAL);

        if (ret_stats)
                *ret_stats = (FetchStats){};
        r = check_url(url, &is_file, ret_reason);
        if (r < 0)
                return r;
        if (is_file) {
                char *reason = NULL;

                r = file_document(url, max_size, ret, ret_size, &reason);
                if (r < 0) {
                        if (ret_reason)
                                *ret_reason = reason ?: strdup(strerror(-r));
                        else
                                free(reason);
                }
                return r;
        }

        r = transfer_run(&t, url);
        if (ret_stats)
                *ret_stats = t.stats;
        if (r < 0) {
                transfer_reason(&t, r, ret_reason);
                transfer_done(&t);
                return r;
        }
        if (!t.doc) {
                t.doc = malloc(1);
                if (!t.doc) {
                        transfer_done(&t);
                        return -ENOMEM;
                }
        }
        t.doc[t.pos] = 0;
        if (ret_size)
                *ret_size = (size_t) t.pos;
        *ret = TAKE_PTR(t.doc);
        transfer_done(&t);
        return 0;
}

int fetch_file(const char *url, const FetchOptions *opts, uint64_t expected_size, uint64_t offset,
               const StreamWriter *sink, const FetchCallbacks *cb, FetchStats *ret_stats,
               char **ret_reason) {
        Transfer t = {
                .kind = FETCH_FILE,
                .opts = opts,
                .expected = expected_size,
                .pos = offset,
                .sink = sink,
                .cb = cb,
        };
        bool is_file;
        int r;

        assert_return(url, -EINVAL);
        assert_return(opts, -EINVAL);
        assert_return(sink && sink->write, -EINVAL);

        if (ret_stats)
                *ret_stats = (FetchStats){};
        r = check_url(url, &is_file, ret_reason);
        if (r < 0)
                return r;

        t.cap = expected_size != FETCH_SIZE_UNKNOWN ? expected_size : opts->max_file_size;
        if (offset > t.cap) {
                if (ret_reason &&
                    asprintf(ret_reason,
                             "resume offset %" PRIu64 " is beyond the expected %" PRIu64 " bytes", offset,
                             t.cap) < 0)
                        *ret_reason = NULL;
                return -EINVAL;
        }

        if (is_file) {
                char *reason = NULL;

                r = file_stream(url, expected_size, t.cap, offset, sink, cb, &t.stats, &reason);
                if (ret_stats)
                        *ret_stats = t.stats;
                if (r < 0) {
                        if (ret_reason)
                                *ret_reason = reason ?: strdup(strerror(-r));
                        else
                                free(reason);
                }
                return r;
        }

        if (expected_size != FETCH_SIZE_UNKNOWN && offset == expected_size) {
                /* Nothing left to get; the caller's digest check decides. */
                maybe_progress(&t, true);
                r = t.error;
                if (r < 0 && ret_reason)
                        *ret_reason = TAKE_PTR(t.reason);
                transfer_done(&t);
                return r;
        }

        r = transfer_run(&t, url);
        if (ret_stats)
                *ret_stats = t.stats;
        if (r < 0)
                transfer_reason(&t, r, ret_reason);
        transfer_done(&t);
        return r < 0 ? r : 0;
}
