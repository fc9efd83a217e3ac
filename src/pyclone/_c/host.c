/* host.c - see host.h.
 *
 * A host's life: created detached, with every signal blocked (inherited
 * from its creator), to make a thread state for a caller; then lent: the
 * caller issues the clone itself, with CLONE_SETTLS at the host's thread
 * pointer, on a stack carved below the host's parked frame, and returns at
 * once (no hand-off to the host and back).  Between the clone and the
 * child's exit the child owns the host's TLS: the host runs no libc code
 * then, only the raw system calls and atomics of its parking loop (libc's
 * syscall() would write errno, which is the child's).
 *
 * The host sleeps on the clone's tid word (CHILD_CLEARTID), which the
 * kernel clears and wakes at the child's exit.  A child that ends cleanly
 * (it released its thread state itself) first moves that word to the
 * host's exit word (set_tid_address), so its exit does not wake the host:
 * the waiter that reaps or joins it cleans up after it, on its own thread
 * (bookkeeping only).  A child that ends otherwise (os._exit, a signal)
 * wakes its host, which takes the GIL over if need be and deletes the
 * child's thread state.  A clean child that nobody reaps through pyclone
 * (os.waitpid) is cleaned up after by its host when it next looks, one
 * linger period at most; a child that runs longer than that has its host
 * wait for either word.  Cleaned up after, the host returns to the pool,
 * and exits once the pool has been quiet (no host taken or returned) for
 * HOST_LINGER.  A host holding its last child's thread state always parks
 * (deleting it needs the GIL); HOST_POOL_MAX bounds the idle hosts of a
 * process that hold none.
 *
 * The host's state word (the host sleeps on the tid word; callers that
 * wait for a thread state sleep on this one):
 *   PARKED   in the pool, asleep: a caller may claim it (PARKED -> LENT)
 *            and clone on its TLS at once, without waking it;
 *   GO       a caller's request (make a thread state, quit or leave);
 *   AWAKE    the host runs its own code (libc, the GIL): not lendable;
 *   LENT     lent to a child, which may own its TLS;
 *   CLAIMED  the child is gone and a waiter is cleaning up after it.
 * LENT and CLAIMED carry the lending's number, so that no claim or end of
 * a cleanup can match a later lending.  The host runs libc code only in a
 * state it won: AWAKE, from PARKED, GO or (its child gone) LENT.
 */
#define _GNU_SOURCE
#include "host.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "in_child.h"
#include "kernel_abi.h"
#include "stack.h"
#include "cstack.h"
#include "frames.h"
#include "tstate.h"
#include "watchdog.h"

#define HOST_POOL_MAX 16
#define HOST_LINGER_NS 500000000L      /* idle hosts exit after 0.5 s of a quiet pool */
#define HOST_MARGIN (64 * 1024)         /* the host's own frames, above the child's */
/* What a lent host's frames take below host_main's `here` while its child
 * runs on the same stack: the parking loop does only atomics and raw
 * system calls (no libc, all signals blocked), 240 bytes of frame at -O2
 * and under 400 at -O0 (gcc -fstack-usage: host_main, wait_either_word,
 * raw_syscall4), plus a leaf's 128-byte red zone.  Kept small because
 * every page between the host's frames and the child's is one more page
 * of memory per thread-mode child. */
#define PARK_MARGIN 1024

/* ---- raw system calls: no errno, no TLS ------------------------------- */

#if defined(__x86_64__)
static inline long
raw_syscall4(long n, long a1, long a2, long a3, long a4)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static inline long
raw_syscall4(long n, long a1, long a2, long a3, long a4)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
                     : "memory", "cc");
    return x0;
}
#else
#  error "thread mode needs raw system calls for this architecture (host.c)"
#endif

/* FUTEX_WAIT: returns when *addr != val, on a wake, or a timeout. */
static inline void
raw_futex_wait(void *addr, uint32_t val, int private_, const struct timespec *timeout)
{
    (void)raw_syscall4(SYS_futex, (long)addr,
                       FUTEX_WAIT | (private_ ? FUTEX_PRIVATE_FLAG : 0),
                       (long)val, (long)timeout);
}

static inline void
raw_futex_wake(void *addr, int private_)
{
    (void)raw_syscall4(SYS_futex, (long)addr,
                       FUTEX_WAKE | (private_ ? FUTEX_PRIVATE_FLAG : 0), INT_MAX, 0);
}

/* ---- the hosts and the registry -------------------------------------- */

/* Hosts belong to the thread group (process) that created them: a host made
 * by a CLONE_VM child process is a thread of that child, and the children it
 * clones are that child's.  So a caller is served only by hosts of its own
 * process, and a child process retires its hosts before it exits. */
/* The host's state word: the state in the low 3 bits; LENT and CLAIMED
 * carry the lending's number above them, so that a waiter's claim or a
 * cleanup's end cannot match a later lending of the same host. */
enum host_state {
    HOST_AWAKE = 0,
    HOST_PARKED = 1,
    HOST_GO = 2,
    HOST_LENT = 3,
    HOST_CLAIMED = 4,
};
#define STATE_OF(w) ((w) & 7u)
#define CLAIMED_FOR(lent) (((lent) & ~7u) | HOST_CLAIMED)

