/*
 * tcdrain_shim.c: an LD_PRELOAD shim that peerbench puts under ZMODEM (sz/rz) on `strand linkem` ptys.
 *
 * Why: on a real UART, tcdrain() returns once every byte written is on the wire. On a Linux pty it returns
 * at once, and the slave's TIOCOUTQ is always 0 (measured on Linux 6.18: 30,000 bytes written at 115,200
 * bit/s, TIOCOUTQ read 0 throughout), so a program cannot see its unsent bytes. lrzsz ends with
 * tcdrain() followed by tcflush(TCIOFLUSH); on a pty that flush throws away whatever the emulator has
 * not yet read from the master, for sz its final "OO" (over and out), after which rz waits up to 10 s
 * per try for it. A real line never loses those bytes.
 *
 * What: tcdrain() on a pty slave first does what glibc does (ioctl TCSBRK 1), then, if
 * PEERBENCH_LINKEM_PID names the emulator process, borrows the emulator's master descriptor of the same
 * pty (pidfd_getfd, Linux >= 5.6, needs ptrace rights over the emulator: same user or root) and waits
 * until that master has no unread input (FIONREAD == 0 on three polls 1 ms apart, so bytes still
 * in the kernel's flip buffer are seen), at most 30 s. The bytes are then in the emulated UART's FIFO,
 * where no flush can reach them, as on real hardware. Anything unexpected (not a pty, no emulator, no
 * permission) falls back to the plain behaviour.
 *
 * Build: gcc -shared -fPIC -O2 -o tcdrain_shim.so tcdrain_shim.c (peerbench does this in its temp dir).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Unix98 pty slaves (/dev/pts/N) use majors 136..143; N = (major - 136) * 256 + minor. */
static int pty_number(int fd, unsigned *n) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) return -1;
    unsigned maj = major(st.st_rdev);
    if (maj < 136 || maj > 143) return -1;
    *n = (maj - 136) * 256 + minor(st.st_rdev);
    return 0;
}

/* Whether a /proc/PID/fd link target is a pty master ("/dev/ptmx" or "/dev/pts/ptmx"). */
static int is_ptmx(const char *target) {
    size_t len = strlen(target);
    return len >= 4 && strcmp(target + len - 4, "ptmx") == 0;
}

/* A duplicate of the emulator's master descriptor for pty number `ptn`, or -1. */
static int emulator_master(unsigned ptn) {
    const char *pid_s = getenv("PEERBENCH_LINKEM_PID");
    if (pid_s == NULL) return -1;
    pid_t pid = (pid_t)atoi(pid_s);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) return -1;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    int found = -1;
    struct dirent *e;
    while (d != NULL && found < 0 && (e = readdir(d)) != NULL) {
        char link[384], target[128];
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (!is_ptmx(target)) continue;
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
        if (fd < 0) continue;
        unsigned n;
        if (ioctl(fd, TIOCGPTN, &n) == 0 && n == ptn) {
            found = fd;
        } else {
            close(fd);
        }
    }
    if (d != NULL) closedir(d);
    close(pidfd);
    return found;
}

int tcdrain(int fd) {
    int rc = ioctl(fd, TCSBRK, 1); /* glibc's tcdrain */
    unsigned ptn;
    if (pty_number(fd, &ptn) != 0) return rc;
    int master = emulator_master(ptn);
    if (master < 0) return rc;
    const struct timespec tick = {0, 1000000};
    int quiet = 0;
    for (int i = 0; i < 30000 && quiet < 3; i++) {
        int unread = 0;
        if (ioctl(master, FIONREAD, &unread) != 0) break;
        quiet = unread == 0 ? quiet + 1 : 0;
        nanosleep(&tick, NULL);
    }
    close(master);
    return rc;
}
