/* SPDX-License-Identifier: Apache-2.0 */

/*
 * age v1: keys, identity files, the header (parser, builder, X25519 stanzas, MAC). The payload
 * (STREAM) lives in age-stream.c. Spec: c2sp.org/age; behaviour at the edges follows the
 * reference implementation (filippo.io/age) and the C2SP/CCTV testkit.
 */

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <time.h>

#include "age-internal.h"
#include "bech32.h"
#include "fileio.h"

#define VERSION_LINE    "age-encryption.org/v1"
#define VERSION_PREFIX  "age-encryption.org/"
#define X25519_LABEL    "age-encryption.org/v1/X25519"
#define RECIPIENT_HRP   "age"
#define IDENTITY_HRP    "AGE-SECRET-KEY-"
#define BODY_COLUMNS    64U
#define MAC_BASE64_SIZE 43U

struct AgeIdentity {
        uint8_t secret[AGE_KEY_SIZE];
        uint8_t public_key[AGE_KEY_SIZE];
        EVP_PKEY *pkey;
};

const char *age_error_class_to_string(int error) {
        switch (error < 0 ? -error : error) {
        case AGE_ERROR_NO_MATCH:
                return "no match";
        case AGE_ERROR_HEADER:
                return "header failure";
        case AGE_ERROR_HMAC:
                return "HMAC failure";
        case AGE_ERROR_PAYLOAD:
                return "payload failure";
        default:
                return NULL;
        }
}

/* ---- primitives ---------------------------------------------------------------------------- */

int age_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                    const char *info, uint8_t out[static AGE_KEY_SIZE]) {
        EVP_KDF *kdf = NULL;
        EVP_KDF_CTX *ctx = NULL;
        OSSL_PARAM params[5], *p = params;
        int r = -EIO;

        kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
        if (!kdf)
                return -EIO;
        ctx = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
        if (!ctx)
                return -ENOMEM;

        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
        /* An absent salt is HashLen zero bytes (RFC 5869 §2.2), the same HMAC key as an empty one. */
        if (salt_len > 0)
                *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *) salt, salt_len);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, strlen(info));
        *p = OSSL_PARAM_construct_end();

        if (EVP_KDF_derive(ctx, out, AGE_KEY_SIZE, params) > 0)
                r = 0;
        EVP_KDF_CTX_free(ctx);
        return r;
}

/* ChaCha20-Poly1305 with a fixed all-zero nonce, as the X25519 stanza uses it. out: n + 16. */
static int aead_seal_zero_nonce(const uint8_t key[static AGE_KEY_SIZE], const uint8_t *in, size_t n,
                                uint8_t *out) {
        static const uint8_t nonce[12] = {};
        EVP_CIPHER_CTX *ctx;
        int len = 0, len2 = 0, r = -EIO;

        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) > 0 &&
            EVP_EncryptUpdate(ctx, out, &len, in, (int) n) > 0 &&
            EVP_EncryptFinal_ex(ctx, out + len, &len2) > 0 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AGE_TAG_SIZE, out + n) > 0)
                r = 0;
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

/* Returns 0, or -EBADMSG when the tag does not verify. in: n + 16 bytes, out: n bytes. */
static int aead_open_zero_nonce(const uint8_t key[static AGE_KEY_SIZE], const uint8_t *in, size_t n,
                                uint8_t *out) {
        static const uint8_t nonce[12] = {};
        EVP_CIPHER_CTX *ctx;
        int len = 0, len2 = 0, r = -EIO;

        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) > 0 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AGE_TAG_SIZE, (void *) (in + n)) > 0 &&
            EVP_DecryptUpdate(ctx, out, &len, in, (int) n) > 0)
                r = EVP_DecryptFinal_ex(ctx, out + len, &len2) > 0 ? 0 : -EBADMSG;
        EVP_CIPHER_CTX_free(ctx);
        if (r < 0)
                OPENSSL_cleanse(out, n);
        return r;
}