struct host {
    size_t stack_size;          /* the child's share of the host's stack */
    char *stack_low;            /* lowest usable address of its stack, or NULL */
    char *own_guard;            /* the guard page it installed itself, or NULL */
    int own_guard_protected;    /* ... as a PROT_NONE page, not a guard region */
    char *park_top;             /* a child's initial stack pointer: below the parked frame */
    void *tp;                   /* its thread pointer, for CLONE_SETTLS */
    pid_t tgid, tid;            /* its process, and itself */
    pthread_t thread;
    uint32_t word;              /* futex: state (see the top of file) */
    uint32_t lendings;          /* numbers the lendings (its LENT words) */
    pid_t child_tid;            /* CLONE_PARENT_SETTID/CHILD_CLEARTID word of its child */
    pid_t exit_word;            /* ...where a child that ends cleanly moves CHILD_CLEARTID */
    uint32_t child_known;       /* the clone returned: the child's pid is in its job */
    int lent;                   /* in the list of lent hosts (host_lock) */
    int exit_sleepers;          /* waiters asleep on exit_word (atomic) */
    struct thread_job *job;     /* the request (GO) or the child (LENT) */
    int idle;                   /* parked in the pool (host_lock) */
    struct host **pprev;        /* in the pool, while idle */
    int quit;                   /* being retired: exit, to be joined */
    int leave;                  /* not wanted in the pool: exit, detached */
    PyThreadState *spare;       /* a finished child's, reset, for the next one */
    struct host *next;
};

static inline uint32_t
word_load(struct host *h)
{
    return __atomic_load_n(&h->word, __ATOMIC_SEQ_CST);
}

