/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The publisher's side of release documents, for modelkeeperctl: build a repository from a
 * directory of files, sign, and explain a verification. Unlike release.c this file does I/O.
 */

#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "fileio.h"
#include "json-strict.h"
#include "parse-util.h"
#include "reason.h"
#include "release.h"
#include "strv.h"

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static void evp_md_ctx_freep(EVP_MD_CTX **c) {
        EVP_MD_CTX_free(*c);
}

static int tmp_name(char *buf, size_t size, const char *name) {
        uint64_t rnd;

        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        if ((size_t) snprintf(buf, size, ".#%s.%016" PRIx64, name, rnd) >= size)
                return -ENAMETOOLONG;
        return 0;
}

static bool text_has_control(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return true;
        return false;
}

/* Copy fd (from offset 0) to a new temporary file in dfd while hashing it. */
static int copy_and_hash(int fd, int dfd, const char *tmp, uint8_t digest[static SHA256_DIGEST_SIZE],
                         uint64_t *ret_size) {
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int out = -EBADF;
        const size_t bufsize = 1024 * 1024;
        uint64_t total = 0;
        unsigned len = 0;
        int r;

        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (out < 0)
                return -errno;
        buf = malloc(bufsize);
        ctx = EVP_MD_CTX_new();
        if (!buf || !ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return -EIO;
        for (;;) {
                ssize_t k = read(fd, buf, bufsize);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t) k) != 1)
                        return -EIO;
                r = loop_write(out, buf, (size_t) k);
                if (r < 0)
                        return r;
                total += (uint64_t) k;
        }
        if (EVP_DigestFinal_ex(ctx, digest, &len) != 1)
                return -EIO;
        if (fchmod(out, 0644) < 0 || fsync(out) < 0)
                return -errno;
        *ret_size = total;
        return 0;
}

