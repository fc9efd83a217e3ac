/* rawclone.h - the clone and clone3 system calls, without glibc's wrapper.
 *
 * Used for fork mode only (no CLONE_VM): with a NULL stack the child returns
 * from the system call on a copy-on-write copy of the caller's stack, exactly
 * as from fork(), so calling through syscall() is safe there.
 */
#ifndef PYCLONE_RAWCLONE_H
#define PYCLONE_RAWCLONE_H

#include <stdint.h>
#include <sys/types.h>

/* What one clone request carries to the kernel (a subset of struct clone_args). */
struct clone_request {
    uint64_t flags;          /* CLONE_* bits, without the exit signal */
    int exit_signal;
    int cgroup_fd;           /* CLONE_INTO_CGROUP target, or -1 */
    const pid_t *set_tid;    /* innermost namespace first, or NULL */
    size_t set_tid_size;
    int *pidfd_out;          /* filled under CLONE_PIDFD */
};

/* One clone3 call, falling back to clone when clone3 is missing (ENOSYS) or
 * filtered (EPERM, as seccomp profiles in containers answer) and the request
 * fits the legacy call.  Returns the pid in the parent, 0 in the child, -1
 * with errno set on failure.  *used_clone3 tells which call answered. */
pid_t rawclone_fork_like(const struct clone_request *req, int *used_clone3);

/* Where glibc keeps the calling thread's TID in its thread descriptor, or
 * NULL when this glibc does not publish it (see rawclone.c). */
pid_t *rawclone_tid_slot(void);

#endif
