/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for migrate/domxml.c on the domain XML shapes Nova writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "domxml.h"

#define UUID "8f1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"
#define MNT "/var/lib/nova/instances"

/* As Nova's libvirt driver writes it for a qcow2 image-backed instance
 * with an ephemeral disk, swap, a config drive, a kernel/ramdisk pair and
 * an attached Cinder volume. */
static const char *nova_domain =
"<domain type='kvm'>\n"
"  <uuid>" UUID "</uuid>\n"
"  <name>instance-00000001</name>\n"
"  <memory>524288</memory>\n"
"  <os>\n"
"    <type>hvm</type>\n"
"    <kernel>" MNT "/" UUID "/kernel</kernel>\n"
"    <initrd>" MNT "/" UUID "/ramdisk</initrd>\n"
"  </os>\n"
"  <devices>\n"
"    <disk type='file' device='disk'>\n"
"      <driver name='qemu' type='qcow2' cache='none' discard='ignore'/>\n"
"      <source file='" MNT "/" UUID "/disk'/>\n"
"      <target dev='vda' bus='virtio'/>\n"
"    </disk>\n"
"    <disk type='file' device='disk'>\n"
"      <driver name='qemu' type='qcow2' cache='none'/>\n"
"      <source file='" MNT "/" UUID "/disk.eph0'/>\n"
"      <target dev='vdb' bus='virtio'/>\n"
"    </disk>\n"
"    <disk type='file' device='disk'>\n"
"      <driver name='qemu' type='qcow2' cache='none'/>\n"
"      <source file='" MNT "/" UUID "/disk.swap'/>\n"
"      <target dev='vdc' bus='virtio'/>\n"
"    </disk>\n"
"    <disk type='file' device='cdrom'>\n"
"      <driver name='qemu' type='raw' cache='none'/>\n"
"      <source file='" MNT "/" UUID "/disk.config'/>\n"
"      <target dev='hda' bus='ide'/>\n"
"    </disk>\n"
"    <disk type='block' device='disk'>\n"
"      <driver name='qemu' type='raw' cache='none' io='native'/>\n"
"      <source dev='/dev/disk/by-path/ip-192.0.2.9:3260-iscsi-iqn.2010-10.org.openstack:volume-1-lun-1'/>\n"
"      <target dev='vdd' bus='virtio'/>\n"
"      <serial>volume-1</serial>\n"
"    </disk>\n"
"    <disk type='file' device='disk'>\n"
"      <driver name='qemu' type='raw'/>\n"
"      <source file='/srv/elsewhere/other.img'/>\n"
"      <target dev='vde' bus='virtio'/>\n"
"    </disk>\n"
"    <serial type='file'>\n"
"      <source path='" MNT "/" UUID "/console.log'/>\n"
"    </serial>\n"
"  </devices>\n"
"</domain>\n";

static int
count(const char *hay, const char *needle)
{
    int n = 0;

    for (; (hay = strstr(hay, needle)); hay++)
        n++;
    return n;
}

static void
test_nova_shapes(void)
{
    char err[256], *out = NULL;
    int n = domxml_transition(nova_domain, MNT, "nova-disks-pool",
                              "nova-base-images-pool", NULL, &out, err,
                              sizeof(err));

    CHECK(n == 4, "4 disks rewritten, got %d (%s)", n, n < 0 ? err : "");
    if (!out)
        return;
    CHECK(count(out, "type=\"volume\"") == 4, "four volume disks:\n%s", out);
    CHECK(strstr(out, "<source pool=\"nova-disks-pool\" volume=\"" UUID "_disk\"/>") != NULL,
          "root disk:\n%s", out);
    CHECK(strstr(out, "volume=\"" UUID "_disk.eph0\"") &&
          strstr(out, "volume=\"" UUID "_disk.swap\"") &&
          strstr(out, "volume=\"" UUID "_disk.config\""), "other disks:\n%s", out);
    /* Kept: drivers with cache=none, targets, the cdrom, block devices,
     * files elsewhere, kernel and console paths. */
    CHECK(count(out, "cache=\"none\"") == 5, "drivers kept:\n%s", out);
    CHECK(strstr(out, "<target dev=\"hda\" bus=\"ide\"/>") != NULL, "cdrom target");
    CHECK(strstr(out, "device=\"cdrom\"") != NULL, "cdrom kept");
    CHECK(strstr(out, "<source dev=\"/dev/disk/by-path/") != NULL, "block disk kept");
    CHECK(strstr(out, "<source file=\"/srv/elsewhere/other.img\"/>") != NULL,
          "a file outside the mount is not touched");
    CHECK(strstr(out, "<kernel>" MNT "/" UUID "/kernel</kernel>") != NULL, "kernel");
    CHECK(strstr(out, "console.log") != NULL, "console");
    CHECK(!strstr(out, "source file=\"" MNT), "no file source left under the mount");
    free(out);
}

