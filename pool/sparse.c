/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>

#include "sparse.h"

static const char sparse_zeros[SPARSE_CHUNK];

bool
sparse_is_zero(const char *p, size_t len)
{
    return len <= SPARSE_CHUNK && memcmp(p, sparse_zeros, len) == 0;
}

int
sparse_send_data(virStreamPtr st, const char *p, size_t len)
{
    while (len > 0) {
        int w = virStreamSend(st, p, len);

        if (w < 0)
            return -1;
        p += w;
        len -= w;
    }
    return 0;
}

int
sparse_send(virStreamPtr st, const char *p, size_t len, uint64_t *data,
            uint64_t *zeros)
{
    size_t pend_data = 0;   /* data bytes pending before P + OFF */
    size_t pend_hole = 0;   /* zero bytes pending */
    size_t off;

    for (off = 0; off < len; ) {
        size_t n = len - off > SPARSE_CHUNK ? SPARSE_CHUNK : len - off;
        bool zero = sparse_is_zero(p + off, n);

        if (zero && pend_data) {
            if (sparse_send_data(st, p + off - pend_data, pend_data) < 0)
                return -1;
            *data += pend_data;
            pend_data = 0;
        } else if (!zero && pend_hole) {
            if (virStreamSendHole(st, pend_hole, 0) < 0)
                return -1;
            *zeros += pend_hole;
            pend_hole = 0;
        }
        if (zero)
            pend_hole += n;
        else
            pend_data += n;
        off += n;
    }
    if (pend_data && sparse_send_data(st, p + off - pend_data, pend_data) < 0)
        return -1;
    if (pend_hole && virStreamSendHole(st, pend_hole, 0) < 0)
        return -1;
    *data += pend_data;
    *zeros += pend_hole;
    return 0;
}
