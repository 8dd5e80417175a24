/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The age v1 file format (c2sp.org/age, age-encryption.org/v1) with X25519 recipients, on
 * OpenSSL 3 EVP primitives only (X25519, HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305).
 * Files sealed here open with `age -d`, files from `age -r` open here. Not implemented:
 * scrypt/passphrase, ASCII armor, post-quantum and plugin recipients — stanzas of other types
 * are ignored when opening, as the spec requires.
 *
 * Error classes. Every function returns a negative errno; opening a file distinguishes the
 * failure classes of the C2SP age testkit:
 *
 *   -ENOKEY    (AGE_ERROR_NO_MATCH) the header is well formed but no identity unwraps any stanza
 *   -EBADMSG   (AGE_ERROR_HEADER)   the header is malformed, exceeds a limit, has an invalid
 *                                   X25519 stanza (bad share or body length, all-zero shared
 *                                   secret), an unsupported version, or the nonce is missing
 *   -EBADE     (AGE_ERROR_HMAC)     a file key was unwrapped but the header MAC does not match
 *   -EUCLEAN   (AGE_ERROR_PAYLOAD)  the payload does not authenticate all the way to a final
 *                                   chunk and EOF: a bad tag, truncation, an empty final chunk,
 *                                   data after the final chunk
 *
 * Anything else is an I/O or resource error (-ENOMEM, -EIO, …). Errors returned by the caller's
 * own StreamReader/StreamWriter are passed through, except that one of the four codes above is
 * turned into -EIO so that a class code always means what this table says.
 *
 * Where a function takes `const char **ret_reason`, it may set it (also on failure) to a static,
 * human-readable English sentence saying what exactly was wrong; it never contains key material
 * or file content. NULL is fine.
 *
 * Release rule when opening: plaintext is only handed out for chunks whose Poly1305 tag has
 * been verified, in order. On a payload failure everything up to the first bad chunk has been
 * handed out (that is what the testkit's `payload` hash covers); the stream as a whole is only
 * valid when the final call returns 0. Consumers must treat their output as garbage unless it
 * does.
 *
 * Secrets: AgeIdentity holds the 32-byte X25519 secret; age_identity_free() wipes it with
 * OPENSSL_cleanse. File keys, wrap keys, shared secrets and payload keys live only inside the
 * functions/objects that use them and are wiped when done. Nothing here logs.
 */

#include "macros.h"
#include "stream.h"

#define AGE_KEY_SIZE       32U
#define AGE_FILE_KEY_SIZE  16U
#define AGE_NONCE_SIZE     16U
#define AGE_TAG_SIZE       16U
#define AGE_CHUNK_SIZE     (64U * 1024U)
#define AGE_ENC_CHUNK_SIZE (AGE_CHUNK_SIZE + AGE_TAG_SIZE)
#define AGE_MAC_SIZE       32U

/* "age1" + 52 + 6 checksum characters, and "AGE-SECRET-KEY-1" + 52 + 6, plus the NUL. */
#define AGE_RECIPIENT_STRING_SIZE 63U
#define AGE_IDENTITY_STRING_SIZE  75U

/* Limits on untrusted headers (our own files have one ~110-byte stanza). */
#define AGE_HEADER_SIZE_MAX (256U * 1024U)
#define AGE_STANZAS_MAX     256U
#define AGE_STANZA_ARGS_MAX 32U
#define AGE_HEADER_LINE_MAX 4096U
/* Identity files (age-keygen's format); a credential is ~200 bytes. */
#define AGE_IDENTITY_FILE_MAX (64U * 1024U)
#define AGE_IDENTITIES_MAX    256U

/* Worker threads for the payload; 0 means "pick" (the number of CPUs, at most AGE_JOBS_MAX). */
#define AGE_JOBS_MAX 16U

#define AGE_ERROR_NO_MATCH ENOKEY
#define AGE_ERROR_HEADER   EBADMSG
#define AGE_ERROR_HMAC     EBADE
#define AGE_ERROR_PAYLOAD  EUCLEAN

/* ---- keys ---------------------------------------------------------------------------------- */

/* A recipient: an X25519 public key, a plain value (nothing secret). */
typedef struct AgeRecipient {
        uint8_t key[AGE_KEY_SIZE];
} AgeRecipient;

/* Parse "age1…" (lower case only, as age does). -EINVAL when it is not a valid recipient. */
int age_recipient_from_string(const char *s, AgeRecipient *ret);
/* Format as "age1…" into buf. */
void age_recipient_to_string(const AgeRecipient *r, char buf[static AGE_RECIPIENT_STRING_SIZE]);

/* An identity: the X25519 secret (opaque; freed with age_identity_free, which wipes it). */
typedef struct AgeIdentity AgeIdentity;

/* A new random identity (RAND_priv_bytes). */
int age_keygen(AgeIdentity **ret);
/* Parse "AGE-SECRET-KEY-1…" (upper case only, as age does). -EINVAL when not a valid identity. */
int age_identity_from_string(const char *s, AgeIdentity **ret);
/* Format as "AGE-SECRET-KEY-1…" into buf. The buffer then holds the secret: wipe it with
 * OPENSSL_cleanse() when done. */
void age_identity_to_string(const AgeIdentity *id, char buf[static AGE_IDENTITY_STRING_SIZE]);
void age_identity_to_recipient(const AgeIdentity *id, AgeRecipient *ret);
AgeIdentity *age_identity_free(AgeIdentity *id);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgeIdentity *, age_identity_free);

