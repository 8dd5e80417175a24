/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Offline verbs for publishers (no daemon needed), modelkeeper-release(5):
 *
 *   keygen --type ed25519|p256 --out KEY          PEM private key (0600) and KEY.pub next to it
 *   release create --model M --channel C --version N [--label L] [--expires 30d]
 *                  [--rollout-percent P] DIR --repo REPO
 *   release sign --key KEY RELEASE                 add one signature (several keys: run it again)
 *   release verify --trust FILE… [--threshold N] [--model M --channel C] RELEASE
 */

#include <getopt.h>
#include <inttypes.h>

#include <fcntl.h>
#include <time.h>

#include "age.h"
#include "ctl.h"
#include "fileio.h"
#include "keys.h"
#include "log.h"
#include "parse-util.h"
#include "release.h"
#include "root.h"
#include "store-layout.h"
#include "strv.h"

static int fail_reason(int r, const char *what, const char *reason) {
        return log_error_errno(r, "%s: %s", what, reason ?: strerror(-r));
}

/* Options parsing shared by the verbs: argv[0] is the verb. */
typedef struct PublishArgs {
        const char *type, *out, *model, *channel, *label, *repo, *key;
        uint64_t version;
        bool have_version;
        uint64_t expires_in;
        unsigned percent, threshold;
        char **trust;
        const char *positional;
} PublishArgs;

static int parse_publish_args(int argc, char *argv[], PublishArgs *a) {
        enum {
                ARG_TYPE = 0x100,
                ARG_OUT,
                ARG_MODEL,
                ARG_CHANNEL,
                ARG_VERSION,
                ARG_LABEL,
                ARG_EXPIRES,
                ARG_PERCENT,
                ARG_REPO,
                ARG_KEY,
                ARG_TRUST,
                ARG_THRESHOLD,
        };
        static const struct option options[] = {
                {"type", required_argument, NULL, ARG_TYPE},
                {"out", required_argument, NULL, ARG_OUT},
                {"model", required_argument, NULL, ARG_MODEL},
                {"channel", required_argument, NULL, ARG_CHANNEL},
                {"version", required_argument, NULL, ARG_VERSION},
                {"label", required_argument, NULL, ARG_LABEL},
                {"expires", required_argument, NULL, ARG_EXPIRES},
                {"rollout-percent", required_argument, NULL, ARG_PERCENT},
                {"repo", required_argument, NULL, ARG_REPO},
                {"key", required_argument, NULL, ARG_KEY},
                {"trust", required_argument, NULL, ARG_TRUST},
                {"threshold", required_argument, NULL, ARG_THRESHOLD},
                {},
        };
        int c;

        *a = (PublishArgs){.expires_in = 30 * 86400 * USEC_PER_SEC, .percent = 100, .threshold = 1};
        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_TYPE:
                        a->type = optarg;
                        break;
                case ARG_OUT:
                        a->out = optarg;
                        break;
                case ARG_MODEL:
                        a->model = optarg;
                        break;
                case ARG_CHANNEL:
                        a->channel = optarg;
                        break;
                case ARG_VERSION:
                        if (parse_uint64(optarg, &a->version) < 0 || a->version == 0)
                                return log_error_errno(-EINVAL, "Invalid --version '%s' (a positive integer).", optarg);
                        a->have_version = true;
                        break;
                case ARG_LABEL:
                        a->label = optarg;
                        break;
                case ARG_EXPIRES:
                        if (parse_duration(optarg, &a->expires_in) < 0 || a->expires_in == 0)
                                return log_error_errno(-EINVAL, "Invalid --expires '%s' (e.g. 30d, 12h).", optarg);
                        break;
                case ARG_PERCENT:
                        if (parse_unsigned(optarg, &a->percent) < 0 || a->percent > 100)
                                return log_error_errno(-EINVAL, "Invalid --rollout-percent '%s' (0..100).", optarg);
                        break;
                case ARG_REPO:
                        a->repo = optarg;
                        break;
                case ARG_KEY:
                        a->key = optarg;
                        break;
                case ARG_TRUST:
                        if (strv_extend(&a->trust, optarg) < 0)
                                return log_oom();
                        break;
                case ARG_THRESHOLD:
                        if (parse_unsigned(optarg, &a->threshold) < 0 || a->threshold == 0)
                                return log_error_errno(-EINVAL, "Invalid --threshold '%s'.", optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                a->positional = argv[optind++];
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s'.", argv[optind]);
        return 0;
}

/* An age identity in age-keygen's format (0600, never overwriting); the recipient is printed. The
 * file can go straight into `systemd-creds encrypt` and be deleted afterwards. */
static int keygen_age(const char *path) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        _cleanup_close_ int fd = -EBADF;
        char recipient[AGE_RECIPIENT_STRING_SIZE];
        AgeRecipient rcpt;
        char *text = NULL;
        int r;

        r = age_keygen(&id);
        if (r < 0)
                return log_error_errno(r, "Failed to generate an age identity: %m");
        r = age_identity_format_file(id, time(NULL), &text);
        if (r < 0)
                return log_error_errno(r, "Failed to format the identity: %m");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                age_secret_string_free(text);
                return log_error_errno(-errno, "Cannot create %s: %m%s", path,
                                       errno == EEXIST ? " (refusing to overwrite a key)" : "");
        }
        r = loop_write(fd, text, strlen(text));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        age_secret_string_free(text);
        if (r < 0) {
                (void) unlink(path);
                return log_error_errno(r, "Failed to write %s: %m", path);
        }
        age_identity_to_recipient(id, &rcpt);
        age_recipient_to_string(&rcpt, recipient);
        printf("%s: age identity (mode 0600)\nrecipient: %s\n", path, recipient);
        return 0;
}