static inline int
word_cas(struct host *h, uint32_t from, uint32_t to)
{
    return __atomic_compare_exchange_n(&h->word, &from, to, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static inline void
word_store(struct host *h, uint32_t to)
{
    __atomic_store_n(&h->word, to, __ATOMIC_SEQ_CST);
}

/* The LENT word of h's next lending (by whoever lends it: the caller that
 * claimed it parked, or the host after a request). */
static inline uint32_t
next_lent_word(struct host *h)
{
    uint32_t n = __atomic_add_fetch(&h->lendings, 1, __ATOMIC_SEQ_CST);
    return (n << 3) | HOST_LENT;
}

/* Every operation below is O(1) or bounded by the pool's size: with
 * thousands of children ending at once, each list walk under a shared lock
 * is paid by every host and caller that waits for that lock (and a caller
 * may wait for it holding the GIL). */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static struct host *pool;       /* idle hosts of every process sharing memory */
static int live_hosts;          /* hosts alive, idle or busy (atomic) */

/* The process whose memory this is (set at import and after a fork), and how
 * many jobs and hosts belong to other processes sharing it (CLONE_VM child
 * processes that use thread mode themselves).  While that count is 0, no
 * child process has anything to join or retire when it exits: it can skip
 * the locks (and the GIL hand-off) of host_leave_process. */
static pid_t home;
static int foreign;

static void
count_owner(pid_t owner, int delta)
{
    if (owner != home) {
        __atomic_add_fetch(&foreign, delta, __ATOMIC_SEQ_CST);
    }
}

static void
job_free(struct thread_job *job)
{
    count_owner(job->owner, -1);
    PyMem_RawFree(job);
}

static void
host_free(struct host *h)
{
    count_owner(h->tgid, -1);
    __atomic_sub_fetch(&live_hosts, 1, __ATOMIC_SEQ_CST);
    free(h);
}

void
host_init(void)
{
    if (home == 0) {
        home = getpid();        /* the first import in this memory */
    }
}

int
host_owns_nothing(pid_t me)
{
    return me != home && host_owns_nothing_but_home();
}

int
host_owns_nothing_but_home(void)
{
    return __atomic_load_n(&foreign, __ATOMIC_SEQ_CST) == 0;
}

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t registry_cond = PTHREAD_COND_INITIALIZER;
static struct thread_job *registry;     /* every job not yet forgotten */

/* Jobs whose caller has read the pid, by pid (registry_lock); jobs not yet
 * seen are found by a walk of the registry, which only they make necessary
 * (a waitpid(-1) in another thread can reap a child before its caller hears
 * of it). */
#define PID_BUCKETS 1024
static struct thread_job *by_pid[PID_BUCKETS];
static int unseen;                      /* jobs with caller_seen == 0 */

int
host_none(void)
{
    /* A hint without the locks: no job and no host means no host or
     * thread-mode child exists in any process sharing this memory. */
    return __atomic_load_n(&registry, __ATOMIC_ACQUIRE) == NULL
           && __atomic_load_n(&live_hosts, __ATOMIC_ACQUIRE) == 0;
}

/* Hosts lent to children (host_lock): asleep in their raw parking loop,
 * they hold no lock either. */
static struct host *lent_hosts;
/* How many hosts of the home process are idle or lent (host_lock). */
static int home_parked;

int
host_parked_count(void)
{
    pid_t me = getpid();
    int n = 0;
    pthread_mutex_lock(&host_lock);
    if (me == home) {
        n = home_parked;
    }
    else {
        for (struct host *h = pool; h != NULL; h = h->next) {
            n += h->tgid == me;
        }
        for (struct host *h = lent_hosts; h != NULL; h = h->next) {
            n += h->tgid == me;
        }
    }
    pthread_mutex_unlock(&host_lock);
    return n;
}

int
host_lent_count(void)
{
    pid_t me = getpid();
    int n = 0;
    pthread_mutex_lock(&host_lock);
    for (struct host *h = lent_hosts; h != NULL; h = h->next) {
        n += h->tgid == me;
    }
    pthread_mutex_unlock(&host_lock);
    return n;
}

/* The pool and the lent list are doubly linked through next/pprev (a host
 * is in one of them at most): O(1) in and out.  host_lock held. */
static void
host_list_push(struct host **head, struct host *h)
{
    h->next = *head;
    h->pprev = head;
    if (*head != NULL) {
        (*head)->pprev = &h->next;
    }
    *head = h;
    home_parked += h->tgid == home;
}

static void
host_list_remove(struct host *h)
{
    *h->pprev = h->next;
    if (h->next != NULL) {
        h->next->pprev = h->pprev;
    }
    home_parked -= h->tgid == home;
}

static void
lent_link(struct host *h)
{
    pthread_mutex_lock(&host_lock);
    h->lent = 1;
    host_list_push(&lent_hosts, h);
    pthread_mutex_unlock(&host_lock);
}

static void
lent_unlink(struct host *h)
{
    pthread_mutex_lock(&host_lock);
    if (h->lent) {
        host_list_remove(h);
        h->lent = 0;
    }
    pthread_mutex_unlock(&host_lock);
}

/* Idle hosts of every process sharing this memory (changed with host_lock
 * held, read without it): an upper bound of any one process's count. */
static int idle_hosts;

/* Bumped by every take from and return to the pool (not by a host leaving
 * it): an idle host whose linger ran out leaves only if the pool was quiet
 * all that time, so that hosts holding spare thread states (whose deletion
 * needs the GIL) leave after a burst of children, not during it. */
static unsigned pool_epoch;

static void
pool_link(struct host *h)       /* host_lock held */
{
    __atomic_add_fetch(&pool_epoch, 1, __ATOMIC_RELAXED);
    h->idle = 1;
    host_list_push(&pool, h);
    __atomic_add_fetch(&idle_hosts, 1, __ATOMIC_RELAXED);
}

static void
pool_unlink(struct host *h)     /* host_lock held, h idle */
{
    host_list_remove(h);
    h->idle = 0;
    __atomic_sub_fetch(&idle_hosts, 1, __ATOMIC_RELAXED);
}

/* An idle host of process `me` with a stack of stack_size bytes, taken. */
static struct host *
pool_take(size_t stack_size, pid_t me)
{
    struct host *found = NULL;
    pthread_mutex_lock(&host_lock);
    for (struct host *h = pool, *next; h != NULL; h = next) {
        next = h->next;
        if (h->tgid != me || h->stack_size != stack_size) {
            continue;
        }
        pool_unlink(h);
        __atomic_add_fetch(&pool_epoch, 1, __ATOMIC_RELAXED);   /* (leaving is not) */
        /* The home process's hosts end only through the pool, or with it;
         * another process sharing this memory may have ended abruptly,
         * and its pid been reused. */
        if (me != home && syscall(SYS_tgkill, h->tgid, h->tid, 0) != 0) {
            /* Died with its process (an abrupt exit): forget it. */
            host_free(h);
            continue;
        }
        found = h;
        break;
    }
    pthread_mutex_unlock(&host_lock);
    return found;
}

/* Back in the pool; 0 if its process has enough idle hosts: exit. */
static int
pool_put(struct host *h)
{
    int n = 0, ok;
    pthread_mutex_lock(&host_lock);
    if (idle_hosts >= HOST_POOL_MAX && h->spare == NULL) {
        /* Only then can this process's own count be full: count it. */
        for (struct host *o = pool; o != NULL; o = o->next) {
            n += o->tgid == h->tgid;
        }
    }
    ok = n < HOST_POOL_MAX;
    if (ok) {
        pool_link(h);
    }
    pthread_mutex_unlock(&host_lock);
    return ok;
}

/* After a linger timeout: leave unless a caller (or a retirement) took us. */
static int
pool_leave(struct host *h)
{
    int left = 0;
    pthread_mutex_lock(&host_lock);
    if (h->idle) {
        pool_unlink(h);
        left = 1;
    }
    pthread_mutex_unlock(&host_lock);
    return left;
}

static void
registry_add(struct thread_job *job)
{
    pthread_mutex_lock(&registry_lock);
    job->next = registry;
    job->pprev = &registry;
    if (registry != NULL) {
        registry->pprev = &job->next;
    }
    registry = job;
    unseen++;
    pthread_mutex_unlock(&registry_lock);
}

static struct thread_job **
pid_bucket(pid_t pid)
{
    return &by_pid[(unsigned)pid % PID_BUCKETS];
}

/* The caller has read the pid (registry_lock held): index the job by it. */
static void
registry_seen(struct thread_job *job)
{
    job->caller_seen = 1;
    unseen--;
    if (job->pid > 0) {
        struct thread_job **b = pid_bucket(job->pid);
        job->hnext = *b;
        job->hpprev = b;
        if (*b != NULL) {
            (*b)->hpprev = &job->hnext;
        }
        *b = job;
    }
}

/* Unlinks `job` (registry_lock held). */
static void
registry_unlink(struct thread_job *job)
{
    *job->pprev = job->next;
    if (job->next != NULL) {
        job->next->pprev = job->pprev;
    }
    if (job->hpprev != NULL) {
        *job->hpprev = job->hnext;
        if (job->hnext != NULL) {
            job->hnext->hpprev = job->hpprev;
        }
        job->hpprev = NULL;
    }
    else if (!job->caller_seen) {
        unseen--;
    }
}

/* The job of child `pid` that matches `thread` (CLONE_THREAD or not), seen
 * by its caller or (if `any`) not yet; NULL if none (registry_lock held). */
static struct thread_job *
registry_find(pid_t pid, int thread, int any)
{
    for (struct thread_job *j = *pid_bucket(pid); j != NULL; j = j->hnext) {
        if (j->pid == pid && !(j->flags & CLONE_THREAD) == !thread) {
            return j;
        }
    }
    if (any && unseen > 0) {
        for (struct thread_job *j = registry; j != NULL; j = j->next) {
            if (!j->caller_seen && j->pid == pid && !(j->flags & CLONE_THREAD) == !thread) {
                return j;
            }
        }
    }
    return NULL;
}

/* ---- cleaning up after a child ---------------------------------------- */

/* The child is gone and the host owns its TLS again.  If the child did not
 * end cleanly, its thread state is still here: take the GIL (over, if the
 * child died holding it: its thread state is then the current one on this
 * TLS), release what its frames hold, clear and delete it.  The host's own
 * thread only. */
static void
host_settle(struct thread_job *job)
{
    if (!job->clean) {
        PyThreadState *t = job->tstate;
        void *abandoned = frames_abandon(t);     /* before our stack grows */
        if (!(job->flags & CLONE_THREAD) && !job->vm.killed_safely) {
            watchdog_check(job->pid, compat_current_tstate() == t);
        }
        if (compat_current_tstate() != t) {
            PyEval_RestoreThread(t);
        }
        vm_done(&job->vm);                       /* before its thread state goes */
        frames_release_abandoned(abandoned);
        call_plan_clear(&job->call);
        PyThreadState_Clear(t);
        PyThreadState_DeleteCurrent();      /* and the GIL */
    }
}

/* The job is over and its host parked (or leaving): tell waiters. */
static void
announce_done(struct thread_job *job)
{
    pthread_mutex_lock(&registry_lock);
    job->done = 1;
    if (!(job->flags & CLONE_THREAD) && job->caller_seen) {
        /* A process: its status is the kernel's to report. */
        registry_unlink(job);
        job_free(job);
    }
    pthread_cond_broadcast(&registry_cond);
    pthread_mutex_unlock(&registry_lock);
}

/* 1 once host h's child has exited: the kernel cleared one of its tid words
 * (the clone's, or the one a clean end moved it to). */
static inline int
child_gone(struct host *h)
{
    return __atomic_load_n(&h->child_known, __ATOMIC_SEQ_CST)
           && (__atomic_load_n(&h->child_tid, __ATOMIC_SEQ_CST) == 0
               || __atomic_load_n(&h->exit_word, __ATOMIC_SEQ_CST) == 0);
}

/* The middle of a cleanup after host h's child, by the host or a waiter
 * (who owns h's state word meanwhile, AWAKE or CLAIMED): h keeps the
 * child's thread state if it left one, forgets the job and is back in the
 * pool.  The cleaner then gives up the word and tells waiters
 * (announce_done): parked before they hear (a fork-mode clone right after
 * waitpid() then sees no busy thread).  Returns 0 if the pool is full: h
 * must exit. */
static int
host_repool(struct host *h, struct thread_job *job)
{
    vm_unregister(&job->vm);
    if (job->keep_tstate) {
        h->spare = job->tstate;
    }
    h->job = NULL;
    __atomic_store_n(&h->child_known, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&h->child_tid, 0, __ATOMIC_SEQ_CST);
    lent_unlink(h);
    int pooled = pool_put(h);
    /* Whoever sleeps on the exit word (a joiner) looks again: the word
     * changes before the sleepers are counted, so one that counts itself
     * later does not fall asleep on it. */
    __atomic_store_n(&h->exit_word, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->exit_sleepers, __ATOMIC_SEQ_CST) > 0) {
        raw_futex_wake(&h->exit_word, 0);
    }
    return pooled;
}

/* Registry lock held, job not done, its child started: if the child is
 * gone and the cleanup is nobody's yet, claims it (1: call waiter_cleanup
 * after unlocking).  A child that did not end cleanly is its host's to
 * clean up (its thread state is bound to the host's TLS; the exit that
 * cleared the clone's tid word woke the host): 0, as while the child runs. */
static int
claim_cleanup(struct thread_job *job)
{
    struct host *h = job->host;
    if (!child_gone(h) || !job->clean) {
        return 0;
    }
    /* Fails if the host claimed it, or if what was read belongs to a later
     * lending (the word has changed then). */
    return word_cas(h, job->lent_word, CLAIMED_FOR(job->lent_word));
}

/* A waiter cleans up after a child that ended cleanly (claimed above): what
 * the child left is bookkeeping only, done on the waiter's own thread,
 * while the host sleeps on.  Then the host is lendable again (or told to
 * exit if the pool is full). */
static void
waiter_cleanup(struct thread_job *job)
{
    struct host *h = job->host;
    if (host_repool(h, job)) {
        /* Unless a caller that found h in the pool made a request (GO)
         * meanwhile.  A later lending changes the word: no other waiter of
         * this job can then take its child for ours. */
        (void)word_cas(h, CLAIMED_FOR(job->lent_word), HOST_PARKED);
    }
    else {
        h->leave = 1;
        word_store(h, HOST_GO);
        raw_futex_wake(&h->child_tid, 0);
    }
    announce_done(job);
}

/* Registry lock held, job not done, its child started and not claimable by
 * us: waits (the lock released) for a change.  While the host is still lent
 * to the child and the child runs, on the exit word (a clean end clears it,
 * and any cleanup wakes it); else on the registry's condition (a cleanup
 * announces itself there). */
static void
wait_for_cleanup(struct thread_job *job)
{
    struct host *h = job->host;
    pid_t e = __atomic_load_n(&h->exit_word, __ATOMIC_SEQ_CST);
    if (e != 0 && !child_gone(h) && word_load(h) == job->lent_word) {
        __atomic_add_fetch(&h->exit_sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&registry_lock);
        /* A cleanup that counted no sleeper has changed the word (and
         * each lending gives it a value of its own): this returns at once. */
        raw_futex_wait(&h->exit_word, (uint32_t)e, 0, NULL);
        __atomic_sub_fetch(&h->exit_sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&registry_lock);
        return;
    }
    pthread_cond_wait(&registry_cond, &registry_lock);
}

/* Registry lock held; `job` pending and started: cleans up after it if
 * that is ours to do (1: the lock was dropped meanwhile, `job` may be
 * gone). */
static int
cleanup_if_ours(struct thread_job *job)
{
    if (!claim_cleanup(job)) {
        return 0;
    }
    pthread_mutex_unlock(&registry_lock);
    waiter_cleanup(job);
    pthread_mutex_lock(&registry_lock);
    return 1;
}

/* ---- the host thread -------------------------------------------------- */

static pthread_mutex_t retire_lock = PTHREAD_MUTEX_INITIALIZER;

/* A leaving host deletes its idle thread state (it is bound to this TLS).
 * During finalisation the interpreter deletes it: only forget it then. */
static void
host_drop_spare(struct host *h)
{
    PyThreadState *t = h->spare;
    h->spare = NULL;
    if (t != NULL && !compat_is_finalizing()) {
        /* One leaving host at a time asks for the GIL: after a burst of
         * thousands of children, their hosts leave in a queue here rather
         * than as thousands of GIL waiters. */
        pthread_mutex_lock(&retire_lock);
        PyEval_RestoreThread(t);
        PyThreadState_Clear(t);
        PyThreadState_DeleteCurrent();
        pthread_mutex_unlock(&retire_lock);
    }
}

/* The caller's clone on the lent TLS failed, or it asked for a thread
 * state that could not be made: the host is parked again, unused. */
static void
host_unlend(struct host *h)
{
    h->job = NULL;
    __atomic_store_n(&h->child_known, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&h->child_tid, 0, __ATOMIC_SEQ_CST);
    word_store(h, HOST_PARKED);
    (void)pool_put(h);          /* it holds a spare, or the pool has room */
}

/* Sleeps until either tid word of a running child changes: the kernel
 * clears one and wakes its sleepers at the child's exit.  Waits on both
 * with futex_waitv (Linux 5.16); without it, wakes every linger period. */
static void
wait_either_word(struct host *h, pid_t t, pid_t e, const struct timespec *linger)
{
#ifdef SYS_futex_waitv
    struct {
        uint64_t val, uaddr;
        uint32_t flags, reserved;
    } words[2] = {
        {(uint32_t)t, (uint64_t)(uintptr_t)&h->child_tid, 2 /* FUTEX2_SIZE_U32 */, 0},
        {(uint32_t)e, (uint64_t)(uintptr_t)&h->exit_word, 2, 0},
    };
    long r = raw_syscall4(SYS_futex_waitv, (long)words, 2, 0, 0);
    if (r != -ENOSYS) {
        return;
    }
#else
    (void)e;
#endif
    raw_futex_wait(&h->child_tid, (uint32_t)t, 0, linger);
}

/* ---- host stacks: one mapping for many -------------------------------- */

/* Every child *process* that exits (a CLONE_VM child without CLONE_THREAD)
 * has the kernel walk every mapping of the memory it shares (process
 * accounting sums their sizes), so an exit costs O(mappings).  A stack
 * that glibc makes with a guard page is two mappings (the PROT_NONE guard
 * splits it); without one, stacks made next to each other merge into one.
 * So where the kernel has guard regions (MADV_GUARD_INSTALL, Linux 6.13),
 * which live in the page tables and split nothing, a host's stack is made
 * without glibc's guard and the host installs that page itself: with 5,000
 * hosts the walk goes from some 10,000 mappings to a few.  Elsewhere glibc
 * keeps its guard, as before. */
#ifndef MADV_GUARD_INSTALL
#  define MADV_GUARD_INSTALL 102
#  define MADV_GUARD_REMOVE 103
#endif

static int guard_regions = -1;      /* 1: MADV_GUARD_INSTALL works; -1: unknown */

static int
have_guard_regions(void)
{
    int known = __atomic_load_n(&guard_regions, __ATOMIC_RELAXED);
    if (known >= 0) {
        return known;
    }
    size_t page = (size_t)getpagesize();
    int ok = 0;
    void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        ok = madvise(p, page, MADV_GUARD_INSTALL) == 0;
        (void)munmap(p, 2 * page);
    }
    __atomic_store_n(&guard_regions, ok, __ATOMIC_RELAXED);
    return ok;
}

