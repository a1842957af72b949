/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * names: the reversible encoding between instance-tree paths and volume
 * names.  Pure code, no libvirt, no FUSE.
 *
 * A file FILE in directory DIR (DIR relative to the mount, possibly nested,
 * "" for the top level) is the disks-pool volume
 *
 *     esc(DIR) "_" FILE
 *
 * where esc() writes '%' as "%25", '_' as "%5F" and '/' as "%2F", and FILE
 * is verbatim.  The first '_' of a volume name therefore always separates
 * the two parts, so "<uuid>_resize/disk" ("<uuid>%5Fresize_disk") and
 * "<uuid>/resize_disk" ("<uuid>_resize_disk") never collide.  An empty FILE
 * ("<uuid>_") marks a directory that exists with nothing in it.
 */
#ifndef POOLFS_NAMES_H
#define POOLFS_NAMES_H

#include <stddef.h>

/* Longest volume name we create: a file name in the pool's directory. */
#define NAMES_VOL_MAX 255

/* Top-level names the tree reserves for itself. */
#define NAMES_BASE_DIR "_base"
#define NAMES_UNMAPPED_DIR "_unmapped"

/*
 * Check that COMPONENT (one path component from the kernel) may be part of
 * a volume name.  Returns 0, -EINVAL (".", "..", '/', control characters,
 * empty) or -ENAMETOOLONG.
 */
int names_check_component(const char *component);

/*
 * Encode DIR (no leading or trailing '/', "" for the top level) and FILE
 * ("" for a directory marker) into OUT of OUTLEN bytes.  Returns 0,
 * -EINVAL when a component cannot be encoded, -ENAMETOOLONG when the result
 * would exceed NAMES_VOL_MAX.
 */
int names_encode(const char *dir, const char *file, char *out, size_t outlen);

/*
 * Decode volume name VOL into *DIR and *FILE (malloc'ed; *FILE is "" for a
 * directory marker).  Returns 0, or -EINVAL when VOL is not a name
 * names_encode() could have produced: such volumes are shown under
 * NAMES_UNMAPPED_DIR instead.  -ENOMEM on allocation failure.
 */
int names_decode(const char *vol, char **dir, char **file);

/*
 * Split tree path PATH ("/a/b/c") into its parent directory, relative and
 * without slashes at either end ("a/b"), and last component ("c"), written
 * into DIR and BASE of the given sizes.  Returns 0 or -ENAMETOOLONG.
 */
int names_split(const char *path, char *dir, size_t dirlen,
                char *base, size_t baselen);

#endif /* POOLFS_NAMES_H */
