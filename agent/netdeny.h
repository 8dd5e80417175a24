/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * "No network" for an external compressor, on every kernel: a seccomp filter that makes socket(2)
 * fail with EACCES for every address family — Unix sockets included, since they reach local
 * services and proxies — and io_uring_setup(2) with ENOSYS (io_uring can create sockets by
 * itself); socketpair(2) stays. Installed in the child right before execv(), after
 * PR_SET_NO_NEW_PRIVS; inherited by everything the compressor starts. Landlock's network rules
 * (kernel ≥ 6.7) cover TCP only and Debian 12's kernel has none, and network namespaces need
 * privileges the service does not have.
 */

int netdeny_apply(void);
