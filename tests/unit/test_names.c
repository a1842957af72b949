/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for pool/names.c: the path <-> volume name encoding. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "names.h"

static void
expect_encode(const char *dir, const char *file, const char *want)
{
    char out[NAMES_VOL_MAX + 1];
    int rc = names_encode(dir, file, out, sizeof(out));

    CHECK(rc == 0, "encode('%s','%s') = %d", dir, file, rc);
    if (rc == 0)
        CHECK(strcmp(out, want) == 0, "encode('%s','%s') = '%s', want '%s'",
              dir, file, out, want);
}

static void
expect_encode_err(const char *dir, const char *file, int err)
{
    char out[NAMES_VOL_MAX + 1];
    int rc = names_encode(dir, file, out, sizeof(out));

    CHECK(rc == -err, "encode('%s','%s') = %d, want %d", dir, file, rc, -err);
}

static void
expect_decode(const char *vol, const char *dir, const char *file)
{
    char *d, *f;
    int rc = names_decode(vol, &d, &f);

    CHECK(rc == 0, "decode('%s') = %d", vol, rc);
    if (rc != 0)
        return;
    CHECK(strcmp(d, dir) == 0 && strcmp(f, file) == 0,
          "decode('%s') = ('%s','%s'), want ('%s','%s')", vol, d, f, dir, file);
    free(d);
    free(f);
}

static void
expect_undecodable(const char *vol)
{
    char *d, *f;
    int rc = names_decode(vol, &d, &f);

    CHECK(rc == -EINVAL, "decode('%s') = %d, want -EINVAL", vol, rc);
}

/* Every encodable (dir, file) pair must come back unchanged. */
static void
expect_roundtrip(const char *dir, const char *file)
{
    char out[NAMES_VOL_MAX + 1];
    char *d, *f;

    if (names_encode(dir, file, out, sizeof(out)) != 0) {
        CHECK(0, "encode('%s','%s') failed", dir, file);
        return;
    }
    if (names_decode(out, &d, &f) != 0) {
        CHECK(0, "decode(encode('%s','%s')='%s') failed", dir, file, out);
        return;
    }
    CHECK(strcmp(d, dir) == 0 && strcmp(f, file) == 0,
          "roundtrip ('%s','%s') -> '%s' -> ('%s','%s')", dir, file, out, d, f);
    free(d);
    free(f);
}

static void
test_nova_names(void)
{
    const char *uuid = "6f3c1a2e-0b4d-4c5e-9f21-3a7b8c9d0e1f";
    const char *files[] = { "disk", "disk.local", "disk.eph0", "disk.swap",
                            "disk.config", "disk.info", "console.log",
                            "kernel", "ramdisk", "libvirt.xml" };
    char want[NAMES_VOL_MAX + 1];
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(want, sizeof(want), "%s_%s", uuid, files[i]);
        /* The spec's {uuid}_{name}, exactly. */
        expect_encode(uuid, files[i], want);
        expect_decode(want, uuid, files[i]);
    }
    expect_encode("", "compute_nodes", "_compute_nodes");
    expect_decode("_compute_nodes", "", "compute_nodes");
    expect_encode("locks", "nova-storage-registry-lock", "locks_nova-storage-registry-lock");
    expect_encode(uuid, "", "6f3c1a2e-0b4d-4c5e-9f21-3a7b8c9d0e1f_");
}

static void
test_no_collisions(void)
{
    /* The example: {uuid}_resize/disk vs {uuid}/resize_disk. */
    expect_encode("abc_resize", "disk", "abc%5Fresize_disk");
    expect_encode("abc", "resize_disk", "abc_resize_disk");
    expect_decode("abc%5Fresize_disk", "abc_resize", "disk");
    expect_decode("abc_resize_disk", "abc", "resize_disk");
    expect_encode("abc_del", "disk", "abc%5Fdel_disk");
    /* Nested directories (Nova's snapshots/tmpXXXX/). */
    expect_encode("snapshots/tmp1", "snap", "snapshots%2Ftmp1_snap");
    expect_decode("snapshots%2Ftmp1_snap", "snapshots/tmp1", "snap");
    expect_encode("a%b", "c", "a%25b_c");
    expect_roundtrip("a%5Fb", "c%5F");
    expect_roundtrip("_", "_");
    expect_roundtrip("x/_y_/%z", "f_g%h");
    expect_roundtrip("", "_leading");
    expect_roundtrip(".hidden", ".file");
    expect_roundtrip("d", "");
}

static void
test_refused(void)
{
    char longname[300];

    expect_encode_err("abc", "..", EINVAL);
    expect_encode_err("abc", ".", EINVAL);
    expect_encode_err("..", "disk", EINVAL);
    expect_encode_err("a/../b", "disk", EINVAL);
    expect_encode_err("a//b", "disk", EINVAL);
    expect_encode_err("abc", "new\nline", EINVAL);
    expect_encode_err("abc", "sl/ash", EINVAL);
    memset(longname, 'x', 256);
    longname[256] = '\0';
    expect_encode_err("abc", longname, ENAMETOOLONG);
    /* Escaping can push a name over the limit by itself. */
    memset(longname, '_', 90);
    longname[90] = '\0';
    expect_encode_err(longname, "disk", ENAMETOOLONG);
    /* 255 bytes is the limit, inclusive. */
    memset(longname, 'x', 251);
    longname[251] = '\0';
    expect_encode_err("abcd", longname, ENAMETOOLONG);
    expect_roundtrip("abc", longname);
    expect_roundtrip("abcd", longname + 1);
}

static void
test_undecodable(void)
{
    expect_undecodable("nounderscore");
    expect_undecodable("_");           /* would be the root itself */
    expect_undecodable("abc_..");
    expect_undecodable("abc_.");
    expect_undecodable("%ZZ_disk");
    expect_undecodable("%5f_disk");    /* lower case: not what we write */
    expect_undecodable("%41_disk");    /* escapes only %, _ and / */
    expect_undecodable("%2Fabs_disk"); /* leading '/' in the directory */
    expect_undecodable("a%2F..%2Fb_disk");
    expect_undecodable("a%2F%2Fb_disk");
    expect_undecodable("%5_disk");
    expect_undecodable("%_disk");
}

static void
test_split(void)
{
    char dir[512], base[256];

    CHECK(names_split("/a/b/c", dir, sizeof(dir), base, sizeof(base)) == 0 &&
          strcmp(dir, "a/b") == 0 && strcmp(base, "c") == 0, "split /a/b/c");
    CHECK(names_split("/top", dir, sizeof(dir), base, sizeof(base)) == 0 &&
          strcmp(dir, "") == 0 && strcmp(base, "top") == 0, "split /top");
}

int
main(void)
{
    test_nova_names();
    test_no_collisions();
    test_refused();
    test_undecodable();
    test_split();
    return check_done();
}
