/* raw_clone.c - raw clone/clone3 for fork mode, clone3 for CLONE_VM
 * children, and the TID slot lookup. */
#define _GNU_SOURCE
#include "raw_clone.h"
#include "kernel_abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* What only clone3 can express.  CLONE_CLEAR_SIGHAND is not in the list:
 * after the legacy call the child resets its handlers itself. */
static int
needs_clone3(const struct clone_request *req)
{
    return ((req->flags & ~CLONE_CLEAR_SIGHAND_BIT) >> 32) != 0
           || (req->flags & CLONE_NEWTIME_BIT) || req->cgroup_fd >= 0
           || req->set_tid_size > 0;
}

/* struct clone_args for `req` (without stack, tls and tid pointers); returns
 * the size to pass: the oldest version that holds every field used. */
static size_t
fill_clone_args(struct kernel_clone_args *ka, const struct clone_request *req,
                uint64_t flags)
{
    memset(ka, 0, sizeof *ka);
    ka->flags = flags;
    /* Under CLONE_PARENT (or CLONE_THREAD) the kernel gives the child the
     * caller's own exit signal and clone3 refuses any other; the legacy call
     * ignores the byte silently. */
    if (!(flags & (CLONE_PARENT | CLONE_THREAD))) {
        ka->exit_signal = (uint64_t)req->exit_signal;
    }
    ka->pidfd = (uint64_t)(uintptr_t)req->pidfd_out;
    size_t size = CLONE_ARGS_SIZE_VER0;
    if (req->set_tid_size) {
        ka->set_tid = (uint64_t)(uintptr_t)req->set_tid;
        ka->set_tid_size = req->set_tid_size;
        size = CLONE_ARGS_SIZE_VER1;
    }
    if (req->cgroup_fd >= 0) {
        ka->flags |= CLONE_INTO_CGROUP_BIT;
        ka->cgroup = (uint64_t)req->cgroup_fd;
        size = CLONE_ARGS_SIZE_VER2;
    }
    return size;
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
    size_t size = fill_clone_args(&ka, req, flags);
    ka.child_tid = (uint64_t)(uintptr_t)tid_slot;

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
    unsigned long word = (unsigned long)(flags & 0xffffffffULL) | (unsigned long)req->exit_signal;
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

/* ---- CLONE_VM children ------------------------------------------------ */

#if RAWCLONE_HAVE_CLONE3_VM
/* long pyclone_clone3_run(struct kernel_clone_args *, size_t,
 *                         int (*fn)(void *), void *arg)
 *
 * clone3 with a new stack: the child wakes up in this function with the
 * stack pointer at stack + stack_size, so it cannot return anywhere.  fn
 * and arg ride in r8/r9, which the syscall preserves and the child inherits
 * (rcx and r11 are clobbered by syscall).  The child clears the frame
 * pointer and marks the return address undefined so debuggers and unwinders
 * stop here, calls fn(arg) (the call leaves the stack 8 mod 16, as the ABI
 * wants at a function's entry), and ends this task alone with exit (60),
 * never exit_group.  The parent returns the kernel's answer (pid or -errno). */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl pyclone_clone3_run\n"
    ".hidden pyclone_clone3_run\n"
    ".type pyclone_clone3_run,@function\n"
    "pyclone_clone3_run:\n"
    ".cfi_startproc\n"
    "    movq %rdx, %r8\n"
    "    movq %rcx, %r9\n"
    "    movl $435, %eax\n"             /* __NR_clone3 */
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    jz 1f\n"
    "    ret\n"
    "1:\n"
    ".cfi_undefined rip\n"
    "    xorl %ebp, %ebp\n"
    "    movq %r9, %rdi\n"
    "    call *%r8\n"
    "    movl %eax, %edi\n"
    "    movl $60, %eax\n"
    "    syscall\n"
    "    hlt\n"
    ".cfi_endproc\n"
    ".size pyclone_clone3_run, .-pyclone_clone3_run\n");

long pyclone_clone3_run(struct kernel_clone_args *args, size_t size,
                        int (*fn)(void *), void *arg);
#endif

pid_t
rawclone_vm(const struct clone_request *req, const struct vm_start *start,
            int *emulate_clear_sighand)
{
    uint64_t flags = req->flags;
    int clear = (flags & CLONE_CLEAR_SIGHAND_BIT) != 0;
    /* The legacy call returns the pidfd through parent_tid, so it cannot
     * also store the tid there.  Where parent_tid is the word that
     * CLONE_CHILD_CLEARTID zeroes (thread mode's host waits for that), the
     * child can store its tid there itself (CLONE_CHILD_SETTID, done before
     * it runs any code): the word only has to be nonzero until the clear. */
    int pidfd_and_ptid = req->pidfd_out != NULL && (flags & CLONE_PARENT_SETTID);
    int legacy_ok = !needs_clone3(req)
                    && (!pidfd_and_ptid || start->parent_tid == start->child_tid);
    int want3 = !legacy_ok || clear || pidfd_and_ptid;

#if RAWCLONE_HAVE_CLONE3_VM
    if (want3) {
        struct kernel_clone_args ka;
        size_t size = fill_clone_args(&ka, req, flags);
        /* The kernel starts the child at stack + stack_size and checks only
         * that the range is user memory: describe the top 16 bytes. */
        ka.stack = (uint64_t)(uintptr_t)start->stack_top - 16;
        ka.stack_size = 16;
        ka.tls = (uint64_t)(uintptr_t)start->tls;
        ka.parent_tid = (uint64_t)(uintptr_t)start->parent_tid;
        ka.child_tid = (uint64_t)(uintptr_t)start->child_tid;
        *emulate_clear_sighand = 0;
        long r = pyclone_clone3_run(&ka, size, start->fn, start->arg);
        if (r >= 0) {
            return (pid_t)r;
        }
        errno = (int)-r;
        if ((errno != ENOSYS && errno != EPERM) || !legacy_ok) {
            return -1;
        }
    }
#else
    if (!legacy_ok) {
        errno = ENOSYS;
        return -1;
    }
#endif
    /* glibc's clone(): 32 flag bits and the exit signal in one int; under
     * CLONE_PIDFD the pidfd comes back through the parent_tid argument. */
    if (pidfd_and_ptid) {
        flags = (flags & ~(uint64_t)CLONE_PARENT_SETTID) | CLONE_CHILD_SETTID;
    }
    *emulate_clear_sighand = clear;
    int word = (int)(unsigned int)((flags & 0xffffff00ULL) | (unsigned)req->exit_signal);
    void *ptid = req->pidfd_out != NULL ? (void *)req->pidfd_out : (void *)start->parent_tid;
    return clone(start->fn, start->stack_top, word, start->arg, ptid, start->tls,
                 start->child_tid);
}