/* X25519(priv, peer). -EBADMSG when the result is all zero (a low-order peer point): OpenSSL's
 * provider refuses to derive it, and we check again so that this never depends on a version. */
static int x25519(EVP_PKEY *priv, const uint8_t peer[static AGE_KEY_SIZE],
                  uint8_t out[static AGE_KEY_SIZE]) {
        static const uint8_t zero[AGE_KEY_SIZE] = {};
        EVP_PKEY *peer_key = NULL;
        EVP_PKEY_CTX *ctx = NULL;
        size_t len = AGE_KEY_SIZE;
        int r = -EIO;

        peer_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, AGE_KEY_SIZE);
        if (!peer_key)
                return -ENOMEM;
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
        if (!ctx) {
                r = -ENOMEM;
                goto finish;
        }
        if (EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, peer_key, 0) <= 0)
                goto finish;
        if (EVP_PKEY_derive(ctx, out, &len) <= 0 || len != AGE_KEY_SIZE ||
            CRYPTO_memcmp(out, zero, AGE_KEY_SIZE) == 0) {
                OPENSSL_cleanse(out, AGE_KEY_SIZE);
                r = -EBADMSG;
                goto finish;
        }
        r = 0;
finish:
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(peer_key);
        return r;
}

/* ---- base64 --------------------------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int age_base64_decode(const char *s, size_t len, uint8_t *out, size_t out_max, size_t *ret_size) {
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t n = 0;

        assert_return(s || len == 0, -EINVAL);

        /* One leftover character carries only 6 bits: never a whole byte, never canonical. */
        if (len % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int v = b64_value(s[i]);
                if (v < 0)
                        return -EINVAL; /* also '=', CR, LF, spaces */
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (n >= out_max)
                                return -EINVAL;
                        out[n++] = (uint8_t) (acc >> bits);
                        acc &= (1U << bits) - 1;
                }
        }
        /* RFC 4648 §3.5: the unused low bits of the last character must be zero. */
        if (acc != 0)
                return -EINVAL;
        if (ret_size)
                *ret_size = n;
        return 0;
}

size_t age_base64_encode(const uint8_t *data, size_t n, char *out) {
        char *p = out;
        size_t i = 0;

        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8 | data[i + 2];
                *p++ = b64_alphabet[(v >> 18) & 63];
                *p++ = b64_alphabet[(v >> 12) & 63];
                *p++ = b64_alphabet[(v >> 6) & 63];
                *p++ = b64_alphabet[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t) data[i] << 16;
                *p++ = b64_alphabet[(v >> 18) & 63];
                *p++ = b64_alphabet[(v >> 12) & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8;
                *p++ = b64_alphabet[(v >> 18) & 63];
                *p++ = b64_alphabet[(v >> 12) & 63];
                *p++ = b64_alphabet[(v >> 6) & 63];
        }
        *p = 0;
        return (size_t) (p - out);
}

/* Decode exactly `size` bytes from a canonical encoding. */
static int base64_decode_exact(const char *s, size_t len, uint8_t *out, size_t size) {
        size_t n;

        if (len != age_base64_encoded_size(size))
                return -EINVAL;
        if (age_base64_decode(s, len, out, size, &n) < 0 || n != size)
                return -EINVAL;
        return 0;
}

/* ---- keys ----------------------------------------------------------------------------------- */

static int bech32_decode_key(const char *s, const char *hrp, uint8_t out[static AGE_KEY_SIZE]) {
        _cleanup_free_ char *got_hrp = NULL;
        uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = bech32_decode(s, &got_hrp, &data, &size);
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        /* Case-sensitive, as age: recipients are lower case, identities upper case. */
        if (!streq(got_hrp, hrp) || size != AGE_KEY_SIZE)
                r = -EINVAL;
        else
                memcpy(out, data, AGE_KEY_SIZE);
        OPENSSL_cleanse(data, size);
        free(data);
        return r;
}

