/* SPDX-License-Identifier: Apache-2.0 */

/*
 * update: check the model's channel and install a new signed release (DESIGN.md §4).
 *
 *   update [--high-water N] [--content-id HEX] [--check-only]
 *
 * Order (nothing of a release is kept before every check has passed; STYLE.md §12):
 *   1. the trust root: the configured keys (root 1), or the newest persisted root, then any
 *      rotation published as root/<N+1>.json (signed by the threshold of N and of N+1);
 *   2. the release document (size-capped) → release_check(): signatures, types, model and channel,
 *      version against the high-water mark, expiry, limits, names, URLs, rollout;
 *   3. free space for the signed total plus storage.min_free;
 *   4. each file streamed once: HTTP body → SHA-256 → (seal) → staging/fetch-<version>/files/,
 *      resumed with Range after a cut or a crash; never more than the signed size;
 *   5. every digest equal to the signed one, then the store's commit (release.json kept).
 * The blobs are fetched by the digests of the document verified in step 2 — a document replaced
 * on the server meanwhile changes nothing (what was verified is what is installed).
 *
 * A refusal names the failed check and, once the signatures have verified, the keys that signed
 * and the version (refuse()); it removes what the job put in staging. A transport failure or a
 * cancellation keeps staging/fetch-<version>/ for the next attempt to resume. Without a readable
 * machine id the host is in no partial rollout (RELEASE-FORMAT.md §7).
 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "fetch.h"
#include "fileio.h"
#include "hash.h"
#include "keys.h"
#include "log.h"
#include "parse-util.h"
#include "reason.h"
#include "release.h"
#include "root.h"
#include "store.h"
#include "strv.h"
#include "unseal.h"

#define ROOT_STATE_FILE "root.json"

typedef struct UpdateArgs {
        uint64_t high_water;
        const char *content_id;
        bool check_only;
} UpdateArgs;

static int parse_update_args(Agent *a, UpdateArgs *u) {
        enum { ARG_HW = 0x100, ARG_CONTENT, ARG_CHECK };
        static const struct option options[] = {
                {"high-water", required_argument, NULL, ARG_HW},
                {"content-id", required_argument, NULL, ARG_CONTENT},
                {"check-only", no_argument, NULL, ARG_CHECK},
                {},
        };
        int argc, c;
        _cleanup_free_ char **argv = agent_getopt_argv(a, &argc);

        if (!argv)
                return -ENOMEM;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_HW:
                        if (parse_uint64(optarg, &u->high_water) < 0)
                                return agent_result_error(a, -EINVAL, "invalid --high-water '%s'", optarg);
                        break;
                case ARG_CONTENT:
                        if (!sha256_hex_is_valid(optarg))
                                return agent_result_error(a, -EINVAL, "invalid --content-id '%s'", optarg);
                        u->content_id = optarg;
                        break;
                case ARG_CHECK:
                        u->check_only = true;
                        break;
                default:
                        return agent_result_error(a, -EINVAL, "unknown or incomplete option");
                }
        if (optind < argc)
                return agent_result_error(a, -EINVAL, "unexpected argument '%s'", argv[optind]);
        return 0;
}

/* What a refusal names besides the check that failed (issue 4): the trusted keys whose signatures
 * verified (NULL while the signature check has not passed), how many the trust root requires, and
 * the release's version once the statement parsed. */
typedef struct Refusal {
        char **keyids;
        unsigned threshold;
        uint64_t version; /* 0: not known (versions start at 1) */
} Refusal;

#define REFUSAL_KEYIDS_SHOWN 4

static json_t *keyids_json(char **keyids) {
        json_t *ids = json_array();

        STRV_FOREACH(k, keyids)
                json_array_append_new(ids, json_string(*k));
        return ids;
}

/* A failure that is a refusal of the release (not a transport or local problem) is reported with
 * "refused": true so the daemon logs it as such (MK_MESSAGE_RELEASE_REFUSED), with "keyids" (the
 * keys that signed; [] before the signatures verified) and "version" (when known). The reason
 * names the keys too:
 *   "release expired at … (signed by keyid 233f…, 1 of 1 needed)" */
