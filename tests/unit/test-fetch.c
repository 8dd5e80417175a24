/* SPDX-License-Identifier: Apache-2.0 */

/*
 * agent/fetch.c against real TLS peers on 127.0.0.1: tests/tools/https-server.py (a Python
 * server that misbehaves on request) and nginx (a real server, SKIP when absent). The CA, server
 * and client certificates are generated at test time by tests/tools/make-test-pki.sh. Sleeps
 * between attempts are injected, so the whole file runs in a few seconds.
 */

#include "test-util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "fetch.h"
#include "fileio.h"
#include "hash.h"

#define BLOB_SIZE  (3 * MIB + 12345)
#define SLEEPS_MAX 64

static struct {
        char *dir, *pki, *root;
        pid_t server;
        int port_main, port_mtls, port_wrongname, port_selfsigned;
        uint8_t *blob;
        char blob_sha[SHA256_HEX_SIZE];
        char *doc;
        size_t doc_size;
        char *ca_file, *garbage_ca, *client_cert, *client_key, *rogue_cert, *rogue_key, *server_pin,
                *other_pin;
        const char *python;
} S;

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

static inline void *mfree_test(void *p) {
        free(p);
        return NULL;
}

static char *pki_path(const char *name) {
        char *p = path_join(S.pki, name);
        assert_non_null(p);
        return p;
}

static char *read_text(const char *path) {
        char *s = NULL;
        assert_int_equal(read_full_file(path, 4096, &s, NULL), 0);
        return s;
}

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
        _cleanup_free_ char *p = path_join(dir, name);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, data, n), 0);
}

static void sha_hex(const void *data, size_t n, char out[static SHA256_HEX_SIZE]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        assert_int_equal(sha256_buffer(data, n, d), 0);
        hex_encode(d, sizeof(d), out);
}

static int run_shell(const char *fmt, ...) _printf_(1, 2);
static int run_shell(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        assert_true(r >= 0);
        r = system(cmd);
        return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static int free_port(void) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof(a);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &l), 0);
        return ntohs(a.sin_port);
}

static bool port_open(int port) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t) port)};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd >= 0 && connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0;
}

static void stop_child(pid_t *pid) {
        if (*pid <= 0)
                return;
        (void) kill(*pid, SIGTERM);
        (void) waitpid(*pid, NULL, 0);
        *pid = 0;
}

/* The sink of a download: SHA-256 as the bytes go by, plus a copy to compare exactly. */
typedef struct Sink {
        EVP_MD_CTX *md;
        uint8_t *data;
        uint64_t n, cap;
        unsigned restarts;
        unsigned progress_calls;
        uint64_t last_done, last_total;
        int fail_write; /* return this from write once n reaches fail_at */
        uint64_t fail_at;
        int fail_progress; /* return this from progress */
} Sink;

static void sink_init(Sink *s, uint64_t cap) {
        *s = (Sink){.cap = cap};
        s->md = EVP_MD_CTX_new();
        assert_non_null(s->md);
        assert_int_equal(EVP_DigestInit_ex(s->md, EVP_sha256(), NULL), 1);
        s->data = malloc(cap + 1);
        assert_non_null(s->data);
}

static void sink_done(Sink *s) {
        EVP_MD_CTX_free(s->md);
        free(s->data);
}

static int sink_write(void *userdata, const void *buf, size_t n) {
        Sink *s = userdata;

        if (s->fail_write && s->n + n > s->fail_at)
                return s->fail_write;
        /* fetch_file() promises never to go beyond the expected size: check it here too. */
        assert_true(s->n + n <= s->cap);
        memcpy(s->data + s->n, buf, n);
        s->n += n;
        assert_int_equal(EVP_DigestUpdate(s->md, buf, n), 1);
        return 0;
}

