/* in_child.h - everything that runs in a clone child between the system call
 * and the Python callable, and the way the child leaves.  See child.c for
 * the rules each mode imposes. */
#ifndef PYCLONE_IN_CHILD_H
#define PYCLONE_IN_CHILD_H

#include "call_plan.h"
#include "compat.h"
#include "terminate.h"
#include <signal.h>
#include <stdint.h>

/* Setup stages reported through the error pipe (fork mode). */
enum child_stage {
    STAGE_OK = 0,
    STAGE_UNSHARE = 1,      /* unshare() of the requested namespaces */
    STAGE_CLONE = 2,        /* the intermediate's clone of the real child */
};

/* The record a fork-mode child (or intermediate) writes to the error pipe. */
struct child_report {
    int32_t stage;
    int32_t err;            /* errno of the failing call */
    int32_t pid;            /* the real child's pid, from an intermediate */
};

/* How a fork-mode child was made, which says what it must still do. */
enum fork_method {
    FORK_RAW = 0,           /* raw clone/clone3: every flag applied by the kernel */
    FORK_LIBC = 1,          /* glibc fork(), then unshare() of namespace flags */
    FORK_LIBC_INTERMEDIATE = 2, /* glibc fork(); unshare(); clone(CLONE_PARENT) */
};

struct fork_child_plan {
    int method;
    uint64_t unshare_flags; /* FORK_LIBC*: namespaces the child enters itself */
    int clear_sighand;      /* emulate CLONE_CLEAR_SIGHAND (fork() cannot carry it) */
    int report_fd;          /* write end of the close-on-exec error pipe, or -1 */
    const sigset_t *mask;   /* the caller's signal mask, restored before Python */
    struct call_plan call;
};

/* sys.stdout and sys.stderr flushed, an Exception from a flush ignored: 0,
 * or -1 with another exception set (a signal handler's, say).  The
 * child's last Python work, and the fork-mode parent's before the fork
 * (pyclone._exit.flush_std_streams); needs the GIL. */
int flush_std_streams(void);
int flush_std_streams_init(void);      /* at import: 0, or -1 with an exception */

/* Fork mode: runs in the child right after fork()/clone() returned 0. */
PYCLONE_NORETURN void child_after_fork(const struct fork_child_plan *plan);

/* Borrowed mode: the child's entry point for glibc clone(). */
struct borrowed_plan {
    struct call_plan call;
    PyThreadState *tstate;  /* created by the parent for the child */
    struct vm_entry vm;     /* for terminate (terminate.h) */
    volatile pid_t tid;     /* the child's: set by the kernel or the child, first */
    uint64_t flags;
    sigset_t mask;          /* the caller's mask, with blocked_start */
    int blocked_start;      /* the child starts with every signal blocked */
    int clear_sighand;
    int clean;              /* set by the child just before it exits normally */
};
int child_borrowed_main(void *arg);

/* Thread mode: the child's entry point for glibc clone() (a thread_job). */
int child_thread_main(void *arg);

/* Calls fn(*args, **kwargs) with the GIL held and returns the exit status
 * 0..255 that the exit rules decide, or -N when the child is to end as
 * killed by signal N (pyclone.Terminated: -SIGTERM). */
int child_call_target(const struct call_plan *call);

/* The exit rules, pyclone._exit's on_return(result) and on_exception(exc)
 * (each -> status), registered once at its import: 0, or -1 with an
 * exception (not callables). */
int child_set_exit_rules(PyObject *on_return, PyObject *on_exception);

/* Ends the calling child as killed by `sig`, holding nothing: in its own
 * handler table the signal's action is made the default first; in a shared
 * one (CLONE_SIGHAND) where it is not the default, SIGKILL instead. */
PYCLONE_NORETURN void child_die_by_signal(int sig, int shared_sighand);

#endif
