/* rawclone.c - raw clone/clone3 for fork mode, and the TID slot lookup. */
#define _GNU_SOURCE
#include "rawclone.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_clone3
#  define __NR_clone3 435
#endif

/* struct clone_args of <linux/sched.h>, version 2 (88 bytes, Linux 5.7). */
struct kernel_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

#define CLONE_ARGS_SIZE_VER0 64
#define CLONE_ARGS_SIZE_VER1 80
#define CLONE_ARGS_SIZE_VER2 88
#define CLONE_PIDFD_BIT 0x00001000ULL
#define CLONE_CHILD_SETTID_BIT 0x01000000ULL
#define CLONE_INTO_CGROUP_BIT 0x200000000ULL
#define CLONE_NEWTIME_BIT 0x00000080ULL

/* glibc's fork() has the kernel store the child's TID in the child's thread
 * descriptor (CLONE_CHILD_SETTID on &THREAD_SELF->tid); a raw clone would
 * leave the parent thread's TID there, which breaks error-checking, robust
 * and PI mutexes and pthread_* calls on pthread_self() in the child.  The
 * field's offset is private, but glibc >= 2.34 publishes it for debuggers as
 * the GLIBC_PRIVATE descriptor _thread_db_pthread_tid = {bits, count, offset}
 * (nptl_db/db_info.c).  We use it only when it says "one 32-bit field". */
pid_t *
rawclone_tid_slot(void)
{
    static int looked;
    static const uint32_t *desc;
    if (!looked) {
        desc = dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid");
        looked = 1;
    }
    if (desc == NULL || desc[0] != 32 || desc[1] != 1) {
        return NULL;
    }
    pid_t *slot = (pid_t *)((char *)pthread_self() + desc[2]);
    /* Sanity check: the slot must hold our TID right now. */
    if (*slot != (pid_t)syscall(SYS_gettid)) {
        return NULL;
    }
    return slot;
}

static int
needs_clone3(const struct clone_request *req)
{
    return (req->flags >> 32) != 0 || (req->flags & CLONE_NEWTIME_BIT)
           || req->cgroup_fd >= 0 || req->set_tid_size > 0;
}

pid_t
rawclone_fork_like(const struct clone_request *req, int *used_clone3)
{
    pid_t *tid_slot = rawclone_tid_slot();
    uint64_t flags = req->flags;
    if (tid_slot != NULL) {
        flags |= CLONE_CHILD_SETTID_BIT;
    }

    struct kernel_clone_args ka;
    memset(&ka, 0, sizeof ka);
    ka.flags = flags;
    /* Under CLONE_PARENT (or CLONE_THREAD) the kernel gives the child the
     * caller's own exit signal and clone3 refuses any other; the legacy call
     * ignores the byte silently. */
    if (!(flags & (CLONE_PARENT | CLONE_THREAD))) {
        ka.exit_signal = (uint64_t)req->exit_signal;
    }
    ka.child_tid = (uint64_t)(uintptr_t)tid_slot;
    ka.pidfd = (uint64_t)(uintptr_t)req->pidfd_out;
    size_t size = CLONE_ARGS_SIZE_VER0;
    if (req->set_tid_size) {
        ka.set_tid = (uint64_t)(uintptr_t)req->set_tid;
        ka.set_tid_size = req->set_tid_size;
        size = CLONE_ARGS_SIZE_VER1;
    }
    if (req->cgroup_fd >= 0) {
        ka.flags |= CLONE_INTO_CGROUP_BIT;
        ka.cgroup = (uint64_t)req->cgroup_fd;
        size = CLONE_ARGS_SIZE_VER2;
    }

    *used_clone3 = 1;
    long r = syscall(__NR_clone3, &ka, size);
    if (r >= 0) {
        return (pid_t)r;
    }
    if ((errno != ENOSYS && errno != EPERM) || needs_clone3(req)) {
        return -1;
    }
    /* Legacy clone: flags and exit signal share one word; under CLONE_PIDFD
     * the pidfd comes back through the parent_tid argument. */
    *used_clone3 = 0;
    unsigned long word = (unsigned long)flags | (unsigned long)req->exit_signal;
    void *ptid = (flags & CLONE_PIDFD_BIT) ? (void *)req->pidfd_out : NULL;
#if defined(__x86_64__) || defined(__i386__)
    /* x86: (flags, stack, parent_tid, child_tid, tls) */
    r = syscall(SYS_clone, word, NULL, ptid, tid_slot, NULL);
#elif defined(__s390__)
    /* s390: (stack, flags, parent_tid, child_tid, tls) */
    r = syscall(SYS_clone, NULL, word, ptid, tid_slot, NULL);
#else
    /* arm, aarch64, riscv, ppc...: (flags, stack, parent_tid, tls, child_tid) */
    r = syscall(SYS_clone, word, NULL, ptid, NULL, tid_slot);
#endif
    return (pid_t)r;
}