static int sink_restart(void *userdata) {
        Sink *s = userdata;
        s->restarts++;
        s->n = 0;
        return EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

static int sink_progress(void *userdata, uint64_t done, uint64_t total) {
        Sink *s = userdata;
        assert_true(done <= total);
        assert_int_equal(done, s->n);
        s->progress_calls++;
        s->last_done = done;
        s->last_total = total;
        return s->fail_progress;
}

static void sink_hex(Sink *s, char out[static SHA256_HEX_SIZE]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        unsigned l;
        assert_int_equal(EVP_DigestFinal_ex(s->md, d, &l), 1);
        hex_encode(d, sizeof(d), out);
}

/* Injected sleep: records what it was asked, waits for nothing. */
static struct {
        uint64_t usec[SLEEPS_MAX];
        unsigned n;
        int fail;
} sleeps;

static int fake_sleep(void *userdata, uint64_t usec) {
        if (sleeps.n < SLEEPS_MAX)
                sleeps.usec[sleeps.n] = usec;
        sleeps.n++;
        return sleeps.fail;
}

static TlsOptions tls_ca;

static void opts_init(FetchOptions *o) {
        fetch_options_init(o);
        tls_ca = (TlsOptions){.ca_file = S.ca_file};
        o->tls = &tls_ca;
        o->retries = 3;
        o->backoff_base = 100 * USEC_PER_MSEC;
        o->backoff_max = 2 * USEC_PER_SEC;
        o->connect_timeout = 5 * USEC_PER_SEC;
        o->low_speed_limit = 1000;
        o->low_speed_time = 5 * USEC_PER_SEC;
        o->proxy = "";
        o->sleep = fake_sleep;
        sleeps.n = 0;
        sleeps.fail = 0;
}

static char *url_for(int port, const char *path) {
        char *u = NULL;
        assert_true(asprintf(&u, "https://127.0.0.1:%d%s", port, path) > 0);
        return u;
}

/* How many requests the Python server saw for path. */
static unsigned server_count(const char *path) {
        _cleanup_free_ char *u = NULL, *p = NULL, *body = NULL;
        FetchOptions o;
        size_t n;

        opts_init(&o);
        assert_true(asprintf(&p, "/_count%s", path) > 0);
        u = url_for(S.port_main, p);
        assert_int_equal(fetch_document(u, &o, 64, &body, &n, NULL, NULL), 0);
        return (unsigned) strtoul(body, NULL, 10);
}

typedef struct Result {
        int r;
        FetchStats stats;
        char *reason;
        Sink sink;
        char sha[SHA256_HEX_SIZE];
        uint64_t elapsed_usec;
} Result;

static void result_done(Result *res) {
        sink_done(&res->sink);
        free(res->reason);
}

static uint64_t mono_usec(void) {
        struct timespec ts;
        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Fetch blob-like content from url; the sink starts with the first `offset` bytes of the blob
 * (what the caller already had). */
static void get_file(Result *res, const char *url, const FetchOptions *o, uint64_t expected,
                     uint64_t offset) {
        FetchCallbacks cb = {.restart = sink_restart, .progress = sink_progress};
        uint64_t t0;

        *res = (Result){};
        sink_init(&res->sink, expected == FETCH_SIZE_UNKNOWN ? BLOB_SIZE : expected);
        if (offset > 0)
                assert_int_equal(sink_write(&res->sink, S.blob, offset), 0);
        cb.userdata = &res->sink;
        t0 = mono_usec();
        res->r = fetch_file(url, o, expected, offset, &(StreamWriter){sink_write, &res->sink}, &cb,
                            &res->stats, &res->reason);
        res->elapsed_usec = mono_usec() - t0;
        if (res->r < 0) {
                assert_non_null(res->reason);
                fprintf(stderr, "# %s → %s (%d)\n", url, res->reason, res->r);
        } else
                assert_null(res->reason);
        sink_hex(&res->sink, res->sha);
}

static void get_path(Result *res, int port, const char *path, const FetchOptions *o, uint64_t offset) {
        _cleanup_free_ char *u = url_for(port, path);
        get_file(res, u, o, BLOB_SIZE, offset);
}

static void assert_reason(const Result *res, const char *word) {
        if (!strstr(res->reason, word))
                fail_msg("reason '%s' lacks '%s'", res->reason, word);
}

static void assert_blob_ok(const Result *res) {
        assert_int_equal(res->r, 0);
        assert_int_equal(res->sink.n, BLOB_SIZE);
        assert_string_equal(res->sha, S.blob_sha);
        assert_memory_equal(res->sink.data, S.blob, BLOB_SIZE);
        /* The final progress report is always there and complete. */
        assert_true(res->sink.progress_calls >= 1);
        assert_int_equal(res->sink.last_done, BLOB_SIZE);
        assert_int_equal(res->sink.last_total, BLOB_SIZE);
}

/* ---------------------------------------------------------------------------------------------
 * Fixture: PKI, files, the Python server
 */

static int start_python_server(void) {
        int pipefd[2];
        char line[512] = {};
        size_t n = 0;
        _cleanup_free_ char *a_main = NULL, *a_mtls = NULL, *a_wrong = NULL, *a_self = NULL, *script = NULL;
        const char *srcdir = getenv("TOP_SRCDIR") ?: ".";

        assert_true(asprintf(&script, "%s/tests/tools/https-server.py", srcdir) > 0);
        assert_true(asprintf(&a_main, "main,%s/server.crt,%s/server.key", S.pki, S.pki) > 0);
        assert_true(asprintf(&a_mtls, "mtls,%s/server.crt,%s/server.key,%s/ca.crt", S.pki, S.pki, S.pki) >
                    0);
        assert_true(asprintf(&a_wrong, "wrongname,%s/wrongname.crt,%s/wrongname.key", S.pki, S.pki) > 0);
        assert_true(asprintf(&a_self, "selfsigned,%s/selfsigned.crt,%s/selfsigned.key", S.pki, S.pki) > 0);

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        S.server = fork();
        assert_true(S.server >= 0);
        if (S.server == 0) {
                (void) dup2(pipefd[1], STDOUT_FILENO);
                execl(S.python, S.python, script, "--root", S.root, "--server", a_main, "--server", a_mtls,
                      "--server", a_wrong, "--server", a_self, (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);

        /* Wait (bounded) for "READY main=P mtls=P wrongname=P selfsigned=P\n". */
        while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
                struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
                ssize_t k;

                if (poll(&p, 1, 15000) <= 0)
                        break;
                k = read(pipefd[0], line + n, sizeof(line) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        close(pipefd[0]);
        if (sscanf(line, "READY main=%d mtls=%d wrongname=%d selfsigned=%d", &S.port_main, &S.port_mtls,
                   &S.port_wrongname, &S.port_selfsigned) != 4) {
                fprintf(stderr, "https-server.py did not start: '%s'\n", line);
                return -1;
        }
        return 0;
}

static int setup_group(void **state) {
        const char *srcdir = getenv("TOP_SRCDIR") ?: ".";

        /* The tests talk to 127.0.0.1 only; a proxy from the environment must not get in between. */
        for (const char *const *v = (const char *const[]){"http_proxy", "https_proxy", "HTTPS_PROXY",
                                                          "all_proxy", "ALL_PROXY", NULL};
             *v; v++)
                unsetenv(*v);

        S.python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
        S.dir = test_mkdtemp();
        S.pki = path_join(S.dir, "pki");
        S.root = path_join(S.dir, "root");
        assert_int_equal(mkdir(S.root, 0755), 0);
        if (run_shell("sh '%s/tests/tools/make-test-pki.sh' '%s'", srcdir, S.pki) != 0) {
                fprintf(stderr, "make-test-pki.sh failed (is openssl installed?)\n");
                return -1;
        }
        S.ca_file = pki_path("ca.crt");
        S.garbage_ca = pki_path("garbage.pem");
        S.client_cert = pki_path("client.crt");
        S.client_key = pki_path("client.key");
        S.rogue_cert = pki_path("rogue-client.crt");
        S.rogue_key = pki_path("rogue-client.key");
        {
                _cleanup_free_ char *a = pki_path("server.pin"), *b = pki_path("other.pin");
                S.server_pin = read_text(a);
                S.other_pin = read_text(b);
        }

        S.blob = malloc(BLOB_SIZE);
        assert_non_null(S.blob);
        for (size_t i = 0; i < BLOB_SIZE; i++)
                S.blob[i] = (uint8_t) ((i * 2654435761u) >> 13) ^ (uint8_t) (i >> 16);
        sha_hex(S.blob, BLOB_SIZE, S.blob_sha);
        write_file(S.root, "blob", S.blob, BLOB_SIZE);
        write_file(S.root, "empty", "", 0);
        S.doc = strdup("{\"payloadType\": \"application/vnd.in-toto+json\", \"payload\": \"e30=\", "
                       "\"signatures\": []}\n");
        S.doc_size = strlen(S.doc);
        write_file(S.root, "doc.json", S.doc, S.doc_size);

        return start_python_server();
}

static int teardown_group(void **state) {
        stop_child(&S.server);
        if (S.dir)
                (void) rm_rf_at(AT_FDCWD, S.dir);
        free(S.dir);
        free(S.pki);
        free(S.root);
        free(S.blob);
        free(S.doc);
        free(S.ca_file);
        free(S.garbage_ca);
        free(S.client_cert);
        free(S.client_key);
        free(S.rogue_cert);
        free(S.rogue_key);
        free(S.server_pin);
        free(S.other_pin);
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pure helpers
 */

static void test_backoff(void **state) {
        const uint64_t base = USEC_PER_SEC, cap = 60 * USEC_PER_SEC;

        /* Full jitter: uniform over [0, min(cap, base·2^n)], so rnd = that bound gives the bound. */
        assert_int_equal(fetch_backoff_usec(0, base, cap, 0), 0);
        assert_int_equal(fetch_backoff_usec(0, base, cap, base), base);
        assert_int_equal(fetch_backoff_usec(0, base, cap, base + 1), 0);
        assert_int_equal(fetch_backoff_usec(1, base, cap, 2 * base), 2 * base);
        assert_int_equal(fetch_backoff_usec(3, base, cap, 8 * base), 8 * base);
        assert_int_equal(fetch_backoff_usec(5, base, cap, 32 * base), 32 * base);
        assert_int_equal(fetch_backoff_usec(6, base, cap, 60 * base), 60 * base); /* 64 s cut to the cap */
        assert_int_equal(fetch_backoff_usec(6, base, cap, 61 * base), 61 * base % (cap + 1));
        /* No overflow however many attempts. */
        for (unsigned a = 0; a < 200; a++) {
                assert_true(fetch_backoff_usec(a, base, cap, UINT64_MAX) <= cap);
                assert_true(fetch_backoff_usec(a, base, cap, (uint64_t) a * 7919 * 1000) <= cap);
        }
        assert_int_equal(fetch_backoff_usec(100, UINT64_MAX / 3, UINT64_MAX, 12345), 12345);
        assert_int_equal(fetch_backoff_usec(3, 0, cap, 999), 0);
        /* The spread is real: over many draws both halves of the window are hit. */
        unsigned low = 0, high = 0;
        for (uint64_t i = 0; i < 1000; i++) {
                uint64_t d = fetch_backoff_usec(2, base, cap, i * 0x9E3779B97F4A7C15ULL);
                assert_true(d <= 4 * base);
                if (d < 2 * base)
                        low++;
                else
                        high++;
        }
        assert_true(low > 300 && high > 300);
}

static void test_content_range(void **state) {
        uint64_t a, b, c;

        assert_int_equal(fetch_parse_content_range("bytes 0-99/100", &a, &b, &c), 0);
        assert_int_equal(a, 0);
        assert_int_equal(b, 99);
        assert_int_equal(c, 100);
        assert_int_equal(fetch_parse_content_range("BYTES 5-5/6", &a, &b, &c), 0);
        assert_int_equal(fetch_parse_content_range("bytes 10-19/*", &a, &b, &c), 0);
        assert_true(c == FETCH_SIZE_UNKNOWN);
        assert_int_equal(
                fetch_parse_content_range("bytes 0-18446744073709551614/18446744073709551615", &a, &b, &c),
                0);

        const char *bad[] = {
                "",
                "bytes",
                "bytes ",
                "bytes=0-99/100",
                "bytes 0-99",
                "bytes 0-99/",
                "bytes -1-99/100",
                "bytes 99-0/100",
                "bytes 0-100/100",
                "bytes */100",
                "bytes 0-99/100 x",
                "bytes 0-99/100,",
                "bytes 0x0-99/100",
                "bytes +0-99/100",
                "bits 0-99/100",
                "bytes 0-99/18446744073709551616",
                "bytes 0 -99/100",
                "bytesx 0-99/100",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (fetch_parse_content_range(bad[i], &a, &b, &c) != -EINVAL)
                        fail_msg("accepted '%s'", bad[i]);
}

static void test_retry_after(void **state) {
        uint64_t u;
        /* 2026-11-29 12:00:00 UTC */
        const int64_t now = 1795953600;

        assert_int_equal(fetch_parse_retry_after("120", now, &u), 0);
        assert_int_equal(u, 120 * USEC_PER_SEC);
        assert_int_equal(fetch_parse_retry_after(" 0 ", now, &u), 0);
        assert_int_equal(u, 0);
        assert_int_equal(fetch_parse_retry_after("99999999999999999999999", now, &u), 0);
        assert_true(u == UINT64_MAX);
        /* The three HTTP-date forms, 90 s ahead. */
        assert_int_equal(fetch_parse_retry_after("Sun, 29 Nov 2026 12:01:30 GMT", now, &u), 0);
        assert_int_equal(u, 90 * USEC_PER_SEC);
        assert_int_equal(fetch_parse_retry_after("Sunday, 29-Nov-26 12:01:30 GMT", now, &u), 0);
        assert_int_equal(u, 90 * USEC_PER_SEC);
        assert_int_equal(fetch_parse_retry_after("Sun Nov 29 12:01:30 2026", now, &u), 0);
        assert_int_equal(u, 90 * USEC_PER_SEC);
        /* In the past: retry now. */
        assert_int_equal(fetch_parse_retry_after("Sun, 29 Nov 2026 11:00:00 GMT", now, &u), 0);
        assert_int_equal(u, 0);

        const char *bad[] = {"", " ", "-5", "5s", "1.5", "soon", "12 34"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (fetch_parse_retry_after(bad[i], now, &u) != -EINVAL)
                        fail_msg("accepted '%s'", bad[i]);
}

static void test_join_url(void **state) {
        static const struct {
                const char *base, *rel, *want;
                int r;
        } cases[] = {
                {"https://models.example.com/", "models/digits-mlp/stable.json",
                 "https://models.example.com/models/digits-mlp/stable.json", 0},
                {"https://models.example.com", "blobs/sha256/ab12",
                 "https://models.example.com/blobs/sha256/ab12", 0},
                {"https://h.example:8443/repo", "models/m/c.json",
                 "https://h.example:8443/repo/models/m/c.json", 0},
                {"https://h.example/repo/", "blobs/sha256/00ff", "https://h.example/repo/blobs/sha256/00ff",
                 0},
                {"file:///srv/repo", "models/m/stable.json", "file:///srv/repo/models/m/stable.json", 0},
                {"https://h.example/repo/", "https://h.example/other/blobs/x",
                 "https://h.example/other/blobs/x", 0},
                {"https://h.example/repo/", "HTTPS://H.example/blobs/x", "HTTPS://H.example/blobs/x", 0},
                /* Leaving the origin. */
                {"https://h.example/", "https://evil.example/blobs/x", NULL, -EXDEV},
                {"https://h.example/", "https://h.example:444/blobs/x", NULL, -EXDEV},
                {"https://h.example/", "https://h.example.evil/x", NULL, -EXDEV},
                {"https://h.example/", "http://h.example/blobs/x", NULL, -EXDEV},
                {"https://h.example/", "file:///etc/passwd", NULL, -EXDEV},
                {"https://h.example/", "ftp://h.example/x", NULL, -EXDEV},
                /* Paths that could climb or hide something. */
                {"https://h.example/r/", "../x", NULL, -EINVAL},
                {"https://h.example/r/", "a/../../x", NULL, -EINVAL},
                {"https://h.example/r/", "./x", NULL, -EINVAL},
                {"https://h.example/r/", "/x", NULL, -EINVAL},
                {"https://h.example/r/", "//evil.example/x", NULL, -EINVAL},
                {"https://h.example/r/", "a//b", NULL, -EINVAL},
                {"https://h.example/r/", "a/", NULL, -EINVAL},
                {"https://h.example/r/", "%2e%2e/x", NULL, -EINVAL},
                {"https://h.example/r/", "a?b", NULL, -EINVAL},
                {"https://h.example/r/", "a#b", NULL, -EINVAL},
                {"https://h.example/r/", "a\\b", NULL, -EINVAL},
                {"https://h.example/r/", "a b", NULL, -EINVAL},
                {"https://h.example/r/", "a\nb", NULL, -EINVAL},
                {"https://h.example/r/", "", NULL, -EINVAL},
                {"https://h.example/r/", "https://h.example/../x", NULL, -EINVAL},
                {"https://h.example/r/", "https://h.example", NULL, -EINVAL},
                /* Bases we do not accept. */
                {"http://h.example/", "x", NULL, -EPROTONOSUPPORT},
                {"https://user:pw@h.example/", "x", NULL, -EINVAL},
                {"https:///x", "x", NULL, -EINVAL},
                {"https://h.example/r?q=1", "x", NULL, -EINVAL},
                {"https://h.example/a/../b", "x", NULL, -EINVAL},
                {"https://h.example//", "x", NULL, -EINVAL}, /* found by fuzz-fetch-parse */
                {"https://h.example/a//", "x", NULL, -EINVAL},
                {"file:///", "x", "file:///x", 0},
                {"file://", "x", NULL, -EINVAL},
                {"file://host/x", "x", NULL, -EINVAL},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                int r = fetch_join_url(cases[i].base, cases[i].rel, &out);

                if (r != cases[i].r)
                        fail_msg("'%s' + '%s': %d, want %d", cases[i].base, cases[i].rel, r, cases[i].r);
                if (r == 0)
                        assert_string_equal(out, cases[i].want);
                else
                        assert_null(out);
        }
}

static void test_status_classes(void **state) {
        const long transient[] = {408, 429, 500, 502, 503, 504, 599};
        const long permanent[] = {200, 301, 400, 401, 403, 404, 405, 410, 416, 451, 501, 505};

        for (size_t i = 0; i < ELEMENTSOF(transient); i++)
                assert_true(fetch_http_status_is_transient(transient[i]));
        for (size_t i = 0; i < ELEMENTSOF(permanent); i++)
                assert_false(fetch_http_status_is_transient(permanent[i]));
}

static void test_options_from_source(void **state) {
        SourceConfig s = {
                .url = (char *) "https://x.example/",
                .tls = {.ca_file = (char *) "/etc/ca.pem"},
                .connect_timeout = 7 * USEC_PER_SEC,
                .low_speed_limit = 4096,
                .low_speed_time = 9 * USEC_PER_SEC,
                .retries = 2,
                .max_file_size = 5 * GIB,
        };
        FetchOptions o;

        fetch_options_from_source(&o, &s);
        assert_ptr_equal(o.tls, &s.tls);
        assert_int_equal(o.connect_timeout, 7 * USEC_PER_SEC);
        assert_int_equal(o.low_speed_limit, 4096);
        assert_int_equal(o.low_speed_time, 9 * USEC_PER_SEC);
        assert_int_equal(o.retries, 2);
        assert_int_equal(o.max_file_size, 5 * GIB);
        assert_int_equal(o.max_redirects, FETCH_MAX_REDIRECTS);
        assert_true(o.backoff_base > 0 && o.backoff_max >= o.backoff_base);
}

/* ---------------------------------------------------------------------------------------------
 * Against the Python server
 */

static void test_normal(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/files/t-normal/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.stats.restarts, 0);
        assert_int_equal(res.stats.http_status, 200);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE);
        assert_int_equal(sleeps.n, 0);
        /* Progress at most every 100 ms (plus the first and the final report). */
        assert_true(res.sink.progress_calls <= 2 + res.elapsed_usec / FETCH_PROGRESS_INTERVAL);
        result_done(&res);
}

static void test_resume_offset(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/files/t-resume/blob", &o, 1000001);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.stats.http_status, 206);
        assert_int_equal(res.stats.restarts, 0);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 1000001);
        result_done(&res);

        /* Nothing left: no request at all. */
        opts_init(&o);
        get_path(&res, S.port_main, "/files/t-resume-none/blob", &o, BLOB_SIZE);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 0);
        assert_int_equal(server_count("/files/t-resume-none/blob"), 0);
        result_done(&res);

        /* More than expected already: the caller's staging file is wrong. */
        {
                _cleanup_free_ char *u = url_for(S.port_main, "/files/blob"), *reason = NULL;
                Sink sink;

                sink_init(&sink, 10);
                assert_int_equal(
                        fetch_file(u, &o, 10, 11, &(StreamWriter){sink_write, &sink}, NULL, NULL, &reason),
                        -EINVAL);
                assert_non_null(strstr(reason, "beyond"));
                sink_done(&sink);
        }
}

static void test_range_ignored(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/norange/blob", &o, 500000);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.stats.restarts, 1);
        assert_int_equal(res.sink.restarts, 1);
        assert_int_equal(res.stats.http_status, 200);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE);
        result_done(&res);

        /* Without a restart callback the caller cannot cope: a clean, permanent failure. */
        {
                _cleanup_free_ char *u = url_for(S.port_main, "/norange/t-nocb/blob"), *reason = NULL;
                Sink sink;

                sink_init(&sink, BLOB_SIZE);
                assert_int_equal(sink_write(&sink, S.blob, 10), 0);
                assert_int_equal(fetch_file(u, &o, BLOB_SIZE, 10, &(StreamWriter){sink_write, &sink}, NULL,
                                            NULL, &reason),
                                 -EBADMSG);
                assert_non_null(strstr(reason, "ignored Range"));
                assert_int_equal(sink.n, 10);
                sink_done(&sink);
        }
}

static void test_bad_content_range(void **state) {
        static const struct {
                const char *kind, *word;
        } kinds[] = {
                {"start", "starts at byte 400001"},   {"total", "complete length"},
                {"end", "not at the last byte"},      {"garbage", "unparsable Content-Range"},
                {"missing", "without Content-Range"}, {"length", "does not match Content-Range"},
        };

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                _cleanup_free_ char *once = NULL, *always = NULL;
                Result res;
                FetchOptions o;

                /* Wrong once: an error, then the next attempt resumes from what the caller has. */
                assert_true(asprintf(&once, "/badrange/1/%s/t-once/blob", kinds[i].kind) > 0);
                opts_init(&o);
                get_path(&res, S.port_main, once, &o, 400000);
                assert_blob_ok(&res);
                assert_int_equal(res.stats.attempts, 2);
                assert_int_equal(res.stats.restarts, 0);
                assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 400000);
                assert_int_equal(sleeps.n, 1);
                assert_int_equal(server_count(once), 2);
                result_done(&res);

                /* Always wrong: -EBADMSG after the retries, and the sink holds only the caller's bytes. */
                assert_true(asprintf(&always, "/badrange/1000/%s/t-always/blob", kinds[i].kind) > 0);
                opts_init(&o);
                o.retries = 2;
                get_path(&res, S.port_main, always, &o, 400000);
                assert_int_equal(res.r, -EBADMSG);
                assert_reason(&res, kinds[i].word);
                assert_reason(&res, "after 3 attempts");
                assert_int_equal(res.stats.attempts, 3);
                assert_int_equal(res.sink.n, 400000);
                assert_int_equal(res.stats.bytes_received, 0);
                assert_int_equal(server_count(always), 3);
                result_done(&res);
        }

        /* A 206 to a request that asked for no range. */
        {
                Result res;
                FetchOptions o;

                opts_init(&o);
                o.retries = 0;
                get_path(&res, S.port_main, "/badrange/1/noreq/blob", &o, 0);
                assert_int_equal(res.r, -EBADMSG);
                assert_reason(&res, "without Range");
                assert_int_equal(res.sink.n, 0);
                result_done(&res);
        }
}

static void test_drop_resume(void **state) {
        Result res;
        FetchOptions o;

        /* Cut twice after 100000 body bytes each: the third attempt finishes; nothing re-sent. */
        opts_init(&o);
        get_path(&res, S.port_main, "/drop/2/100000/t-drop/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 3);
        assert_int_equal(res.stats.restarts, 0);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE);
        assert_int_equal(res.stats.http_status, 206);
        assert_int_equal(sleeps.n, 2);
        assert_int_equal(server_count("/drop/2/100000/t-drop/blob"), 3);
        result_done(&res);

        /* The same when the caller resumes from its own staging file first. */
        opts_init(&o);
        get_path(&res, S.port_main, "/drop/1/70000/t-drop2/blob", &o, 2 * MIB);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 2);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 2 * MIB);
        result_done(&res);

        /* Six cuts with one retry allowed: fine when every attempt moves the download on by at
         * least retry_reset_bytes (a long download over a flaky link)... */
        opts_init(&o);
        o.retries = 1;
        o.retry_reset_bytes = 100000;
        get_path(&res, S.port_main, "/drop/6/100000/t-drop4/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 7);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE);
        /* ...and the backoff starts small again after each such attempt. */
        for (unsigned k = 0; k < sleeps.n; k++)
                assert_true(sleeps.usec[k] <= o.backoff_base);
        result_done(&res);

        /* ...but not when they move it less than that. */
        opts_init(&o);
        o.retries = 1;
        o.retry_reset_bytes = 100001;
        get_path(&res, S.port_main, "/drop/6/100000/t-drop5/blob", &o, 0);
        assert_int_equal(res.r, -ECONNRESET);
        assert_int_equal(res.stats.attempts, 2);
        assert_int_equal(res.sink.n, 200000);
        result_done(&res);

        /* A server that ignores Range and cuts: each attempt restarts from 0 and reaches the same
         * point, which is no progress, so the retries run out. */
        opts_init(&o);
        o.retries = 2;
        o.retry_reset_bytes = 50000;
        get_path(&res, S.port_main, "/dropnr/100/100000/t-dropnr/blob", &o, 0);
        assert_int_equal(res.r, -ECONNRESET);
        assert_int_equal(res.stats.attempts, 4);
        assert_int_equal(res.stats.restarts, 3);
        assert_int_equal(res.sink.n, 100000);
        assert_memory_equal(res.sink.data, S.blob, 100000);
        result_done(&res);

        /* When it stops cutting, the restart from 0 completes the file. */
        opts_init(&o);
        get_path(&res, S.port_main, "/dropnr/1/100000/t-dropnr2/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 2);
        assert_int_equal(res.stats.restarts, 1);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE + 100000);
        result_done(&res);

        /* Cut every time: -ECONNRESET, and the sink holds exactly what arrived. */
        opts_init(&o);
        o.retries = 1;
        get_path(&res, S.port_main, "/drop/100/100000/t-drop3/blob", &o, 0);
        assert_int_equal(res.r, -ECONNRESET);
        assert_reason(&res, "after 2 attempts");
        assert_int_equal(res.stats.attempts, 2);
        assert_int_equal(res.sink.n, 200000);
        assert_memory_equal(res.sink.data, S.blob, 200000);
        result_done(&res);
}

