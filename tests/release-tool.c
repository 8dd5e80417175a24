/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A small command-line front end to common/keys, dsse, release and root, for the interop test
 * against the openssl CLI and for the fixture generator. Test-only: modelkeeperctl is the
 * user-facing tool (keygen, release create|sign|verify).
 *
 *   release-tool keygen ed25519|p256 PATH
 *   release-tool keyid PUB.pem
 *   release-tool create MODEL CHANNEL VERSION EXPIRES PERCENT INPUT_DIR REPO_DIR   (unsigned, written into
 * REPO) release-tool sign KEY DOCUMENT                      (release_sign_file: in place) release-tool
 * verify THRESHOLD DOCUMENT PUB.pem...   (report on stdout; exit 0 when accepted) release-tool verify-as
 * MODEL CHANNEL HIGH_WATER THRESHOLD DOCUMENT PUB.pem... release-tool pae DOCUMENT (PAE bytes on stdout)
 *   release-tool envelope TYPE PAYLOAD_FILE             (unsigned envelope on stdout)
 *   release-tool dsse-sign KEY DOCUMENT                 (any payload; in place)
 *   release-tool root-create VERSION EXPIRES THRESHOLD OUT PUB.pem...
 *   release-tool root-sign KEY DOCUMENT                 (in place)
 *   release-tool root-walk THRESHOLD REPO_DIR PUB.pem...  (from the implicit root of the keys)
 */

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "dsse.h"
#include "fileio.h"
#include "keys.h"
#include "release.h"
#include "root.h"
#include "strv.h"