static int refuse(Agent *a, int error, const Refusal *rf, const char *fmt, ...) _printf_(4, 5);
static int refuse(Agent *a, int error, const Refusal *rf, const char *fmt, ...) {
        char reason[REASON_MAX + 1], signers[REASON_MAX / 2] = "", version[32];
        size_t n_keys = rf ? strv_length(rf->keyids) : 0, shown = 0, l = 0;
        json_t *data;
        va_list ap;

        /* At most REFUSAL_KEYIDS_SHOWN ids of 64 characters: signers cannot overflow. */
        if (n_keys > 0) {
                l += (size_t) snprintf(signers + l, sizeof(signers) - l, " (signed by keyid%s",
                                       n_keys == 1 ? "" : "s");
                STRV_FOREACH(k, rf->keyids) {
                        if (shown == REFUSAL_KEYIDS_SHOWN)
                                break;
                        l += (size_t) snprintf(signers + l, sizeof(signers) - l, "%s %s",
                                               shown > 0 ? "," : "", *k);
                        shown++;
                }
                if (shown < n_keys)
                        l += (size_t) snprintf(signers + l, sizeof(signers) - l, " and %zu more",
                                               n_keys - shown);
                (void) snprintf(signers + l, sizeof(signers) - l, ", %zu of %u needed)", n_keys,
                                rf->threshold);
        }
        /* The check's own text is what gets shortened when both do not fit, not the signers. */
        va_start(ap, fmt);
        (void) vsnprintf(reason, sizeof(reason) - strlen(signers), fmt, ap);
        va_end(ap);
        strcat(reason, signers);

        data = json_pack("{s:b, s:o}", "refused", 1, "keyids", keyids_json(rf ? rf->keyids : NULL));
        if (data && rf && rf->version > 0) {
                (void) snprintf(version, sizeof(version), "%" PRIu64, rf->version);
                json_object_set_new(data, "version", json_string(version));
        }
        return agent_result_error_data(a, error, data, "%s", reason);
}

static uint64_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static const char *machine_id_path(void) {
#if ENABLE_FAULT_INJECTION
        /* Tests pretend a host whose machine id is missing or different. */
        const char *p = getenv("MODELKEEPER_TEST_MACHINE_ID_FILE");
        if (p)
                return p;
#endif
        return "/etc/machine-id";
}