static void test_slow(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        o.retries = 0;
        o.low_speed_limit = 1000;
        o.low_speed_time = 1 * USEC_PER_SEC;
        get_path(&res, S.port_main, "/slow/blob", &o, 0);
        assert_int_equal(res.r, -ETIMEDOUT);
        assert_reason(&res, "too slow");
        assert_int_equal(res.stats.attempts, 1);
        assert_true(res.sink.n < 100);
        assert_true(res.elapsed_usec < 10 * USEC_PER_SEC);
        result_done(&res);
}

static void test_redirects(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/redir/5/t-r5/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);

        /* With a resume the Range goes along through the redirects. */
        opts_init(&o);
        get_path(&res, S.port_main, "/redir/3/t-r3/blob", &o, 123456);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.http_status, 206);
        result_done(&res);

        opts_init(&o);
        get_path(&res, S.port_main, "/redir/6/t-r6/blob", &o, 0);
        assert_int_equal(res.r, -ELOOP);
        assert_reason(&res, "more than 5 redirects");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);

        opts_init(&o);
        get_path(&res, S.port_main, "/redirloop/t-loop/blob", &o, 0);
        assert_int_equal(res.r, -ELOOP);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(server_count("/redirloop/t-loop/blob"), 6); /* the request and 5 redirects */
        result_done(&res);

        /* A lower limit from the options. */
        opts_init(&o);
        o.max_redirects = 2;
        get_path(&res, S.port_main, "/redir/3/t-r3b/blob", &o, 0);
        assert_int_equal(res.r, -ELOOP);
        assert_reason(&res, "more than 2 redirects");
        result_done(&res);

        opts_init(&o);
        get_path(&res, S.port_main, "/tohttp/blob", &o, 0);
        assert_int_equal(res.r, -EPROTONOSUPPORT);
        assert_reason(&res, "redirect to 'http://127.0.0.1:");
        assert_reason(&res, "only https");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);
}