/* The guard page at the bottom of a host's stack that glibc made without
 * one (host_create): a guard region, or a PROT_NONE page if that fails.  A
 * stack with no guard at all would let a child's overflow write into the
 * mapping below it, so if neither works the process stops, loudly.  Runs on
 * the host before it is ever lent: its own libc calls. */
static void
install_stack_guard(struct host *h, void *bottom)
{
    size_t page = (size_t)getpagesize();
    h->own_guard = bottom;
    if (madvise(bottom, page, MADV_GUARD_INSTALL) == 0) {
        return;
    }
    h->own_guard_protected = 1;
    if (bottom == NULL || mprotect(bottom, page, PROT_NONE) != 0) {
        fprintf(stderr, "pyclone: cannot put a guard page below a host thread's "
                        "stack (errno %d); aborting\n", errno);
        abort();
    }
}

/* Undone as the host ends: glibc keeps the stack for a later thread, which
 * may have asked for no guard and own that page. */
static void
remove_stack_guard(struct host *h)
{
    size_t page = (size_t)getpagesize();
    if (h->own_guard == NULL) {
        return;
    }
    if (h->own_guard_protected) {
        (void)mprotect(h->own_guard, page, PROT_READ | PROT_WRITE);
    }
    else {
        (void)madvise(h->own_guard, page, MADV_GUARD_REMOVE);
    }
}

