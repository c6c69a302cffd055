/* A tiny static probe for the seccomp tests (issue 17): each argument names one system call made
 * with harmless arguments; prints "name errno-name" ("name OK" when it succeeded), one per line,
 * so that minidock's and Docker's answers can be compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name) {
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "unshare-user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "unshare-mount")) return syscall(SYS_unshare, CLONE_NEWNS);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
    if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "minidock-test-secret", 0, 0);
    if (!strcmp(name, "perf_event_open")) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_SOFTWARE;
        a.config = PERF_COUNT_SW_CPU_CLOCK;
        a.exclude_kernel = 1;
        return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    }
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
    if (!strcmp(name, "clone3")) return syscall(SYS_clone3, NULL, 0);
    if (!strcmp(name, "personality-query")) return syscall(SYS_personality, 0xffffffff);
    if (!strcmp(name, "personality-norandom")) return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
    if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(name, "chroot")) return syscall(SYS_chroot, "/");
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, -1, NULL, 0);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, NULL, 0);
    if (!strcmp(name, "acct")) return syscall(SYS_acct, NULL);
    if (!strcmp(name, "syslog")) return syscall(SYS_syslog, 10, NULL, 0);
    if (!strcmp(name, "clock_settime")) return syscall(SYS_clock_settime, 0, NULL);
    if (!strcmp(name, "memfd_create")) return syscall(SYS_memfd_create, "probe", 0);
    if (!strcmp(name, "pidfd_open")) return syscall(SYS_pidfd_open, getpid(), 0);
    if (!strcmp(name, "setns")) return syscall(SYS_setns, -1, 0);
    if (!strcmp(name, "uname")) { char b[512]; return syscall(SYS_uname, b); }
    if (!strcmp(name, "socket-inet")) return syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    if (!strcmp(name, "nr-500")) return syscall(500);  /* a number no kernel has yet */
    errno = EINVAL;
    fprintf(stderr, "probe: unknown call %s\n", name);
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        if (r == -2 && errno == EINVAL) return 2;
        if (r >= 0) printf("%s OK\n", argv[i]);
        else printf("%s %s\n", argv[i], strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    }
    return 0;
}