int verb_keygen(int argc, char *argv[]) {
        PublishArgs a;
        KeyType t;
        Key *k = NULL;
        int r;

        r = parse_publish_args(argc, argv, &a);
        if (r < 0)
                return r;
        if (!a.type || !a.out)
                return log_error_errno(-EINVAL, "Usage: keygen --type ed25519|p256|age --out FILE");
        if (streq(a.type, "age"))
                return keygen_age(a.out);
        t = key_type_from_string(a.type);
        if ((int) t < 0)
                return log_error_errno(-EINVAL, "Unknown key type '%s' (ed25519, p256).", a.type);
        r = keys_generate(t, a.out, &k);
        if (r == -EEXIST)
                return log_error_errno(r, "%s exists: refusing to overwrite a key.", a.out);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a key in %s: %m", a.out);
        printf("%s: %s private key (mode 0600)\n%s.pub: public key, keyid %s\n", a.out, a.type, a.out, key_get_id(k));
        key_unref(k);
        return 0;
}

static int release_create_verb(int argc, char *argv[]) {
        _cleanup_free_ char *doc = NULL, *reason = NULL, *path = NULL;
        PublishArgs a;
        size_t n;
        int r;

        r = parse_publish_args(argc, argv, &a);
        if (r < 0)
                return r;
        if (!a.model || !a.channel || !a.have_version || !a.positional || !a.repo)
                return log_error_errno(-EINVAL, "Usage: release create --model M --channel C --version N [--label L] "
                                                "[--expires 30d] [--rollout-percent P] DIR --repo REPO");
        ReleaseCreateParams p = {
                .model = a.model,
                .channel = a.channel,
                .version = a.version,
                .label = a.label,
                .expires = now_realtime_usec() + a.expires_in,
                .rollout_percent = a.percent,
                .input_dir = a.positional,
                .repo_dir = a.repo,
                .write_document = true,
        };
        r = release_create(&p, &doc, &n, &reason);
        if (r < 0)
                return fail_reason(r, "release create", reason);
        path = xasprintf("%s/models/%s/%s.json", a.repo, a.model, a.channel);
        printf("%s: unsigned release %" PRIu64 " of %s (%s); sign it with: modelkeeperctl release sign --key KEY %s\n",
               strna(path), a.version, a.model, a.channel, strna(path));
        return 0;
}