/* Put one input file into blobs/sha256/<hex>; fill f->size, f->sha256, f->sha256_hex. */
static int publish_blob(int in_dfd, const char *name, int blobs_dfd, ReleaseFile *f, char **ret_reason) {
        _cleanup_close_ int fd = -EBADF, old = -EBADF;
        uint8_t digest2[SHA256_DIGEST_SIZE];
        char tmp[NAME_MAX + 1];
        uint64_t size2 = 0;
        struct stat st;
        int r;

        fd = openat(in_dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return reason_set(ret_reason, -errno, "cannot open '%s': %m", QUOTE(name));
        if (fstat(fd, &st) < 0)
                return reason_set(ret_reason, -errno, "cannot stat '%s': %m", QUOTE(name));
        if (!S_ISREG(st.st_mode))
                return reason_set(ret_reason, -EBADF, "'%s' is not a regular file", QUOTE(name));

        r = sha256_fd(fd, f->sha256, &f->size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot read '%s': %s", QUOTE(name), strerror(-r));
        hex_encode(f->sha256, SHA256_DIGEST_SIZE, f->sha256_hex);

        /* Content-addressed: a blob that is present with the right content is kept as is. */
        old = openat(blobs_dfd, f->sha256_hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (old >= 0) {
                uint8_t d[SHA256_DIGEST_SIZE];
                uint64_t s = 0;

                if (fstat(old, &st) >= 0 && S_ISREG(st.st_mode) && sha256_fd(old, d, &s) >= 0 &&
                    memcmp(d, f->sha256, sizeof(d)) == 0)
                        return 0;
                /* Present but not what its name says: replace it below. */
        } else if (errno != ENOENT)
                return reason_set(ret_reason, -errno, "cannot open blob %s: %m", f->sha256_hex);

        r = tmp_name(tmp, sizeof(tmp), f->sha256_hex);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot make a temporary name");
        r = copy_and_hash(fd, blobs_dfd, tmp, digest2, &size2);
        if (r >= 0 && (size2 != f->size || memcmp(digest2, f->sha256, SHA256_DIGEST_SIZE) != 0))
                r = reason_set(ret_reason, -EBUSY, "'%s' changed while it was being published; try again",
                               QUOTE(name));
        else if (r < 0)
                r = reason_set(ret_reason, r, "cannot copy '%s' to blob %s: %s", QUOTE(name), f->sha256_hex,
                               strerror(-r));
        if (r >= 0 && renameat(blobs_dfd, tmp, blobs_dfd, f->sha256_hex) < 0)
                r = reason_set(ret_reason, -errno, "cannot rename blob %s: %m", f->sha256_hex);
        if (r < 0) {
                (void) unlinkat(blobs_dfd, tmp, 0);
                return r;
        }
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The regular files of a directory, sorted; everything else is refused by name. */
static int list_input(int dfd, char ***ret, char **ret_reason) {
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int fd, r;

        fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return reason_set(ret_reason, -errno, "cannot read the input directory: %m");
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return reason_set(ret_reason, -errno, "cannot read the input directory: %m");
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return reason_set(ret_reason, -errno, "cannot stat '%s': %m", QUOTE(de->d_name));
                if (S_ISLNK(st.st_mode))
                        return reason_set(
                                ret_reason, -ELOOP,
                                "'%s' is a symbolic link: not supported, copy the file into the directory",
                                QUOTE(de->d_name));
                if (S_ISDIR(st.st_mode))
                        return reason_set(ret_reason, -EISDIR,
                                          "'%s' is a directory: releases are flat lists of files",
                                          QUOTE(de->d_name));
                if (!S_ISREG(st.st_mode))
                        return reason_set(ret_reason, -EBADF, "'%s' is not a regular file",
                                          QUOTE(de->d_name));
                if (++n > RELEASE_FILES_HARD_MAX)
                        return reason_set(ret_reason, -EFBIG, "more than %d files", RELEASE_FILES_HARD_MAX);
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        return reason_set(ret_reason, r, "out of memory");
        }
        if (errno != 0)
                return reason_set(ret_reason, -errno, "cannot read the input directory: %m");
        if (n == 0)
                return reason_set(ret_reason, -ENODATA, "the input directory has no files");
        qsort(names, n, sizeof(char *), name_cmp);
        *ret = TAKE_PTR(names);
        return 0;
}

static int open_dir_p(const char *base, const char *sub, int *ret_fd) {
        _cleanup_free_ char *p = path_join(base, sub);
        int r, fd;

        if (!p)
                return -ENOMEM;
        r = mkdir_p(p, 0755);
        if (r < 0)
                return r;
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

static int build_statement(const ReleaseCreateParams *p, uint64_t created, ReleaseFile *files, size_t n,
                           char **ret) {
        _cleanup_(json_decrefp) json_t *subject = json_array(), *jfiles = json_array(), *pred = NULL,
                                       *root = NULL;
        char c[RELEASE_TIMESTAMP_MAX], e[RELEASE_TIMESTAMP_MAX];
        char *text;

        if (!subject || !jfiles)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *url = NULL;

                if (asprintf(&url, RELEASE_BLOB_PREFIX "%s", files[i].sha256_hex) < 0)
                        return -ENOMEM;
                if (json_array_append_new(subject, json_pack("{s:s, s:{s:s}}", "name", files[i].name,
                                                             "digest", "sha256", files[i].sha256_hex)) < 0 ||
                    json_array_append_new(jfiles, json_pack("{s:s, s:I, s:s}", "name", files[i].name, "size",
                                                            (json_int_t) files[i].size, "url", url)) < 0)
                        return -ENOMEM;
        }
        pred = json_pack("{s:s, s:s, s:I}", "model", p->model, "channel", p->channel, "version",
                         (json_int_t) p->version);
        if (!pred)
                return -ENOMEM;
        if (!isempty(p->label) && json_object_set_new(pred, "label", json_string(p->label)) < 0)
                return -ENOMEM;
        if (json_object_set_new(pred, "created", json_string(release_format_timestamp(c, created))) < 0 ||
            json_object_set_new(pred, "expires", json_string(release_format_timestamp(e, p->expires))) < 0 ||
            json_object_set(pred, "files", jfiles) < 0 ||
            json_object_set_new(pred, "rollout", json_pack("{s:i}", "percent", (int) p->rollout_percent)) <
                    0)
                return -ENOMEM;
        root = json_pack("{s:s, s:O, s:s, s:O}", "_type", RELEASE_STATEMENT_TYPE, "subject", subject,
                         "predicateType", RELEASE_PREDICATE_TYPE, "predicate", pred);
        if (!root)
                return -ENOMEM;
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

int release_create(const ReleaseCreateParams *p, char **ret_document, size_t *ret_size, char **ret_reason) {
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_free_ ReleaseFile *files = NULL;
        _cleanup_free_ char *statement = NULL, *doc = NULL, *models_sub = NULL, *docname = NULL;
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(release_freep) Release *check = NULL;
        _cleanup_close_ int in_dfd = -EBADF, blobs_dfd = -EBADF;
        size_t n, doc_size = 0;
        uint64_t created;
        int r;

        assert_return(p && p->input_dir && p->repo_dir, -EINVAL);

        if (!p->model || !name_is_valid(p->model, RELEASE_NAME_MAX))
                return reason_set(ret_reason, -EINVAL, "invalid model name '%s'", QUOTE(p->model));
        if (!p->channel || !name_is_valid(p->channel, RELEASE_NAME_MAX))
                return reason_set(ret_reason, -EINVAL, "invalid channel name '%s'", QUOTE(p->channel));
        if (p->version < 1 || p->version > JSON_SAFE_INTEGER_MAX)
                return reason_set(ret_reason, -EINVAL, "version must be between 1 and 2^53-1");
        if (p->label && (strlen(p->label) > RELEASE_LABEL_MAX || text_has_control(p->label) ||
                         !utf8_is_valid(p->label, strlen(p->label))))
                return reason_set(ret_reason, -EINVAL,
                                  "label must be UTF-8 text of at most %d bytes without control characters",
                                  RELEASE_LABEL_MAX);
        if (p->rollout_percent > 100)
                return reason_set(ret_reason, -EINVAL, "rollout percent must be between 0 and 100");
        created = p->created;
        if (created == 0) {
                struct timespec ts;

                if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                        return reason_set(ret_reason, -errno, "cannot read the clock: %m");
                created = (uint64_t) ts.tv_sec * USEC_PER_SEC;
        }
        if (p->expires <= created)
                return reason_set(ret_reason, -EINVAL, "expiry time must be later than the creation time");

        in_dfd = open(p->input_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (in_dfd < 0)
                return reason_set(ret_reason, -errno, "cannot open input directory '%s': %m", p->input_dir);
        r = list_input(in_dfd, &names, ret_reason);
        if (r < 0)
                return r;
        n = strv_length(names);
        for (size_t i = 0; i < n; i++) {
                /* The same rule the hosts apply (release.c), so that nothing is published that
                 * a host would refuse. */
                if (isempty(names[i]) || names[i][0] == '.' || !filename_is_safe(names[i]) ||
                    text_has_control(names[i]))
                        return reason_set(ret_reason, -EINVAL,
                                          "unsafe file name '%s' (hidden, control characters or not UTF-8)",
                                          QUOTE(names[i]));
        }

        r = open_dir_p(p->repo_dir, "blobs/sha256", &blobs_dfd);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot create %s/blobs/sha256: %s", p->repo_dir,
                                  strerror(-r));

        files = calloc(n, sizeof(ReleaseFile));
        if (!files)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                files[i].name = names[i];
                r = publish_blob(in_dfd, names[i], blobs_dfd, &files[i], ret_reason);
                if (r < 0)
                        return r;
        }
        r = fsync_directory_at(blobs_dfd, NULL);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot fsync the blob directory: %s", strerror(-r));

        r = build_statement(p, created, files, n, &statement);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot build the statement");
        /* What we publish must be what hosts parse. */
        r = release_parse_statement(statement, strlen(statement), &check, ret_reason);
        if (r < 0)
                return r;
        r = dsse_envelope_new(RELEASE_PAYLOAD_TYPE, statement, strlen(statement), &env);
        if (r < 0)
                return reason_set(ret_reason, r, "out of memory");
        r = dsse_format(env, &doc, &doc_size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot format the envelope");

        if (p->write_document) {
                _cleanup_close_ int mdfd = -EBADF;

                if (asprintf(&models_sub, "models/%s", p->model) < 0 ||
                    asprintf(&docname, "%s.json", p->channel) < 0)
                        return reason_set(ret_reason, -ENOMEM, "out of memory");
                r = open_dir_p(p->repo_dir, models_sub, &mdfd);
                if (r < 0)
                        return reason_set(ret_reason, r, "cannot create %s/%s: %s", p->repo_dir, models_sub,
                                          strerror(-r));
                r = write_file_atomic_at(mdfd, docname, doc, doc_size, 0644);
                if (r < 0)
                        return reason_set(ret_reason, r, "cannot write %s/%s/%s: %s", p->repo_dir,
                                          models_sub, docname, strerror(-r));
        }

        if (ret_document)
                *ret_document = TAKE_PTR(doc);
        if (ret_size)
                *ret_size = doc_size;
        return 0;
}

int release_sign(const void *document, size_t size, const Key *key, char **ret, size_t *ret_size,
                 char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        int r;

        assert_return((document || size == 0) && key && ret, -EINVAL);

        r = dsse_parse(document, size, RELEASE_DOCUMENT_HARD_MAX, &env, ret_reason);
        if (r < 0)
                return r;
        if (!streq(env->payload_type, RELEASE_PAYLOAD_TYPE))
                return reason_set(ret_reason, -EPROTONOSUPPORT, "payloadType is '%s', expected '%s'",
                                  QUOTE(env->payload_type), RELEASE_PAYLOAD_TYPE);
        /* A signature is an assertion: only put one on something hosts would parse. */
        r = release_parse_statement(env->payload, env->payload_size, &rel, ret_reason);
        if (r < 0)
                return r;
        r = dsse_sign(env, key, ret_reason);
        if (r < 0)
                return r;
        r = dsse_format(env, ret, ret_size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot format the envelope");
        return 0;
}

int release_sign_file(const char *path, const Key *key, char **ret_reason) {
        _cleanup_free_ char *buf = NULL, *out = NULL, *dir = NULL;
        _cleanup_close_ int dfd = -EBADF;
        const char *base;
        size_t size = 0, out_size = 0;
        int r;

        assert_return(path && key, -EINVAL);
        r = read_full_file(path, RELEASE_DOCUMENT_HARD_MAX, &buf, &size);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot read '%s': %s", path, strerror(-r));
        r = release_sign(buf, size, key, &out, &out_size, ret_reason);
        if (r < 0)
                return r;
        dir = path_dirname(path);
        if (!dir)
                return reason_set(ret_reason, -ENOMEM, "out of memory");
        base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return reason_set(ret_reason, -errno, "cannot open '%s': %m", dir);
        r = write_file_atomic_at(dfd, base, out, out_size, 0644);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot write '%s': %s", path, strerror(-r));
        return 0;
}

/* ---- explaining a verification ------------------------------------------------------------ */

static int report_fail(FILE *out, char **ret_reason, int r, char *reason) {
        fprintf(out, "  -> REFUSED: %s\n", strna(reason));
        fprintf(out, "result: refused\n");
        if (ret_reason) {
                free(*ret_reason);
                *ret_reason = reason;
        } else
                free(reason);
        return r;
}

int release_verify_report(const void *document, size_t size, const TrustSet *trust, const ReleaseExpect *e,
                          FILE *out, char **ret_reason) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        _cleanup_free_ uint8_t *payload = NULL, *pae = NULL;
        size_t payload_size = 0, pae_size = 0;
        char *reason = NULL;
        char t1[RELEASE_TIMESTAMP_MAX], t2[RELEASE_TIMESTAMP_MAX], fb[FORMAT_BYTES_MAX];
        int r;

        assert_return((document || size == 0) && trust && e && out, -EINVAL);

        fprintf(out, "document: %zu bytes (limit %zu)\n", size, e->limits.max_document_size);
        r = dsse_parse(document, size, e->limits.max_document_size, &env, &reason);
        if (r < 0)
                return report_fail(out, ret_reason, r, reason);
        fprintf(out, "envelope: DSSE, payloadType '%s', payload %zu bytes, %zu signature(s): well-formed\n",
                QUOTE(env->payload_type), env->payload_size, env->n_signatures);

        fprintf(out, "trust: %zu key(s), threshold %u\n", trust->n_keys, trust->threshold);
        for (size_t i = 0; i < trust->n_keys; i++)
                fprintf(out, "  key %s (%s)\n", key_get_id(trust->keys[i]),
                        key_type_to_string(key_get_type(trust->keys[i])));

        r = dsse_pae(env->payload_type, strlen(env->payload_type), env->payload, env->payload_size, &pae,
                     &pae_size);
        if (r < 0)
                return report_fail(out, ret_reason, r, strdup("cannot build PAE"));
        for (size_t i = 0; i < env->n_signatures; i++) {
                const DsseSignature *s = &env->signatures[i];
                int idx = trust_set_find(trust, s->keyid);

                if (s->keyid && idx < 0)
                        fprintf(out, "signature %zu: keyid %s: not a trusted key, ignored\n", i,
                                QUOTE(s->keyid));
                else if (s->keyid)
                        fprintf(out, "signature %zu: keyid %s (%s): %s\n", i, s->keyid,
                                key_type_to_string(key_get_type(trust->keys[idx])),
                                key_verify(trust->keys[idx], pae, pae_size, s->sig, s->sig_size) >= 0
                                        ? "verified"
                                        : "DOES NOT VERIFY");
                else {
                        const char *by = NULL;

                        for (size_t j = 0; j < trust->n_keys && !by; j++)
                                if (key_verify(trust->keys[j], pae, pae_size, s->sig, s->sig_size) >= 0)
                                        by = key_get_id(trust->keys[j]);
                        if (by)
                                fprintf(out, "signature %zu: no keyid: verified by trusted key %s\n", i, by);
                        else
                                fprintf(out,
                                        "signature %zu: no keyid: no trusted key verifies it, ignored\n", i);
                }
        }
        r = dsse_verify(env, trust, &payload, &payload_size, &keyids, &reason);
        if (r < 0)
                return report_fail(out, ret_reason, r, reason);
        fprintf(out, "signatures: %zu distinct trusted key(s), threshold %u: met\n", strv_length(keyids),
                trust->threshold);

        if (!streq(env->payload_type, RELEASE_PAYLOAD_TYPE)) {
                r = reason_set(&reason, -EPROTONOSUPPORT, "payloadType is '%s', expected '%s'",
                               QUOTE(env->payload_type), RELEASE_PAYLOAD_TYPE);
                return report_fail(out, ret_reason, r, reason);
        }
        fprintf(out, "payloadType: %s: ok\n", RELEASE_PAYLOAD_TYPE);

        r = release_parse_statement(payload, payload_size, &rel, &reason);
        if (r < 0)
                return report_fail(out, ret_reason, r, reason);
        fprintf(out, "statement: %s, predicateType %s: well-formed, subject matches files\n",
                RELEASE_STATEMENT_TYPE, RELEASE_PREDICATE_TYPE);
        fprintf(out, "release: model '%s', channel '%s', version %" PRIu64 ", label '%s'\n", rel->model,
                rel->channel, rel->version, QUOTE(rel->label));
        fprintf(out, "created: %s, expires: %s, now: %s\n", release_format_timestamp(t1, rel->created),
                release_format_timestamp(t2, rel->expires),
                release_format_timestamp((char[RELEASE_TIMESTAMP_MAX]){}, e->now));
        fprintf(out, "files: %zu, %s in total, content %s\n", rel->n_files,
                format_bytes(fb, rel->total_size), rel->content_id);
        for (size_t i = 0; i < rel->n_files; i++)
                fprintf(out, "  %s  %" PRIu64 " bytes  sha256:%s  %s\n", QUOTE(rel->files[i].name),
                        rel->files[i].size, rel->files[i].sha256_hex, QUOTE(rel->files[i].url));
        fprintf(out, "rollout: %u%%", rel->rollout_percent);
        if (e->machine_id) {
                int b = release_rollout_bucket(e->machine_id, rel->model, rel->version);
                if (b >= 0)
                        fprintf(out, " (this host's bucket: %d)", b);
        }
        fputc('\n', out);
        fprintf(out, "expected: model %s, channel %s, version > %" PRIu64 "\n",
                e->model ? e->model : "(any)", e->channel ? e->channel : "(any)", e->high_water);

        r = release_check_statement(rel, e, &reason);
        if (r < 0)
                return report_fail(out, ret_reason, r, reason);
        fprintf(out, "checks: model/channel, created/expires, limits, URLs, version, rollout: passed\n");
        fprintf(out, "result: %s\n", release_verdict_to_string(r));
        return r;
}
