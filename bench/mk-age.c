/* SPDX-License-Identifier: Apache-2.0 */

/*
 * mk-age: a small, non-installed front end to common/age.h for the interop tests and the
 * benchmark. Not a replacement for age(1): X25519 only, no armor, no passphrases.
 *
 *   mk-age keygen [OUT]                    write an identity file (age-keygen format), 0600
 *   mk-age recipient IDENTITY_FILE         print the recipient of each identity
 *   mk-age seal [-j N] -r RECIPIENT… IN OUT
 *   mk-age open [-j N] -i IDENTITY_FILE IN OUT
 *
 * IN/OUT may be "-" for stdin/stdout. Exit status: 0 ok, 1 usage or I/O, and for open the
 * failure class: 2 no match, 3 header, 4 HMAC, 5 payload.
 */

#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <time.h>

#include "age.h"
#include "fileio.h"

static unsigned arg_jobs = 0;

static int open_in(const char *path) {
        return streq(path, "-") ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
}

static int open_out(const char *path, mode_t mode) {
        return streq(path, "-") ? STDOUT_FILENO : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
}

static int exit_code(int r) {
        switch (-r) {
        case AGE_ERROR_NO_MATCH:
                return 2;
        case AGE_ERROR_HEADER:
                return 3;
        case AGE_ERROR_HMAC:
                return 4;
        case AGE_ERROR_PAYLOAD:
                return 5;
        default:
                return 1;
        }
}

