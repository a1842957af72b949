/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/virterror.h>

#include "pump.h"
#include "sparse.h"

#define PUMP_BUF (4 * 1024 * 1024)

static void
pump_fail(char *err, size_t errlen, const char *fmt, ...)
{
    virErrorPtr e = virGetLastError();
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (e && e->message && n < errlen)
        snprintf(err + n, errlen - n, ": %s", e->message);
}

static void
pump_drop(virStreamPtr st)
{
    if (st) {
        virStreamAbort(st);
        virStreamFree(st);
    }
}

/*
 * Read the sparse download DOWN to its end; hand every piece to UP (if
 * any) and to the digest.
 */
static int
pump_loop(virStreamPtr down, virStreamPtr up, bool hold_head,
          struct digest *dg, pump_progress_fn progress, void *opaque,
          struct pump_result *res, char *err, size_t errlen)
{
    char *buf = malloc(PUMP_BUF);
    int rc = -1;

    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (;;) {
        int n = virStreamRecvFlags(down, buf, PUMP_BUF,
                                   VIR_STREAM_RECV_STOP_AT_HOLE);

        if (n == -3) {
            long long hole;

            if (virStreamRecvHole(down, &hole, 0) < 0) {
                pump_fail(err, errlen, "reading the source");
                goto out;
            }
            if (up && virStreamSendHole(up, hole, 0) < 0) {
                pump_fail(err, errlen, "writing the destination");
                goto out;
            }
            digest_feed(dg, NULL, hole);
            res->length += hole;
        } else if (n > 0) {
            size_t skip = 0;

            /* The head goes aside, and as a hole for now. */
            if (hold_head && res->length < PUMP_HEAD) {
                skip = PUMP_HEAD - res->length;
                if (skip > (size_t)n)
                    skip = n;
                memcpy(res->head + res->length, buf, skip);
                res->head_len = res->length + skip;
                if (virStreamSendHole(up, skip, 0) < 0) {
                    pump_fail(err, errlen, "writing the destination");
                    goto out;
                }
            }
            if (up && sparse_send(up, buf + skip, n - skip, &res->data,
                                  &res->zeros) < 0) {
                pump_fail(err, errlen, "writing the destination");
                goto out;
            }
            if (!up)
                res->data += n;
            digest_feed(dg, buf, n);
            res->length += n;
        } else if (n == 0) {
            break;
        } else {
            pump_fail(err, errlen, "reading the source");
            goto out;
        }
        if (progress)
            progress(opaque, res->length);
    }
    rc = 0;
 out:
    free(buf);
    return rc;
}

int
pump_copy(virConnectPtr sconn, virStorageVolPtr src, virConnectPtr dconn,
          virStorageVolPtr dst, bool hold_head, pump_progress_fn progress,
          void *opaque, struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr down = virStreamNew(sconn, 0);
    virStreamPtr up = virStreamNew(dconn, 0);
    struct digest *dg = digest_new();
    virStorageVolInfo info;
    unsigned char raw[DIGEST_LEN];

    memset(res, 0, sizeof(*res));
    if (!down || !up || !dg) {
        pump_fail(err, errlen, "cannot set up the streams");
        goto error;
    }
    if (virStorageVolDownload(src, down, 0, 0,
                              VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot download volume '%s'",
                  virStorageVolGetName(src));
        goto error;
    }
    if (virStorageVolUpload(dst, up, 0, 0,
                            VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot upload to volume '%s'",
                  virStorageVolGetName(dst));
        goto error;
    }
    if (pump_loop(down, up, hold_head, dg, progress, opaque, res, err,
                  errlen) < 0)
        goto error;
    if (virStreamFinish(down) < 0) {
        pump_fail(err, errlen, "download of '%s' did not complete",
                  virStorageVolGetName(src));
        goto error;
    }
    virStreamFree(down);
    down = NULL;
    if (virStreamFinish(up) < 0) {
        pump_fail(err, errlen, "upload to '%s' did not complete",
                  virStorageVolGetName(dst));
        goto error;
    }
    virStreamFree(up);
    up = NULL;

    /* A trailing hole may not have extended the file: make the length
     * right. */
    if (virStorageVolGetInfoFlags(dst, &info,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) == 0 &&
        info.allocation < res->length &&
        virStorageVolResize(dst, res->length, 0) < 0) {
        pump_fail(err, errlen, "cannot extend '%s' to %llu bytes",
                  virStorageVolGetName(dst),
                  (unsigned long long)res->length);
        goto error;
    }
    digest_final(dg, raw, res->hex);
    digest_free(dg);
    return 0;

 error:
    pump_drop(down);
    pump_drop(up);
    digest_free(dg);
    return -1;
}

int
pump_digest(virConnectPtr conn, virStorageVolPtr vol,
            pump_progress_fn progress, void *opaque,
            struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr down = virStreamNew(conn, 0);
    struct digest *dg = digest_new();
    unsigned char raw[DIGEST_LEN];

    memset(res, 0, sizeof(*res));
    if (!down || !dg) {
        pump_fail(err, errlen, "cannot set up the stream");
        goto error;
    }
    if (virStorageVolDownload(vol, down, 0, 0,
                              VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot download volume '%s'",
                  virStorageVolGetName(vol));
        goto error;
    }
    if (pump_loop(down, NULL, false, dg, progress, opaque, res, err,
                  errlen) < 0)
        goto error;
    if (virStreamFinish(down) < 0) {
        pump_fail(err, errlen, "download of '%s' did not complete",
                  virStorageVolGetName(vol));
        goto error;
    }
    virStreamFree(down);
    digest_final(dg, raw, res->hex);
    digest_free(dg);
    return 0;

 error:
    pump_drop(down);
    digest_free(dg);
    return -1;
}

int
pump_put_head(virConnectPtr dconn, virStorageVolPtr dst,
              const struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr up = virStreamNew(dconn, 0);

    if (!up ||
        virStorageVolUpload(dst, up, 0, res->head_len, 0) < 0 ||
        sparse_send_data(up, res->head, res->head_len) < 0 ||
        virStreamFinish(up) < 0) {
        pump_fail(err, errlen, "cannot write the head of '%s'",
                  virStorageVolGetName(dst));
        pump_drop(up);
        return -1;
    }
    virStreamFree(up);
    return 0;
}
