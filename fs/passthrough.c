/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * passthrough: FUSE passthrough under libfuse 3.14.
 *
 * Since Linux 6.9 a FUSE server can hand the kernel a file of its own
 * (FUSE_DEV_IOC_BACKING_OPEN) and open a FUSE file onto it
 * (FOPEN_PASSTHROUGH with the backing id in the open reply): reads,
 * writes and mmap of that file then go straight to the backing file in the
 * kernel.  libfuse learned it in 3.16; Debian 12 has 3.14.  The wire
 * protocol is the kernel's ABI, so poolfs does the two parts libfuse 3.14
 * cannot say itself, in the reads and writes of /dev/fuse that libfuse
 * lets a server take over (fuse_session_custom_io):
 *
 * - the INIT request: whether the kernel offers FUSE_PASSTHROUGH (flags2);
 *   the INIT reply: FUSE_PASSTHROUGH set and a max_stack_depth of 1 (the
 *   volumes' files are on a plain filesystem; the mount may itself sit
 *   under an overlay).  The kernel takes it only without
 *   FUSE_WRITEBACK_CACHE, which init() then leaves off.
 * - an OPEN or CREATE reply this thread is sending with a backing id
 *   pending (pt_open): open_flags become FOPEN_PASSTHROUGH and the id
 *   goes into fuse_open_out's backing_id (its padding in 3.14's headers).
 *
 * A worker thread of libfuse's loop reads a request, handles it and sends
 * its reply, all in that thread: the request's unique number, kept per
 * thread at read time, ties the reply to it.
 *
 * The kernel keeps one backing file per FUSE inode while it is open in
 * passthrough mode (another id for it is EBUSY), refuses an open of such
 * an inode that is not in passthrough mode (EIO), and refuses passthrough
 * while the inode has opens that use its page cache (ETXTBSY).
 * Registrations are therefore per volume file (st_dev, st_ino), counted,
 * and closed with the last handle; and while a file has handles of one
 * mode, every new open of it takes the same mode (pt_open).  The kernel
 * drops an inode's mode when its last file closes, before RELEASE reaches
 * poolfs: the counts here can only be high, which never lets a mix
 * through.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "passthrough.h"
#include "ptwire.h"
#include "pool.h"

/* Linux 6.9's ABI, newer than Debian 12's <linux/fuse.h>. */
struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

struct pt_backing {
    struct pt_backing *next;
    dev_t dev;
    ino_t ino;
    int id;                     /* the kernel's backing id, 0 if none */
    unsigned pt_refs;           /* handles in passthrough mode */
    unsigned served_refs;       /* handles poolfs serves */
};

static struct {
    pthread_mutex_t lock;
    int devfd;                  /* /dev/fuse, for the ioctls */
    bool offered;
    bool enable;
    bool enabled;
    int refused;                /* the errno last said for BACKING_OPEN */
    bool verbose;               /* -d: say when it is on */
    struct pt_backing *files;
} pt = { .lock = PTHREAD_MUTEX_INITIALIZER, .devfd = -1 };

/* The request this thread read last, and the backing id its open reply
 * is to carry (0: none). */
static __thread struct {
    uint64_t unique;
    uint32_t opcode;
    int backing_id;
} pt_req;

static ssize_t
pt_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = read(fd, buf, len);
    const struct fuse_in_header *in = buf;

    (void)userdata;
    pt_req.backing_id = 0;
    if (n < (ssize_t)sizeof(*in))
        return n;
    pt_req.unique = in->unique;
    pt_req.opcode = in->opcode;
    if (in->opcode == FUSE_INIT)
        pt.offered = ptwire_init_offers(buf, n);
    return n;
}

static ssize_t
pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const struct fuse_out_header *out = iov[0].iov_base;

    (void)userdata;
    if (count >= 1 && iov[0].iov_len >= sizeof(*out) &&
        out->unique == pt_req.unique && out->unique != 0) {
        if (out->error == 0 && pt_req.opcode == FUSE_INIT && pt.enable &&
            ptwire_patch_init(iov, count)) {
            pt.enabled = true;
            if (pt.verbose)
                fprintf(stderr, "poolfs: passthrough: on (the kernel reads "
                        "and writes the volumes' files itself)\n");
        } else if (out->error == 0 && pt_req.backing_id > 0 &&
                   (pt_req.opcode == FUSE_OPEN ||
                    pt_req.opcode == FUSE_CREATE)) {
            if (!ptwire_patch_open(iov, count, pt_req.backing_id))
                pool_log("passthrough: an open reply could not be marked "
                         "for passthrough: the kernel serves that open "
                         "through poolfs, and later opens of the file may "
                         "fail with EIO until it is closed");
        }
        pt_req.backing_id = 0;
    }
    return writev(fd, iov, count);
}

