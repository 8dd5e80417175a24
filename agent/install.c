/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>

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

int install_file_open(InstallFile *f, int dirfd, const char *name, uint64_t max_size, const InstallSealHook *hook) {
        int r;

        *f = (InstallFile){.fd = -EBADF, .max_size = max_size};
        f->name = strdup(name);
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
        f->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
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

int install_file_truncate(InstallFile *f) {
        if (f->stage)
                return -EOPNOTSUPP;
        if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0)
                return -errno;
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
