/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static bool
names_bad_char(unsigned char c)
{
    /* libvirt's dir pools skip files with control characters on refresh,
     * so such a volume would silently vanish: refuse it up front. */
    return c < 0x20 || c == 0x7f || c == '/';
}

int
names_check_component(const char *component)
{
    size_t len = strlen(component);
    size_t i;

    if (len == 0 || strcmp(component, ".") == 0 ||
        strcmp(component, "..") == 0)
        return -EINVAL;
    if (len > NAMES_VOL_MAX)
        return -ENAMETOOLONG;
    for (i = 0; i < len; i++)
        if (names_bad_char((unsigned char)component[i]))
            return -EINVAL;
    return 0;
}

/* Check every component of DIR ("" is the top level and is fine). */
static int
names_check_dir(const char *dir)
{
    const char *p = dir;

    if (*dir == '\0')
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        char comp[NAMES_VOL_MAX + 1];
        int rc;

        if (len == 0)
            return -EINVAL;
        if (len > NAMES_VOL_MAX)
            return -ENAMETOOLONG;
        memcpy(comp, p, len);
        comp[len] = '\0';
        if ((rc = names_check_component(comp)) < 0)
            return rc;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

int
names_encode(const char *dir, const char *file, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p;
    int rc;

    if ((rc = names_check_dir(dir)) < 0)
        return rc;
    if (*file && (rc = names_check_component(file)) < 0)
        return rc;

    for (p = dir; *p; p++) {
        const char *esc = NULL;

        switch (*p) {
        case '%': esc = "%25"; break;
        case '_': esc = "%5F"; break;
        case '/': esc = "%2F"; break;
        }
        if (esc) {
            if (n + 3 > NAMES_VOL_MAX)
                return -ENAMETOOLONG;
            memcpy(out + n, esc, 3);
            n += 3;
        } else {
            if (n + 1 > NAMES_VOL_MAX)
                return -ENAMETOOLONG;
            out[n++] = *p;
        }
    }
    if (n + 1 + strlen(file) > NAMES_VOL_MAX)
        return -ENAMETOOLONG;
    if (n + 1 + strlen(file) + 1 > outlen)
        return -ENAMETOOLONG;
    out[n++] = '_';
    strcpy(out + n, file);
    return 0;
}

static int
names_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
names_decode(const char *vol, char **dirp, char **filep)
{
    const char *sep = strchr(vol, '_');
    char *dir = NULL;
    char *file = NULL;
    size_t i, n = 0;
    int rc = -EINVAL;

    *dirp = *filep = NULL;
    if (!sep || strlen(vol) > NAMES_VOL_MAX)
        return -EINVAL;

    if (!(dir = malloc(sep - vol + 1)) || !(file = strdup(sep + 1))) {
        rc = -ENOMEM;
        goto error;
    }
    for (i = 0; vol + i < sep; i++) {
        char c = vol[i];

        if (c == '%') {
            int hi, lo;

            if (vol + i + 2 >= sep ||
                (hi = names_hexval(vol[i + 1])) < 0 ||
                (lo = names_hexval(vol[i + 2])) < 0)
                goto error;
            c = (char)(hi * 16 + lo);
            /* Only what names_encode() escapes may be escaped, so that
             * every path has exactly one volume name. */
            if (c != '%' && c != '_' && c != '/')
                goto error;
            i += 2;
        } else if (names_bad_char((unsigned char)c)) {
            goto error;
        }
        dir[n++] = c;
    }
    dir[n] = '\0';

    if (names_check_dir(dir) < 0)
        goto error;
    if (*file && names_check_component(file) < 0)
        goto error;
    /* A top-level directory marker ("_") would name the root itself. */
    if (*dir == '\0' && *file == '\0')
        goto error;

    *dirp = dir;
    *filep = file;
    return 0;

 error:
    free(dir);
    free(file);
    return rc;
}

int
names_split(const char *path, char *dir, size_t dirlen,
            char *base, size_t baselen)
{
    const char *slash;
    size_t len;

    while (*path == '/')
        path++;
    slash = strrchr(path, '/');
    if (!slash) {
        if (dirlen < 1 || strlen(path) + 1 > baselen)
            return -ENAMETOOLONG;
        dir[0] = '\0';
        strcpy(base, path);
        return 0;
    }
    len = slash - path;
    if (len + 1 > dirlen || strlen(slash + 1) + 1 > baselen)
        return -ENAMETOOLONG;
    memcpy(dir, path, len);
    dir[len] = '\0';
    strcpy(base, slash + 1);
    return 0;
}
