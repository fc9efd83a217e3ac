/* terminate.h - ending a CLONE_VM child without harming its parent.
 *
 * A CLONE_VM child that dies at an arbitrary instant is a thread killed at
 * an arbitrary instant: it may die holding, or queued for, a lock in shared
 * memory (the GIL's mutex and condition variable, malloc's arena locks), and
 * glibc's condition variables do not survive a waiter's death.  So a child
 * is ended only where it holds and awaits nothing shared:
 *
 * - running Python: an asynchronous exception (pyclone.Terminated) at its
 *   next bytecode; it unwinds (finally blocks run) and then ends itself as
 *   killed by SIGTERM, after releasing its thread state;
 * - blocked in a system call other than a futex wait (a sleep, a read, a
 *   poll, a wait...): stopped with SIGSTOP, the call it is in read from
 *   /proc/<tid>/syscall while we hold the GIL (so it cannot be queued for it),
 *   and signalled while stopped: it never runs another instruction. */
#ifndef PYCLONE_TERMINATE_H
#define PYCLONE_TERMINATE_H

#include "compat.h"
#include <sys/types.h>

/* Every live CLONE_VM child of this address space has an entry, from
 * before its clone until its survivor has settled after it. */
enum vm_stage {
    VM_STARTING = 0,        /* no Python yet */
    VM_RUNNING = 1,         /* its thread state is marked (below) */
    VM_DONE = 2,            /* its Python part is over */
};
struct vm_entry {
    volatile pid_t *tid;    /* the child's tid, 0 until known */
    PyThreadState *tstate;  /* valid while VM_RUNNING (GIL held) */
    volatile int stage;
    volatile int killed_safely;     /* by terminate, at a safe point: no watchdog */
    struct vm_entry *next, **pprev;
};

/* Before the clone / after the survivor has settled (any thread, no GIL
 * needed: a lock of its own, never held while waiting for the GIL). */
void vm_register(struct vm_entry *e, volatile pid_t *tid);
void vm_unregister(struct vm_entry *e);

/* The child, GIL held, once attached: from now until vm_done its thread
 * state may receive the exception.  vm_done by the child at its end, or by
 * the survivor (GIL held) before it deletes the thread state of a child
 * that died. */
void vm_running(struct vm_entry *e, PyThreadState *tstate);
void vm_done(struct vm_entry *e);

/* In a fork child: the entries are the parent's children; forget them. */
void vm_after_fork_child(void);

/* SIGKILLs every live CLONE_VM child: for a process about to abort, whose
 * children would otherwise live on in its memory, orphaned and stuck. */
void vm_kill_all(void);

/* Asks CLONE_VM child `tid` to end (see above), trying for up to `timeout`
 * seconds to catch it at a safe point if it does not run Python (or to see
 * it start).  Returns 0 if `tid` is no task sharing this address space, 1
 * if the exception is pending or being raised (or the child never reached
 * Python in time), 2 if the child was signalled at a safe point or ends by
 * itself.  GIL held (released while waiting). */
int terminate_vm_child(pid_t tid, PyObject *exc_type, double timeout);

/* Sends `sig` to the stopped-at-a-safe-point child (the machinery above):
 * 1 sent, 0 not at a safe point now (it runs on), -1 gone.  GIL held. */
int terminate_signal_at_safe_point(pid_t tid, int sig);

#endif