static void *
host_main(void *arg)
{
    struct host *h = arg;
    const struct timespec linger = {0, HOST_LINGER_NS};
    char here;
    h->tid = (pid_t)syscall(SYS_gettid);
    h->tp = __builtin_thread_pointer();
    /* Children run below this frame, which the parking loop never leaves
     * while one may be running: all it does then is inline raw system
     * calls and atomics, well within PARK_MARGIN. */
    h->park_top = stack_carve_top(&here, PARK_MARGIN);
    /* Cheap for a thread glibc created (no /proc read, as for the main one). */
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size, guard = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &addr, &size) != 0
            || pthread_attr_getguardsize(&attr, &guard) != 0) {
            addr = NULL;
        }
        pthread_attr_destroy(&attr);
    }
    if (addr != NULL && guard > 0) {
        h->stack_low = (char *)addr + guard;
    }
    else if (__atomic_load_n(&guard_regions, __ATOMIC_RELAXED) == 1) {
        /* Made without glibc's guard (host_create): our own (NULL, if the
         * stack could not be found, stops the process). */
        install_stack_guard(h, addr);
        h->stack_low = (char *)addr + (size_t)getpagesize();
    }
    /* Created with a request waiting (GO).  The host sleeps on the clone's
     * tid word: requests wake it there, and so does the exit of a child
     * that did not end cleanly, while lending the host (the word leaves 0
     * without a wake) and a clean end (which moves the word) do not. */
    unsigned epoch = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
    uint32_t seen = 0;          /* the lending last looked at */
    for (;;) {
        uint32_t w = word_load(h);
        pid_t t = __atomic_load_n(&h->child_tid, __ATOMIC_SEQ_CST);
        switch (STATE_OF(w)) {
        case HOST_GO:
            word_store(h, HOST_AWAKE);
            if (__atomic_load_n(&h->quit, __ATOMIC_SEQ_CST)) {
                host_drop_spare(h);
                remove_stack_guard(h);
                return NULL;        /* retired: joined (and freed) by its process */
            }
            if (h->leave) {
                goto leave;
            }
            /* A thread state for the caller's child, made here so that it
             * is bound to this TLS, where the child runs (PyGILState finds
             * it there); if it cannot be made the caller reports ENOMEM. */
            if (h->spare == NULL) {
                h->spare = PyThreadState_New(h->job->interp);
            }
            /* Lent from here on: the caller clones on our TLS. */
            word_store(h, next_lent_word(h));
            raw_futex_wake(&h->word, 0);
            continue;
        case HOST_PARKED: {
            raw_futex_wait(&h->child_tid, (uint32_t)t, 0, &linger);
            if (word_load(h) != HOST_PARKED) {
                continue;                   /* lent, or a request */
            }
            unsigned now = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
            if (now != epoch) {
                epoch = now;                /* still busy: linger on */
                continue;
            }
            if (!word_cas(h, HOST_PARKED, HOST_AWAKE)) {
                continue;
            }
            if (pool_leave(h)) {
                goto leave;
            }
            /* Taken from the pool: the taker's request follows (or came). */
            (void)word_cas(h, HOST_AWAKE, HOST_PARKED);
            continue;
        }
        case HOST_LENT:
            if (child_gone(h)) {
                /* No waiter has claimed it (yet): ours to clean up, unless
                 * what we read is a later lending's (then w differs). */
                if (!word_cas(h, w, HOST_AWAKE)) {
                    continue;
                }
                struct thread_job *job = h->job;
                host_settle(job);
                int pooled = host_repool(h, job);
                announce_done(job);
                if (!pooled) {
                    goto leave;
                }
                (void)word_cas(h, HOST_AWAKE, HOST_PARKED);   /* unless a request came */
                epoch = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
                continue;
            }
            if (w != seen || t <= 0) {
                /* First look (or the clone is under way): a waiter cleans
                 * up after most children, so sleep as parked for one linger
                 * period and look again. */
                seen = w;
                raw_futex_wait(&h->child_tid, (uint32_t)t, 0, &linger);
            }
            else {
                /* A long-running child: wake at its exit, however it ends. */
                wait_either_word(h, t, __atomic_load_n(&h->exit_word, __ATOMIC_SEQ_CST),
                                 &linger);
            }
            continue;
        default:                /* CLAIMED: a waiter is cleaning up */
            raw_futex_wait(&h->child_tid, (uint32_t)t, 0, &linger);
            epoch = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
            continue;
        }
    }