int age_recipient_from_string(const char *s, AgeRecipient *ret) {
        AgeRecipient r;
        int k;

        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        k = bech32_decode_key(s, RECIPIENT_HRP, r.key);
        if (k < 0)
                return k;
        *ret = r;
        return 0;
}

void age_recipient_to_string(const AgeRecipient *r, char buf[static AGE_RECIPIENT_STRING_SIZE]) {
        _cleanup_free_ char *s = NULL;

        /* Only fails on OOM for 32 bytes; a recipient is public, an empty string is safe. */
        if (bech32_encode(RECIPIENT_HRP, r->key, AGE_KEY_SIZE, &s) < 0 ||
            strlen(s) + 1 != AGE_RECIPIENT_STRING_SIZE) {
                buf[0] = 0;
                return;
        }
        memcpy(buf, s, AGE_RECIPIENT_STRING_SIZE);
}

static int identity_new(const uint8_t secret[static AGE_KEY_SIZE], AgeIdentity **ret) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        size_t len = AGE_KEY_SIZE;

        id = calloc(1, sizeof(*id));
        if (!id)
                return -ENOMEM;
        memcpy(id->secret, secret, AGE_KEY_SIZE);
        id->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, secret, AGE_KEY_SIZE);
        if (!id->pkey)
                return -ENOMEM;
        if (EVP_PKEY_get_raw_public_key(id->pkey, id->public_key, &len) <= 0 || len != AGE_KEY_SIZE)
                return -EIO;

        *ret = TAKE_PTR(id);
        return 0;
}

int age_keygen(AgeIdentity **ret) {
        uint8_t secret[AGE_KEY_SIZE];
        int r;

        assert_return(ret, -EINVAL);

        if (RAND_priv_bytes(secret, sizeof(secret)) <= 0)
                return -EIO;
        r = identity_new(secret, ret);
        OPENSSL_cleanse(secret, sizeof(secret));
        return r;
}

int age_identity_from_string(const char *s, AgeIdentity **ret) {
        uint8_t secret[AGE_KEY_SIZE];
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret, -EINVAL);

        r = bech32_decode_key(s, IDENTITY_HRP, secret);
        if (r >= 0)
                r = identity_new(secret, ret);
        OPENSSL_cleanse(secret, sizeof(secret));
        return r;
}

void age_identity_to_string(const AgeIdentity *id, char buf[static AGE_IDENTITY_STRING_SIZE]) {
        char *s = NULL;

        if (bech32_encode("age-secret-key-", id->secret, AGE_KEY_SIZE, &s) < 0) {
                buf[0] = 0;
                return;
        }
        if (strlen(s) + 1 == AGE_IDENTITY_STRING_SIZE) {
                for (size_t i = 0; i < AGE_IDENTITY_STRING_SIZE; i++)
                        buf[i] = s[i] >= 'a' && s[i] <= 'z' ? (char) (s[i] - 'a' + 'A') : s[i];
        } else
                buf[0] = 0;
        age_secret_string_free(s);
}

void age_identity_to_recipient(const AgeIdentity *id, AgeRecipient *ret) {
        memcpy(ret->key, id->public_key, AGE_KEY_SIZE);
}

AgeIdentity *age_identity_free(AgeIdentity *id) {
        if (!id)
                return NULL;
        EVP_PKEY_free(id->pkey); /* OpenSSL clears the private key it holds */
        OPENSSL_cleanse(id, sizeof(*id));
        free(id);
        return NULL;
}

char *age_secret_string_free(char *s) {
        if (s) {
                OPENSSL_cleanse(s, strlen(s));
                free(s);
        }
        return NULL;
}

