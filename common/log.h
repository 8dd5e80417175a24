/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The one logging API. Under journald every call becomes one structured entry
 * (sd_journal_sendv) with PRIORITY=, CODE_*= and, for decisions, MESSAGE_ID= and the fields
 * of DESIGN.md §8; elsewhere (a terminal, CI) the same facts go to stderr as one readable
 * line. Functions return -abs(error) so that "return log_error_errno(r, …);" works.
 *
 * Code in common/ logs only at debug level (STYLE.md §8): errors are returned, and logged
 * once by whoever handles them.
 */

#include <stdarg.h>
#include <syslog.h>

#include "log-ids.h"
#include "macros.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,    /* journal when stderr is connected to it ($JOURNAL_STREAM), else console */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

const char *log_target_to_string(LogTarget t) _const_;
LogTarget log_target_from_string(const char *s) _pure_;

/* The structured fields of a decision entry. Any may be NULL. */
typedef struct LogFields {
        const char *message_id;
        const char *model;
        const char *version;
        const char *from_version;
        const char *policy;
        const char *rule;
        const char *action;
        const char *job;
        const char *reason;
} LogFields;

/* Reads $MODELKEEPER_LOG_LEVEL and $MODELKEEPER_LOG_TARGET, resolves "auto". */
void log_setup(void);
void log_set_max_level(int level);
int log_get_max_level(void) _pure_;
int log_level_from_string(const char *s) _pure_;
void log_set_target(LogTarget t);
LogTarget log_get_target(void) _pure_;
/* True when entries currently go to the journal. */
bool log_on_journal(void) _pure_;

/* Optional observer of every decision entry (tests, `policy test` output). */
typedef void (*LogEventHook)(int level, const LogFields *f, const char *message, void *userdata);
void log_set_event_hook(LogEventHook hook, void *userdata);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);
int log_event_internal(int level, int error, const char *file, int line, const char *func,
                       const LogFields *f, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...)              log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, (error), __VA_ARGS__)
#define log_notice_errno(error, ...)  log_full_errno(LOG_NOTICE, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, (error), __VA_ARGS__)

/*
 * A decision entry:
 *   log_event(LOG_NOTICE, 0, &(LogFields) { .message_id = MK_MESSAGE_ROLLBACK, .model = m->name,
 *             .version = to, .from_version = from, .action = "rollback", .reason = why },
 *             "Rolled back %s from %s to %s", m->name, from, to);
 */
#define log_event(level, error, ...) log_event_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