leave:
    /* Unlinked already; nobody will join us. */
    host_drop_spare(h);
    remove_stack_guard(h);
    pthread_detach(pthread_self());
    host_free(h);
    return NULL;
}

/* A new host, started with a request (GO) for `job`'s thread state. */
static struct host *
host_create(size_t stack_size, struct thread_job *job)
{
    struct host *h = calloc(1, sizeof *h);
    if (h == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    h->stack_size = stack_size;
    h->tgid = getpid();
    count_owner(h->tgid, +1);
    h->job = job;
    h->word = HOST_GO;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t size = stack_size + HOST_MARGIN + CARVE_MARGIN;
    if (have_guard_regions()) {
        /* No guard from glibc: the host installs its own (above). */
        pthread_attr_setguardsize(&attr, 0);
        size += (size_t)getpagesize();
    }
    pthread_attr_setstacksize(&attr, size);
    /* Every signal blocked from its first instruction: signals are for the
     * children, whose masks are their callers'. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    __atomic_add_fetch(&live_hosts, 1, __ATOMIC_SEQ_CST);    /* busy: in no list */
    int err = pthread_create(&h->thread, &attr, host_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        host_free(h);
        errno = err;
        return NULL;
    }
    return h;
}

/* ---- the caller's side ------------------------------------------------ */

/* A host lent to `job` (job->lent_word set), holding a thread state for
 * it, or NULL with errno set.  GIL held; released only while a host makes
 * a thread state. */
static struct host *
host_borrow(struct thread_job *job)
{
    struct host *h = pool_take(job->stack_size, job->owner);
    if (h != NULL) {
        h->job = job;
        uint32_t n = __atomic_load_n(&h->lendings, __ATOMIC_SEQ_CST) + 1;
        uint32_t lent = (n << 3) | HOST_LENT;
        if (h->spare != NULL && word_cas(h, HOST_PARKED, lent)) {
            /* The common case: parked with a thread state, lent at once. */
            __atomic_store_n(&h->lendings, n, __ATOMIC_SEQ_CST);
            job->lent_word = lent;
            return h;
        }
        /* Awake (leaving the pool, finishing a cleanup), or it has no
         * thread state: a request. */
        (void)__atomic_exchange_n(&h->word, HOST_GO, __ATOMIC_SEQ_CST);
        raw_futex_wake(&h->child_tid, 0);
    }
    else {
        h = host_create(job->stack_size, job);
        if (h == NULL) {
            return NULL;
        }
    }
    uint32_t w;
    Py_BEGIN_ALLOW_THREADS
    while (STATE_OF(w = word_load(h)) != HOST_LENT) {
        raw_futex_wait(&h->word, w, 0, NULL);
    }
    Py_END_ALLOW_THREADS
    job->lent_word = w;
    if (h->spare == NULL) {
        host_unlend(h);
        errno = ENOMEM;
        return NULL;
    }
    return h;
}

/* Issues the clone on lent host h's TLS and stack.  The child must start
 * with every signal blocked (it resets handlers, if asked, before it
 * installs the caller's mask), so the caller blocks them around the call. */
static pid_t
clone_on_host(struct thread_job *job, struct host *h)
{
    job->tstate = h->spare;
    h->spare = NULL;
    job->exit_word = &h->exit_word;
    /* Negative, and this lending's own: a waiter asleep on it for an
     * earlier child cannot take this one's for it. */
    __atomic_store_n(&h->exit_word, -(pid_t)(job->lent_word >> 3), __ATOMIC_SEQ_CST);
    __atomic_store_n(&h->child_tid, -1, __ATOMIC_SEQ_CST);
    if (h->stack_low != NULL) {
        cstack_set(job->tstate, h->stack_low, h->park_top);
    }
    struct clone_request req = job->req;
    req.flags |= CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    struct vm_start start = {child_thread_main, job, h->park_top, h->tp,
                             &h->child_tid, &h->child_tid};
    /* A child that may have to reset its handlers itself (CLONE_CLEAR_SIGHAND
     * without clone3) must receive no signal before it has: it starts with
     * every signal blocked and then installs the caller's mask.  Any other
     * child starts with the caller's mask, as it should. */
    job->blocked_start = (req.flags & CLONE_CLEAR_SIGHAND_BIT) != 0;
    if (job->blocked_start) {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &job->mask);
    }
    pid_t pid = rawclone_vm(&req, &start, &job->clear_sighand);
    int err = errno;
    if (job->blocked_start) {
        pthread_sigmask(SIG_SETMASK, &job->mask, NULL);
    }
    if (pid < 0) {
        h->spare = job->tstate;     /* unused */
        job->tstate = NULL;
        errno = err;
    }
    return pid;
}

