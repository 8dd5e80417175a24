/* SPDX-License-Identifier: Apache-2.0 */

/*
 * mk-st: a small, non-installed tool over agent/'s weights library, for tests and benchmarks.
 *
 *   mk-st info FILE
 *       Validate a safetensors file (header and size) and print its header as JSON.
 *   mk-st convert --method int8|fp16|bf16|prune [--sparsity S] [--skip GLOB]… [--stats FILE] IN OUT
 *       Re-compress IN into OUT. Files, or directories holding model.safetensors or a sharded
 *       model (model.safetensors.index.json + shards); a config.json beside them is copied,
 *       updated for the method (recompress_update_config()). Statistics go to stdout (or FILE)
 *       as JSON. --portable uses the portable kernels only.
 *
 * The agent's `recompress` verb calls the same library functions (recompress_model()).
 */

#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>

#include "fileio.h"
#include "parse-util.h"
#include "recompress.h"
#include "safetensors.h"
#include "strv.h"

static int cmd_info(const char *path) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *err = NULL, *text = NULL;
        StreamReader r;
        uint64_t header_size;
        struct stat st;
        json_t *root, *tensors;
        int k;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: %m\n", path);
                return 1;
        }
        r = STREAM_READER_FD(fd);
        k = safetensors_read_header(&r, &h, &header_size, &err);
        if (k >= 0)
                k = safetensors_header_check_size(h, header_size, (uint64_t) st.st_size, &err);
        if (k < 0) {
                fprintf(stderr, "%s: %s\n", path, err ?: strerror(-k));
                return 1;
        }

        tensors = json_array();
        for (size_t i = 0; i < h->n_tensors; i++) {
                const SafetensorsTensor *t = &h->tensors[i];
                json_t *shape = json_array();
                for (size_t d = 0; d < t->n_dims; d++)
                        json_array_append_new(shape, json_integer((json_int_t) t->shape[d]));
                json_array_append_new(tensors, json_pack("{s:s, s:s, s:o, s:[I,I]}", "name", t->name, "dtype",
                                                         safetensors_dtype_to_string(t->dtype), "shape", shape,
                                                         "data_offsets", (json_int_t) t->begin,
                                                         (json_int_t) t->end));
        }
        root = json_pack("{s:I, s:I, s:O?, s:o}", "header_size", (json_int_t) header_size, "data_size",
                         (json_int_t) h->data_size, "metadata", h->metadata, "tensors", tensors);
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return 1;
        puts(text);
        return 0;
}

/* File mode: the input and output are paths, not names in a directory. */
typedef struct FilePair {
        const char *in, *out;
} FilePair;

static int file_open_input(void *userdata, const char *name, StreamReader *ret) {
        FilePair *p = userdata;
        int fd = open(p->in, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret = STREAM_READER_FD(fd);
        return 0;
}

static void file_close_input(void *userdata, const char *name, StreamReader *r) {
        safe_close((int) (intptr_t) r->userdata);
}

static int file_open_output(void *userdata, const char *name, StreamWriter *ret) {
        FilePair *p = userdata;
        _cleanup_free_ char *t = NULL;
        int fd;

        if (asprintf(&t, "%s.tmp", p->out) < 0)
                return -ENOMEM;
        fd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        *ret = STREAM_WRITER_FD(fd);
        return 0;
}

static int file_close_output(void *userdata, const char *name, StreamWriter *w, bool ok) {
        FilePair *p = userdata;
        _cleanup_free_ char *t = NULL;
        int fd = (int) (intptr_t) w->userdata, r = 0;

        if (asprintf(&t, "%s.tmp", p->out) < 0)
                t = NULL;
        safe_close(fd);
        if (!t)
                return -ENOMEM;
        if (ok && rename(t, p->out) < 0)
                r = -errno;
        if (!ok || r < 0)
                (void) unlink(t);
        return r;
}

/* Copy config.json, updated for the method (recompress_update_config()). */
static int copy_config(int in_dirfd, int out_dirfd, RecompressMethod method, json_t *stats) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        size_t n, on;
        int r;

        r = read_full_file_at(in_dirfd, "config.json", 16 * MIB, true, &text, &n);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = recompress_update_config(text, n, method, stats, &out, &on);
        if (r < 0)
                return r;
        return write_file_atomic_at(out_dirfd, "config.json", out, on, 0644);
}

