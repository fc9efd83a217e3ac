/* raw_clone.h - the clone and clone3 system calls, without glibc's wrapper.
 *
 * Fork mode (no CLONE_VM): with a NULL stack the child returns from the
 * system call on a copy-on-write copy of the caller's stack, exactly as from
 * fork(), so calling through syscall() is safe there.
 *
 * CLONE_VM modes: the child starts on a new stack in the same memory, so it
 * must not return from any C function: a trampoline (glibc's clone(), or
 * ours for clone3, which glibc does not export) calls fn(arg) there and ends
 * the task with the exit system call.
 */
#ifndef PYCLONE_RAW_CLONE_H
#define PYCLONE_RAW_CLONE_H

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

/* 1 where pyclone has its own clone3 trampoline for CLONE_VM children
 * (x86-64); elsewhere VM-mode requests that only clone3 can express are
 * refused by the Python layer before any system call. */
#if defined(__x86_64__)
#  define RAWCLONE_HAVE_CLONE3_VM 1
#else
#  define RAWCLONE_HAVE_CLONE3_VM 0
#endif

/* Where a CLONE_VM child starts and what the kernel stores for it. */
struct vm_start {
    int (*fn)(void *);       /* runs on the new stack; its value is the exit status */
    void *arg;
    void *stack_top;         /* 16-byte aligned */
    void *tls;               /* with CLONE_SETTLS */
    pid_t *parent_tid;       /* with CLONE_PARENT_SETTID */
    pid_t *child_tid;        /* with CLONE_CHILD_CLEARTID */
};

/* A CLONE_VM child: clone3 (our trampoline) when the request needs it, else
 * glibc's clone().  CLONE_CLEAR_SIGHAND, which the legacy call lacks, is
 * then left to the child: *emulate_clear_sighand is set (before the child
 * exists) to tell it.  Returns the pid, or -1 with errno set; ENOSYS when
 * the request needs clone3 and this kernel or architecture has none. */
pid_t rawclone_vm(const struct clone_request *req, const struct vm_start *start,
                  int *emulate_clear_sighand);

/* Where glibc keeps the calling thread's TID in its thread descriptor, or
 * NULL when this glibc does not publish it (see rawclone.c). */
pid_t *rawclone_tid_slot(void);

#endif
