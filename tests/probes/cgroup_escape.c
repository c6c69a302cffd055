/* The cgroup-escape preconditions of issue 17 (CVE-2022-0492 class), as a static probe:
 * a user namespace mapped to root + a new cgroup namespace + a fresh mount of each controller-less
 * hierarchy (name=systemd, cgroup2). Prints "ns OK" or "ns <errno>", then for each mount the
 * directories it shows: a container at the host's root of a hierarchy sees the host's cgroups. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *s) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0) { (void)!write(fd, s, strlen(s)); close(fd); }
}

static void show(const char *fs, const char *opts) {
    mkdir("/tmp/cgprobe", 0700);
    if (mount("none", "/tmp/cgprobe", fs, 0, opts) != 0) {
        printf("%s %s %s\n", fs, opts ? opts : "-", strerrorname_np(errno));
        return;
    }
    DIR *d = opendir("/tmp/cgprobe");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_type == DT_DIR && e->d_name[0] != '.') { printf("%s %s dir %s\n", fs, opts ? opts : "-", e->d_name); n++; }
    }
    if (d) closedir(d);
    printf("%s %s subdirs %d\n", fs, opts ? opts : "-", n);
    umount("/tmp/cgprobe");
}

int main(void) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP) != 0) {
        printf("ns %s\n", strerrorname_np(errno));
        return 0;
    }
    printf("ns OK\n");
    put("/proc/self/setgroups", "deny");
    put("/proc/self/uid_map", "0 0 1");
    put("/proc/self/gid_map", "0 0 1");
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    show("cgroup", "none,name=systemd");
    show("cgroup2", NULL);
    return 0;
}
