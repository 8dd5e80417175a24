/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The age header parser (pure), and the whole open path with a fixed identity. The corpus
 * (tests/fuzz/make-age-corpus.sh) is sealed to this identity's recipient, so mutations reach the
 * stanza unwrap, the header MAC and the STREAM payload, not only the parser.
 */

#include "age.h"

/* Its recipient is age1plxknwcxmncxp0a9kfga7trs660zejzf4y9clyzeadjlrmw63q3q086pvf. A test key. */
#define FUZZ_IDENTITY "AGE-SECRET-KEY-1KMAK0KQZH3WWC66737YCZN65WDHVDSZHLQ6EUDU2PR65HLHXYNYSW2RPU8"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Input {
        const uint8_t *data;
        size_t size, pos, piece;
} Input;

static ssize_t input_read(void *userdata, void *buf, size_t n) {
        Input *in = userdata;
        size_t k = MIN(n, in->size - in->pos);

        k = MIN(k, in->piece);

        memcpy(buf, in->data + in->pos, k);
        in->pos += k;
        return (ssize_t) k;
}

static int discard(void *userdata, const void *buf, size_t n) {
        uint64_t *total = userdata;

        *total += n;
        return 0;
}

static void check_header(const uint8_t *data, size_t size) {
        AgeHeader *h = NULL;
        const char *reason = NULL;
        int r;

        r = age_header_parse(data, size, &h, &reason);
        if (r < 0) {
                assert_se(r == -EAGAIN || r == -EBADMSG || r == -ENOMEM);
                assert_se(!h);
                assert_se(r != -EBADMSG || reason);
                return;
        }
        assert_se(h->n_stanzas >= 1 && h->n_stanzas <= AGE_STANZAS_MAX);
        assert_se(h->size <= size && h->size <= AGE_HEADER_SIZE_MAX);
        /* "--- " + 43 characters + LF */
        assert_se(h->mac_input_size + 1 + 43 + 1 == h->size);
        for (size_t i = 0; i < h->n_stanzas; i++) {
                const AgeStanza *s = &h->stanzas[i];

                assert_se(s->n_args >= 1 && s->n_args <= AGE_STANZA_ARGS_MAX);
                assert_se(!s->args[s->n_args]);
                for (size_t j = 0; j < s->n_args; j++)
                        assert_se(s->args[j][0] != 0);
                assert_se(s->body_size <= h->size);
        }
        age_header_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static AgeIdentity *id = NULL;
        uint64_t total = 0;
        const char *reason = NULL;
        int r;

        if (size > 4 * 1024 * 1024)
                return 0;
        if (!id)
                assert_se(age_identity_from_string(FUZZ_IDENTITY, &id) == 0);

        check_header(data, size);

        /* The reader hands out pieces of a size taken from the input, so the header is also
         * parsed incrementally; one chunk or more at a time for the payload. */
        Input in = {.data = data, .size = size, .piece = size > 0 ? 1 + (size_t) data[size / 2] * 331 : 1};
        StreamReader rd = {input_read, &in};
        StreamWriter wr = {discard, &total};

        r = age_open_stream(&id, 1, &rd, &wr, 1, &reason);
        assert_se(r == 0 || r == -AGE_ERROR_NO_MATCH || r == -AGE_ERROR_HEADER || r == -AGE_ERROR_HMAC ||
                  r == -AGE_ERROR_PAYLOAD || r == -ENOMEM);
        assert_se(r == 0 || r == -ENOMEM || reason);
        /* Never more plaintext than ciphertext. */
        assert_se(total <= size);
        return 0;
}
