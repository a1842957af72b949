/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <linux/fuse.h>
#include <string.h>

#include "ptwire.h"

/* Linux 6.9's ABI, newer than Debian 12's <linux/fuse.h>. */
#define PT_FLAGS2_PASSTHROUGH (1u << (37 - 32))    /* FUSE_PASSTHROUGH */
#define PT_FOPEN_PASSTHROUGH (1u << 7)
/* fuse_init_out: max_stack_depth follows flags2 (7.40). */
#define PT_INIT_OUT_STACK_DEPTH 36

bool
ptwire_init_offers(const void *buf, size_t len)
{
    const struct fuse_in_header *in = buf;
    struct fuse_init_in init;

    if (len < sizeof(*in) + sizeof(init) || in->opcode != FUSE_INIT)
        return false;
    memcpy(&init, in + 1, sizeof(init));
    return init.major == 7 && (init.flags & FUSE_INIT_EXT) &&
           (init.flags2 & PT_FLAGS2_PASSTHROUGH);
}

bool
ptwire_patch_init(struct iovec *iov, int count)
{
    struct fuse_init_out *out;
    uint32_t depth = 1;

    if (count != 2 || iov[1].iov_len < PT_INIT_OUT_STACK_DEPTH + sizeof(depth))
        return false;
    out = iov[1].iov_base;
    if (!(out->flags & FUSE_INIT_EXT) || (out->flags & FUSE_WRITEBACK_CACHE))
        return false;
    out->flags2 |= PT_FLAGS2_PASSTHROUGH;
    memcpy((char *)out + PT_INIT_OUT_STACK_DEPTH, &depth, sizeof(depth));
    return true;
}

bool
ptwire_patch_open(struct iovec *iov, int count, int32_t id)
{
    struct fuse_open_out *out;
    size_t len = count == 2 ? iov[1].iov_len : 0;

    if (len != sizeof(*out) &&
        len != sizeof(struct fuse_entry_out) + sizeof(*out))
        return false;
    out = (void *)((char *)iov[1].iov_base + len - sizeof(*out));
    out->open_flags = PT_FOPEN_PASSTHROUGH | (out->open_flags & FOPEN_NOFLUSH);
    /* backing_id, where 3.14's headers have padding */
    memcpy(&out->padding, &id, sizeof(out->padding));
    return true;
}

bool
ptwire_choose(unsigned pt_refs, unsigned served_refs, bool direct)
{
    if (pt_refs > 0)
        return true;
    return served_refs == 0 && !direct;
}
