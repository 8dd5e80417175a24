/* SPDX-License-Identifier: Apache-2.0 */

#include "bech32.h"

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v) {
        static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
        uint32_t b = chk >> 25;

        chk = ((chk & 0x1ffffff) << 5) ^ v;
        for (unsigned i = 0; i < 5; i++)
                if ((b >> i) & 1)
                        chk ^= gen[i];
        return chk;
}

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* The checksum state after the expanded HRP (BIP-173 "hrp_expand"), over the lower-case HRP. */
static uint32_t polymod_hrp(const char *hrp, size_t n) {
        uint32_t chk = 1;

        for (size_t i = 0; i < n; i++)
                chk = polymod_step(chk, (uint8_t) ascii_lower(hrp[i]) >> 5);
        chk = polymod_step(chk, 0);
        for (size_t i = 0; i < n; i++)
                chk = polymod_step(chk, (uint8_t) ascii_lower(hrp[i]) & 31);
        return chk;
}

static int charset_index(char c) {
        const char *p;

        if (c == 0)
                return -1;
        p = strchr(charset, c);
        return p ? (int) (p - charset) : -1;
}

int bech32_encode(const char *hrp, const uint8_t *data, size_t size, char **ret) {
        size_t hrp_len, n_groups, total;
        uint32_t chk, acc = 0;
        unsigned bits = 0;
        char *s, *p;

        assert_return(hrp, -EINVAL);
        assert_return(data || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        hrp_len = strlen(hrp);
        if (hrp_len < 1 || hrp_len > 83)
                return -EINVAL;
        for (size_t i = 0; i < hrp_len; i++)
                if (hrp[i] < 33 || hrp[i] > 126 || (hrp[i] >= 'A' && hrp[i] <= 'Z'))
                        return -EINVAL;

        if (size > (BECH32_STRING_MAX * 5) / 8)
                return -E2BIG;
        n_groups = (size * 8 + 4) / 5;
        total = hrp_len + 1 + n_groups + 6;

        s = malloc(total + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, hrp, hrp_len);
        p = s + hrp_len;
        *p++ = '1';

        chk = polymod_hrp(hrp, hrp_len);
        for (size_t i = 0; i < size; i++) {
                acc = (acc << 8) | data[i];
                bits += 8;
                while (bits >= 5) {
                        uint8_t v = (acc >> (bits - 5)) & 31;
                        bits -= 5;
                        chk = polymod_step(chk, v);
                        *p++ = charset[v];
                }
        }
        if (bits > 0) {
                uint8_t v = (acc << (5 - bits)) & 31;
                chk = polymod_step(chk, v);
                *p++ = charset[v];
        }
        for (unsigned i = 0; i < 6; i++)
                chk = polymod_step(chk, 0);
        chk ^= 1;
        for (unsigned i = 0; i < 6; i++)
                *p++ = charset[(chk >> (5 * (5 - i))) & 31];
        *p = 0;
        assert_se((size_t) (p - s) == total);

        *ret = s;
        return 0;
}

int bech32_decode(const char *s, char **ret_hrp, uint8_t **ret_data, size_t *ret_size) {
        _cleanup_free_ char *hrp = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        bool lower = false, upper = false;
        size_t len, sep = SIZE_MAX, n_data, size = 0;
        uint32_t chk, acc = 0;
        unsigned bits = 0;

        assert_return(s, -EINVAL);
        assert_return(ret_hrp, -EINVAL);
        assert_return(ret_data, -EINVAL);
        assert_return(ret_size, -EINVAL);

        len = strnlen(s, BECH32_STRING_MAX + 1);
        if (len > BECH32_STRING_MAX)
                return -EINVAL;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c < 33 || c > 126)
                        return -EINVAL;
                if (c >= 'a' && c <= 'z')
                        lower = true;
                else if (c >= 'A' && c <= 'Z')
                        upper = true;
                if (c == '1')
                        sep = i;
        }
        if (lower && upper)
                return -EINVAL;
        /* The separator is the last '1': the HRP may contain '1', the data part cannot. At least
         * one HRP character and the 6 checksum characters. */
        if (sep == SIZE_MAX || sep < 1 || sep + 7 > len)
                return -EINVAL;

        n_data = len - sep - 1;
        chk = polymod_hrp(s, sep);
        data = malloc((n_data - 6) * 5 / 8 + 1);
        if (!data)
                return -ENOMEM;

        for (size_t i = 0; i < n_data; i++) {
                int v = charset_index(ascii_lower(s[sep + 1 + i]));
                if (v < 0)
                        return -EINVAL;
                chk = polymod_step(chk, (uint8_t) v);
                if (i >= n_data - 6)
                        continue;
                acc = (acc << 5) | (uint32_t) v;
                bits += 5;
                if (bits >= 8) {
                        bits -= 8;
                        data[size++] = (uint8_t) (acc >> bits);
                }
                acc &= 0xff; /* at most 7 leftover bits matter */
        }
        if (chk != 1)
                return -EINVAL;
        /* convertbits(..., 5, 8, pad=False): at most 4 padding bits, and they must be zero. */
        if (bits >= 5 || (acc & ((1U << bits) - 1)) != 0)
                return -EINVAL;

        hrp = strndup(s, sep);
        if (!hrp)
                return -ENOMEM;

        *ret_hrp = TAKE_PTR(hrp);
        *ret_data = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}