static ssize_t
pt_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
               unsigned int flags, void *userdata)
{
    (void)userdata;
    return splice(fdin, offin, fdout, offout, len, flags);
}

int
pt_install(struct fuse_session *se, bool verbose)
{
    /* No splice_receive: requests are read into memory, as before (a
     * 1 MiB write does not fit the pipe libfuse would splice it into). */
    static const struct fuse_custom_io io = {
        .read = pt_read,
        .writev = pt_writev,
        .splice_send = pt_splice_send,
    };
    int fd = fuse_session_fd(se);

    pt.devfd = fd;
    pt.verbose = verbose;
    return fuse_session_custom_io(se, &io, fd);
}

/* CAP_SYS_ADMIN in the initial user namespace, which the kernel asks of
 * a server that registers backing files. */
static bool
pt_capable(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long eff = 0;
    bool found = false;
    unsigned a, b, c;

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            found = true;
    fclose(f);
    if (!found || !(eff & (1ULL << 21)))        /* CAP_SYS_ADMIN */
        return false;
    /* The initial namespace maps every uid: "0 0 4294967295". */
    if (!(f = fopen("/proc/self/uid_map", "r")))
        return false;
    found = fscanf(f, "%u %u %u", &a, &b, &c) == 3 && a == 0 && b == 0 &&
            c == 4294967295u;
    fclose(f);
    return found;
}

bool
pt_offered(void)
{
    return pt.offered && pt_capable();
}

void
pt_enable(void)
{
    pt.enable = true;
}

bool
pt_enabled(void)
{
    return pt.enabled;
}

struct pt_backing *
pt_open(int fd, bool direct, bool *passthrough)
{
    struct pt_backing *b;
    struct stat st;
    bool fresh = false;

    *passthrough = false;
    if (!pt.enabled) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        return NULL;
    pthread_mutex_lock(&pt.lock);
    for (b = pt.files; b; b = b->next)
        if (b->dev == st.st_dev && b->ino == st.st_ino)
            break;
    if (!b) {
        if (!(b = calloc(1, sizeof(*b)))) {
            pthread_mutex_unlock(&pt.lock);
            errno = ENOMEM;
            return NULL;
        }
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        fresh = true;
    }
    /* Regular files only (conn.c): a logical pool's volume, a device,
     * in a mount that maps some files to one, is served. */
    if (!S_ISREG(st.st_mode) ||
        !ptwire_choose(b->pt_refs, b->served_refs, direct))
        goto served;
    if (b->id == 0) {
        struct pt_backing_map map = { .fd = fd };
        int id = ioctl(pt.devfd, PT_IOC_BACKING_OPEN, &map);

        if (id <= 0) {
            int err = id < 0 ? errno : EINVAL;

            /* Once per reason: EPERM without CAP_SYS_ADMIN, ELOOP for a
             * pool on a stacked filesystem (overlayfs), ... */
            if (pt.refused != err)
                pool_log("passthrough: the kernel refused a volume's file "
                         "as a backing file (%s%s): such files are served "
                         "by poolfs", strerror(err), err == ELOOP ?
                         ": it lies on a stacked filesystem, such as "
                         "overlayfs" : "");
            pt.refused = err;
            goto served;
        }
        b->id = id;
    }
    b->pt_refs++;
    pt_req.backing_id = b->id;
    *passthrough = true;
    goto out;

 served:
    b->served_refs++;
 out:
    if (fresh) {
        b->next = pt.files;
        pt.files = b;
    }
    pthread_mutex_unlock(&pt.lock);
    return b;
}

void
pt_close(struct pt_backing *b, bool passthrough)
{
    struct pt_backing **pp;

    if (!b)
        return;
    pthread_mutex_lock(&pt.lock);
    if (passthrough)
        b->pt_refs--;
    else
        b->served_refs--;
    if (b->pt_refs == 0 && b->id > 0) {
        uint32_t id = b->id;

        /* The kernel holds its own reference while it uses the file. */
        (void)ioctl(pt.devfd, PT_IOC_BACKING_CLOSE, &id);
        b->id = 0;
    }
    if (b->pt_refs == 0 && b->served_refs == 0) {
        for (pp = &pt.files; *pp && *pp != b; pp = &(*pp)->next)
            ;
        if (*pp)
            *pp = b->next;
        free(b);
    }
    pthread_mutex_unlock(&pt.lock);
}
