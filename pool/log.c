/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <libvirt/virterror.h>

#include "internal.h"

void
pool_log(const char *fmt, ...)
{
    va_list ap;
    char msg[1024];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* stderr is /dev/null once daemonised; syslog keeps the message. */
    fprintf(stderr, "poolfs: %s\n", msg);
    syslog(LOG_ERR, "%s", msg);
}

const char *
pool_virt_message(void)
{
    virErrorPtr err = virGetLastError();

    return err && err->message ? err->message : "unknown libvirt error";
}

int
pool_virt_errno(void)
{
    virErrorPtr err = virGetLastError();

    if (!err)
        return EIO;
    switch (err->code) {
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_STORAGE_POOL:
        return ENOENT;
    case VIR_ERR_STORAGE_VOL_EXIST:
        return EEXIST;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
        return EOPNOTSUPP;
    case VIR_ERR_INVALID_ARG:
        return EINVAL;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_OPERATION_FAILED:
        return EIO;
    case VIR_ERR_SYSTEM_ERROR:
        /* The connection's socket failing (EPIPE, ECONNRESET,
         * ETIMEDOUT, EHOSTUNREACH, ...) is, for a file, an I/O error:
         * what the README promises while libvirtd is away. */
        if (err->domain == VIR_FROM_RPC)
            return EIO;
        return err->int1 > 0 ? err->int1 : EIO;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_RPC:
        return EIO;
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_ACCESS_DENIED:
        return EACCES;
    default:
        /* libvirt reports "not enough space" and friends as strings. */
        if (err->message && strstr(err->message, "space"))
            return ENOSPC;
        return EIO;
    }
}

void
pool_why_set(struct pool_why *why, int err, const char *fmt, ...)
{
    va_list ap;

    if (why->err)
        return;
    why->err = err;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
}

void
pool_why_take(struct pool_why *why)
{
    pool_why_set(why, pool_virt_errno(), "%s", pool_virt_message());
}