int age_identity_format_file(const AgeIdentity *id, time_t now, char **ret) {
        char rec[AGE_RECIPIENT_STRING_SIZE], sec[AGE_IDENTITY_STRING_SIZE], created[64];
        AgeRecipient r;
        struct tm tm;
        char *s = NULL;
        int n;

        assert_return(id, -EINVAL);
        assert_return(ret, -EINVAL);

        if (!gmtime_r(&now, &tm) || strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -EINVAL;
        age_identity_to_recipient(id, &r);
        age_recipient_to_string(&r, rec);
        age_identity_to_string(id, sec);
        if (!rec[0] || !sec[0])
                return -ENOMEM;

        n = asprintf(&s, "# created: %s\n# public key: %s\n%s\n", created, rec, sec);
        OPENSSL_cleanse(sec, sizeof(sec));
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- identity files ------------------------------------------------------------------------- */

AgeIdentities *age_identities_free(AgeIdentities *ids) {
        if (!ids)
                return NULL;
        for (size_t i = 0; i < ids->n; i++)
                age_identity_free(ids->identities[i]);
        free(ids->identities);
        free(ids);
        return NULL;
}

int age_identities_parse(const void *text, size_t size, AgeIdentities **ret, size_t *ret_line) {
        _cleanup_(age_identities_freep) AgeIdentities *ids = NULL;
        const char *p = text, *end = p + size;
        size_t line_no = 0;

        assert_return(text || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (size > AGE_IDENTITY_FILE_MAX)
                return -EFBIG;

        ids = calloc(1, sizeof(*ids));
        if (!ids)
                return -ENOMEM;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (nl ? nl : end) - p;
                char buf[AGE_IDENTITY_STRING_SIZE];
                AgeIdentity *id = NULL;
                int r;

                line_no++;
                /* Go's bufio.ScanLines, which age uses, drops one CR before the LF. */
                if (len > 0 && p[len - 1] == '\r')
                        len--;

                if (len == 0 || p[0] == '#')
                        goto next;

                if ((len >= 19 && memcmp(p, "AGE-SECRET-KEY-PQ-1", 19) == 0) ||
                    (len >= 11 && memcmp(p, "AGE-PLUGIN-", 11) == 0)) {
                        if (ret_line)
                                *ret_line = line_no;
                        return -EPROTONOSUPPORT;
                }
                if (len + 1 != sizeof(buf) || memchr(p, 0, len)) {
                        if (ret_line)
                                *ret_line = line_no;
                        return -EBADMSG;
                }
                memcpy(buf, p, len);
                buf[len] = 0;
                r = age_identity_from_string(buf, &id);
                OPENSSL_cleanse(buf, sizeof(buf));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (ret_line)
                                *ret_line = line_no;
                        return -EBADMSG;
                }
                if (ids->n >= AGE_IDENTITIES_MAX) {
                        age_identity_free(id);
                        if (ret_line)
                                *ret_line = line_no;
                        return -E2BIG;
                }
                if (ids->n % 8 == 0) {
                        AgeIdentity **a = reallocarray(ids->identities, ids->n + 8, sizeof(AgeIdentity *));
                        if (!a) {
                                age_identity_free(id);
                                return -ENOMEM;
                        }
                        ids->identities = a;
                }
                ids->identities[ids->n++] = id;
        next:
                if (!nl)
                        break;
                p = nl + 1;
        }

        if (ids->n == 0)
                return -ENOKEY;
        *ret = TAKE_PTR(ids);
        return 0;
}

int age_identities_load_fd(int fd, AgeIdentities **ret, size_t *ret_line) {
        uint8_t *buf;
        ssize_t n;
        int r;

        assert_return(fd >= 0, -EBADF);
        assert_return(ret, -EINVAL);

        /* One fixed buffer, never realloc'd: no stray copies of the secret on the heap. */
        buf = malloc(AGE_IDENTITY_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = loop_read(fd, buf, AGE_IDENTITY_FILE_MAX + 1);
        if (n < 0)
                r = (int) n;
        else if ((size_t) n > AGE_IDENTITY_FILE_MAX)
                r = -EFBIG;
        else
                r = age_identities_parse(buf, (size_t) n, ret, ret_line);
        OPENSSL_cleanse(buf, n > 0 ? (size_t) n : 0);
        free(buf);
        return r;
}

int age_identities_load_at(int dirfd, const char *path, AgeIdentities **ret, size_t *ret_line) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        assert_return(path, -EINVAL);
        assert_return(ret, -EINVAL);

        fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* A secret key that everybody may read is a configuration mistake worth stopping for. */
        if (st.st_mode & 0007)
                return -EPERM;
        if ((uint64_t) st.st_size > AGE_IDENTITY_FILE_MAX)
                return -EFBIG;
        return age_identities_load_fd(fd, ret, ret_line);
}

/* ---- header parser -------------------------------------------------------------------------- */

static void stanza_done(AgeStanza *s) {
        if (s->args)
                for (size_t i = 0; i < s->n_args; i++)
                        free(s->args[i]);
        free(s->args);
        free(s->body);
}

AgeHeader *age_header_free(AgeHeader *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_stanzas; i++)
                stanza_done(&h->stanzas[i]);
        free(h->stanzas);
        free(h);
        return NULL;
}

