/* baseline.c - the clones pyclone's benchmarks compare against, done in C.
 *
 * Built by pyclone's benchmark (python -m pyclone bench) into a shared
 * library and called through ctypes: one call = one child started, exited
 * and reaped, the child doing nothing but _exit(0).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int
child_exit(void *arg)
{
    (void)arg;
    _exit(0);
}

/* CLONE_VM|CLONE_VFORK|SIGCHLD on a stack carved below our own stack
 * pointer, as pyclone's borrowed mode does; then waitpid. */
int
baseline_borrowed(void)
{
    char here;
    char *top = (char *)(((unsigned long)&here - 16384) & ~15UL);
    pid_t pid = clone(child_exit, top, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* fork() + _exit(0) in the child + waitpid. */
int
baseline_fork(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* vfork-style spawn of a program (what posix_spawn does), for reference. */
int
baseline_spawn(const char *path)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        execve(path, argv, envp);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}
