/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "netdeny.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define NATIVE_ARCH AUDIT_ARCH_I386
#else
#error "netdeny: unknown architecture"
#endif

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425 /* the same number on every architecture (asm-generic) */
#endif

/*
 * Which calls, and why all of them:
 *
 *   socket(2), every address family → EACCES. Not only AF_INET/AF_INET6: an AF_UNIX socket
 *   reaches whatever listens on the file system (D-Bus, the container runtime, our own control
 *   socket, a local proxy that forwards to the network), AF_NETLINK talks to the kernel's network
 *   configuration, AF_PACKET and AF_VSOCK leave the host by other ways. A compressor reads a
 *   directory and writes one; it needs none of them. Libraries that would log to the journal over
 *   a Unix socket get the error and fall back to stderr, which the agent passes on.
 *   socketpair(2) stays: it makes a connected pair inside the process tree and reaches nothing
 *   outside (multiprocessing pools use it).
 *
 *   io_uring_setup(2) → ENOSYS, as on kernels without io_uring: its IORING_OP_SOCKET and
 *   IORING_OP_CONNECT would create and connect sockets without the socket(2) call this filter sees.
 *
 * Other ABIs of the same kernel (i386 and x32 programs on x86_64) have other numbers: they are
 * killed, only the native ABI runs. On a native i386 build, where socket(2) may also come through
 * socketcall(2), socketcall is refused as a whole (socketpair through it too).
 */
int netdeny_apply(void) {
        struct sock_filter filter[] = {
                /* Foreign ABIs (i386 on x86_64, x32) could reach socket under other numbers: kill. */
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1), /* __X32_SYSCALL_BIT */
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#ifdef __NR_socketcall
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketcall, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
#endif
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return -errno;
        return 0;
}