/* The next complete line starting at *pos: 0 and the line without its LF; -EAGAIN when no LF
 * yet (and nothing is over a limit yet); -EBADMSG when the line or the header is too long. */
static int next_line(const char *data, size_t size, size_t *pos, const char **ret_line, size_t *ret_len,
                     const char **ret_reason) {
        size_t avail = size - *pos, scan = MIN(avail, (size_t) AGE_HEADER_LINE_MAX + 1);
        const char *nl = scan > 0 ? memchr(data + *pos, '\n', scan) : NULL;

        if (!nl) {
                if (avail > AGE_HEADER_LINE_MAX) {
                        age_set_reason(ret_reason, "header line too long");
                        return -EBADMSG;
                }
                if (size >= AGE_HEADER_SIZE_MAX) {
                        age_set_reason(ret_reason, "header too large");
                        return -EBADMSG;
                }
                return -EAGAIN;
        }
        if ((size_t) (nl - data) + 1 > AGE_HEADER_SIZE_MAX) {
                age_set_reason(ret_reason, "header too large");
                return -EBADMSG;
        }
        *ret_line = data + *pos;
        *ret_len = (size_t) (nl - (data + *pos));
        *pos = (size_t) (nl - data) + 1;
        return 0;
}

static bool is_vchar(char c) {
        return c >= 0x21 && c <= 0x7e;
}

static int parse_arguments(const char *s, size_t len, AgeStanza *st, const char **ret_reason) {
        size_t n = 1;

        /* argument = 1*VCHAR, separated by exactly one SP: no empty ones, no leading or trailing SP. */
        for (size_t i = 0; i < len; i++)
                if (s[i] == ' ')
                        n++;
                else if (!is_vchar(s[i])) {
                        age_set_reason(ret_reason, "invalid character in stanza argument");
                        return -EBADMSG;
                }
        if (n > AGE_STANZA_ARGS_MAX) {
                age_set_reason(ret_reason, "too many stanza arguments");
                return -EBADMSG;
        }

        st->args = calloc(n + 1, sizeof(char *));
        if (!st->args)
                return -ENOMEM;
        for (size_t i = 0, start = 0; i <= len; i++) {
                if (i < len && s[i] != ' ')
                        continue;
                if (i == start) {
                        age_set_reason(ret_reason, "empty stanza argument");
                        return -EBADMSG;
                }
                st->args[st->n_args] = strndup(s + start, i - start);
                if (!st->args[st->n_args])
                        return -ENOMEM;
                st->n_args++;
                start = i + 1;
        }
        return 0;
}