static uint64_t now_usec(void) {
        struct timespec ts;
        assert_se(clock_gettime(CLOCK_REALTIME, &ts) == 0);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static int die(int r, const char *what, const char *reason) {
        fprintf(stderr, "release-tool: %s: %s\n", what, reason ? reason : strerror(-r));
        return 1;
}

static int write_in_place(const char *path, const char *data, size_t size) {
        _cleanup_free_ char *dir = path_dirname(path);
        _cleanup_close_ int dfd = -EBADF;
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

        if (!dir)
                return -ENOMEM;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        return write_file_atomic_at(dfd, base, data, size, 0644);
}

static int load_trust(unsigned threshold, char **paths, TrustSet **ret) {
        _cleanup_free_ char *reason = NULL;
        int r = trust_set_load_files(paths, threshold, ret, &reason);
        if (r < 0)
                return die(r, "trust", reason), r;
        return 0;
}

static int cmd_verify(const char *model, const char *channel, uint64_t hw, unsigned threshold,
                      const char *doc, char **pubs) {
        _cleanup_(trust_set_freep) TrustSet *t = NULL;
        _cleanup_free_ char *buf = NULL, *reason = NULL;
        size_t size = 0;
        ReleaseExpect e = {
                .model = model,
                .channel = channel,
                .high_water = hw,
                .now = now_usec(),
                .ignore_rollout = true,
                .limits = RELEASE_LIMITS_DEFAULT,
        };
        int r;

        if (load_trust(threshold, pubs, &t) < 0)
                return 1;
        r = read_full_file(doc, RELEASE_DOCUMENT_HARD_MAX, &buf, &size);
        if (r < 0)
                return die(r, doc, NULL);
        r = release_verify_report(buf, size, t, &e, stdout, &reason);
        if (r < 0) {
                fprintf(stderr, "REASON=%s\n", strna(reason));
                return 1;
        }
        return 0;
}

static int cmd_root_walk_fetch(uint64_t version, void *userdata, char **ret, size_t *ret_size) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/root/%" PRIu64 ".json", (const char *) userdata, version) < 0)
                return -ENOMEM;
        return read_full_file(path, ROOT_DOCUMENT_MAX, ret, ret_size);
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char *reason = NULL;
        int r;

        if (argc < 2)
                goto usage;

        if (streq(argv[1], "keygen") && argc == 4) {
                _cleanup_(key_unrefp) Key *k = NULL;
                KeyType t = key_type_from_string(argv[2]);
                if (t < 0)
                        return die(t, "keygen", "type must be ed25519 or p256");
                r = keys_generate(t, argv[3], &k);
                if (r < 0)
                        return die(r, argv[3], NULL);
                printf("%s\n", key_get_id(k));
                return 0;
        }
        if (streq(argv[1], "keyid") && argc == 3) {
                _cleanup_(key_unrefp) Key *k = NULL;
                r = key_load_public_file(argv[2], &k, &reason);
                if (r < 0)
                        return die(r, "keyid", reason);
                printf("%s\n", key_get_id(k));
                return 0;
        }
        if (streq(argv[1], "create") && argc == 9) {
                ReleaseCreateParams p = {
                        .model = argv[2],
                        .channel = argv[3],
                        .version = strtoull(argv[4], NULL, 10),
                        .rollout_percent = (unsigned) atoi(argv[6]),
                        .input_dir = argv[7],
                        .repo_dir = argv[8],
                        .write_document = true,
                };
                if (release_parse_timestamp(argv[5], &p.expires) < 0)
                        return die(-EINVAL, "create", "EXPIRES must be YYYY-MM-DDTHH:MM:SSZ");
                r = release_create(&p, NULL, NULL, &reason);
                if (r < 0)
                        return die(r, "create", reason);
                printf("%s/models/%s/%s.json\n", argv[8], argv[2], argv[3]);
                return 0;
        }
        if ((streq(argv[1], "sign") || streq(argv[1], "dsse-sign") || streq(argv[1], "root-sign")) &&
            argc == 4) {
                _cleanup_(key_unrefp) Key *k = NULL;
                _cleanup_free_ char *buf = NULL, *out = NULL;
                size_t size = 0, out_size = 0;

                r = key_load_private_file(argv[2], &k, &reason);
                if (r < 0)
                        return die(r, "key", reason);
                if (streq(argv[1], "sign")) {
                        r = release_sign_file(argv[3], k, &reason);
                        return r < 0 ? die(r, "sign", reason) : 0;
                }
                r = read_full_file(argv[3], RELEASE_DOCUMENT_HARD_MAX, &buf, &size);
                if (r < 0)
                        return die(r, argv[3], NULL);
                if (streq(argv[1], "root-sign"))
                        r = root_sign(buf, size, k, &out, &out_size, &reason);
                else {
                        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                        r = dsse_parse(buf, size, RELEASE_DOCUMENT_HARD_MAX, &e, &reason);
                        if (r >= 0)
                                r = dsse_sign(e, k, &reason);
                        if (r >= 0)
                                r = dsse_format(e, &out, &out_size);
                }
                if (r < 0)
                        return die(r, argv[1], reason);
                r = write_in_place(argv[3], out, out_size);
                return r < 0 ? die(r, argv[3], NULL) : 0;
        }
        if (streq(argv[1], "verify") && argc >= 5)
                return cmd_verify(NULL, NULL, 0, (unsigned) atoi(argv[2]), argv[3], argv + 4);
        if (streq(argv[1], "verify-as") && argc >= 8)
                return cmd_verify(argv[2], argv[3], strtoull(argv[4], NULL, 10), (unsigned) atoi(argv[5]),
                                  argv[6], argv + 7);
        if (streq(argv[1], "pae") && argc == 3) {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                _cleanup_free_ char *buf = NULL;
                _cleanup_free_ uint8_t *pae = NULL;
                size_t size = 0, n = 0;

                r = read_full_file(argv[2], RELEASE_DOCUMENT_HARD_MAX, &buf, &size);
                if (r < 0)
                        return die(r, argv[2], NULL);
                r = dsse_parse(buf, size, RELEASE_DOCUMENT_HARD_MAX, &e, &reason);
                if (r < 0)
                        return die(r, "pae", reason);
                r = dsse_pae(e->payload_type, strlen(e->payload_type), e->payload, e->payload_size, &pae,
                             &n);
                if (r < 0)
                        return die(r, "pae", NULL);
                return fwrite(pae, 1, n, stdout) == n ? 0 : 1;
        }
        if (streq(argv[1], "envelope") && argc == 4) {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
                _cleanup_free_ char *buf = NULL, *out = NULL;
                size_t size = 0;

                r = read_full_file(argv[3], RELEASE_DOCUMENT_HARD_MAX, &buf, &size);
                if (r < 0)
                        return die(r, argv[3], NULL);
                if (dsse_envelope_new(argv[2], buf, size, &e) < 0 || dsse_format(e, &out, NULL) < 0)
                        return die(-ENOMEM, "envelope", NULL);
                fputs(out, stdout);
                return 0;
        }
        if (streq(argv[1], "root-create") && argc >= 7) {
                _cleanup_(trust_set_freep) TrustSet *t = NULL;
                _cleanup_free_ char *out = NULL;
                uint64_t expires;
                size_t n = 0;

                if (release_parse_timestamp(argv[3], &expires) < 0)
                        return die(-EINVAL, "root-create", "EXPIRES must be YYYY-MM-DDTHH:MM:SSZ");
                if (load_trust((unsigned) atoi(argv[4]), argv + 6, &t) < 0)
                        return 1;
                r = root_create(strtoull(argv[2], NULL, 10), expires, t, &out, &n, &reason);
                if (r < 0)
                        return die(r, "root-create", reason);
                r = write_in_place(argv[5], out, n);
                return r < 0 ? die(r, argv[5], NULL) : 0;
        }
        if (streq(argv[1], "root-walk") && argc >= 5) {
                _cleanup_(trust_set_freep) TrustSet *t = NULL;
                _cleanup_(root_freep) Root *r1 = NULL, *newest = NULL;

                if (load_trust((unsigned) atoi(argv[2]), argv + 4, &t) < 0)
                        return 1;
                if (root_new_implicit(t, &r1) < 0)
                        return die(-EINVAL, "root-walk", "invalid trust");
                r = root_walk(r1, cmd_root_walk_fetch, argv[3], 0, &newest, &reason);
                if (r < 0) {
                        fprintf(stderr, "REASON=%s\n", strna(reason));
                        return 1;
                }
                printf("walked %d rotation(s) to root version %" PRIu64 "\n", r, newest->version);
                r = root_check_expiry(newest, now_usec(), &reason);
                if (r < 0) {
                        fprintf(stderr, "REASON=%s\n", strna(reason));
                        return 1;
                }
                return 0;
        }

usage:
        fprintf(stderr, "usage: see the comment at the top of tests/release-tool.c\n");
        return 2;
}