/*
 * The text age-keygen writes (and age -i reads): "# created: <RFC 3339 time>", "# public key:
 * age1…", then the secret key line. `now` is seconds since the epoch (formatted in UTC). The
 * returned string holds the secret: free it with age_secret_string_free().
 */
int age_identity_format_file(const AgeIdentity *id, time_t now, char **ret);
/* OPENSSL_cleanse the string and free it. Returns NULL. */
char *age_secret_string_free(char *s);

/*
 * A parsed identity file: LF or CRLF lines; lines starting with '#' and empty lines are
 * ignored; every other line must be exactly one "AGE-SECRET-KEY-1…" (no surrounding spaces),
 * as age's ParseIdentities. At least one identity, at most AGE_IDENTITIES_MAX.
 * Returns -EBADMSG for a malformed line (with *ret_line, 1-based, when non-NULL), -ENOKEY when
 * the file holds no identity, -EPROTONOSUPPORT for identity types we do not implement
 * (post-quantum "AGE-SECRET-KEY-PQ-1…", plugins "AGE-PLUGIN-…"), -EFBIG when too large.
 */
typedef struct AgeIdentities {
        AgeIdentity **identities;
        size_t n;
} AgeIdentities;

int age_identities_parse(const void *text, size_t size, AgeIdentities **ret, size_t *ret_line);
/* Read (at most AGE_IDENTITY_FILE_MAX bytes, the buffer wiped afterwards) and parse an fd. */
int age_identities_load_fd(int fd, AgeIdentities **ret, size_t *ret_line);
/* openat(dirfd, path, O_RDONLY|O_NOFOLLOW|O_CLOEXEC) of a regular file, then as above. */
int age_identities_load_at(int dirfd, const char *path, AgeIdentities **ret, size_t *ret_line);
AgeIdentities *age_identities_free(AgeIdentities *ids);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgeIdentities *, age_identities_free);

/* ---- header (pure: no I/O, no logging; fuzzed) -------------------------------------------- */

typedef struct AgeStanza {
        char **args;   /* n_args strings, args[0] is the type ("X25519"); NULL-terminated */
        size_t n_args; /* >= 1 */
        uint8_t *body; /* decoded; NULL when empty */
        size_t body_size;
} AgeStanza;

typedef struct AgeHeader {
        AgeStanza *stanzas;
        size_t n_stanzas; /* >= 1 */
        uint8_t mac[AGE_MAC_SIZE];
        size_t mac_input_size; /* header bytes the MAC covers: everything up to and including "---" */
        size_t size;           /* the whole header, including the MAC line's LF: the payload starts here */
} AgeHeader;

/*
 * Parse the header at the start of data (the payload may follow; h->size says where it begins).
 * Strict per the spec's ABNF: the exact "age-encryption.org/v1" line, "-> " stanzas with
 * non-empty VCHAR arguments separated by single spaces, bodies in canonical unpadded base64
 * wrapped at 64 columns and ended by a shorter (possibly empty) line, "--- " and the 43-character
 * canonical base64 MAC. LF only.
 *   0          *ret is the header
 *   -EAGAIN    data is a valid but incomplete beginning of a header: give more (at EOF this is a
 *              header failure)
 *   -EBADMSG   not a valid header, or over a limit (AGE_HEADER_SIZE_MAX, AGE_STANZAS_MAX,
 *              AGE_STANZA_ARGS_MAX, AGE_HEADER_LINE_MAX)
 *   -ENOMEM
 * Canonical encodings are enforced, so the bytes are exactly what a re-encoding would give and
 * the MAC can be computed over data[0, mac_input_size).
 */
int age_header_parse(const void *data, size_t size, AgeHeader **ret, const char **ret_reason);
AgeHeader *age_header_free(AgeHeader *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgeHeader *, age_header_free);

/* Canonical unpadded base64 (RFC 4648 §4 alphabet, §3.5 canonical) of len characters into at
 * most out_max bytes; *ret_size is the decoded length. -EINVAL when not canonical (padding,
 * CR/LF or any other character, non-zero unused bits) or longer than out_max. */