pid_t
host_start(struct thread_job *job, int *pidfd)
{
    call_plan_hold(&job->call);
    job->interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    job->owner = getpid();
    count_owner(job->owner, +1);
    registry_add(job);

    pid_t pid = -1;
    struct host *h = host_borrow(job);
    int err = errno;
    if (h != NULL) {
        job->host = h;
        vm_register(&job->vm, &h->child_tid);
        lent_link(h);
        pid = clone_on_host(job, h);
        err = errno;
        if (pid < 0) {
            lent_unlink(h);
            vm_unregister(&job->vm);
            host_unlend(h);
        }
        else {
            /* Before a waiter or the host may clean up after it. */
            job->pid = pid;
            __atomic_store_n(&h->child_known, 1, __ATOMIC_SEQ_CST);
        }
    }

    /* A quick child may be gone already: whoever cleaned up after it frees
     * a process child's job once we have read the pid (registry lock). */
    pthread_mutex_lock(&registry_lock);
    *pidfd = pid >= 0 && job->req.pidfd_out != NULL ? job->pidfd : -1;
    registry_seen(job);
    if (pid < 0) {
        registry_unlink(job);
    }
    else if (job->done && !(job->flags & CLONE_THREAD)) {
        registry_unlink(job);
        job_free(job);
    }
    else {
        pthread_cond_broadcast(&registry_cond);     /* join_all_of may wait for the start */
    }
    pthread_mutex_unlock(&registry_lock);
    if (pid < 0) {
        call_plan_clear(&job->call);
        job_free(job);
        errno = err;
        return -1;
    }
    return pid;
}

