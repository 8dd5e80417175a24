/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "netdeny.h"

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif

/* What the filter does to the calls of a process that installed it: run in a child (a seccomp
 * filter cannot be removed), which reports the first unexpected result as its exit status. */
static int child(void) {
        static const int denied[] = { AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, AF_PACKET, AF_VSOCK };
        int sv[2];
        uint8_t params[120] = {}; /* struct io_uring_params; never read: the call must not happen */

        if (netdeny_apply() < 0)
                return 10;
        for (size_t i = 0; i < ELEMENTSOF(denied); i++) {
                int fd = socket(denied[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 || errno != EACCES)
                        return 20 + (int) i;
                fd = socket(denied[i], SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 || errno != EACCES)
                        return 40 + (int) i;
        }
        /* io_uring would create sockets without socket(2). */
        if (syscall(__NR_io_uring_setup, 1, params) >= 0 || errno != ENOSYS)
                return 60;
        /* A connected pair inside the process reaches nothing outside: allowed. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 70;
        if (write(sv[0], "x", 1) != 1)
                return 71;
        /* Everything else works as before. */
        if (getpid() <= 0 || access("/", F_OK) < 0)
                return 80;
        return 0;
}

static void test_netdeny(void **state) {
        int status = 0;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(child());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Without the filter, the same process may create sockets (the test itself is meaningful). */
static void test_without_filter(void **state) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_without_filter),
                cmocka_unit_test(test_netdeny),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
