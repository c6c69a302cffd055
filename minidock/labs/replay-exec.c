/* replay-exec: the last steps of a container's init that no standard tool does in one process.
 *
 * `minidock replay` rebuilds a container with util-linux, iproute2 and a shell; after
 * pivot_root the host's tools are out of reach, and dropping capabilities, setting
 * no_new_privs and loading seccomp must happen in the very process that then execs the
 * container's command. This helper is bind-mounted into the new root and does exactly that,
 * in runc's order:
 *
 *   detach the old root (umount -l .), unmount itself, chdir /
 *   rlimits -> PR_SET_KEEPCAPS -> setgroups/setresgid/setresuid -> bounding set -> capset
 *   -> no_new_privs -> seccomp (a BPF program exported by minidock) -> chdir(cwd) -> execve
 *
 * (With no_new_privs off, the filter is loaded before the capabilities go: seccomp(2) then needs
 * CAP_SYS_ADMIN.)
 *
 * Build: cc -static -O2 -o replay-exec replay-exec.c
 * Use:   replay-exec [--detach-old-root] [--self PATH] [--uid N] [--gid N] [--groups a,b]
 *                    [--caps HEX] [--nnp] [--seccomp FILE]... [--rlimit RES=SOFT:HARD]...
 *                    [--cwd DIR] [--env K=V]... -- COMMAND [ARG...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "replay-exec: %s: %s\n", what, strerror(errno));
    exit(126);
}

static const char *RLIMITS[] = {"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
                                "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO",
                                "RTTIME"};

static void set_rlimit(char *spec)
{
    char *eq = strchr(spec, '='), *colon = eq ? strchr(eq, ':') : NULL;
    if (!eq || !colon) { errno = EINVAL; die("--rlimit RES=SOFT:HARD"); }
    *eq = 0;
    const char *name = strncmp(spec, "RLIMIT_", 7) == 0 ? spec + 7 : spec;
    for (unsigned i = 0; i < sizeof(RLIMITS) / sizeof(*RLIMITS); i++)
        if (strcmp(name, RLIMITS[i]) == 0) {
            struct rlimit r = {strtoull(eq + 1, NULL, 10), strtoull(colon + 1, NULL, 10)};
            if (setrlimit(i, &r) != 0) die(spec);
            return;
        }
    errno = EINVAL;
    die(spec);
}

/* read a BPF program now and remove its file: the container must not find it in its /dev */
static struct sock_fprog read_seccomp(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) != 0) die(path);
    struct sock_filter *f = malloc(st.st_size);
    if (!f || read(fd, f, st.st_size) != st.st_size) die("read the seccomp program");
    close(fd);
    unlink(path);
    struct sock_fprog prog = {(unsigned short)(st.st_size / sizeof(*f)), f};
    return prog;
}

static void load_seccomp(struct sock_fprog *prog)
{
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) != 0) die("seccomp(SECCOMP_SET_MODE_FILTER)");
}

int main(int argc, char **argv)
{
    int detach = 0, nnp = 0, i;
    long uid = 0, gid = 0;
    uint64_t caps = ~0ULL;
    const char *self = NULL, *groups = NULL, *cwd = "/";
    struct sock_fprog seccomp[8];
    int nsec = 0;
    char *envp[256];
    int nenv = 0;
    char *rlimits[32];
    int nrl = 0;
    for (i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        else if (strcmp(a, "--detach-old-root") == 0) detach = 1;
        else if (strcmp(a, "--nnp") == 0) nnp = 1;
        else if (i + 1 >= argc) { fprintf(stderr, "replay-exec: %s needs a value\n", a); return 125; }
        else if (strcmp(a, "--self") == 0) self = argv[++i];
        else if (strcmp(a, "--uid") == 0) uid = atol(argv[++i]);
        else if (strcmp(a, "--gid") == 0) gid = atol(argv[++i]);
        else if (strcmp(a, "--groups") == 0) groups = argv[++i];
        else if (strcmp(a, "--caps") == 0) caps = strtoull(argv[++i], NULL, 16);
        else if (strcmp(a, "--seccomp") == 0 && nsec < 8) seccomp[nsec++] = read_seccomp(argv[++i]);
        else if (strcmp(a, "--cwd") == 0) cwd = argv[++i];
        else if (strcmp(a, "--env") == 0 && nenv < 255) envp[nenv++] = argv[++i];
        else if (strcmp(a, "--rlimit") == 0 && nrl < 32) rlimits[nrl++] = argv[++i];
        else { fprintf(stderr, "replay-exec: unknown option %s\n", a); return 125; }
    }
    envp[nenv] = NULL;
    if (i >= argc) { fprintf(stderr, "replay-exec: no command\n"); return 125; }

    /* the old root sits on "." after `pivot_root . .`: detach it, then our own bind mount */
    if (detach) {
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) != 0) die("make the old root a slave");
        if (umount2(".", MNT_DETACH) != 0) die("umount -l . (the old root)");
    }
    if (chdir("/") != 0) die("chdir /");
    if (self && umount2(self, MNT_DETACH) != 0) die("umount -l the helper's bind mount");
    if (self) unlink(self);

    for (int r = 0; r < nrl; r++) set_rlimit(rlimits[r]);

    /* ids: keep the permitted capabilities across setresuid, as runc does */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) die("PR_SET_KEEPCAPS");
    gid_t gl[64];
    int ng = 0;
    if (groups && *groups) {
        char *copy = strdup(groups), *tok, *save;
        for (tok = strtok_r(copy, ",", &save); tok && ng < 64; tok = strtok_r(NULL, ",", &save))
            gl[ng++] = (gid_t)atol(tok);
    }
    if (setgroups(ng, gl) != 0) die("setgroups");
    if (setresgid(gid, gid, gid) != 0) die("setresgid");
    if (setresuid(uid, uid, uid) != 0) die("setresuid");
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) die("PR_SET_KEEPCAPS 0");

    if (!nnp)  /* without no_new_privs, seccomp(2) needs CAP_SYS_ADMIN: before the caps go */
        for (int f = 0; f < nsec; f++) load_seccomp(&seccomp[f]);

    /* the bounding set first (needs CAP_SETPCAP), then the process's own sets */
    for (int c = 0; c <= 63; c++)
        if (!(caps >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
            die("PR_CAPBSET_DROP");
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    uint64_t eff = uid == 0 ? caps : 0;  /* a non-root user gets none, as in Docker */
    d[0].effective = d[0].permitted = (uint32_t)eff;
    d[1].effective = d[1].permitted = (uint32_t)(eff >> 32);
    if (syscall(SYS_capset, &h, d) != 0) die("capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        die("PR_CAP_AMBIENT_CLEAR_ALL");

    if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("PR_SET_NO_NEW_PRIVS");
    if (nnp)
        for (int f = 0; f < nsec; f++) load_seccomp(&seccomp[f]);

    if (chdir(cwd) != 0) die(cwd);
    const char *cmd = argv[i];
    if (!strchr(cmd, '/')) {  /* $PATH of the container's environment */
        const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (int e = 0; e < nenv; e++)
            if (strncmp(envp[e], "PATH=", 5) == 0) path = envp[e] + 5;
        char *p = strdup(path), *dir, *save;
        static char full[4096];
        for (dir = strtok_r(p, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
            snprintf(full, sizeof(full), "%s/%s", dir, cmd);
            if (access(full, X_OK) == 0) { cmd = full; break; }
        }
    }
    execve(cmd, argv + i, envp);
    fprintf(stderr, "replay-exec: exec %s: %s\n", argv[i], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