/* -EBADMSG: not 32 lowercase hex characters (e.g. "uninitialized" early at first boot). */
static int read_machine_id(char ret[static 33]) {
        _cleanup_free_ char *text = NULL;
        char id[33];
        size_t n;
        int r;

        r = read_full_file(machine_id_path(), 64, &text, &n);
        if (r < 0)
                return r;
        if (n < 32)
                return -EBADMSG;
        memcpy(id, text, 32);
        id[32] = 0;
        for (int i = 0; i < 32; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return -EBADMSG;
        memcpy(ret, id, sizeof(id));
        return 0;
}

typedef struct RootFetch {
        const char *base;
        const FetchOptions *opts;
        int error;          /* a transport failure (not a missing next root) */
        char *reason;
} RootFetch;

static int fetch_root(uint64_t version, void *userdata, char **ret, size_t *ret_size) {
        RootFetch *rf = userdata;
        _cleanup_free_ char *rel = NULL, *url = NULL, *reason = NULL;
        int r;

        rel = xasprintf("root/%" PRIu64 ".json", version);
        if (!rel)
                return -ENOMEM;
        r = fetch_join_url(rf->base, rel, &url);
        if (r < 0)
                return r;
        r = fetch_document(url, rf->opts, ROOT_DOCUMENT_MAX, ret, ret_size, NULL, &reason);
        /* The end of the chain: 404 — or 403, which S3 answers for a missing object when the
         * reader may not list the bucket (python-tuf treats both the same way). */
        if (r == -EACCES)
                r = -ENOENT;
        if (r < 0 && r != -ENOENT) {
                rf->error = r;
                free(rf->reason);
                rf->reason = xasprintf("fetching %s: %s", url, strna(reason));
        }
        return r;
}

/* The trust to check the release with: the configured keys, advanced by any rotation persisted
 * before or published now. The newest verified root is persisted in the model's directory. */
static int load_root(Agent *a, Store *s, const char *base, const FetchOptions *opts, Root **ret, bool *ret_rotated,
                     char **ret_reason) {
        _cleanup_(trust_set_freep) TrustSet *trust = NULL;
        _cleanup_(root_freep) Root *configured = NULL, *current = NULL, *newest = NULL;
        _cleanup_free_ char *text = NULL, *reason = NULL;
        RootFetch rf = {.base = base, .opts = opts};
        size_t n;
        int r;

        if (!a->config->trust.keys) {
                *ret_reason = strdup("no trusted keys configured (trust.keys in modelkeeper.yaml)");
                return -ENOKEY;
        }
        r = trust_set_load_files(a->config->trust.keys, a->config->trust.threshold, &trust, &reason);
        if (r < 0) {
                *ret_reason = xasprintf("trust: %s", strna(reason));
                return r;
        }
        r = root_new_implicit(trust, &configured);
        if (r < 0)
                return r;
        r = read_full_file_at(s->dirfd, ROOT_STATE_FILE, ROOT_DOCUMENT_MAX * 4, true, &text, &n);
        if (r >= 0) {
                r = root_state_parse(text, n, configured, &current, &reason);
                if (r == -ESTALE)
                        log_info("The configured trust changed; starting again from it.");
                else if (r < 0)
                        log_warning("Ignoring an unreadable %s/%s: %s", s->path, ROOT_STATE_FILE, strna(reason));
                reason = mfree(reason);
        }
        if (!current && (r = root_copy(configured, &current)) < 0)
                return r;

        r = root_walk(current, fetch_root, &rf, 32, &newest, &reason);
        if (r < 0 && rf.error < 0) {
                /* Not a verdict on the roots: the repository could not be reached. */
                *ret_reason = TAKE_PTR(rf.reason);
                *ret_rotated = false;
                return -EREMOTEIO;
        }
        free(rf.reason);
        if (r < 0) {
                *ret_reason = xasprintf("trust root rotation refused: %s", strna(reason));
                return r;
        }
        r = root_check_expiry(newest, now_realtime_usec(), &reason);
        if (r < 0) {
                *ret_reason = xasprintf("trust root: %s", strna(reason));
                return r;
        }
        *ret_rotated = newest->version != current->version;
        if (*ret_rotated || !text) {
                _cleanup_free_ char *state = NULL;
                size_t m;

                r = root_state_format(configured, newest, &state, &m);
                if (r >= 0)
                        r = write_file_atomic_at(s->dirfd, ROOT_STATE_FILE, state, m, 0600);
                if (r < 0)
                        log_warning_errno(r, "Failed to persist the trust root: %m");
        }
        *ret = TAKE_PTR(newest);
        return 0;
}

typedef struct Progress {
        Agent *agent;
        uint64_t base, total, last;
} Progress;

/* What fetch_file()'s callbacks need: the counters and the file being written. */
typedef struct FileCtx {
        Progress *progress;
        InstallFile *file;
} FileCtx;

static int on_progress(void *userdata, uint64_t done, uint64_t total) {
        Progress *p = ((FileCtx *) userdata)->progress;
        uint64_t n = now_mono();

        if (agent_terminate)
                return -ECANCELED; /* leave the staging area as it is: resumable */
        if (n - p->last >= 100 * USEC_PER_MSEC || p->base + done == p->total) {
                p->last = n;
                agent_progress(p->agent, "download", p->base + done, p->total);
        }
        return 0;
}

static int on_restart(void *userdata) {
        return install_file_truncate(((FileCtx *) userdata)->file);
}

/* A cut download that was being sealed cannot resume mid-file (the file key lives only in this
 * process's memory), but the files it had finished need not be fetched again: each sealed file
 * whose size and signed digest were checked gets a marker "sealed-<name>" in the staging
 * directory (not in files/, which becomes the version): "<size> <stored size> <sha256 hex>". A
 * marker counts only when it names this release's size and digest and files/<name>.age is there
 * with the stored size; activation checks the plaintext digests again in any case. */
static char *sealed_marker_name(const ReleaseFile *rf) {
        return xasprintf("sealed-%s", rf->name);
}

static bool sealed_marker_get(int sdfd, int files_fd, const ReleaseFile *rf, const char *suffix,
                              uint64_t *ret_stored) {
        _cleanup_free_ char *marker = sealed_marker_name(rf), *stored = xasprintf("%s%s", rf->name, suffix),
                            *text = NULL;
        char hex[SHA256_HEX_SIZE + 1];
        uint64_t size, stored_size;
        struct stat st;
        size_t n;

        if (!marker || !stored || read_full_file_at(sdfd, marker, 256, true, &text, &n) < 0)
                return false;
        if (sscanf(text, "%" SCNu64 " %" SCNu64 " %64s", &size, &stored_size, hex) != 3 || size != rf->size ||
            !streq(hex, rf->sha256_hex))
                return false;
        if (fstatat(files_fd, stored, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t) st.st_size != stored_size)
                return false;
        *ret_stored = stored_size;
        return true;
}

static void sealed_marker_put(int sdfd, const ReleaseFile *rf, uint64_t stored_size) {
        _cleanup_free_ char *marker = sealed_marker_name(rf), *text = NULL;
        int r;

        text = xasprintf("%" PRIu64 " %" PRIu64 " %s\n", rf->size, stored_size, rf->sha256_hex);
        if (!marker || !text)
                return;
        /* Only an optimisation for a later resume: a failure costs a download, nothing else. */
        r = write_file_atomic_at(sdfd, marker, text, strlen(text), 0600);
        if (r < 0)
                log_debug_errno(r, "Cannot write %s in staging: %m", marker);
}

static void sealed_markers_remove(int sdfd, const Release *rel) {
        for (size_t i = 0; i < rel->n_files; i++) {
                _cleanup_free_ char *marker = sealed_marker_name(&rel->files[i]);
                if (marker)
                        (void) unlinkat(sdfd, marker, 0);
        }
}

/* Does staging/<name> hold a download of this very document (a resume), and how many of its
 * bytes are there already? Only looks: the space check comes before anything is created. */
static bool staging_peek(Store *s, const char *name, const char *doc, size_t doc_size, const Release *rel,
                         uint64_t *ret_already) {
        _cleanup_close_ int dfd = -EBADF, ffd = -EBADF;
        _cleanup_free_ char *old = NULL;
        uint64_t already = 0;
        size_t n;

        dfd = openat(s->staging_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 ||
            read_full_file_at(dfd, "release.json", RELEASE_DOCUMENT_HARD_MAX, true, &old, &n) < 0 ||
            n != doc_size || memcmp(old, doc, n) != 0)
                return false;
        ffd = openat(dfd, "files", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        for (size_t i = 0; ffd >= 0 && i < rel->n_files; i++) {
                struct stat st;
                _cleanup_free_ char *marker = sealed_marker_name(&rel->files[i]);
                if (marker && faccessat(dfd, marker, F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                        already += rel->files[i].size; /* sealed and complete (checked when used) */
                else if (fstatat(ffd, rel->files[i].name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                        already += MIN((uint64_t) st.st_size, rel->files[i].size);
        }
        *ret_already = already;
        return true;
}

/* staging/<name>: reused when it holds this document (resume), else created afresh with it. */
static int prepare_staging(Store *s, const char *name, const char *doc, size_t doc_size, bool resume,
                           int *ret_dirfd, int *ret_files_fd) {
        _cleanup_close_ int dfd = -EBADF, ffd = -EBADF;
        int r;

        r = store_staging_open(s, name, !resume, &dfd, &ffd);
        if (r < 0)
                return r;
        if (!resume) {
                r = write_file_atomic_at(dfd, "release.json", doc, doc_size, 0640);
                if (r < 0)
                        return r;
        }
        *ret_dirfd = TAKE_FD(dfd);
        *ret_files_fd = TAKE_FD(ffd);
        return 0;
}

/* A refusal is permanent (the same document would be refused again): what this job put in
 * staging goes. Transient failures and cancellations keep it, so that the download resumes. */
static void discard_staging(Store *s, const char *name) {
        int r = store_staging_remove(s, name);
        if (r < 0)
                log_warning_errno(r, "Cannot remove %s/staging/%s after a refusal: %m", s->path, name);
}

int verb_update(Agent *a) {
        const SourceConfig *src = a->model->source;
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(root_freep) Root *root = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        _cleanup_free_ char *reason = NULL, *doc_url = NULL, *doc = NULL, *rel_path = NULL, *staging = NULL,
                            *rollout_note = NULL;
        _cleanup_close_ int sdfd = -EBADF, files_fd = -EBADF;
        const InstallSealHook *seal = NULL; /* encryption at rest: bytes sealed as they stream in */
        char machine_id[33], id[32], space[512] = "";
        FetchOptions opts;
        UpdateArgs u = {};
        ReleaseVerdict verdict;
        Refusal refusal = {};
        Progress prog = {.agent = a};
        uint64_t already = 0;
        bool rotated = false, resumed = false;
        size_t doc_size;
        int r, machine_id_error;

        r = parse_update_args(a, &u);
        if (r < 0)
                return r;
        if (!src)
                return agent_result_error(a, -EINVAL, "model %s has no source: section", a->model_name);
        r = agent_open_store(a, &s);
        if (r < 0)
                return r;

        fetch_options_from_source(&opts, src);

        /* 1. Trust. */
        r = load_root(a, s, src->url, &opts, &root, &rotated, &reason);
        if (r == -EREMOTEIO)
                return agent_result_error(a, r, "%s", strna(reason));
        if (r < 0)
                return refuse(a, r, NULL, "%s", strna(reason));
        if (rotated)
                log_event(LOG_NOTICE, 0,
                          &(LogFields){.message_id = MK_MESSAGE_ROOT_ROTATED, .model = a->model_name,
                                       .action = "root-rotation", .reason = src->url},
                          "Trust root rotated to version %" PRIu64 " from %s.", root->version, src->url);

        /* 2. The document, checked completely before anything else happens. */
        rel_path = xasprintf("models/%s/%s.json", a->model_name, src->channel);
        if (!rel_path)
                return -ENOMEM;
        r = fetch_join_url(src->url, rel_path, &doc_url);
        if (r < 0)
                return agent_result_error(a, r, "cannot build the release URL from '%s'", src->url);
        reason = mfree(reason);
        agent_progress(a, "check", 0, 0);
        r = fetch_document(doc_url, &opts, src->max_release_size, &doc, &doc_size, NULL, &reason);
        if (r == -EFBIG)
                return refuse(a, r, NULL, "release document %s is larger than source.max_release_size", doc_url);
        if (r < 0)
                return agent_result_error(a, r, "fetching %s: %s", doc_url, strna(reason));

        machine_id_error = read_machine_id(machine_id);
        ReleaseExpect e = {
                .model = a->model_name,
                .channel = src->channel,
                .high_water = u.high_water,
                .high_water_content = u.content_id,
                .now = now_realtime_usec(),
                .machine_id = machine_id_error >= 0 ? machine_id : NULL,
                .limits = RELEASE_LIMITS_DEFAULT,
        };
        e.limits.max_document_size = src->max_release_size;
        e.limits.max_file_size = MIN(src->max_file_size, a->model->storage.max_version_size);
        e.limits.max_total_size = MIN(src->max_total_size, a->model->storage.max_version_size);
        e.limits.max_files = MIN(src->max_files, a->model->storage.max_files);
        reason = mfree(reason);
        r = release_check(doc, doc_size, root->trust, &e, &rel, &keyids, &refusal.version, &reason);
        /* From here on, every refusal names the keys that signed (none if the signatures failed). */
        refusal.keyids = keyids;
        refusal.threshold = root->trust->threshold;
        if (r < 0)
                return refuse(a, r, &refusal, "%s", strna(reason));
        verdict = (ReleaseVerdict) r;
        snprintf(id, sizeof(id), "%" PRIu64, rel->version);

        if (verdict == RELEASE_VERDICT_NOT_SELECTED && machine_id_error < 0) {
                /* Not this host's bucket being outside the rollout: it has no bucket at all. The
                 * daemon logs it (as a warning) with the verdict. */
                rollout_note = xasprintf("cannot place this host in a partial rollout: %s %s: %s",
                                         machine_id_path(),
                                         machine_id_error == -EBADMSG ? "is not a machine id" : "unreadable",
                                         machine_id_error == -EBADMSG ? "not 32 lowercase hex characters"
                                                                      : strerror(-machine_id_error));
                if (!rollout_note)
                        return -ENOMEM;
        }
        if (verdict != RELEASE_VERDICT_NEW || u.check_only) {
                json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "verdict",
                                         release_verdict_to_string(verdict), "version", id, "content_id",
                                         rel->content_id, "label", rel->label, "keyids", keyids_json(keyids),
                                         "total_size", (json_int_t) rel->total_size);
                if (data && rollout_note)
                        json_object_set_new(data, "reason", json_string(rollout_note));
                return agent_result_ok(a, data);
        }

        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_UPDATE_AVAILABLE, .model = a->model_name, .version = id,
                               .action = "update-available", .reason = doc_url},
                  "Update available for %s: version %s%s%s (verified; %" PRIu64 " bytes).", a->model_name, id,
                  *rel->label ? ", " : "", rel->label, rel->total_size);

        /* Already in the store (installed before a crash, not yet recorded by the daemon). */
        if (faccessat(s->versions_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return agent_result_ok(a, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:b}", "verdict", "new",
                                                    "version", id, "content_id", rel->content_id, "label",
                                                    rel->label, "keyids", keyids_json(keyids), "total_size",
                                                    (json_int_t) rel->total_size, "installed", 1));

        /* 3. Room for it, before staging is touched: a full disk is not a verdict on the release,
         * and a partial download of this document already here stays (it resumes once there is
         * room; its bytes are counted as present). */
        staging = xasprintf("fetch-%s", id);
        if (!staging)
                return -ENOMEM;
        resumed = staging_peek(s, staging, doc, doc_size, rel, &already);
        r = store_check_space(s, rel->total_size - MIN(already, rel->total_size) + rel->total_size / 4096,
                              a->model->storage.min_free, space, sizeof(space));
        if (r < 0)
                return refuse(a, r, &refusal, "%s", space);
        r = prepare_staging(s, staging, doc, doc_size, resumed, &sdfd, &files_fd);
        if (r < 0)
                return agent_result_error(a, r, "cannot prepare staging: %m");

        if (a->model->storage.encrypt) {
                r = agent_seal_hook(a, &seal);
                if (r < 0)
                        return r;
        }

        meta = calloc(1, sizeof(VersionMeta));
        if (!meta || !(meta->files = calloc(rel->n_files, sizeof(VersionFile))))
                return -ENOMEM;
        meta->model = strdup(a->model_name);
        meta->id = strdup(id);
        meta->origin = strdup("release");
        meta->channel = strdup(src->channel);
        meta->label = *rel->label ? strdup(rel->label) : NULL;
        meta->sealed = seal != NULL;
        if (!meta->model || !meta->id || !meta->origin || !meta->channel)
                return -ENOMEM;

        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_DOWNLOAD, .model = a->model_name, .version = id,
                               .action = resumed ? "download-resume" : "download-start", .reason = doc_url},
                  "%s download of %s version %s (%" PRIu64 " bytes in %zu file%s, %" PRIu64 " already here).",
                  resumed ? "Resuming the" : "Starting the", a->model_name, id, rel->total_size, rel->n_files,
                  rel->n_files == 1 ? "" : "s", already);

        /* 4. Every file, one pass each. */
        prog.total = rel->total_size;
        for (size_t i = 0; i < rel->n_files; i++) {
                const ReleaseFile *rf = &rel->files[i];
                _cleanup_free_ char *url = NULL, *why = NULL;
                uint8_t digest[SHA256_DIGEST_SIZE];
                uint64_t offset = 0, stored = 0;
                InstallFile f;

                r = fetch_join_url(src->url, rf->url, &url);
                if (r < 0) {
                        discard_staging(s, staging);
                        return refuse(a, r, &refusal, "file '%s': URL '%s' leaves the repository", rf->name,
                                      rf->url);
                }
                if (seal && sealed_marker_get(sdfd, files_fd, rf, seal->suffix ?: "", &stored)) {
                        meta->files[i].name = strdup(rf->name);
                        if (!meta->files[i].name)
                                return -ENOMEM;
                        memcpy(meta->files[i].sha256, rf->sha256, SHA256_DIGEST_SIZE);
                        meta->files[i].size = rf->size;
                        meta->files[i].stored_size = stored;
                        meta->n_files++;
                        meta->total_size += rf->size;
                        prog.base += rf->size;
                        agent_progress(a, "download", prog.base, prog.total);
                        log_info("%s: '%s' was sealed and checked before the cut; not fetched again.", id,
                                 rf->name);
                        continue;
                }
                r = install_file_open_resume(&f, files_fd, rf->name, rf->size, seal, &offset);
                if (r < 0)
                        return agent_result_error(a, r, "cannot create '%s' in staging: %m", rf->name);
                FileCtx ctx = {.progress = &prog, .file = &f};
                FetchCallbacks cb = {.restart = on_restart, .progress = on_progress, .userdata = &ctx};
                if (offset > rf->size) {
                        (void) install_file_truncate(&f);
                        offset = 0;
                }
                r = fetch_file(url, &opts, rf->size, offset, &f.writer, &cb, NULL, &why);
                if (r >= 0)
                        r = install_file_finish(&f, digest);
                meta->files[i].size = f.plain_bytes;
                meta->files[i].stored_size = f.stored_bytes;
                install_file_done(&f);
                prog.base += rf->size;
                agent_progress(a, "download", prog.base, prog.total);
                if (r == -ECANCELED || agent_terminate)
                        return agent_result_error(a, -ECANCELED, "download of version %s interrupted; it resumes next time",
                                                  id);
                if (r == -EFBIG) {
                        discard_staging(s, staging);
                        return refuse(a, r, &refusal,
                                      "file '%s': more data than its signed size of %" PRIu64 " bytes",
                                      rf->name, rf->size);
                }
                if (r < 0)
                        return agent_result_error(a, r, "downloading '%s' of version %s: %s", rf->name,
                                                  id, why ?: strerror(-r));
                /* 5. The signed digest, before anything is committed. */
                if (meta->files[i].size != rf->size) {
                        discard_staging(s, staging);
                        return refuse(a, -EBADMSG, &refusal,
                                      "file '%s': %" PRIu64 " bytes, not the signed %" PRIu64
                                      " (truncated or substituted content)",
                                      rf->name, meta->files[i].size, rf->size);
                }
                if (memcmp(digest, rf->sha256, SHA256_DIGEST_SIZE) != 0) {
                        char got[SHA256_HEX_SIZE];
                        hex_encode(digest, SHA256_DIGEST_SIZE, got);
                        discard_staging(s, staging);
                        return refuse(a, -EBADMSG, &refusal,
                                      "file '%s': SHA-256 %s does not match the signed %s (substituted content)",
                                      rf->name, got, rf->sha256_hex);
                }
                meta->files[i].name = strdup(rf->name);
                if (!meta->files[i].name)
                        return -ENOMEM;
                memcpy(meta->files[i].sha256, digest, SHA256_DIGEST_SIZE);
                meta->n_files++;
                meta->total_size += rf->size;
                if (seal && i + 1 < rel->n_files)
                        sealed_marker_put(sdfd, rf, meta->files[i].stored_size);
        }
        meta->installed = now_realtime_usec();
        /* staging/<name>/ becomes the version: only files/ and the documents go with it. */
        if (seal) {
                sealed_markers_remove(sdfd, rel);
                r = fsync_directory_at(sdfd, NULL);
                if (r < 0)
                        return agent_result_error(a, r, "cannot prepare the commit of version %s: %m", id);
        }

        r = store_commit(s, staging, meta, doc, doc_size);
        if (r < 0)
                return agent_result_error(a, r, "cannot commit version %s: %m", id);
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_DOWNLOAD, .model = a->model_name, .version = id,
                               .action = "download-finish", .reason = "every file matches its signed size and SHA-256"},
                  "Downloaded and verified %s version %s.", a->model_name, id);
        return agent_result_ok(a, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:b, s:b}", "verdict", "new",
                                            "version", id, "content_id", rel->content_id, "label",
                                            rel->label, "keyids", keyids_json(keyids), "total_size",
                                            (json_int_t) rel->total_size, "resumed", resumed, "sealed",
                                            meta->sealed));
}
