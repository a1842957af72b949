/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE passthrough on the wire (fs/ptwire.c): the kernel's INIT offer read,
 * the INIT and open replies libfuse 3.14 builds patched (and left alone
 * where they cannot carry it), and the rule that picks an open's mode.
 */
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ptwire.h"

#define FLAGS2_PASSTHROUGH (1u << 5)    /* FUSE_PASSTHROUGH, 1ULL << 37 */
#define FOPEN_PASSTHROUGH (1u << 7)

struct init_req {
    struct fuse_in_header h;
    struct fuse_init_in in;
};

static void
test_init_offer(void)
{
    struct init_req r;

    memset(&r, 0, sizeof(r));
    r.h.len = sizeof(r);
    r.h.opcode = FUSE_INIT;
    r.h.unique = 2;
    r.in.major = 7;
    r.in.minor = 45;
    r.in.flags = FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE;
    r.in.flags2 = FLAGS2_PASSTHROUGH;
    CHECK(ptwire_init_offers(&r, sizeof(r)), "a 6.9 INIT offers it");
    CHECK(!ptwire_init_offers(&r, sizeof(r) - 1), "a short read does not");
    r.in.flags2 = 0;
    CHECK(!ptwire_init_offers(&r, sizeof(r)), "no flags2 bit, no offer");
    r.in.flags2 = FLAGS2_PASSTHROUGH;
    r.in.flags &= ~FUSE_INIT_EXT;
    CHECK(!ptwire_init_offers(&r, sizeof(r)), "flags2 unread without INIT_EXT");
    r.in.flags |= FUSE_INIT_EXT;
    r.h.opcode = FUSE_OPEN;
    CHECK(!ptwire_init_offers(&r, sizeof(r)), "not an INIT");
}

/* The reply libfuse 3.14's do_init sends: 64 bytes (its 7.38 struct). */
static void
init_reply(struct fuse_init_out *out, uint32_t flags)
{
    memset(out, 0, sizeof(*out));
    out->major = 7;
    out->minor = 38;
    out->flags = flags;
    out->max_write = 1 << 20;
    out->max_pages = 256;
}

static void
test_init_patch(void)
{
    struct fuse_out_header h = { .unique = 2 };
    struct fuse_init_out out, before;
    struct iovec iov[2] = { { &h, sizeof(h) }, { &out, sizeof(out) } };
    uint32_t depth;

    CHECK(sizeof(out) == 64, "fuse_init_out is %zu bytes, not 64", sizeof(out));
    init_reply(&out, FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_MAX_PAGES);
    before = out;
    CHECK(ptwire_patch_init(iov, 2), "patched");
    CHECK(out.flags2 == FLAGS2_PASSTHROUGH, "flags2 %#x", out.flags2);
    memcpy(&depth, (char *)&out + 36, sizeof(depth));
    CHECK(depth == 1, "max_stack_depth %u", depth);
    CHECK(out.flags == before.flags && out.max_write == before.max_write &&
          out.max_pages == before.max_pages && out.minor == 38,
          "the rest of the reply changed");

    init_reply(&out, FUSE_INIT_EXT | FUSE_WRITEBACK_CACHE);
    before = out;
    CHECK(!ptwire_patch_init(iov, 2), "not with the writeback cache");
    CHECK(memcmp(&out, &before, sizeof(out)) == 0, "touched anyway");

    init_reply(&out, FUSE_ASYNC_READ);
    CHECK(!ptwire_patch_init(iov, 2), "not without INIT_EXT");
    CHECK(out.flags2 == 0, "touched anyway");

    init_reply(&out, FUSE_INIT_EXT);
    iov[1].iov_len = FUSE_COMPAT_22_INIT_OUT_SIZE;
    CHECK(!ptwire_patch_init(iov, 2), "not in a 7.22 reply");
    CHECK(!ptwire_patch_init(iov, 1), "not without a payload");
}

static void
test_open_patch(void)
{
    struct fuse_out_header h = { .unique = 9 };
    struct fuse_open_out open = { .fh = 0x1234,
                                  .open_flags = FOPEN_KEEP_CACHE |
                                                FOPEN_NOFLUSH };
    struct iovec iov[2] = { { &h, sizeof(h) }, { &open, sizeof(open) } };
    struct {
        struct fuse_entry_out e;
        struct fuse_open_out o;
    } create;
    int32_t id;

    CHECK(ptwire_patch_open(iov, 2, 7), "OPEN patched");
    CHECK(open.open_flags == (FOPEN_PASSTHROUGH | FOPEN_NOFLUSH),
          "open_flags %#x", open.open_flags);
    memcpy(&id, &open.padding, sizeof(id));
    CHECK(id == 7 && open.fh == 0x1234, "backing_id %d, fh %#llx", id,
          (unsigned long long)open.fh);

    open.open_flags = FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE;
    CHECK(ptwire_patch_open(iov, 2, 8), "OPEN patched");
    CHECK(open.open_flags == FOPEN_PASSTHROUGH, "open_flags %#x",
          open.open_flags);

    memset(&create, 0, sizeof(create));
    create.e.nodeid = 42;
    create.e.attr.size = 4096;
    create.o.fh = 99;
    create.o.open_flags = FOPEN_KEEP_CACHE;
    iov[1].iov_base = &create;
    iov[1].iov_len = sizeof(create);
    CHECK(ptwire_patch_open(iov, 2, 3), "CREATE patched");
    memcpy(&id, &create.o.padding, sizeof(id));
    CHECK(create.o.open_flags == FOPEN_PASSTHROUGH && id == 3 &&
          create.o.fh == 99, "CREATE's open part");
    CHECK(create.e.nodeid == 42 && create.e.attr.size == 4096,
          "CREATE's entry part changed");

    iov[1].iov_len = sizeof(create) - 8;
    CHECK(!ptwire_patch_open(iov, 2, 3), "a reply of another shape");
}

static void
test_choose(void)
{
    /* first open: buffered passthrough, O_DIRECT poolfs */
    CHECK(ptwire_choose(0, 0, false), "first buffered open");
    CHECK(!ptwire_choose(0, 0, true), "first O_DIRECT open");
    /* the others follow */
    CHECK(ptwire_choose(1, 0, true), "O_DIRECT joins passthrough");
    CHECK(ptwire_choose(2, 0, false), "buffered joins passthrough");
    CHECK(!ptwire_choose(0, 1, false), "buffered joins poolfs");
    CHECK(!ptwire_choose(0, 3, true), "O_DIRECT joins poolfs");
}

int
main(void)
{
    test_init_offer();
    test_init_patch();
    test_open_patch();
    test_choose();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ptwire: all checks passed\n");
    return 0;
}