static void test_http_errors(void **state) {
        static const struct {
                const char *path;
                int r;
                const char *word;
                unsigned attempts;
        } cases[] = {
                {"/status/404/blob", -ENOENT, "HTTP 404 Not Found", 1},
                {"/status/410/blob", -ENOENT, "HTTP 410 Gone", 1},
                {"/status/401/blob", -EACCES, "HTTP 401 Unauthorized", 1},
                {"/status/403/blob", -EACCES, "HTTP 403 Forbidden", 1},
                {"/status/400/blob", -EPROTO, "HTTP 400 Bad Request", 1},
                {"/status/501/blob", -EIO, "HTTP 501 Not Implemented", 1},
                {"/status/304/blob", -EPROTO, "HTTP 304", 1},
                {"/status/500/blob", -EIO, "HTTP 500 Internal Server Error (after 4 attempts)", 4},
                {"/status/502/blob", -EIO, "HTTP 502", 4},
                {"/status/503/blob", -EAGAIN, "HTTP 503 Service Unavailable", 4},
                {"/status/429/blob", -EAGAIN, "HTTP 429", 4},
                {"/status/408/blob", -EAGAIN, "HTTP 408", 4},
                {"/status/416/blob", -EBADMSG, "HTTP 416", 4},
                {"/status/204/blob", -EPROTO, "HTTP 204", 1},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Result res;
                FetchOptions o;

                opts_init(&o);
                o.retries = 3;
                get_path(&res, S.port_main, cases[i].path, &o, 0);
                assert_int_equal(res.r, cases[i].r);
                assert_reason(&res, cases[i].word);
                assert_int_equal(res.stats.attempts, cases[i].attempts);
                assert_int_equal(sleeps.n, cases[i].attempts - 1);
                assert_int_equal(res.sink.n, 0);
                /* Backoff: each wait within its full-jitter window. */
                for (unsigned k = 0; k < sleeps.n; k++)
                        assert_true(sleeps.usec[k] <= MIN(o.backoff_max, o.backoff_base << k));
                result_done(&res);
        }
}

