/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <sys/stat.h>

#include "fault.h"
#include "fileio.h"
#include "install.h"

static int file_write(void *userdata, const void *buf, size_t n) {
        InstallFile *f = userdata;
        int r;

        r = FAULT_POINT("install-write");
        if (r < 0)
                return r;
        r = loop_write(f->fd, buf, n);
        if (r < 0)
                return r;
        f->stored_bytes += n;
        return 0;
}

static int chain_write(void *userdata, const void *buf, size_t n) {
        InstallFile *f = userdata;

        if (f->plain_bytes + n < f->plain_bytes || f->plain_bytes + n > f->max_size)
                return -EFBIG;
        if (EVP_DigestUpdate(f->sha, buf, n) != 1)
                return -EIO;
        f->plain_bytes += n;
        return f->stage ? stream_write(&f->stage_writer, buf, n) : stream_write(&f->file_writer, buf, n);
}

static char *stored_name(const char *name, const InstallSealHook *hook) {
        return hook && hook->suffix ? xasprintf("%s%s", name, hook->suffix) : strdup(name);
}

int install_file_open(InstallFile *f, int dirfd, const char *name, uint64_t max_size, const InstallSealHook *hook) {
        int r;

        *f = (InstallFile){.fd = -EBADF, .max_size = max_size};
        f->name = stored_name(name, hook);
        f->sha = EVP_MD_CTX_new();
        if (!f->name || !f->sha) {
                r = -ENOMEM;
                goto fail;
        }
        if (EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1) {
                r = -EIO;
                goto fail;
        }
        r = FAULT_POINT("install-create");
        if (r < 0)
                goto fail;
        f->fd = openat(dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (f->fd < 0) {
                r = -errno;
                goto fail;
        }
        f->file_writer = (StreamWriter){.write = file_write, .userdata = f};
        f->writer = (StreamWriter){.write = chain_write, .userdata = f};
        if (hook) {
                f->hook = *hook;
                r = hook->open(hook->userdata, &f->file_writer, &f->stage, &f->stage_writer);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        install_file_done(f);
        return r;
}

int install_file_open_resume(InstallFile *f, int dirfd, const char *name, uint64_t max_size,
                             const InstallSealHook *hook, uint64_t *ret_offset) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *stored = stored_name(name, hook);
        struct stat st;
        int r, fd;

        if (!stored)
                return -ENOMEM;
        fd = openat(dirfd, stored, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno != ENOENT)
                        return -errno;
                *ret_offset = 0;
                return install_file_open(f, dirfd, name, max_size, hook);
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                r = S_ISREG(st.st_mode) ? -errno : -EBADF;
                safe_close(fd);
                return r;
        }
        *f = (InstallFile){.fd = fd, .max_size = max_size};
        f->name = TAKE_PTR(stored);
        f->sha = EVP_MD_CTX_new();
        if (!f->name || !f->sha) {
                r = -ENOMEM;
                goto fail;
        }
        if (EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1) {
                r = -EIO;
                goto fail;
        }
        f->file_writer = (StreamWriter){.write = file_write, .userdata = f};
        f->writer = (StreamWriter){.write = chain_write, .userdata = f};
        if (hook) {
                /* A sealed stream's state (its file key) is not recoverable without the identity:
                 * start this file again. */
                if (ftruncate(fd, 0) < 0) {
                        r = -errno;
                        goto fail;
                }
                f->hook = *hook;
                r = hook->open(hook->userdata, &f->file_writer, &f->stage, &f->stage_writer);
                if (r < 0)
                        goto fail;
                *ret_offset = 0;
                return 0;
        }
        if ((uint64_t) st.st_size > max_size) {
                r = -EFBIG;
                goto fail;
        }
        buf = malloc(1024 * 1024);
        if (!buf) {
                r = -ENOMEM;
                goto fail;
        }
        for (;;) {
                ssize_t n = read(fd, buf, 1024 * 1024);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto fail;
                }
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(f->sha, buf, (size_t) n) != 1) {
                        r = -EIO;
                        goto fail;
                }
                f->plain_bytes += (uint64_t) n;
                f->stored_bytes += (uint64_t) n;
        }
        *ret_offset = f->plain_bytes;
        return 0;
fail:
        install_file_done(f);
        return r;
}

int install_file_truncate(InstallFile *f) {
        if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0)
                return -errno;
        if (f->stage) {
                /* A new seal stream (new file key and header) for the new plaintext stream. */
                int r;

                f->hook.free(f->stage);
                f->stage = NULL;
                r = f->hook.open(f->hook.userdata, &f->file_writer, &f->stage, &f->stage_writer);
                if (r < 0)
                        return r;
        }
        if (EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1)
                return -EIO;
        f->plain_bytes = f->stored_bytes = 0;
        return 0;
}

int install_file_finish(InstallFile *f, uint8_t ret_sha256[static SHA256_DIGEST_SIZE]) {
        unsigned len = 0;
        int r;

        if (f->stage) {
                /* The seal stage writes its last (authenticated) chunk now. */
                r = f->hook.finish(f->stage);
                if (r < 0)
                        return r;
        }
        r = FAULT_POINT("install-fsync");
        if (r < 0)
                return r;
        if (fsync(f->fd) < 0)
                return -errno;
        if (EVP_DigestFinal_ex(f->sha, ret_sha256, &len) != 1 || len != SHA256_DIGEST_SIZE)
                return -EIO;
        return 0;
}

void install_file_done(InstallFile *f) {
        if (f->stage && f->hook.free)
                f->hook.free(f->stage);
        free(f->name);
        EVP_MD_CTX_free(f->sha);
        safe_close(f->fd);
        *f = (InstallFile){.fd = -EBADF};
}

int install_copy_fd(InstallFile *f, int src_fd, void (*progress)(void *userdata, uint64_t n), void *userdata) {
        _cleanup_free_ uint8_t *buf = NULL;
        const size_t bufsize = 1024 * 1024;
        int r;

        buf = malloc(bufsize);
        if (!buf)
                return -ENOMEM;
        /* Tell the kernel we read sequentially: it reads ahead further. */
        (void) posix_fadvise(src_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        for (;;) {
                ssize_t n = read(src_fd, buf, bufsize);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                r = stream_write(&f->writer, buf, (size_t) n);
                if (r < 0)
                        return r;
                if (progress)
                        progress(userdata, (uint64_t) n);
        }
}