int age_header_parse(const void *data, size_t size, AgeHeader **ret, const char **ret_reason) {
        _cleanup_(age_header_freep) AgeHeader *h = NULL;
        const char *d = data, *line;
        size_t pos = 0, len;
        int r;

        assert_return(data || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        /* Refuse what cannot become an age header early, without waiting for a whole line. */
        if (size > 0 && memcmp(d, VERSION_PREFIX, MIN(size, strlen(VERSION_PREFIX))) != 0) {
                age_set_reason(ret_reason, "not an age file");
                return -EBADMSG;
        }

        r = next_line(d, size, &pos, &line, &len, ret_reason);
        if (r < 0)
                return r;
        if (len != strlen(VERSION_LINE) || memcmp(line, VERSION_LINE, len) != 0) {
                age_set_reason(ret_reason, "unsupported age format version");
                return -EBADMSG;
        }

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;

        for (;;) {
                size_t line_start = pos;

                r = next_line(d, size, &pos, &line, &len, ret_reason);
                if (r < 0)
                        return r;

                if (len >= 3 && memcmp(line, "---", 3) == 0) {
                        /* end = "--- " 43base64char LF */
                        if (len != 4 + MAC_BASE64_SIZE || line[3] != ' ' ||
                            base64_decode_exact(line + 4, MAC_BASE64_SIZE, h->mac, AGE_MAC_SIZE) < 0) {
                                age_set_reason(ret_reason, "malformed header MAC line");
                                return -EBADMSG;
                        }
                        h->mac_input_size = line_start + 3;
                        h->size = pos;
                        break;
                }

                if (len >= 2 && memcmp(line, "->", 2) == 0) {
                        AgeStanza *st;

                        if (len < 4 || line[2] != ' ') {
                                age_set_reason(ret_reason, "malformed stanza line");
                                return -EBADMSG;
                        }
                        if (h->n_stanzas >= AGE_STANZAS_MAX) {
                                age_set_reason(ret_reason, "too many stanzas");
                                return -EBADMSG;
                        }
                        if (h->n_stanzas % 8 == 0) {
                                AgeStanza *a = reallocarray(h->stanzas, h->n_stanzas + 8, sizeof(AgeStanza));
                                if (!a)
                                        return -ENOMEM;
                                h->stanzas = a;
                        }
                        st = &h->stanzas[h->n_stanzas++];
                        *st = (AgeStanza){};

                        r = parse_arguments(line + 3, len - 3, st, ret_reason);
                        if (r < 0)
                                return r;

                        /* stanza = arg-line *full-line final-line: 64-column lines until a shorter one. */
                        for (;;) {
                                uint8_t buf[BODY_COLUMNS / 4 * 3];
                                size_t n = 0;

                                r = next_line(d, size, &pos, &line, &len, ret_reason);
                                if (r < 0)
                                        return r;
                                if (len > BODY_COLUMNS) {
                                        age_set_reason(ret_reason,
                                                       "stanza body line longer than 64 columns");
                                        return -EBADMSG;
                                }
                                if (age_base64_decode(line, len, buf, sizeof(buf), &n) < 0) {
                                        age_set_reason(ret_reason, "stanza body is not canonical base64 or "
                                                                   "lacks a final short line");
                                        return -EBADMSG;
                                }
                                if (n > 0) {
                                        uint8_t *b = realloc(st->body, st->body_size + n);
                                        if (!b)
                                                return -ENOMEM;
                                        memcpy(b + st->body_size, buf, n);
                                        st->body = b;
                                        st->body_size += n;
                                }
                                if (len < BODY_COLUMNS)
                                        break;
                        }
                        continue;
                }

                age_set_reason(ret_reason, "unexpected line in header");
                return -EBADMSG;
        }

        if (h->n_stanzas == 0) {
                age_set_reason(ret_reason, "header has no recipient stanza");
                return -EBADMSG;
        }

        *ret = TAKE_PTR(h);
        return 0;
}

/* ---- X25519 stanzas, header MAC ------------------------------------------------------------- */

static int header_mac(const uint8_t file_key[static AGE_FILE_KEY_SIZE], const void *data, size_t size,
                      uint8_t out[static AGE_MAC_SIZE]) {
        uint8_t key[AGE_KEY_SIZE];
        size_t len = 0;
        int r;

        r = age_hkdf_sha256(file_key, AGE_FILE_KEY_SIZE, NULL, 0, "header", key);
        if (r < 0)
                return r;
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, sizeof(key), data, size, out, AGE_MAC_SIZE,
                       &len) ||
            len != AGE_MAC_SIZE)
                r = -EIO;
        OPENSSL_cleanse(key, sizeof(key));
        return r;
}