static void test_transient_then_ok(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/flaky/2/503/t-f/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 3);
        assert_int_equal(sleeps.n, 2);
        assert_int_equal(server_count("/flaky/2/503/t-f/blob"), 3);
        result_done(&res);

        opts_init(&o);
        get_path(&res, S.port_main, "/flaky/3/500/t-f2/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 4);
        result_done(&res);

        /* One more failure than retries: the last status is reported. */
        opts_init(&o);
        get_path(&res, S.port_main, "/flaky/4/502/t-f3/blob", &o, 0);
        assert_int_equal(res.r, -EIO);
        assert_reason(&res, "HTTP 502");
        assert_int_equal(res.stats.attempts, 4);
        result_done(&res);

        /* retries = 0: exactly one attempt. */
        opts_init(&o);
        o.retries = 0;
        get_path(&res, S.port_main, "/flaky/1/503/t-f4/blob", &o, 0);
        assert_int_equal(res.r, -EAGAIN);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(sleeps.n, 0);
        result_done(&res);
}

static void test_retry_after_honoured(void **state) {
        Result res;
        FetchOptions o;

        /* Seconds form: every wait is at least the 7 s asked (backoff ≤ 2 s here). */
        opts_init(&o);
        get_path(&res, S.port_main, "/retryafter/2/s/7/t-ra/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 3);
        assert_int_equal(sleeps.n, 2);
        assert_int_equal(sleeps.usec[0], 7 * USEC_PER_SEC);
        assert_int_equal(sleeps.usec[1], 7 * USEC_PER_SEC);
        result_done(&res);

        /* HTTP-date form, 30 s ahead (whole seconds, so 28…30 s). */
        opts_init(&o);
        get_path(&res, S.port_main, "/retryafter/1/d/30/t-rad/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(sleeps.n, 1);
        assert_true(sleeps.usec[0] >= 28 * USEC_PER_SEC && sleeps.usec[0] <= 30 * USEC_PER_SEC);
        result_done(&res);

        /* Capped: a server asking for a day gets retry_after_max. */
        opts_init(&o);
        o.retry_after_max = 10 * USEC_PER_SEC;
        get_path(&res, S.port_main, "/retryafter/1/s/86400/t-racap/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(sleeps.n, 1);
        assert_int_equal(sleeps.usec[0], 10 * USEC_PER_SEC);
        assert_int_equal(res.stats.slept, 10 * USEC_PER_SEC);
        result_done(&res);

        /* Waiting can be cancelled (the agent is being stopped). */
        opts_init(&o);
        sleeps.fail = -ECANCELED;
        get_path(&res, S.port_main, "/retryafter/5/s/3/t-racancel/blob", &o, 0);
        assert_int_equal(res.r, -ECANCELED);
        assert_reason(&res, "waiting to retry");
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);
}

static void test_endless(void **state) {
        Result res;
        FetchOptions o;

        /* No Content-Length and no end: stop at the expected size, deliver not one byte more. */
        opts_init(&o);
        get_path(&res, S.port_main, "/endless/blob", &o, 0);
        assert_int_equal(res.r, -EFBIG);
        assert_reason(&res, "more than the expected");
        assert_reason(&res, "endless");
        assert_int_equal(res.stats.attempts, 1); /* never retried */
        assert_true(res.sink.n <= BLOB_SIZE);
        assert_true(res.sink.n > BLOB_SIZE - 512 * KIB);
        result_done(&res);

        /* Announced too long: refused before any body byte. */
        opts_init(&o);
        get_path(&res, S.port_main, "/biglen/blob", &o, 0);
        assert_int_equal(res.r, -EFBIG);
        assert_reason(&res, "Content-Length");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);

        /* Announced too short: a wrong file on the server; retried, then -EBADMSG. */
        opts_init(&o);
        o.retries = 1;
        get_path(&res, S.port_main, "/shortlen/blob", &o, 0);
        assert_int_equal(res.r, -EBADMSG);
        assert_reason(&res, "3157073 bytes (Content-Length), expected 3158073");
        assert_int_equal(res.stats.attempts, 2);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);

        /* A size the caller does not know: the server's Content-Length is the end, but
         * max_file_size still caps an endless body. */
        {
                _cleanup_free_ char *u = url_for(S.port_main, "/files/blob"),
                                    *u2 = url_for(S.port_main, "/endless/t-unknown/blob");

                opts_init(&o);
                get_file(&res, u, &o, FETCH_SIZE_UNKNOWN, 0);
                assert_blob_ok(&res);
                result_done(&res);

                opts_init(&o);
                o.max_file_size = 1 * MIB;
                get_file(&res, u2, &o, FETCH_SIZE_UNKNOWN, 0);
                assert_int_equal(res.r, -EFBIG);
                assert_true(res.sink.n <= 1 * MIB);
                result_done(&res);
        }
}

