/* host.c - see host.h.
 *
 * A host's life: created detached, with every signal blocked (inherited
 * from its creator); parked on its `go` word; given a job, it makes the
 * child's thread state (on its own TLS, so PyGILState finds it there),
 * issues the clone, reports the pid and parks again, this time on the
 * child's tid word.  Between the clone and that word turning 0 the child
 * owns the host's TLS: the host runs no libc code then, only the raw system
 * calls below (libc's syscall() would write errno, which is the child's).
 * When the child is gone the host cleans up after it if it did not do so
 * itself, returns to the pool, and exits once the pool has been quiet (no
 * host taken or returned) for HOST_LINGER.  A host holding its last child's
 * thread state always parks (deleting it needs the GIL); HOST_POOL_MAX
 * bounds the idle hosts of a process that hold none.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "in_child.h"
#include "stack.h"
#include "cstack.h"
#include "frames.h"
#include "tstate.h"
#include "watchdog.h"

#define HOST_POOL_MAX 16
#define HOST_LINGER_NS 500000000L      /* idle hosts exit after 0.5 s of a quiet pool */
#define HOST_MARGIN (64 * 1024)         /* the host's own frames, above the child's */

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
struct host {
    size_t stack_size;          /* the child's share of the host's stack */
    char *stack_low;            /* lowest usable address of its stack, or NULL */
    pid_t tgid, tid;            /* its process, and itself */
    pthread_t thread;
    uint32_t go;                /* futex: a job (or quit) is waiting */
    struct thread_job *job;
    int idle;                   /* parked in the pool (host_lock) */
    struct host **pprev;        /* in the pool, while idle */
    int quit;                   /* being retired: exit, to be joined */
    PyThreadState *spare;       /* a finished child's, reset, for the next one */
    struct host *next;
};

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
    return me != home && __atomic_load_n(&foreign, __ATOMIC_SEQ_CST) == 0;
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

int
host_parked_count(void)
{
    pid_t me = getpid();
    int n = 0;
    pthread_mutex_lock(&host_lock);
    for (struct host *h = pool; h != NULL; h = h->next) {
        n += h->tgid == me;
    }
    pthread_mutex_unlock(&host_lock);
    return n;
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
    h->next = pool;
    h->pprev = &pool;
    if (pool != NULL) {
        pool->pprev = &h->next;
    }
    pool = h;
    __atomic_add_fetch(&idle_hosts, 1, __ATOMIC_RELAXED);
}

static void
pool_unlink(struct host *h)     /* host_lock held, h idle */
{
    *h->pprev = h->next;
    if (h->next != NULL) {
        h->next->pprev = h->pprev;
    }
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
        if (syscall(SYS_tgkill, h->tgid, h->tid, 0) != 0) {
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

/* ---- the host thread -------------------------------------------------- */

/* The child is gone and the host owns its TLS again.  If the child did not
 * end cleanly, its thread state is still here: take the GIL (over, if the
 * child died holding it: its thread state is then the current one on this
 * TLS), release what its frames hold, clear and delete it. */
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
        Py_CLEAR(job->plan);
        PyThreadState_Clear(t);
        PyThreadState_DeleteCurrent();      /* and the GIL */
    }
}

/* The job is over and this host parked (or leaving): tell waiters. */
static void
host_announce_done(struct thread_job *job)
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

/* Back in the pool (counted as parked); 0 if full: the host should exit. */
static int
host_repark(struct host *h)
{
    return pool_put(h);
}

/* Runs one job; returns 0 if the host should exit afterwards. */
static int
host_run(struct host *h, struct thread_job *job)
{
    /* Before the clone this is an ordinary thread: libc is fine.  The
     * thread state is made (or was, for an earlier child) on this TLS. */
    if (h->spare != NULL) {
        job->tstate = h->spare;
        h->spare = NULL;
    }
    else {
        job->tstate = PyThreadState_New(job->interp);
    }
    job->tid_word = -1;
    char here;
    char *top = stack_carve_top(&here);
    if (h->stack_low != NULL) {
        cstack_set(job->tstate, h->stack_low, top);
    }
    struct clone_request req = job->req;
    req.flags |= CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    struct vm_start start = {child_thread_main, job, top, __builtin_thread_pointer(),
                             &job->tid_word, &job->tid_word};
    pid_t pid = rawclone_vm(&req, &start, &job->clear_sighand);
    if (pid < 0) {
        int err = errno;            /* no child: errno is still ours */
        job->done = 1;              /* nothing for waiters: the caller unlinks it */
        PyEval_RestoreThread(job->tstate);
        PyThreadState_Clear(job->tstate);
        PyThreadState_DeleteCurrent();
        job->err = err;
        job->pid = -1;
        /* Parked again before the caller hears of it; after the store the
         * job is the caller's to free. */
        int pooled = host_repark(h);
        __atomic_store_n(&job->started, 1, __ATOMIC_SEQ_CST);
        raw_futex_wake(&job->started, 1);
        return pooled;
    }
    /* From here until the tid word is 0 the child owns our TLS. */
    job->pid = pid;
    __atomic_store_n(&job->started, 1, __ATOMIC_SEQ_CST);
    raw_futex_wake(&job->started, 1);
    for (;;) {
        pid_t t = __atomic_load_n(&job->tid_word, __ATOMIC_SEQ_CST);
        if (t == 0) {
            break;
        }
        /* Not private: the kernel's wake at exit is a shared futex wake. */
        raw_futex_wait(&job->tid_word, (uint32_t)t, 0, NULL);
    }
    host_settle(job);
    vm_unregister(&job->vm);
    if (job->keep_tstate) {
        h->spare = job->tstate;
    }
    /* Parked before waiters hear the job is done: a fork-mode clone right
     * after waitpid() then sees no busy thread. */
    int pooled = host_repark(h);
    host_announce_done(job);
    return pooled;
}

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

