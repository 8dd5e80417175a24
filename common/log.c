/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* We pass CODE_FILE/LINE/FUNC of the caller ourselves; without this the header would add the
 * location of log.c a second time. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_max_level = LOG_INFO;
static LogTarget log_target = LOG_TARGET_AUTO;
static LogTarget log_resolved = LOG_TARGET_CONSOLE;
static LogEventHook log_hook = NULL;
static void *log_hook_userdata = NULL;

static const char *const log_target_table[_LOG_TARGET_MAX] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_JOURNAL] = "journal",
        [LOG_TARGET_CONSOLE] = "console",
};

const char *log_target_to_string(LogTarget t) {
        return t >= 0 && t < _LOG_TARGET_MAX ? log_target_table[t] : NULL;
}

LogTarget log_target_from_string(const char *s) {
        if (!s)
                return _LOG_TARGET_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(log_target_table); i++)
                if (streq(s, log_target_table[i]))
                        return (LogTarget) i;
        return _LOG_TARGET_INVALID;
}

static const char *const log_level_table[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(log_level_table); i++)
                if (streq(s, log_level_table[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

/* $JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to stdout/stderr; it only means
 * something when our stderr is still that very stream (it is inherited by children that redirect). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static void log_resolve(void) {
        if (log_target == LOG_TARGET_AUTO)
                log_resolved = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
        else
                log_resolved = log_target;
}

void log_setup(void) {
        const char *e;
        int l;

        e = getenv("MODELKEEPER_LOG_LEVEL");
        if (e && (l = log_level_from_string(e)) >= 0)
                log_max_level = l;
        e = getenv("MODELKEEPER_LOG_TARGET");
        if (e && log_target_from_string(e) >= 0)
                log_target = log_target_from_string(e);
        log_resolve();
}

void log_set_max_level(int level) {
        log_max_level = CLAMP(level, LOG_EMERG, LOG_DEBUG);
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_target(LogTarget t) {
        log_target = t;
        log_resolve();
}

LogTarget log_get_target(void) {
        return log_target;
}

bool log_on_journal(void) {
        return log_resolved == LOG_TARGET_JOURNAL;
}

void log_set_event_hook(LogEventHook hook, void *userdata) {
        log_hook = hook;
        log_hook_userdata = userdata;
}

/* Field values come from users and servers (model names, reasons): keep one entry one line on the
 * console, and never let a value smuggle a second "FIELD=" line into the journal. */
static void console_value(FILE *f, const char *v) {
        bool quote = strpbrk(v, " \t\"=") != NULL || !*v;

        if (quote)
                fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) v; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p < 0x20 || *p == 0x7f)
                        fprintf(f, "\\x%02x", *p);
                else
                        fputc(*p, f);
        }
        if (quote)
                fputc('"', f);
}

#define FIELDS(f)                                                                                          \
        {"MESSAGE_ID", (f)->message_id}, {"MODEL", (f)->model}, {"VERSION", (f)->version},                 \
                {"FROM_VERSION", (f)->from_version}, {"POLICY", (f)->policy}, {"RULE", (f)->rule},         \
                {"ACTION", (f)->action}, {"JOB", (f)->job}, {                                              \
                "REASON", (f)->reason                                                                      \
        }

