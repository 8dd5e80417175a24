/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * "No network" for an external compressor, on every kernel: a seccomp filter that makes
 * socket(AF_INET/AF_INET6, …) fail with EACCES (Unix sockets stay, for libraries that log to the
 * journal). Installed in the child right before execv(), after PR_SET_NO_NEW_PRIVS. Landlock's
 * network rules (kernel ≥ 6.7) would do as well but Debian 12's kernel has none, and network
 * namespaces need privileges the service does not have.
 */

int netdeny_apply(void);
