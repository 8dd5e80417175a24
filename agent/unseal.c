/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Encryption at rest, agent side (DESIGN.md §5):
 *
 *   sealing   — the install pipeline's hook: plaintext → age sealer (X25519 recipient from
 *               modelkeeper.yaml) → the staging file "<name>.age". Only the recipient is needed.
 *   unsealing — the identity is loaded from $CREDENTIALS_DIRECTORY/<encryption.identity_credential>
 *               (systemd's LoadCredentialEncrypted=, bound to the host/TPM) or else from
 *               encryption.identity_file, which must belong to us (or root) and be readable by nobody
 *               else. It lives in this process only, is wiped when freed (age_identity_free →
 *               OPENSSL_cleanse), and is never logged or put on a command line.
 */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "age.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"
#include "unseal.h"

/* Threads per seal/open stream: both cores where the data is large enough to pay. */
#define AGE_JOBS 0

struct Unsealer {
        Agent *agent;
        int files_fd;
        bool sealed;
        AgeIdentities *identities;
};

typedef struct OpenFile {
        int fd;
        StreamReader raw;
        AgeOpener *opener;
} OpenFile;

static int load_identities(Agent *a, AgeIdentities **ret) {
        const EncryptionConfig *e = &a->config->encryption;
        const char *credentials = getenv("CREDENTIALS_DIRECTORY");
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *where = NULL;
        struct stat st;
        size_t line = 0;
        int r;

        if (credentials && e->identity_credential) {
                _cleanup_close_ int dfd = open(credentials, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        fd = openat(dfd, e->identity_credential, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        where = xasprintf("credential %s", e->identity_credential);
        }
        if (fd < 0 && e->identity_file) {
                fd = open(e->identity_file, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
                if (fd < 0)
                        return agent_result_error(a, -errno, "cannot open the age identity %s: %m", e->identity_file);
                if (fstat(fd, &st) < 0)
                        return agent_result_error(a, -errno, "cannot stat %s: %m", e->identity_file);
                /* A secret readable by others is a leaked secret: refuse to use it (like ssh). */
                if (!S_ISREG(st.st_mode) || (st.st_mode & 0077) != 0 || (st.st_uid != geteuid() && st.st_uid != 0))
                        return agent_result_error(a, -EPERM,
                                                  "refusing the age identity %s: it must be a regular file owned by "
                                                  "this user (or root) and readable by nobody else (chmod 0400)",
                                                  e->identity_file);
                where = strdup(e->identity_file);
        }
        if (fd < 0)
                return agent_result_error(a, -ENOKEY,
                                          "the version is sealed but no age identity is available (credential '%s' "
                                          "in $CREDENTIALS_DIRECTORY, or encryption.identity_file)",
                                          strna(e->identity_credential));
        r = age_identities_load_fd(fd, ret, &line);
        if (r < 0)
                return agent_result_error(a, r, "the age identity in %s is not valid (line %zu)", strna(where), line);
        return 0;
}

int unsealer_new(Agent *a, Store *s, const VersionMeta *meta, Unsealer **ret) {
        _cleanup_free_ char *path = xasprintf("%s/files", meta->id);
        Unsealer *u;
        int r;

        if (!path)
                return -ENOMEM;
        u = calloc(1, sizeof(Unsealer));
        if (!u)
                return -ENOMEM;
        u->agent = a;
        u->sealed = meta->sealed;
        u->files_fd = openat(s->versions_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (u->files_fd < 0) {
                r = -errno;
                unsealer_free(u);
                return agent_result_error(a, r, "cannot open version %s: %m", meta->id);
        }
        if (u->sealed) {
                r = load_identities(a, &u->identities);
                if (r < 0) {
                        unsealer_free(u);
                        return r;
                }
        }
        *ret = u;
        return 0;
}

Unsealer *unsealer_free(Unsealer *u) {
        if (!u)
                return NULL;
        safe_close(u->files_fd);
        age_identities_free(u->identities);
        free(u);
        return NULL;
}

static ssize_t open_file_read(void *userdata, void *buf, size_t n) {
        OpenFile *f = userdata;
        return f->opener ? age_opener_read(f->opener, buf, n) : stream_fd_read((void *) (intptr_t) f->fd, buf, n);
}

int unsealer_open(Unsealer *u, const char *name, StreamReader *ret) {
        _cleanup_free_ char *stored = NULL;
        const char *reason = NULL;
        OpenFile *f;
        int r;

        if (!filename_is_safe(name))
                return -EINVAL;
        stored = u->sealed ? xasprintf("%s%s", name, SEALED_SUFFIX) : strdup(name);
        f = calloc(1, sizeof(OpenFile));
        if (!stored || !f) {
                free(f);
                return -ENOMEM;
        }
        f->fd = openat(u->files_fd, stored, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (f->fd < 0) {
                r = -errno;
                free(f);
                return r;
        }
        (void) posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (u->sealed) {
                f->raw = STREAM_READER_FD(f->fd);
                r = age_opener_new(u->identities->identities, u->identities->n, &f->raw, AGE_JOBS, &f->opener, &reason);
                if (r < 0) {
                        log_debug("%s: %s", stored, strna(reason));
                        safe_close(f->fd);
                        free(f);
                        return r;
                }
        }
        *ret = (StreamReader){.read = open_file_read, .userdata = f};
        return 0;
}

void unsealer_close(Unsealer *u, const char *name, StreamReader *r) {
        OpenFile *f = r->userdata;

        if (!f)
                return;
        age_opener_free(f->opener);
        safe_close(f->fd);
        free(f);
        r->userdata = NULL;
}

/* --- sealing ------------------------------------------------------------------------------ */

static AgeRecipient seal_recipient;

static int seal_open(void *hook_userdata, const StreamWriter *next, void **ret_stage, StreamWriter *ret_writer) {
        AgeSealer *s = NULL;
        int r;

        r = age_sealer_new(&seal_recipient, 1, next, AGE_JOBS, &s);
        if (r < 0)
                return r;
        *ret_stage = s;
        *ret_writer = age_sealer_writer(s);
        return 0;
}

static int seal_finish(void *stage) {
        return age_sealer_finish(stage);
}

static void seal_free(void *stage) {
        age_sealer_free(stage);
}

static const InstallSealHook seal_hook = {
        .open = seal_open,
        .finish = seal_finish,
        .free = seal_free,
        .suffix = SEALED_SUFFIX,
};

int agent_seal_hook(Agent *a, const InstallSealHook **ret) {
        const char *recipient = a->config->encryption.recipient;
        int r;

        if (!recipient)
                return agent_result_error(a, -ENOKEY, "storage.encrypt is set but encryption.recipient is not");
        r = age_recipient_from_string(recipient, &seal_recipient);
        if (r < 0)
                return agent_result_error(a, r, "encryption.recipient '%s' is not a valid age recipient", recipient);
        *ret = &seal_hook;
        return 0;
}

/* --- plaintext for the model server ------------------------------------------------------- */

/*
 * Kept plaintext (storage.keep_previous_plain, or a re-run activation) is reused only when it is
 * exactly the version: the directory holds the files of meta.json and nothing else, each a regular
 * file of the recorded size and SHA-256. The model server will load whatever is there, and a
 * directory on tmpfs is writable by our user: a size alone would let a changed or replaced file
 * through. Hashing is cheaper than decrypting again (which hashes too, and decrypts and writes on
 * top), and it is done on every core for a sharded model: files are independent.
 */
#define PLAIN_HASH_THREADS_MAX 4
#define PLAIN_HASH_PARALLEL_MIN (64 * MIB)

typedef struct PlainCheck {
        pthread_mutex_t lock;
        int dfd;
        const VersionMeta *meta;
        size_t next;             /* the next file to hash */
        const char *mismatch;    /* the first file found different, or NULL */
        int error;               /* cancelled, out of memory */
        uint64_t done;
        StoreProgressFn progress;
        void *userdata;
} PlainCheck;

/* 0 when the file's content has its recorded digest, 1 when not, < 0 on an error of ours. */
static int plain_hash_one(PlainCheck *c, const VersionFile *vf, uint8_t *buf, size_t bufsize) {
        _cleanup_close_ int fd = openat(c->dfd, vf->name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        uint8_t digest[SHA256_DIGEST_SIZE];
        EVP_MD_CTX *sha = NULL;
        uint64_t size = 0, reported = 0;
        unsigned len = 0;
        struct stat st;
        int r = 0;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size != vf->size)
                return 1;
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        sha = EVP_MD_CTX_new();
        if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
                r = -ENOMEM;
        while (r == 0) {
                ssize_t n = read(fd, buf, bufsize);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? 1 : 0;
                        break;
                }
                if (EVP_DigestUpdate(sha, buf, (size_t) n) != 1)
                        r = -EIO;
                size += (uint64_t) n;
                if (agent_terminate)
                        r = -ECANCELED;
                /* Progress every 16 MiB; the callback rate-limits what it reports. */
                if (size - reported >= 16 * MIB || r != 0) {
                        pthread_mutex_lock(&c->lock);
                        c->done += size - reported;
                        if (c->progress)
                                c->progress(c->userdata, "verify", c->done, c->meta->total_size);
                        if (c->mismatch || c->error < 0)
                                r = r ?: 1; /* another file decided already */
                        pthread_mutex_unlock(&c->lock);
                        reported = size;
                }
        }
        if (r == 0 && (EVP_DigestFinal_ex(sha, digest, &len) != 1 || len != SHA256_DIGEST_SIZE))
                r = -EIO;
        EVP_MD_CTX_free(sha);
        if (r != 0)
                return r;
        pthread_mutex_lock(&c->lock);
        c->done += size - reported;
        pthread_mutex_unlock(&c->lock);
        return size == vf->size && memcmp(digest, vf->sha256, SHA256_DIGEST_SIZE) == 0 ? 0 : 1;
}

static void *plain_hash_worker(void *userdata) {
        PlainCheck *c = userdata;
        _cleanup_free_ uint8_t *buf = malloc(1 * MIB);

        for (;;) {
                const VersionFile *vf = NULL;
                int r;

                pthread_mutex_lock(&c->lock);
                if (!buf && c->error == 0)
                        c->error = -ENOMEM;
                if (!c->mismatch && c->error == 0 && c->next < c->meta->n_files)
                        vf = &c->meta->files[c->next++];
                pthread_mutex_unlock(&c->lock);
                if (!vf)
                        return NULL;
                r = plain_hash_one(c, vf, buf, 1 * MIB);
                pthread_mutex_lock(&c->lock);
                if (r < 0 && c->error == 0)
                        c->error = r;
                else if (r > 0 && !c->mismatch)
                        c->mismatch = vf->name;
                pthread_mutex_unlock(&c->lock);
        }
}

/* 1 when $RUNTIME/plain/<model>/<id> holds exactly the version's plaintext, 0 when it is absent
 * or differs (reason set), < 0 when checking failed (cancelled, out of resources). */
static int plain_verify(Store *s, const VersionMeta *meta, StoreProgressFn progress, void *userdata,
                        char *reason, size_t reason_size) {
        _cleanup_close_ int dfd = openat(s->plain_fd, meta->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        PlainCheck c = {
                .lock = PTHREAD_MUTEX_INITIALIZER,
                .dfd = dfd,
                .meta = meta,
                .progress = progress,
                .userdata = userdata,
        };
        pthread_t threads[PLAIN_HASH_THREADS_MAX - 1];
        size_t n_threads = 0, want = 1, entries = 0;
        struct dirent *de;
        long cpus;
        DIR *d;
        int fd;

        if (dfd < 0)
                return 0;
        /* Cheap checks first: the names, types and sizes; then the bytes. */
        fd = dup(dfd);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d); /* the dup shares its position with dfd */
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                entries++;
                if (!version_meta_find_file(meta, de->d_name)) {
                        snprintf(reason, reason_size, "it holds '%s', which is not a file of the version",
                                 de->d_name);
                        closedir(d);
                        return 0;
                }
        }
        closedir(d);
        for (size_t i = 0; i < meta->n_files; i++) {
                struct stat st;
                if (fstatat(dfd, meta->files[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
                    (uint64_t) st.st_size != meta->files[i].size) {
                        snprintf(reason, reason_size, "'%s' is missing or has another size or type",
                                 meta->files[i].name);
                        return 0;
                }
        }
        if (entries != meta->n_files) {
                snprintf(reason, reason_size, "it does not hold the version's files");
                return 0;
        }

        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        if (meta->total_size >= PLAIN_HASH_PARALLEL_MIN && cpus > 1)
                want = MIN(MIN((size_t) cpus, meta->n_files), (size_t) PLAIN_HASH_THREADS_MAX);
        for (; n_threads + 1 < want; n_threads++)
                if (pthread_create(&threads[n_threads], NULL, plain_hash_worker, &c) != 0)
                        break; /* fewer threads, same result */
        (void) plain_hash_worker(&c);
        for (size_t i = 0; i < n_threads; i++)
                (void) pthread_join(threads[i], NULL);
        if (c.error < 0)
                return c.error;
        if (c.mismatch) {
                snprintf(reason, reason_size, "'%s' does not match its recorded SHA-256", c.mismatch);
                return 0;
        }
        return 1;
}

/* age's error classes → what the daemon makes of them: the file's fault (corrupt, tampered,
 * truncated) is -EBADMSG; a key that does not match is -ENOKEY. */
static int open_error(int r) {
        return r == -AGE_ERROR_HMAC || r == -AGE_ERROR_PAYLOAD || r == -AGE_ERROR_HEADER ? -EBADMSG : r;
}

int agent_decrypt_version(Agent *a, Store *s, const VersionMeta *meta, StoreProgressFn progress, void *userdata) {
        _cleanup_(unsealer_freep) Unsealer *u = NULL;
        _cleanup_free_ char *tmp = xasprintf(".%s.tmp", meta->id), *what = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        char reason[512] = "";
        _cleanup_close_ int dfd = -EBADF;
        const size_t bufsize = 1024 * 1024;
        uint64_t done = 0;
        int r;

        if (!tmp)
                return -ENOMEM;
        /* Already there (the previous version kept decrypted for a quick rollback, or an
         * activation run again): reused only when every file has its recorded digest. */
        r = plain_verify(s, meta, progress, userdata, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "version %s: cannot check its plaintext: %s", meta->id,
                                          strerror(-r));
        if (r > 0)
                return 0;
        if (reason[0]) {
                _cleanup_free_ char *current = NULL;

                log_warning("The plaintext of version %s in %s/plain/%s is not the version's (%s); "
                            "decrypting it again.",
                            meta->id, s->runtime, s->model, reason);
                /* Not served (a rollback's target): out of the way now, so that its room counts as
                 * free below. What serves is replaced only once its successor is complete. */
                if (store_read_link(s->dirfd, "current", &current) < 0 || !streq(current, meta->id))
                        (void) rm_rf_at(s->plain_fd, meta->id);
        }
        /* Before the first byte: only on a memory-backed file system, and only when it fits. */
        what = xasprintf("version %s", meta->id);
        if (!what)
                return -ENOMEM;
        (void) rm_rf_at(s->plain_fd, tmp);
        r = store_plain_check(s, meta->total_size, true, what, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "%s", reason);
        r = unsealer_new(a, s, meta, &u);
        if (r < 0)
                return r;
        buf = malloc(bufsize);
        if (!buf)
                return -ENOMEM;
        if (mkdirat(s->plain_fd, tmp, 0750) < 0)
                return agent_result_error(a, -errno, "cannot create the plaintext directory: %m");
        dfd = openat(s->plain_fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return agent_result_error(a, -errno, "cannot open the plaintext directory: %m");

        for (size_t i = 0; i < meta->n_files; i++) {
                const VersionFile *vf = &meta->files[i];
                _cleanup_close_ int fd = -EBADF;
                uint8_t digest[SHA256_DIGEST_SIZE];
                StreamReader in;
                EVP_MD_CTX *sha = NULL;
                unsigned len = 0;
                ssize_t n;

                fd = openat(dfd, vf->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
                if (fd < 0) {
                        r = agent_result_error(a, -errno, "cannot create plaintext '%s': %m", vf->name);
                        goto fail;
                }
                r = unsealer_open(u, vf->name, &in);
                if (r < 0) {
                        r = agent_result_error(a, open_error(r), "version %s: cannot open sealed '%s': %s", meta->id,
                                               vf->name, r == -ENOKEY ? "the identity does not match its recipient"
                                                                      : age_error_class_to_string(r));
                        goto fail;
                }
                sha = EVP_MD_CTX_new();
                if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
                        r = -ENOMEM;
                while (r >= 0 && (n = stream_read(&in, buf, bufsize)) != 0) {
                        if (n < 0) {
                                r = (int) n;
                                break;
                        }
                        if (EVP_DigestUpdate(sha, buf, (size_t) n) != 1) {
                                r = -EIO;
                                break;
                        }
                        r = loop_write(fd, buf, (size_t) n);
                        done += (uint64_t) n;
                        if (progress)
                                progress(userdata, "decrypt", done, meta->total_size);
                        if (agent_terminate)
                                r = -ECANCELED;
                }
                if (r >= 0 && (EVP_DigestFinal_ex(sha, digest, &len) != 1 || len != SHA256_DIGEST_SIZE))
                        r = -EIO;
                EVP_MD_CTX_free(sha);
                unsealer_close(u, vf->name, &in);
                if (r < 0) {
                        r = agent_result_error(a, open_error(r), "version %s: sealed '%s' %s", meta->id, vf->name,
                                               open_error(r) == -EBADMSG
                                                       ? "fails authentication: corrupt or tampered at rest"
                                                       : strerror(-r));
                        goto fail;
                }
                if (memcmp(digest, vf->sha256, SHA256_DIGEST_SIZE) != 0) {
                        r = agent_result_error(a, -EBADMSG, "version %s: '%s' decrypts to content that does not match "
                                                            "its recorded SHA-256",
                                               meta->id, vf->name);
                        goto fail;
                }
        }
        /* Readable by the model server's group, then visible under its final name at once. */
        r = store_share_at(s, s->plain_fd, tmp);
        if (r >= 0) {
                (void) rm_rf_at(s->plain_fd, meta->id);
                if (renameat(s->plain_fd, tmp, s->plain_fd, meta->id) < 0)
                        r = -errno;
        }
        if (r < 0) {
                r = agent_result_error(a, r, "cannot publish the plaintext of version %s: %m", meta->id);
                goto fail;
        }
        return 0;
fail:
        (void) rm_rf_at(s->plain_fd, tmp);
        return r;
}