static void test_content_encoding(void **state) {
        Result res;
        FetchOptions o;

        opts_init(&o);
        get_path(&res, S.port_main, "/gzip/blob", &o, 0);
        assert_int_equal(res.r, -EBADMSG);
        assert_reason(&res, "Content-Encoding 'gzip'");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);
}

static void test_callbacks_abort(void **state) {
        Result res;
        FetchOptions o;
        _cleanup_free_ char *u = url_for(S.port_main, "/files/blob");
        FetchCallbacks cb = {.restart = sink_restart, .progress = sink_progress};
        char *reason = NULL;
        FetchStats st;

        /* A sink that fails (disk full): its errno, at once, no retry. */
        opts_init(&o);
        res = (Result){};
        sink_init(&res.sink, BLOB_SIZE);
        res.sink.fail_write = -ENOSPC;
        res.sink.fail_at = 1 * MIB;
        cb.userdata = &res.sink;
        assert_int_equal(
                fetch_file(u, &o, BLOB_SIZE, 0, &(StreamWriter){sink_write, &res.sink}, &cb, &st, &reason),
                -ENOSPC);
        assert_non_null(strstr(reason, "No space left on device"));
        assert_int_equal(st.attempts, 1);
        assert_true(res.sink.n <= 1 * MIB);
        free(reason);
        reason = NULL;
        sink_done(&res.sink);

        /* A progress callback that says stop. */
        opts_init(&o);
        sink_init(&res.sink, BLOB_SIZE);
        res.sink.fail_progress = -ECANCELED;
        cb.userdata = &res.sink;
        assert_int_equal(
                fetch_file(u, &o, BLOB_SIZE, 0, &(StreamWriter){sink_write, &res.sink}, &cb, &st, &reason),
                -ECANCELED);
        assert_non_null(strstr(reason, "progress callback"));
        assert_int_equal(st.attempts, 1);
        assert_int_equal(res.sink.progress_calls, 1);
        free(reason);
        sink_done(&res.sink);
}

static void test_client_certificate(void **state) {
        Result res;
        FetchOptions o;
        TlsOptions tls;

        /* With the right certificate. */
        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .client_cert = S.client_cert, .client_key = S.client_key};
        o.tls = &tls;
        get_path(&res, S.port_mtls, "/files/blob", &o, 0);
        assert_blob_ok(&res);
        result_done(&res);

        /* Without one: the server's TLS alert, permanent. */
        opts_init(&o);
        get_path(&res, S.port_mtls, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EACCES);
        assert_reason(&res, "rejected the TLS session");
        assert_reason(&res, "certificate required");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);

        /* With one from a CA the server does not trust. */
        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .client_cert = S.rogue_cert, .client_key = S.rogue_key};
        o.tls = &tls;
        get_path(&res, S.port_mtls, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EACCES);
        assert_reason(&res, "unknown ca");
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);

        /* A key that does not belong to the certificate: a local problem, said so. */
        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .client_cert = S.client_cert, .client_key = S.rogue_key};
        o.tls = &tls;
        get_path(&res, S.port_mtls, "/files/blob", &o, 0);
        assert_int_equal(res.r, -ENOKEY);
        assert_reason(&res, "client certificate");
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);
}

static void test_server_certificate(void **state) {
        Result res;
        FetchOptions o;
        TlsOptions tls;

        opts_init(&o);
        get_path(&res, S.port_wrongname, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EKEYREJECTED);
        assert_reason(&res, "verification failed");
        assert_reason(&res, "127.0.0.1");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);

        opts_init(&o);
        get_path(&res, S.port_selfsigned, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EKEYREJECTED);
        assert_reason(&res, "self-signed");
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);

        /* Our server, but not trusted: the system store does not know the test CA. */
        opts_init(&o);
        o.tls = NULL;
        get_path(&res, S.port_main, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EKEYREJECTED);
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);

        /* A CA file that is not one, or is missing. */
        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.garbage_ca};
        o.tls = &tls;
        get_path(&res, S.port_main, "/files/blob", &o, 0);
        assert_int_equal(res.r, -ENOKEY);
        assert_reason(&res, "CA file");
        assert_reason(&res, "garbage.pem");
        assert_int_equal(res.stats.attempts, 1);
        result_done(&res);

        opts_init(&o);
        tls = (TlsOptions){.ca_file = (char *) "/nonexistent/ca.pem"};
        o.tls = &tls;
        get_path(&res, S.port_main, "/files/blob", &o, 0);
        assert_int_equal(res.r, -ENOKEY);
        assert_reason(&res, "/nonexistent/ca.pem");
        result_done(&res);
}

static void test_pinned_key(void **state) {
        Result res;
        FetchOptions o;
        TlsOptions tls;

        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .pinned_pubkey = S.server_pin};
        o.tls = &tls;
        get_path(&res, S.port_main, "/files/blob", &o, 0);
        assert_blob_ok(&res);
        result_done(&res);

        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .pinned_pubkey = S.other_pin};
        o.tls = &tls;
        get_path(&res, S.port_main, "/files/blob", &o, 0);
        assert_int_equal(res.r, -EKEYREJECTED);
        assert_reason(&res, "pinned key");
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.sink.n, 0);
        result_done(&res);
}