static int x25519_wrap_key(const uint8_t shared[static AGE_KEY_SIZE],
                           const uint8_t share[static AGE_KEY_SIZE],
                           const uint8_t recipient[static AGE_KEY_SIZE], uint8_t out[static AGE_KEY_SIZE]) {
        uint8_t salt[2 * AGE_KEY_SIZE];

        /* salt = ephemeral share || recipient */
        memcpy(salt, share, AGE_KEY_SIZE);
        memcpy(salt + AGE_KEY_SIZE, recipient, AGE_KEY_SIZE);
        return age_hkdf_sha256(shared, AGE_KEY_SIZE, salt, sizeof(salt), X25519_LABEL, out);
}

/* -ENOKEY: not for this identity (another type, or the tag does not verify). */
static int x25519_unwrap(const AgeIdentity *id, const AgeStanza *st,
                         uint8_t file_key[static AGE_FILE_KEY_SIZE], const char **ret_reason) {
        uint8_t share[AGE_KEY_SIZE], shared[AGE_KEY_SIZE], wrap[AGE_KEY_SIZE];
        int r;

        if (!streq(st->args[0], "X25519"))
                return -ENOKEY;
        if (st->n_args != 2) {
                age_set_reason(ret_reason, "X25519 stanza does not have exactly one argument");
                return -EBADMSG;
        }
        if (base64_decode_exact(st->args[1], strlen(st->args[1]), share, sizeof(share)) < 0) {
                age_set_reason(ret_reason, "X25519 share is not the canonical base64 of 32 bytes");
                return -EBADMSG;
        }
        /* The length check comes before any decryption (partitioning oracles, c2sp.org/age). */
        if (st->body_size != AGE_FILE_KEY_SIZE + AGE_TAG_SIZE) {
                age_set_reason(ret_reason, "X25519 stanza body is not 32 bytes");
                return -EBADMSG;
        }

        r = x25519(id->pkey, share, shared);
        if (r == -EBADMSG) {
                age_set_reason(ret_reason, "X25519 shared secret is all zero (low-order share)");
                return r;
        }
        if (r < 0)
                return r;
        r = x25519_wrap_key(shared, share, id->public_key, wrap);
        OPENSSL_cleanse(shared, sizeof(shared));
        if (r < 0)
                return r;
        r = aead_open_zero_nonce(wrap, st->body, AGE_FILE_KEY_SIZE, file_key);
        OPENSSL_cleanse(wrap, sizeof(wrap));
        if (r == -EBADMSG)
                return -ENOKEY;
        return r;
}

int age_header_unwrap(const AgeHeader *h, const void *raw, AgeIdentity *const *identities,
                      size_t n_identities, uint8_t ret_file_key[static AGE_FILE_KEY_SIZE],
                      const char **ret_reason) {
        uint8_t file_key[AGE_FILE_KEY_SIZE], mac[AGE_MAC_SIZE];
        bool found = false;
        int r;

        assert_return(h, -EINVAL);
        assert_return(raw, -EINVAL);
        assert_return(identities || n_identities == 0, -EINVAL);

        /* As age's Decrypt: each identity in turn looks at all stanzas in order; a malformed stanza
         * of its type ends everything, one that is merely not for it is skipped. */
        for (size_t i = 0; i < n_identities && !found; i++)
                for (size_t j = 0; j < h->n_stanzas; j++) {
                        r = x25519_unwrap(identities[i], &h->stanzas[j], file_key, ret_reason);
                        if (r == -ENOKEY)
                                continue;
                        if (r < 0)
                                return r;
                        found = true;
                        break;
                }
        if (!found) {
                age_set_reason(ret_reason, "no identity matches any recipient stanza");
                return -ENOKEY;
        }

        r = header_mac(file_key, raw, h->mac_input_size, mac);
        if (r < 0)
                goto finish;
        if (CRYPTO_memcmp(mac, h->mac, AGE_MAC_SIZE) != 0) {
                age_set_reason(ret_reason, "header MAC does not match");
                r = -EBADE;
                goto finish;
        }
        memcpy(ret_file_key, file_key, AGE_FILE_KEY_SIZE);
        r = 0;
finish:
        OPENSSL_cleanse(file_key, sizeof(file_key));
        return r;
}