int age_base64_decode(const char *s, size_t len, uint8_t *out, size_t out_max, size_t *ret_size);
/* Encode n bytes; out must have room for age_base64_encoded_size(n) + 1. Returns the length. */
size_t age_base64_encode(const uint8_t *data, size_t n, char *out);
static inline size_t age_base64_encoded_size(size_t n) {
        return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* ---- sealing ------------------------------------------------------------------------------ */

/*
 * A streaming sealer: feed plaintext with age_sealer_write() (or use it as a StreamWriter via
 * age_sealer_writer()), then age_sealer_finish() writes the final chunk. The header is written to
 * `out` by age_sealer_new(); after that output is produced in batches of 8 chunks, so `out` sees
 * writes of up to 512 KiB + tags. `jobs` is the number of threads that encrypt (0: the number of
 * CPUs; 1: only the calling thread; n: the calling thread and n - 1 workers, started once the
 * input is larger than one batch). `out` is only ever called from the calling thread. The object
 * must be freed; freeing it without age_sealer_finish() leaves an incomplete (unauthenticatable)
 * file, which is what an aborted install wants.
 */
typedef struct AgeSealer AgeSealer;

int age_sealer_new(const AgeRecipient *recipients, size_t n_recipients, const StreamWriter *out,
                   unsigned jobs, AgeSealer **ret);
int age_sealer_write(AgeSealer *s, const void *buf, size_t n);
int age_sealer_finish(AgeSealer *s);
/* Plaintext bytes consumed so far. */
uint64_t age_sealer_plaintext_size(const AgeSealer *s);
AgeSealer *age_sealer_free(AgeSealer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgeSealer *, age_sealer_free);

int age_sealer_stream_write(void *userdata, const void *buf, size_t n);
static inline StreamWriter age_sealer_writer(AgeSealer *s) {
        return (StreamWriter){.write = age_sealer_stream_write, .userdata = s};
}

/*
 * Seal everything from in_fd (to EOF) to out_fd, reading straight into the chunk buffers. With
 * jobs >= 2 (0: the number of CPUs) and more than one batch (512 KiB) of input, the calling thread
 * reads, a writer thread writes, and both do the crypto when they would otherwise wait (plus
 * jobs - 2 dedicated workers), so that two cores are kept busy; with jobs == 1 everything happens
 * in the calling thread. Both fds are only touched by this call (out_fd from the writer thread).
 */
int age_seal_fd(const AgeRecipient *recipients, size_t n_recipients, int in_fd, int out_fd, unsigned jobs);

/* ---- opening ------------------------------------------------------------------------------ */

/*
 * A streaming opener. age_opener_new() reads the header and the nonce from `in`, unwraps the
 * file key with the identities (tried in order, each against the stanzas in order, as age does),
 * checks the header MAC and derives the payload key; it fails with -ENOKEY/-EBADMSG/-EBADE as
 * above. The identities are not used afterwards and may be freed at once. Then plaintext comes
 * out of age_opener_read() (a StreamReadFn: bytes, 0 at the authenticated end, or -EUCLEAN
 * etc.; errors are sticky), or is pushed into a writer by age_opener_copy_to() (no copy: chunks
 * are written from the buffer they were decrypted in). `in` is only called from the calling
 * thread. Read-ahead: up to one batch (512 KiB) of ciphertext beyond what has been released. `jobs`
 * as for the sealer.
 */
typedef struct AgeOpener AgeOpener;

int age_opener_new(AgeIdentity *const *identities, size_t n_identities, const StreamReader *in,
                   unsigned jobs, AgeOpener **ret, const char **ret_reason);
ssize_t age_opener_read(AgeOpener *o, void *buf, size_t n);
int age_opener_copy_to(AgeOpener *o, const StreamWriter *out);
/* Why the last failure happened (static string), or NULL. */
const char *age_opener_reason(const AgeOpener *o);
uint64_t age_opener_plaintext_size(const AgeOpener *o); /* released so far */
AgeOpener *age_opener_free(AgeOpener *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgeOpener *, age_opener_free);

ssize_t age_opener_stream_read(void *userdata, void *buf, size_t n);
static inline StreamReader age_opener_reader(AgeOpener *o) {
        return (StreamReader){.read = age_opener_stream_read, .userdata = o};
}

/* Open a whole stream into a writer / an fd into an fd (writev straight from the chunk buffers;
 * threads as for age_seal_fd()). The output has received exactly the released plaintext when these
 * fail: the caller must discard it. */
int age_open_stream(AgeIdentity *const *identities, size_t n_identities, const StreamReader *in,
                    const StreamWriter *out, unsigned jobs, const char **ret_reason);
int age_open_fd(AgeIdentity *const *identities, size_t n_identities, int in_fd, int out_fd, unsigned jobs,
                const char **ret_reason);

/* "no match", "header failure", "HMAC failure", "payload failure" for the class codes (as the
 * testkit names them), NULL for anything else. */
const char *age_error_class_to_string(int error);