static void test_schemes_and_transport(void **state) {
        Result res;
        FetchOptions o;
        char *reason = NULL, *doc = NULL;
        char u[64];

        /* Plain http is refused before any connection. */
        opts_init(&o);
        snprintf(u, sizeof(u), "http://127.0.0.1:%d/files/blob", S.port_main);
        get_file(&res, u, &o, BLOB_SIZE, 0);
        assert_int_equal(res.r, -EPROTONOSUPPORT);
        assert_reason(&res, "only https:// and file://");
        assert_int_equal(res.stats.attempts, 0);
        result_done(&res);
        assert_int_equal(fetch_document(u, &o, 100, &doc, NULL, NULL, &reason), -EPROTONOSUPPORT);
        assert_null(doc);
        free(reason);

        /* Nobody listening: a transport error, retried. */
        opts_init(&o);
        o.retries = 2;
        snprintf(u, sizeof(u), "https://127.0.0.1:%d/files/blob", free_port());
        get_file(&res, u, &o, BLOB_SIZE, 0);
        assert_int_equal(res.r, -ECONNREFUSED);
        assert_reason(&res, "cannot connect");
        assert_int_equal(res.stats.attempts, 3);
        result_done(&res);
}

/* The way the agent will use it: a model's source: section, URLs joined onto its base. */
static void test_source_config(void **state) {
        _cleanup_free_ char *base = url_for(S.port_main, "/files/"), *doc_url = NULL, *blob_url = NULL,
                            *doc = NULL;
        SourceConfig src = {
                .url = base,
                .tls = {.ca_file = S.ca_file},
                .connect_timeout = 5 * USEC_PER_SEC,
                .low_speed_limit = 1024,
                .low_speed_time = 10 * USEC_PER_SEC,
                .retries = 2,
                .max_release_size = 1 * MIB,
                .max_file_size = 64 * GIB,
        };
        FetchOptions o;
        Result res;
        size_t n;

        fetch_options_from_source(&o, &src);
        o.proxy = "";
        o.sleep = fake_sleep;
        assert_int_equal(fetch_join_url(src.url, "doc.json", &doc_url), 0);
        assert_int_equal(fetch_document(doc_url, &o, src.max_release_size, &doc, &n, NULL, NULL), 0);
        assert_string_equal(doc, S.doc);
        assert_int_equal(fetch_join_url(src.url, "blob", &blob_url), 0);
        get_file(&res, blob_url, &o, BLOB_SIZE, 0);
        assert_blob_ok(&res);
        result_done(&res);
}

static void test_document(void **state) {
        _cleanup_free_ char *u = url_for(S.port_main, "/files/doc.json");
        char *doc = NULL, *reason = NULL;
        FetchOptions o;
        FetchStats st;
        size_t n = 0;

        opts_init(&o);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, &st, &reason), 0);
        assert_null(reason);
        assert_int_equal(n, S.doc_size);
        assert_string_equal(doc, S.doc);
        assert_int_equal(st.attempts, 1);
        doc = mfree_test(doc);

        /* Exactly at the cap is fine, one byte under is not (seen in Content-Length). */
        assert_int_equal(fetch_document(u, &o, S.doc_size, &doc, &n, NULL, NULL), 0);
        doc = mfree_test(doc);
        assert_int_equal(fetch_document(u, &o, S.doc_size - 1, &doc, &n, &st, &reason), -EFBIG);
        assert_null(doc);
        assert_non_null(strstr(reason, "more than the limit"));
        assert_int_equal(st.attempts, 1);
        reason = mfree_test(reason);

        /* Endless: the cap holds while receiving. */
        {
                _cleanup_free_ char *e = url_for(S.port_main, "/endless/doc.json");
                assert_int_equal(fetch_document(e, &o, 64 * KIB, &doc, &n, &st, &reason), -EFBIG);
                assert_non_null(strstr(reason, "exceeds the limit of 65536"));
                assert_int_equal(st.attempts, 1);
                reason = mfree_test(reason);
        }

        /* Redirected and flaky documents are fetched; missing ones are -ENOENT at once. */
        {
                _cleanup_free_ char *r = url_for(S.port_main, "/redir/2/doc.json"),
                                    *f = url_for(S.port_main, "/flaky/2/503/t-doc/doc.json"),
                                    *m = url_for(S.port_main, "/files/nope.json"),
                                    *d = url_for(S.port_main, "/drop/1/10/t-doc/doc.json");

                assert_int_equal(fetch_document(r, &o, 4096, &doc, &n, NULL, NULL), 0);
                assert_string_equal(doc, S.doc);
                doc = mfree_test(doc);
                assert_int_equal(fetch_document(f, &o, 4096, &doc, &n, &st, NULL), 0);
                assert_string_equal(doc, S.doc);
                assert_int_equal(st.attempts, 3);
                doc = mfree_test(doc);
                /* A document is small: after a cut it starts again from 0 (no Range). */
                assert_int_equal(fetch_document(d, &o, 4096, &doc, &n, &st, NULL), 0);
                assert_string_equal(doc, S.doc);
                assert_int_equal(st.attempts, 2);
                doc = mfree_test(doc);
                assert_int_equal(fetch_document(m, &o, 4096, &doc, &n, &st, &reason), -ENOENT);
                assert_non_null(strstr(reason, "HTTP 404"));
                assert_int_equal(st.attempts, 1);
                reason = mfree_test(reason);
        }
}

/* ---------------------------------------------------------------------------------------------
 * file://
 */

static void test_file_urls(void **state) {
        _cleanup_free_ char *u = NULL, *link = NULL, *target = NULL, *fifo = NULL;
        char *doc = NULL, *reason = NULL;
        FetchOptions o;
        Result res;
        size_t n;

        opts_init(&o);
        assert_true(asprintf(&u, "file://%s/doc.json", S.root) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, &reason), 0);
        assert_int_equal(n, S.doc_size);
        assert_string_equal(doc, S.doc);
        doc = mfree_test(doc);
        assert_int_equal(fetch_document(u, &o, 10, &doc, &n, NULL, &reason), -EFBIG);
        assert_non_null(strstr(reason, "more than the limit of 10"));
        reason = mfree_test(reason);
        free(u);

        /* file://localhost/ and escapes are understood. */
        assert_true(asprintf(&u, "file://localhost%s/doc%%2Ejson", S.root) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, NULL), 0);
        doc = mfree_test(doc);
        free(u);

        /* A symlink as the final component is not followed. */
        link = path_join(S.root, "link.json");
        target = path_join(S.root, "doc.json");
        assert_int_equal(symlink(target, link), 0);
        assert_true(asprintf(&u, "file://%s", link) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, &reason), -ELOOP);
        assert_non_null(strstr(reason, "symlink"));
        reason = mfree_test(reason);
        free(u);

        /* Neither a directory nor a FIFO (which would block a naive open). */
        fifo = path_join(S.root, "fifo");
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_true(asprintf(&u, "file://%s", fifo) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, &reason), -EBADF);
        assert_non_null(strstr(reason, "not a regular file"));
        reason = mfree_test(reason);
        free(u);
        assert_true(asprintf(&u, "file://%s", S.root) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, &reason), -EBADF);
        reason = mfree_test(reason);
        free(u);

        assert_true(asprintf(&u, "file://%s/missing", S.root) > 0);
        assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, &reason), -ENOENT);
        reason = mfree_test(reason);
        free(u);

        assert_int_equal(fetch_document("file://otherhost/x", &o, 4096, &doc, &n, NULL, &reason), -EINVAL);
        reason = mfree_test(reason);
        assert_int_equal(fetch_document("file:///a%00b", &o, 4096, &doc, &n, NULL, &reason), -EINVAL);
        reason = mfree_test(reason);

        /* Files: whole, resumed, and a size that does not match the signed one. */
        assert_true(asprintf(&u, "file://%s/blob", S.root) > 0);
        get_file(&res, u, &o, BLOB_SIZE, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 0);
        result_done(&res);
        get_file(&res, u, &o, BLOB_SIZE, 3 * MIB);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 3 * MIB);
        result_done(&res);
        get_file(&res, u, &o, BLOB_SIZE - 1, 0);
        assert_int_equal(res.r, -EFBIG);
        result_done(&res);
        res = (Result){};
        sink_init(&res.sink, BLOB_SIZE + 1);
        assert_int_equal(fetch_file(u, &o, BLOB_SIZE + 1, 0, &(StreamWriter){sink_write, &res.sink}, NULL,
                                    NULL, &reason),
                         -EBADMSG);
        assert_non_null(strstr(reason, "is 3158073 bytes, expected 3158074"));
        assert_int_equal(res.sink.n, 0);
        reason = mfree_test(reason);
        sink_done(&res.sink);
}