static int verb_keygen(int argc, char **argv) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        char *text = NULL;
        int fd, r;

        if (argc > 2) {
                fprintf(stderr, "usage: mk-age keygen [OUT]\n");
                return 1;
        }
        r = age_keygen(&id);
        if (r >= 0)
                r = age_identity_format_file(id, time(NULL), &text);
        if (r < 0) {
                fprintf(stderr, "mk-age: keygen failed: %s\n", strerror(-r));
                return 1;
        }
        fd = argc == 2 ? open_out(argv[1], 0600) : STDOUT_FILENO;
        if (fd < 0) {
                fprintf(stderr, "mk-age: %s: %m\n", argv[1]);
                age_secret_string_free(text);
                return 1;
        }
        r = loop_write(fd, text, strlen(text));
        age_secret_string_free(text);
        if (fd != STDOUT_FILENO)
                close(fd);
        if (r < 0) {
                fprintf(stderr, "mk-age: write failed: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

static int load_identities(const char *path, AgeIdentities **ret) {
        size_t line = 0;
        int r;

        r = age_identities_load_at(AT_FDCWD, path, ret, &line);
        if (r < 0) {
                if (line > 0)
                        fprintf(stderr, "mk-age: %s:%zu: invalid identity: %s\n", path, line, strerror(-r));
                else
                        fprintf(stderr, "mk-age: %s: %s\n", path, strerror(-r));
        }
        return r;
}

static int verb_recipient(int argc, char **argv) {
        _cleanup_(age_identities_freep) AgeIdentities *ids = NULL;

        if (argc != 2) {
                fprintf(stderr, "usage: mk-age recipient IDENTITY_FILE\n");
                return 1;
        }
        if (load_identities(argv[1], &ids) < 0)
                return 1;
        for (size_t i = 0; i < ids->n; i++) {
                char s[AGE_RECIPIENT_STRING_SIZE];
                AgeRecipient r;

                age_identity_to_recipient(ids->identities[i], &r);
                age_recipient_to_string(&r, s);
                printf("%s\n", s);
        }
        return 0;
}

static int parse_jobs(const char *s) {
        char *e = NULL;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &e, 10);
        if (errno != 0 || !e || *e || v > AGE_JOBS_MAX) {
                fprintf(stderr, "mk-age: invalid -j '%s' (0..%u)\n", s, AGE_JOBS_MAX);
                return -EINVAL;
        }
        arg_jobs = (unsigned) v;
        return 0;
}

static int verb_seal(int argc, char **argv) {
        _cleanup_free_ AgeRecipient *recipients = NULL;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        size_t n_recipients = 0;
        int c, r;

        while ((c = getopt(argc, argv, "j:r:")) >= 0)
                switch (c) {
                case 'j':
                        if (parse_jobs(optarg) < 0)
                                return 1;
                        break;
                case 'r': {
                        AgeRecipient *a = reallocarray(recipients, n_recipients + 1, sizeof(AgeRecipient));
                        if (!a)
                                return 1;
                        recipients = a;
                        if (age_recipient_from_string(optarg, &recipients[n_recipients]) < 0) {
                                fprintf(stderr, "mk-age: invalid recipient '%s'\n", optarg);
                                return 1;
                        }
                        n_recipients++;
                        break;
                }
                default:
                        return 1;
                }
        if (argc - optind != 2 || n_recipients == 0) {
                fprintf(stderr, "usage: mk-age seal [-j N] -r RECIPIENT… IN OUT\n");
                return 1;
        }
        in = open_in(argv[optind]);
        if (in < 0) {
                fprintf(stderr, "mk-age: %s: %m\n", argv[optind]);
                return 1;
        }
        out = open_out(argv[optind + 1], 0644);
        if (out < 0) {
                fprintf(stderr, "mk-age: %s: %m\n", argv[optind + 1]);
                return 1;
        }
        r = age_seal_fd(recipients, n_recipients, in, out, arg_jobs);
        if (in == STDIN_FILENO)
                in = -EBADF;
        if (out == STDOUT_FILENO)
                out = -EBADF;
        if (r < 0) {
                fprintf(stderr, "mk-age: seal failed: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

static int verb_open(int argc, char **argv) {
        _cleanup_(age_identities_freep) AgeIdentities *ids = NULL;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        const char *identity_file = NULL, *reason = NULL;
        int c, r;

        while ((c = getopt(argc, argv, "j:i:")) >= 0)
                switch (c) {
                case 'j':
                        if (parse_jobs(optarg) < 0)
                                return 1;
                        break;
                case 'i':
                        identity_file = optarg;
                        break;
                default:
                        return 1;
                }
        if (argc - optind != 2 || !identity_file) {
                fprintf(stderr, "usage: mk-age open [-j N] -i IDENTITY_FILE IN OUT\n");
                return 1;
        }
        if (load_identities(identity_file, &ids) < 0)
                return 1;
        in = open_in(argv[optind]);
        if (in < 0) {
                fprintf(stderr, "mk-age: %s: %m\n", argv[optind]);
                return 1;
        }
        out = open_out(argv[optind + 1], 0600);
        if (out < 0) {
                fprintf(stderr, "mk-age: %s: %m\n", argv[optind + 1]);
                return 1;
        }
        r = age_open_fd(ids->identities, ids->n, in, out, arg_jobs, &reason);
        if (in == STDIN_FILENO)
                in = -EBADF;
        if (out == STDOUT_FILENO)
                out = -EBADF;
        if (r < 0) {
                fprintf(stderr, "mk-age: open failed: %s%s%s%s\n",
                        age_error_class_to_string(r) ?: strerror(-r), reason ? " (" : "", strempty(reason),
                        reason ? ")" : "");
                return exit_code(r);
        }
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: mk-age keygen|recipient|seal|open …\n");
                return 1;
        }
        if (streq(argv[1], "keygen"))
                return verb_keygen(argc - 1, argv + 1);
        if (streq(argv[1], "recipient"))
                return verb_recipient(argc - 1, argv + 1);
        if (streq(argv[1], "seal"))
                return verb_seal(argc - 1, argv + 1);
        if (streq(argv[1], "open"))
                return verb_open(argc - 1, argv + 1);
        fprintf(stderr, "mk-age: unknown verb '%s'\n", argv[1]);
        return 1;
}