int
host_join_thread(pid_t tid, int nohang, int *status)
{
    pthread_mutex_lock(&registry_lock);
    struct thread_job *job = registry_find(tid, 1, 0);
    if (job == NULL) {
        pthread_mutex_unlock(&registry_lock);
        return -1;
    }
    /* A thread's job stays until it is joined: `job` outlives the waits. */
    while (!job->done && !cleanup_if_ours(job) && !nohang) {
        wait_for_cleanup(job);
    }
    int done = job->done;
    if (done) {
        *status = job->status;
        registry_unlink(job);
        job_free(job);
    }
    pthread_mutex_unlock(&registry_lock);
    return done;
}

int
host_child_running(pid_t pid)
{
    pthread_mutex_lock(&registry_lock);
    struct thread_job *job = registry_find(pid, 0, 0);
    int running = job != NULL && !job->done && word_load(job->host) == job->lent_word
                  && !child_gone(job->host);
    pthread_mutex_unlock(&registry_lock);
    return running;
}

/* The pending job of process child `pid`, or NULL (registry_lock held). */
static struct thread_job *
pending_process_job(pid_t pid)
{
    struct thread_job *job = registry_find(pid, 0, 1);
    return job != NULL && !job->done ? job : NULL;
}

int
host_settled(pid_t pid)
{
    pthread_mutex_lock(&registry_lock);
    struct thread_job *job = pending_process_job(pid);
    if (job != NULL && cleanup_if_ours(job)) {
        job = pending_process_job(pid);
    }
    pthread_mutex_unlock(&registry_lock);
    return job == NULL;
}

void
host_wait_settled(pid_t pid)
{
    pthread_mutex_lock(&registry_lock);
    for (struct thread_job *job; (job = pending_process_job(pid)) != NULL;) {
        if (!cleanup_if_ours(job)) {
            wait_for_cleanup(job);
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static void
join_all_of(pid_t me)
{
    pthread_mutex_lock(&registry_lock);
    for (;;) {
        struct thread_job *running = NULL;
        for (struct thread_job *j = registry; j != NULL; j = j->next) {
            if (!j->done && j->owner == me) {
                running = j;
                break;
            }
        }
        if (running == NULL) {
            break;
        }
        if (!running->caller_seen) {
            /* Still starting: host_start broadcasts when it is done. */
            pthread_cond_wait(&registry_cond, &registry_lock);
        }
        else if (!cleanup_if_ours(running)) {
            wait_for_cleanup(running);
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

void
host_join_all(void)
{
    join_all_of(getpid());
}

void
host_after_fork_child(void)
{
    /* Only the forking thread exists here: no host, no child of ours. The
     * locks may have been held by threads that are gone: make them anew. */
    pthread_mutex_t fresh_mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    host_lock = fresh_mutex;
    registry_lock = fresh_mutex;
    registry_cond = fresh_cond;
    pool = NULL;            /* their memory is leaked in this child, on purpose */
    lent_hosts = NULL;
    home_parked = 0;
    live_hosts = 0;
    idle_hosts = 0;
    retire_lock = fresh_mutex;
    registry = NULL;
    memset(by_pid, 0, sizeof by_pid);
    unseen = 0;
    foreign = 0;
    home = getpid();
}

void
host_leave_process(void)
{
    if (host_none() || host_owns_nothing(getpid())) {
        return;
    }
    pid_t me = getpid();
    /* 1. Our running thread-mode children: their hosts are our threads. */
    join_all_of(me);
    /* 2. Our idle hosts: tell them to quit and join them, so that they leave
     * through glibc's own thread exit (its stack list and thread count live
     * in memory we may share with our parent) before we exit. */
    for (;;) {
        struct host *h;
        pthread_mutex_lock(&host_lock);
        for (h = pool; h != NULL && h->tgid != me; h = h->next) {
        }
        if (h != NULL) {
            pool_unlink(h);
        }
        pthread_mutex_unlock(&host_lock);
        if (h == NULL) {
            break;
        }
        __atomic_store_n(&h->quit, 1, __ATOMIC_SEQ_CST);
        (void)__atomic_exchange_n(&h->word, HOST_GO, __ATOMIC_SEQ_CST);
        raw_futex_wake(&h->child_tid, 0);
        pthread_join(h->thread, NULL);
        host_free(h);
    }
}