/* ---------------------------------------------------------------------------------------------
 * nginx: a real server for the normal path and Range resume
 */

static struct {
        pid_t pid;
        int port, port_h2;
        char *dir;
} N;

static int setup_nginx(void **state) {
        _cleanup_free_ char *conf = NULL, *text = NULL;
        const char *nginx = access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : NULL;

        if (!nginx || !S.dir)
                return 0; /* the tests SKIP */

        N.dir = path_join(S.dir, "nginx");
        assert_int_equal(mkdir(N.dir, 0700), 0);
        N.port = free_port();
        do
                N.port_h2 = free_port();
        while (N.port_h2 == N.port);
        assert_true(asprintf(&text,
                             "daemon off;\n"
                             "master_process off;\n"
                             "worker_processes 1;\n"
                             "pid %1$s/nginx.pid;\n"
                             "error_log %1$s/error.log warn;\n"
                             "events { worker_connections 64; }\n"
                             "http {\n"
                             "  access_log off;\n"
                             "  client_body_temp_path %1$s/body;\n"
                             "  proxy_temp_path %1$s/proxy;\n"
                             "  fastcgi_temp_path %1$s/fastcgi;\n"
                             "  uwsgi_temp_path %1$s/uwsgi;\n"
                             "  scgi_temp_path %1$s/scgi;\n"
                             "  server {\n"
                             "    listen 127.0.0.1:%2$d ssl;\n"
                             "    listen 127.0.0.1:%5$d ssl http2;\n"
                             "    ssl_certificate %3$s/server.crt;\n"
                             "    ssl_certificate_key %3$s/server.key;\n"
                             "    root %4$s;\n"
                             "  }\n"
                             "}\n",
                             N.dir, N.port, S.pki, S.root, N.port_h2) > 0);
        conf = path_join(N.dir, "nginx.conf");
        write_file(N.dir, "nginx.conf", text, strlen(text));

        N.pid = fork();
        assert_true(N.pid >= 0);
        if (N.pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                (void) dup2(null, STDIN_FILENO);
                (void) dup2(null, STDOUT_FILENO);
                execl(nginx, nginx, "-c", conf, "-p", N.dir, "-e", "stderr", (char *) NULL);
                _exit(127);
        }
        for (unsigned i = 0; i < 100 && !port_open(N.port); i++)
                usleep(50000);
        if (!port_open(N.port)) {
                fprintf(stderr, "nginx did not start, see %s/error.log\n", N.dir);
                stop_child(&N.pid);
        }
        return 0;
}

static int teardown_nginx(void **state) {
        stop_child(&N.pid);
        free(N.dir);
        return 0;
}

static void test_nginx(void **state) {
        Result res;
        FetchOptions o;
        TlsOptions tls;

        if (N.pid <= 0)
                skip();

        opts_init(&o);
        get_path(&res, N.port, "/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.attempts, 1);
        assert_int_equal(res.stats.http_status, 200);
        assert_int_equal(res.stats.http_version, 11);
        result_done(&res);

        /* Resume: nginx answers the Range with 206 and a Content-Range we accept. */
        opts_init(&o);
        get_path(&res, N.port, "/blob", &o, 1234567);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.http_status, 206);
        assert_int_equal(res.stats.restarts, 0);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 1234567);
        result_done(&res);

        /* The same over HTTP/2 (what curl negotiates with ALPN when the server offers it). */
        opts_init(&o);
        get_path(&res, N.port_h2, "/blob", &o, 0);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.http_version, 20);
        assert_int_equal(res.stats.http_status, 200);
        result_done(&res);
        opts_init(&o);
        get_path(&res, N.port_h2, "/blob", &o, 2345678);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.http_version, 20);
        assert_int_equal(res.stats.http_status, 206);
        assert_int_equal(res.stats.bytes_received, BLOB_SIZE - 2345678);
        result_done(&res);

        /* The last byte only. */
        opts_init(&o);
        get_path(&res, N.port, "/blob", &o, BLOB_SIZE - 1);
        assert_blob_ok(&res);
        assert_int_equal(res.stats.bytes_received, 1);
        result_done(&res);

        /* The signed size is smaller than nginx's file: refused from its Content-Range. */
        opts_init(&o);
        o.retries = 0;
        {
                _cleanup_free_ char *u = url_for(N.port, "/blob");
                get_file(&res, u, &o, BLOB_SIZE - 10, 100);
                assert_int_equal(res.r, -EBADMSG);
                assert_reason(&res, "complete length of 3158073, expected 3158063");
                result_done(&res);
        }

        /* Pinned to nginx's key, and a document. */
        opts_init(&o);
        tls = (TlsOptions){.ca_file = S.ca_file, .pinned_pubkey = S.server_pin};
        o.tls = &tls;
        get_path(&res, N.port, "/blob", &o, 0);
        assert_blob_ok(&res);
        result_done(&res);
        {
                _cleanup_free_ char *u = url_for(N.port, "/doc.json"), *m = url_for(N.port, "/nope"),
                                    *doc = NULL, *reason = NULL;
                size_t n;

                assert_int_equal(fetch_document(u, &o, 4096, &doc, &n, NULL, NULL), 0);
                assert_string_equal(doc, S.doc);
                assert_int_equal(fetch_document(m, &o, 4096, &doc, &n, NULL, &reason), -ENOENT);
                assert_non_null(strstr(reason, "HTTP 404 Not Found"));
        }
}

int main(void) {
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_backoff),        cmocka_unit_test(test_content_range),
                cmocka_unit_test(test_retry_after),    cmocka_unit_test(test_join_url),
                cmocka_unit_test(test_status_classes), cmocka_unit_test(test_options_from_source),
        };
        const struct CMUnitTest server[] = {
                cmocka_unit_test(test_normal),
                cmocka_unit_test(test_resume_offset),
                cmocka_unit_test(test_range_ignored),
                cmocka_unit_test(test_bad_content_range),
                cmocka_unit_test(test_drop_resume),
                cmocka_unit_test(test_slow),
                cmocka_unit_test(test_redirects),
                cmocka_unit_test(test_http_errors),
                cmocka_unit_test(test_transient_then_ok),
                cmocka_unit_test(test_retry_after_honoured),
                cmocka_unit_test(test_endless),
                cmocka_unit_test(test_content_encoding),
                cmocka_unit_test(test_callbacks_abort),
                cmocka_unit_test(test_client_certificate),
                cmocka_unit_test(test_server_certificate),
                cmocka_unit_test(test_pinned_key),
                cmocka_unit_test(test_schemes_and_transport),
                cmocka_unit_test(test_document),
                cmocka_unit_test(test_source_config),
                cmocka_unit_test(test_file_urls),
                cmocka_unit_test_setup_teardown(test_nginx, setup_nginx, teardown_nginx),
        };
        int r;

        r = cmocka_run_group_tests_name("fetch-pure", pure, NULL, NULL);
        r += cmocka_run_group_tests_name("fetch-tls", server, setup_group, teardown_group);
        return r;
}