static int release_sign_verb(int argc, char *argv[]) {
        _cleanup_free_ char *reason = NULL;
        PublishArgs a;
        Key *k = NULL;
        int r;

        r = parse_publish_args(argc, argv, &a);
        if (r < 0)
                return r;
        if (!a.key || !a.positional)
                return log_error_errno(-EINVAL, "Usage: release sign --key KEY RELEASE");
        r = key_load_private_file(a.key, &k, &reason);
        if (r < 0)
                return fail_reason(r, a.key, reason);
        r = release_sign_file(a.positional, k, &reason);
        if (r >= 0)
                printf("%s: signed with keyid %s\n", a.positional, key_get_id(k));
        key_unref(k);
        if (r < 0)
                return fail_reason(r, "release sign", reason);
        return 0;
}

/* --trust takes public keys (PEM) and root documents (JSON) alike. */
static int load_trust(char **files, unsigned threshold, TrustSet **ret) {
        _cleanup_(strv_freep) char **pems = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        STRV_FOREACH(f, files) {
                _cleanup_free_ char *text = NULL;
                size_t n;

                r = read_full_file(*f, 1 * MIB, &text, &n);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", *f);
                if (text[0] == '{') {
                        _cleanup_free_ char *why = NULL;
                        Root *root = NULL;

                        if (strv_length(files) != 1)
                                return log_error_errno(-EINVAL, "A root document is the whole trust: pass it alone.");
                        r = root_load_document(text, n, &root, &why);
                        if (r < 0)
                                return fail_reason(r, *f, why);
                        r = trust_set_copy(root->trust, ret);
                        root_free(root);
                        return r;
                }
                if (strv_extend(&pems, *f) < 0)
                        return log_oom();
        }
        r = trust_set_load_files(pems, threshold, ret, &reason);
        if (r < 0)
                return fail_reason(r, "trust", reason);
        return 0;
}

static int release_verify_verb(int argc, char *argv[]) {
        _cleanup_free_ char *doc = NULL, *reason = NULL;
        PublishArgs a;
        TrustSet *t = NULL;
        size_t n;
        int r;

        r = parse_publish_args(argc, argv, &a);
        if (r < 0)
                goto out;
        if (!a.trust || !a.positional) {
                r = log_error_errno(-EINVAL, "Usage: release verify --trust KEY.pub|ROOT.json … [--threshold N] "
                                             "[--model M --channel C] RELEASE");
                goto out;
        }
        r = load_trust(a.trust, a.threshold, &t);
        if (r < 0)
                goto out;
        r = read_full_file(a.positional, RELEASE_DOCUMENT_HARD_MAX, &doc, &n);
        if (r < 0) {
                r = log_error_errno(r, "Cannot read %s: %m", a.positional);
                goto out;
        }
        ReleaseExpect e = {
                .model = a.model,
                .channel = a.channel,
                .now = now_realtime_usec(),
                .ignore_rollout = true, /* the rollout is a host's decision, not the document's validity */
                .limits = RELEASE_LIMITS_DEFAULT,
        };
        e.limits.max_document_size = RELEASE_DOCUMENT_HARD_MAX;
        r = release_verify_report(doc, n, t, &e, stdout, &reason);
        if (r < 0)
                r = fail_reason(r, "refused", reason);
out:
        trust_set_free(t);
        strv_free(a.trust);
        return r;
}

/* `release` is two verbs in one: publishing (create, sign, verify) and lifting a hold or a
 * quarantine on a model (release MODEL [VERSION]). A model named like a subcommand is
 * reached with `release -- NAME`. */
int verb_release_dispatch(int argc, char *argv[]) {
        if (argc >= 2 && streq(argv[1], "create"))
                return release_create_verb(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "sign"))
                return release_sign_verb(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "verify"))
                return release_verify_verb(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "--")) {
                argv[1] = argv[0];
                argc--;
                argv++;
        }
        if (argc < 2 || argc > 3)
                return log_error_errno(-EINVAL, "Usage: release MODEL [VERSION] | release create|sign|verify …");
        return verb_release(argc, argv);
}