static void log_write_console(int level, const LogFields *f, const char *msg) {
        static const char *const prefix[] = {
                [LOG_EMERG] = "EMERG", [LOG_ALERT] = "ALERT",   [LOG_CRIT] = "CRIT",  [LOG_ERR] = "ERROR",
                [LOG_WARNING] = "WARN", [LOG_NOTICE] = "NOTICE", [LOG_INFO] = "INFO", [LOG_DEBUG] = "DEBUG",
        };
        /* One line, one write(2): stderr is unbuffered, so fprintf piece by piece would hand a
         * reader of the log file half lines, and interleave with the agents sharing the stream. */
        char *line = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&line, &len);

        if (!out)
                out = stderr;
        flockfile(out);
        fprintf(out, "%s[%d]: %-6s ", program_invocation_short_name, (int) getpid(), prefix[level & 7]);
        for (const char *p = msg; *p; p++)
                fputc(*p == '\n' ? ' ' : *p, out);
        if (f) {
                const struct {
                        const char *name, *value;
                } fields[] = {FIELDS(f)};
                bool first = true;

                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        if (!fields[i].value || i == 0) /* MESSAGE_ID is noise on a terminal */
                                continue;
                        fputs(first ? "  [" : " ", out);
                        first = false;
                        fprintf(out, "%s=", fields[i].name);
                        console_value(out, fields[i].value);
                }
                if (!first)
                        fputc(']', out);
        }
        fputc('\n', out);
        funlockfile(out);
        if (out == stderr) {
                fflush(out);
                return;
        }
        int saved = errno;

        if (fclose(out) == 0)
                for (const char *p = line; len > 0;) {
                        ssize_t k = write(STDERR_FILENO, p, len);

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                break;
                        p += k;
                        len -= (size_t) k;
                }
        free(line);
        errno = saved;
}

static void log_write_journal(int level, int error, const char *file, int line, const char *func,
                              const LogFields *f, const char *msg) {
        /* MESSAGE, PRIORITY, CODE_FILE, CODE_LINE, CODE_FUNC, SYSLOG_IDENTIFIER, ERRNO + the fields */
        char *items[16] = {};
        struct iovec iov[16];
        size_t n = 0;

        if (asprintf(&items[n++], "MESSAGE=%s", msg) < 0 || asprintf(&items[n++], "PRIORITY=%d", level & 7) < 0 ||
            asprintf(&items[n++], "CODE_FILE=%s", file) < 0 || asprintf(&items[n++], "CODE_LINE=%d", line) < 0 ||
            asprintf(&items[n++], "CODE_FUNC=%s", func) < 0 ||
            asprintf(&items[n++], "SYSLOG_IDENTIFIER=%s", program_invocation_short_name) < 0)
                goto fallback;
        if (error != 0 && asprintf(&items[n++], "ERRNO=%d", abs(error)) < 0)
                goto fallback;
        if (f) {
                const struct {
                        const char *name, *value;
                } fields[] = {FIELDS(f)};

                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        _cleanup_free_ char *clean = NULL;

                        if (!fields[i].value)
                                continue;
                        /* A newline in a value would end the field; journald would then read the rest
                         * as a field of its own. Replace control characters. */
                        clean = strdup(fields[i].value);
                        if (!clean)
                                goto fallback;
                        for (char *p = clean; *p; p++)
                                if ((unsigned char) *p < 0x20)
                                        *p = ' ';
                        if (asprintf(&items[n++], "%s=%s", fields[i].name, clean) < 0)
                                goto fallback;
                }
        }

        for (size_t i = 0; i < n; i++)
                iov[i] = (struct iovec){.iov_base = items[i], .iov_len = strlen(items[i])};
        if (sd_journal_sendv(iov, (int) n) >= 0)
                goto done;

fallback:
        log_write_console(level, f, msg);
done:
        for (size_t i = 0; i < ELEMENTSOF(items); i++)
                free(items[i]);
}

_printf_(7, 0) static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                                       const LogFields *f, const char *format, va_list ap) {
        char buf[4096];
        int saved_errno = errno;

        if (f && log_hook) {
                va_list aq;
                va_copy(aq, ap);
                errno = abs(error);
                (void) vsnprintf(buf, sizeof(buf), format, aq);
                va_end(aq);
                log_hook(level, f, buf, log_hook_userdata);
        }

        if ((level & 7) > log_max_level) {
                errno = saved_errno;
                return -abs(error);
        }

        /* Make %m print the error we were handed. */
        errno = abs(error);
        (void) vsnprintf(buf, sizeof(buf), format, ap);

        if (log_resolved == LOG_TARGET_JOURNAL)
                log_write_journal(level, error, file, line, func, f, buf);
        else
                log_write_console(level, f, buf);

        errno = saved_errno;
        return -abs(error);
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, NULL, format, ap);
        va_end(ap);
        return r;
}

int log_event_internal(int level, int error, const char *file, int line, const char *func, const LogFields *f,
                       const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, f, format, ap);
        va_end(ap);
        return r;
}
