/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The test verb (test builds only): exercises the job runner from the agent's side — progress,
 * sleeping, crashing, misbehaving on the wire, exiting non-zero, ignoring SIGTERM, and probing the
 * sandbox. Arguments after "--":
 *   progress=N  sleep-ms=MS  crash  garbage  oversize  exit=CODE  fail=REASON  no-result
 *   ignore-term  result-then-garbage  write=PATH  connect=PORT
 */

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "agent.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"
#include "strv.h"
#include "wire.h"

static void sleep_ms(unsigned ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !agent_terminate)
                ;
}

int verb_test(Agent *a) {
        unsigned progress = 0, sleep = 0, exit_code = 0;
        bool crash = false, garbage = false, oversize = false, no_result = false, ignore_term = false,
             result_then_garbage = false;
        const char *fail = NULL, *write_path = NULL;
        unsigned connect_port = 0;
        json_t *data;

        STRV_FOREACH(arg, a->args) {
                const char *v;
                if ((v = startswith(*arg, "progress=")))
                        (void) parse_unsigned(v, &progress);
                else if ((v = startswith(*arg, "sleep-ms=")))
                        (void) parse_unsigned(v, &sleep);
                else if ((v = startswith(*arg, "exit=")))
                        (void) parse_unsigned(v, &exit_code);
                else if ((v = startswith(*arg, "fail=")))
                        fail = v;
                else if ((v = startswith(*arg, "write=")))
                        write_path = v;
                else if ((v = startswith(*arg, "connect=")))
                        (void) parse_unsigned(v, &connect_port);
                else if (streq(*arg, "crash"))
                        crash = true;
                else if (streq(*arg, "garbage"))
                        garbage = true;
                else if (streq(*arg, "oversize"))
                        oversize = true;
                else if (streq(*arg, "no-result"))
                        no_result = true;
                else if (streq(*arg, "ignore-term"))
                        ignore_term = true;
                else if (streq(*arg, "result-then-garbage"))
                        result_then_garbage = true;
                else
                        return agent_result_error(a, -EINVAL, "unknown test argument '%s'", *arg);
        }

        if (ignore_term)
                (void) signal(SIGTERM, SIG_IGN);

        for (unsigned i = 1; i <= progress; i++) {
                agent_progress(a, "testing", i, progress);
                sleep_ms(10);
        }
        if (garbage && a->wire_fd >= 0)
                (void) send(a->wire_fd, "{not json", 9, MSG_NOSIGNAL);
        if (oversize && a->wire_fd >= 0) {
                static char big[WIRE_MESSAGE_MAX + 100];
                memset(big, ' ', sizeof(big));
                big[0] = '{';
                big[sizeof(big) - 1] = '}';
                (void) send(a->wire_fd, big, sizeof(big), MSG_NOSIGNAL);
        }
        if (sleep > 0 && !result_then_garbage) {
                /* Sleep in slices so SIGTERM (cancel) is noticed quickly unless ignored. */
                for (unsigned t = 0; t < sleep && (ignore_term || !agent_terminate); t += 10)
                        sleep_ms(10);
                if (agent_terminate && !ignore_term)
                        return agent_result_error(a, -ECANCELED, "cancelled by SIGTERM; left resumable");
        }
        if (crash)
                abort();

        data = json_object();
        if (write_path) {
                _cleanup_close_ int fd = open(write_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                json_object_set_new(data, "write_errno", json_integer(fd < 0 ? errno : 0));
        }
        if (connect_port > 0) {
                _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t) connect_port)};
                int r = 0;
                sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0)
                        r = errno;
                json_object_set_new(data, "connect_errno", json_integer(r));
        }

        if (no_result) {
                json_decref(data);
                a->result_sent = true; /* pretend, so main() does not send one */
                return 0;
        }
        if (fail) {
                json_decref(data);
                agent_result_error(a, -EIO, "%s", fail);
        } else
                agent_result_ok(a, data);
        if (result_then_garbage && a->wire_fd >= 0) {
                (void) wire_send_progress(a->wire_fd, "late", 1, 1);
                for (unsigned t = 0; t < sleep; t += 10)
                        sleep_ms(10);
        }
        if (exit_code > 0)
                exit((int) exit_code);
        return 0;
}