/* ---- header builder ------------------------------------------------------------------------- */

static int x25519_wrap(const AgeRecipient *rcpt, const uint8_t file_key[static AGE_FILE_KEY_SIZE],
                       uint8_t share[static AGE_KEY_SIZE],
                       uint8_t body[static AGE_FILE_KEY_SIZE + AGE_TAG_SIZE]) {
        uint8_t shared[AGE_KEY_SIZE], wrap[AGE_KEY_SIZE];
        EVP_PKEY *eph;
        size_t len = AGE_KEY_SIZE;
        int r;

        /* A fresh ephemeral secret per stanza and file (c2sp.org/age). */
        eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        if (!eph)
                return -ENOMEM;
        if (EVP_PKEY_get_raw_public_key(eph, share, &len) <= 0 || len != AGE_KEY_SIZE) {
                EVP_PKEY_free(eph);
                return -EIO;
        }
        r = x25519(eph, rcpt->key, shared);
        EVP_PKEY_free(eph);
        if (r == -EBADMSG)
                return -EINVAL; /* a low-order "recipient": nobody could ever open the file */
        if (r < 0)
                return r;
        r = x25519_wrap_key(shared, share, rcpt->key, wrap);
        OPENSSL_cleanse(shared, sizeof(shared));
        if (r >= 0)
                r = aead_seal_zero_nonce(wrap, file_key, AGE_FILE_KEY_SIZE, body);
        OPENSSL_cleanse(wrap, sizeof(wrap));
        return r;
}

int age_header_build(const AgeRecipient *recipients, size_t n_recipients,
                     const uint8_t file_key[static AGE_FILE_KEY_SIZE], char **ret, size_t *ret_size) {
        /* "-> X25519 " share(43) LF body(43) LF */
        const size_t stanza_size = 10 + 43 + 1 + 43 + 1;
        _cleanup_free_ char *buf = NULL;
        uint8_t mac[AGE_MAC_SIZE];
        size_t alloc, n = 0;
        int r;

        assert_return(recipients, -EINVAL);
        assert_return(n_recipients > 0 && n_recipients <= AGE_STANZAS_MAX, -EINVAL);
        assert_return(ret, -EINVAL);

        alloc = strlen(VERSION_LINE) + 1 + n_recipients * stanza_size + 4 + MAC_BASE64_SIZE + 2;
        buf = malloc(alloc);
        if (!buf)
                return -ENOMEM;

        n += (size_t) sprintf(buf, "%s\n", VERSION_LINE);
        for (size_t i = 0; i < n_recipients; i++) {
                uint8_t share[AGE_KEY_SIZE], body[AGE_FILE_KEY_SIZE + AGE_TAG_SIZE];

                r = x25519_wrap(&recipients[i], file_key, share, body);
                if (r < 0)
                        return r;
                memcpy(buf + n, "-> X25519 ", 10);
                n += 10;
                n += age_base64_encode(share, sizeof(share), buf + n);
                buf[n++] = '\n';
                /* 32 bytes are 43 characters: one short final line, as the spec wants. */
                n += age_base64_encode(body, sizeof(body), buf + n);
                buf[n++] = '\n';
        }
        memcpy(buf + n, "---", 3);
        n += 3;
        r = header_mac(file_key, buf, n, mac);
        if (r < 0)
                return r;
        buf[n++] = ' ';
        n += age_base64_encode(mac, sizeof(mac), buf + n);
        buf[n++] = '\n';
        assert_se(n < alloc);

        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}