static void *
host_main(void *arg)
{
    struct host *h = arg;
    const struct timespec linger = {0, HOST_LINGER_NS};
    h->tid = (pid_t)syscall(SYS_gettid);
    /* Cheap for a thread glibc created (no /proc read, as for the main one). */
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size, guard = 0;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0
            && pthread_attr_getguardsize(&attr, &guard) == 0) {
            h->stack_low = (char *)addr + guard;
        }
        pthread_attr_destroy(&attr);
    }
    /* Created with its first job: not parked. */
    for (;;) {
        unsigned epoch = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
        while (__atomic_load_n(&h->go, __ATOMIC_SEQ_CST) == 0) {
            raw_futex_wait(&h->go, 0, 1, &linger);
            unsigned now = __atomic_load_n(&pool_epoch, __ATOMIC_RELAXED);
            if (now != epoch) {
                epoch = now;                /* still busy: linger on */
                continue;
            }
            if (__atomic_load_n(&h->go, __ATOMIC_SEQ_CST) == 0 && pool_leave(h)) {
                goto leave;
            }
        }
        __atomic_store_n(&h->go, 0, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->quit, __ATOMIC_SEQ_CST)) {
            host_drop_spare(h);
            return NULL;            /* retired: joined (and freed) by its process */
        }
        if (!host_run(h, h->job)) {
            goto leave;
        }
    }
leave:
    /* Unlinked already; nobody will join us. */
    host_drop_spare(h);
    pthread_detach(pthread_self());
    host_free(h);
    return NULL;
}

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
    h->job = job;               /* created with its first job waiting */
    h->go = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack_size + HOST_MARGIN + CARVE_MARGIN);
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

pid_t
host_start(struct thread_job *job, int *pidfd)
{
    Py_INCREF(job->plan);
    job->interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    job->owner = getpid();
    count_owner(job->owner, +1);
    pthread_sigmask(SIG_BLOCK, NULL, &job->mask);
    vm_register(&job->vm, &job->tid_word);
    registry_add(job);

    struct host *h = pool_take(job->stack_size, job->owner);
    if (h != NULL) {
        h->job = job;
        __atomic_store_n(&h->go, 1, __ATOMIC_SEQ_CST);
        raw_futex_wake(&h->go, 1);
    }
    else if (host_create(job->stack_size, job) == NULL) {
        int err = errno;
        pthread_mutex_lock(&registry_lock);
        registry_unlink(job);
        pthread_mutex_unlock(&registry_lock);
        vm_unregister(&job->vm);
        Py_DECREF(job->plan);
        job_free(job);
        errno = err;
        return -1;
    }

    Py_BEGIN_ALLOW_THREADS
    while (__atomic_load_n(&job->started, __ATOMIC_SEQ_CST) == 0) {
        raw_futex_wait(&job->started, 0, 1, NULL);
    }
    Py_END_ALLOW_THREADS

    /* A quick child may be gone already: its host frees a process child's
     * job once it is done and we have read the pid (registry lock). */
    pthread_mutex_lock(&registry_lock);
    pid_t pid = job->pid;
    int err = job->err;
    *pidfd = job->req.pidfd_out != NULL ? job->pidfd : -1;
    registry_seen(job);
    if (pid < 0) {
        registry_unlink(job);
    }
    else if (job->done && !(job->flags & CLONE_THREAD)) {
        registry_unlink(job);
        job_free(job);
    }
    pthread_mutex_unlock(&registry_lock);
    if (pid < 0) {
        vm_unregister(&job->vm);
        Py_DECREF(job->plan);
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
    while (!job->done && !nohang) {
        pthread_cond_wait(&registry_cond, &registry_lock);
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
    int settled = pending_process_job(pid) == NULL;
    pthread_mutex_unlock(&registry_lock);
    return settled;
}

void
host_wait_settled(pid_t pid)
{
    pthread_mutex_lock(&registry_lock);
    while (pending_process_job(pid) != NULL) {
        pthread_cond_wait(&registry_cond, &registry_lock);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void
join_all_of(pid_t me)
{
    pthread_mutex_lock(&registry_lock);
    for (;;) {
        int running = 0;
        for (struct thread_job *j = registry; j != NULL; j = j->next) {
            running |= !j->done && j->owner == me;
        }
        if (!running) {
            break;
        }
        pthread_cond_wait(&registry_cond, &registry_lock);
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
        __atomic_store_n(&h->go, 1, __ATOMIC_SEQ_CST);
        raw_futex_wake(&h->go, 1);
        pthread_join(h->thread, NULL);
        host_free(h);
    }
}
