/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migrate/volxml.c: which base image a backing path names (through a mount,
 * MOUNT/_base/NAME, or the base pool's own directory, BASE_DIR/NAME, as a
 * volume made with libvirt is backed), and a pool's target path.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "volxml.h"

#define BASE_DIR "/var/lib/nova/pools/base"

/* BACKING against DIR: WANT (NULL: names no base image), and by_dir. */
static void
expect(const char *backing, const char *dir, const char *want, bool by_dir)
{
    bool got_dir = !by_dir;
    char *got = volxml_base_name_in(backing, dir, &got_dir);

    CHECK(want ? got && strcmp(got, want) == 0 : got == NULL,
          "%s in %s: got %s, want %s", backing, dir ? dir : "(none)",
          got ? got : "NULL", want ? want : "NULL");
    CHECK(!got || got_dir == by_dir, "%s: by_dir %d", backing, got_dir);
    free(got);
}

int
main(void)
{
    char *t;

    /* Through a mount: any MOUNT, one component after _base/. */
    expect("/var/lib/nova/instances/_base/abc", NULL, "abc", false);
    expect("/var/lib/nova/instances/_base/abc", BASE_DIR, "abc", false);
    expect("/mnt/x/_base/ephemeral_1_0706d66", BASE_DIR,
           "ephemeral_1_0706d66", false);
    expect("/var/lib/nova/instances/_base/", BASE_DIR, NULL, false);
    expect("/var/lib/nova/instances/_base/a/b", NULL, NULL, false);
    /* The base pool's own path, trailing slashes aside. */
    expect(BASE_DIR "/abc", BASE_DIR, "abc", true);
    expect(BASE_DIR "/abc", BASE_DIR "/", "abc", true);
    expect(BASE_DIR "/abc", BASE_DIR "//", "abc", true);
    expect(BASE_DIR "/abc", NULL, NULL, false);
    /* Not in it: beside it, below it, its parent, its prefix. */
    expect(BASE_DIR "x/abc", BASE_DIR, NULL, false);
    expect(BASE_DIR "/sub/abc", BASE_DIR, NULL, false);
    expect(BASE_DIR "/", BASE_DIR, NULL, false);
    expect(BASE_DIR "/..", BASE_DIR, NULL, false);
    expect(BASE_DIR "/.", BASE_DIR, NULL, false);
    expect(BASE_DIR, BASE_DIR, NULL, false);
    expect("/abc", "/", NULL, false);
    expect("/var/lib/nova/pools/disks/abc", BASE_DIR, NULL, false);
    /* A pool directory that itself ends in _base: its own path. */
    expect("/srv/_base/abc", "/srv/_base", "abc", true);
    expect("/srv/x/_base/abc", "/srv/_base", "abc", false);

    t = volxml_pool_target("<pool type='dir'><name>b</name><target>"
                           "<path>" BASE_DIR "</path></target></pool>");
    CHECK(t && strcmp(t, BASE_DIR) == 0, "dir pool target: %s", t ? t : "NULL");
    free(t);
    t = volxml_pool_target("<pool type='logical'><target><path>/dev/vg"
                           "</path></target></pool>");
    CHECK(t && strcmp(t, "/dev/vg") == 0, "logical pool target");
    free(t);
    t = volxml_pool_target("<pool type='rbd'><source><name>p</name>"
                           "</source></pool>");
    CHECK(t == NULL, "rbd pool: no target path");
    free(t);
    CHECK(volxml_pool_target("<pool") == NULL, "bad XML");

    return check_done();
}
