/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ptwire: the parts of FUSE passthrough (Linux 6.9) that are bytes on
 * /dev/fuse, and the rule that picks an open's mode.  Pure code, unit-tested
 * (tests/unit/test_ptwire.c); passthrough.c puts it between libfuse and
 * the kernel.
 */
#ifndef POOLFS_PTWIRE_H
#define POOLFS_PTWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Whether request BUF (LEN bytes, as read from /dev/fuse) is an INIT in
 * which the kernel offers passthrough. */
bool ptwire_init_offers(const void *buf, size_t len);

/*
 * Turn passthrough on in an INIT reply (IOV[0] the out header, IOV[1] the
 * fuse_init_out libfuse 3.14 sends): FUSE_PASSTHROUGH in flags2 and a
 * backing stack depth of 1.  False, the reply untouched, when it cannot
 * carry it: no FUSE_INIT_EXT (the kernel would not read flags2), the
 * writeback cache asked for (the kernel would ignore passthrough), or a
 * reply too short to hold max_stack_depth.
 */
bool ptwire_patch_init(struct iovec *iov, int count);

/*
 * Open the file of an OPEN or CREATE reply (IOV[1]: fuse_open_out, or
 * fuse_entry_out then fuse_open_out) in passthrough mode onto backing file
 * ID: FOPEN_PASSTHROUGH, with no other open flag but FOPEN_NOFLUSH (the
 * kernel refuses keep_cache and the like with it).  False, untouched, for
 * a reply of another shape.
 */
bool ptwire_patch_open(struct iovec *iov, int count, int32_t id);

/*
 * The mode of a new open of a file that has PT_REFS handles in
 * passthrough mode and DIO_REFS on poolfs's direct_io path: the first open
 * decides (passthrough, unless it is O_DIRECT), and the others follow
 * while any is open.  True: passthrough.
 */
bool ptwire_choose(unsigned pt_refs, unsigned served_refs, bool direct);

#endif /* POOLFS_PTWIRE_H */