static void
test_resize_dir_and_base(void)
{
    const char *xml =
        "<domain><devices>"
        "<disk type='file' device='disk'><source file='" MNT "/" UUID "_resize/disk'/><target dev='vda'/></disk>"
        "<disk type='file' device='disk'><source file='" MNT "/_base/abc123'/><target dev='vdb'/></disk>"
        "</devices></domain>";
    char err[256], *out = NULL;
    int n = domxml_transition(xml, MNT "/", "dp", "bp", NULL, &out, err,
                              sizeof(err));

    CHECK(n == 2, "2 rewritten, got %d", n);
    if (!out)
        return;
    CHECK(strstr(out, "volume=\"" UUID "%5Fresize_disk\"") != NULL,
          "the encoding's name for _resize:\n%s", out);
    CHECK(strstr(out, "pool=\"bp\" volume=\"abc123\"") != NULL, "base pool:\n%s", out);
    free(out);
}

/* -o pool_map: files of those names go to their own pools. */
static void
test_pool_map(void)
{
    const char *xml =
        "<domain><devices>"
        "<disk type='file' device='disk'><source file='" MNT "/" UUID "/disk'/><target dev='vda'/></disk>"
        "<disk type='file' device='disk'><source file='" MNT "/" UUID "/disk.local'/><target dev='vdb'/></disk>"
        "<disk type='file' device='disk'><source file='" MNT "/" UUID "/disk.swap'/><target dev='vdc'/></disk>"
        "</devices></domain>";
    char err[256], *out = NULL;
    int n = domxml_transition(xml, MNT, "dp", "bp",
                              "disk.swap:swap-pool,disk.local:eph-pool", &out,
                              err, sizeof(err));

    CHECK(n == 3, "3 rewritten, got %d (%s)", n, n < 0 ? err : "");
    if (!out)
        return;
    CHECK(strstr(out, "pool=\"dp\" volume=\"" UUID "_disk\"") != NULL,
          "disk in the disks pool:\n%s", out);
    CHECK(strstr(out, "pool=\"eph-pool\" volume=\"" UUID "_disk.local\"") != NULL,
          "disk.local in its own pool:\n%s", out);
    CHECK(strstr(out, "pool=\"swap-pool\" volume=\"" UUID "_disk.swap\"") != NULL,
          "disk.swap in its own pool:\n%s", out);
    free(out);
}

static void
test_refusals(void)
{
    char err[256], *out = NULL;
    char xml[1024];

    snprintf(xml, sizeof(xml), "<domain><devices><disk type='file'>"
             "<source file='" MNT "/a/%0300d'/></disk></devices></domain>", 0);
    CHECK(domxml_transition(xml, MNT, "dp", "bp", NULL, &out, err, sizeof(err)) == -1 &&
          strstr(err, "cannot be a volume"), "over-long name refused: %s", err);
    CHECK(domxml_transition("<domain", MNT, "dp", "bp", NULL, &out, err,
                            sizeof(err)) == -1,
          "bad XML refused");
    CHECK(domxml_transition("<domain><devices/></domain>", MNT, "dp", "bp", NULL,
                            &out, err, sizeof(err)) == 0, "nothing to do is 0");
    free(out);
}

int
main(void)
{
    test_nova_shapes();
    test_resize_dir_and_base();
    test_pool_map();
    test_refusals();
    return check_done();
}