static int model_name_in(int dirfd, const char **ret) {
        static const char *const names[] = { "model.safetensors.index.json", "model.safetensors" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (faccessat(dirfd, names[i], F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                        *ret = names[i];
                        return 0;
                }
        return -ENOENT;
}

static void help(void) {
        printf("mk-st info FILE\n"
               "mk-st convert --method int8|fp16|bf16|prune [--sparsity S] [--skip GLOB]... [--stats FILE] IN OUT\n");
}

static int cmd_convert(int argc, char **argv) {
        static const struct option options[] = {
                { "method", required_argument, NULL, 'm' },
                { "sparsity", required_argument, NULL, 's' },
                { "skip", required_argument, NULL, 'k' },
                { "stats", required_argument, NULL, 'o' },
                { "portable", no_argument, NULL, 'p' },
                {},
        };
        _cleanup_(strv_freep) char **skip = NULL;
        _cleanup_free_ char *err = NULL, *text = NULL;
        _cleanup_close_ int in_dirfd = -EBADF, out_dirfd = -EBADF;
        RecompressProfile profile = { .name = (char *) "mk-st", .method = _RECOMPRESS_METHOD_INVALID };
        const char *stats_path = NULL, *model;
        json_t *stats = NULL;
        struct stat st;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        profile.method = recompress_method_from_string(optarg);
                        if (profile.method < 0 || profile.method == METHOD_EXEC) {
                                fprintf(stderr, "Unknown method '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 's':
                        if (parse_double(optarg, &profile.sparsity) < 0) {
                                fprintf(stderr, "Bad sparsity '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'k':
                        if (strv_extend(&skip, optarg) < 0)
                                return 1;
                        break;
                case 'o':
                        stats_path = optarg;
                        break;
                case 'p':
                        quant_force_portable(true);
                        break;
                default:
                        help();
                        return 2;
                }
        if (profile.method < 0 || argc - optind != 2) {
                help();
                return 2;
        }
        profile.skip = skip;
        const char *in = argv[optind], *out = argv[optind + 1];

        if (stat(in, &st) < 0) {
                fprintf(stderr, "%s: %m\n", in);
                return 1;
        }
        if (S_ISDIR(st.st_mode)) {
                RecompressDirs dirs;
                RecompressInput ri;
                RecompressOutput ro;

                in_dirfd = open(in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (in_dirfd < 0 || (mkdir(out, 0755) < 0 && errno != EEXIST) ||
                    (out_dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                        fprintf(stderr, "%s: %m\n", in_dirfd < 0 ? in : out);
                        return 1;
                }
                if (model_name_in(in_dirfd, &model) < 0) {
                        fprintf(stderr, "%s: no model.safetensors or model.safetensors.index.json\n", in);
                        return 1;
                }
                dirs = (RecompressDirs) { .in_dirfd = in_dirfd, .out_dirfd = out_dirfd };
                ri = RECOMPRESS_INPUT_DIRS(&dirs);
                ro = RECOMPRESS_OUTPUT_DIRS(&dirs);
                r = recompress_model(&profile, &ri, &ro, model, &stats, &err);
                if (r >= 0) {
                        r = copy_config(in_dirfd, out_dirfd, profile.method, stats);
                        if (r < 0)
                                fprintf(stderr, "%s/config.json: %s\n", in, strerror(-r));
                }
        } else {
                _cleanup_free_ char *base = strdup(in);
                FilePair pair = { .in = in, .out = out };
                RecompressInput ri = { .open = file_open_input, .close = file_close_input, .userdata = &pair };
                RecompressOutput ro = { .open = file_open_output, .close = file_close_output, .userdata = &pair };

                if (!base)
                        return 1;
                /* recompress_model() names files; a plain file is "the model" under its base name. */
                r = recompress_model(&profile, &ri, &ro, basename(base), &stats, &err);
        }
        if (r < 0) {
                fprintf(stderr, "%s\n", err ?: strerror(-r));
                return 1;
        }

        text = json_dumps(stats, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(stats);
        if (!text)
                return 1;
        if (stats_path) {
                r = write_file_atomic_at(AT_FDCWD, stats_path, text, strlen(text), 0644);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", stats_path, strerror(-r));
                        return 1;
                }
        } else
                puts(text);
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 3 && streq(argv[1], "info"))
                return cmd_info(argv[2]);
        if (argc >= 2 && streq(argv[1], "convert"))
                return cmd_convert(argc - 1, argv + 1);
        help();
        return 2;
}
