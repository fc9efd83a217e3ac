/* host.h - thread mode: CLONE_VM children running concurrently with their
 * parent, each on the libc thread environment of a "host" pthread.
 *
 * A task made by a raw clone with CLONE_VM shares the caller's thread pointer,
 * so errno, malloc's thread cache and CPython's per-thread state would be
 * shared with a running thread.  Instead each child gets a host: a pthread
 * that pyclone creates (and pools), whose TLS block and thread descriptor the
 * caller lends the child through CLONE_SETTLS while the host is parked,
 * every signal blocked, until the kernel clears the child's tid word at its
 * exit.
 */
#ifndef PYCLONE_HOST_H
#define PYCLONE_HOST_H

#include "compat.h"
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "call_plan.h"
#include "raw_clone.h"
#include "terminate.h"

struct host;

/* One thread-mode child, from request to cleanup. */
struct thread_job {
    struct call_plan call;      /* owned */
    struct vm_entry vm;         /* for terminate (terminate.h) */
    PyInterpreterState *interp;
    pid_t owner;                /* the requesting process (its hosts are its threads) */
    uint64_t flags;
    int exit_signal;
    size_t stack_size;
    struct clone_request req;   /* flags, exit signal and clone3's extras */
    pid_t set_tid[32];          /* req.set_tid points here */
    int pidfd;                  /* req.pidfd_out points here under CLONE_PIDFD */
    sigset_t mask;              /* the caller's mask, with blocked_start */
    int blocked_start;          /* the child starts with every signal blocked */
    int clear_sighand;          /* emulate CLONE_CLEAR_SIGHAND (legacy clone) */
    PyThreadState *tstate;      /* made by the host, on the host's TLS */
    struct host *host;          /* lent to the child until its cleanup */
    uint32_t lent_word;         /* the host's state word while lent to it */
    pid_t *exit_word;           /* where a clean end moves CHILD_CLEARTID (the host's) */
    pid_t pid;

    int clean;                  /* the child released its thread state itself */
    int keep_tstate;            /* ...and left it, reset and detached, for reuse */
    int status;                 /* the child's exit status */
    int done;                   /* cleaned up after, by its host or a waiter (registry lock) */
    int caller_seen;            /* the caller has read pid (registry lock) */
    struct thread_job *next, **pprev;       /* registry of jobs not yet forgotten */
    struct thread_job *hnext, **hpprev;     /* its pid's bucket, once caller_seen */
};

/* Starts a child on the TLS of a pooled (or new) host, issuing the clone
 * itself; returns its pid or tid, or -1 with errno set (the job is then
 * freed); *pidfd gets job->pidfd.  `job` comes from PyMem_RawCalloc and
 * belongs to pyclone from here on.  Called with the GIL, which it releases
 * only while a host makes a thread state for the child (a new host, or one
 * that has no spare).  Takes references to job->call. */
pid_t host_start(struct thread_job *job, int *pidfd);

/* CLONE_THREAD children cannot be waited for: join one through its tid.
 * Returns 1 and its exit status when it is gone (forgetting the job), 0 if
 * it is still running and nohang, -1 if `tid` is not such a child.  Called
 * without the GIL. */
int host_join_thread(pid_t tid, int nohang, int *status);

/* After waitpid() reaped thread-mode child `pid`: cleans up after it (or,
 * when its host must, waits until the host has) and parks the host.
 * Without the GIL. */
void host_wait_settled(pid_t pid);
/* The same, without waiting (GIL held, which the cleanup does not need): 1
 * if there is nothing left to wait for. */
int host_settled(pid_t pid);

/* Waits until every thread-mode child this process started has finished
 * (at interpreter exit).  Called without the GIL. */
void host_join_all(void);

/* True when no host and no thread-mode child exists (a lock-free hint,
 * exact when thread mode was never used): lets callers skip the locks. */
int host_none(void);

/* Hosts parked in the pool or lent to a child (asleep in a futex wait
 * until it is gone): they hold no lock, so a raw clone does not need to
 * count them as threads that could. */
int host_parked_count(void);
/* Of those, the hosts lent to a child not yet cleaned up after (tests). */
int host_lent_count(void);

/* A child process about to exit normally: join its running thread-mode
 * children, then retire its idle hosts, which are its threads.  Without the
 * GIL.  (An abrupt exit takes the hosts down with it; the pool forgets
 * them on its next look.) */
void host_leave_process(void);

/* In a fork child: the hosts and children are the parent's; forget them. */
void host_after_fork_child(void);

/* At the first import in this memory: the importing process is the hosts'
 * home. */
void host_init(void);

/* True when process `me` is not the home process and every job and host
 * belongs to the home process: `me` has nothing of its own to join or
 * retire (lock-free, exact). */
int host_owns_nothing(pid_t me);
/* The same for a process known not to be the home one. */
int host_owns_nothing_but_home(void);

/* True when `pid` is a thread-mode child process of ours that still runs
 * (waitpid need not look before it waits).  GIL or not. */
int host_child_running(pid_t pid);


#endif
