/* terminate.c - see terminate.h. */
#define _GNU_SOURCE
#include "terminate.h"
#include "pending.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm_entry *vm_entries;

void
vm_register(struct vm_entry *e, volatile pid_t *tid)
{
    e->tid = tid;
    e->tstate = NULL;
    e->stage = VM_STARTING;
    e->killed_safely = 0;
    pthread_mutex_lock(&vm_lock);
    e->next = vm_entries;
    e->pprev = &vm_entries;
    if (vm_entries != NULL) {
        vm_entries->pprev = &e->next;
    }
    vm_entries = e;
    pthread_mutex_unlock(&vm_lock);
}

void
vm_unregister(struct vm_entry *e)
{
    pthread_mutex_lock(&vm_lock);      /* O(1): many children may end at once */
    *e->pprev = e->next;
    if (e->next != NULL) {
        e->next->pprev = e->pprev;
    }
    pthread_mutex_unlock(&vm_lock);
}

void
vm_running(struct vm_entry *e, PyThreadState *tstate)
{
    e->tstate = tstate;
    e->stage = VM_RUNNING;
}

void
vm_done(struct vm_entry *e)
{
    e->stage = VM_DONE;
}

/* PyThreadState_SetAsyncExc() finds thread states by thread_id, and a
 * borrowed child's is its parent's (it was made on the parent's thread):
 * give the child's a value no pthread_t can have (its tid) for the call
 * alone.  GIL held: the child runs no Python meanwhile. */
static int
set_async_exc(PyThreadState *t, pid_t tid, PyObject *exc_type)
{
    unsigned long own = t->thread_id;
    t->thread_id = (unsigned long)tid;
    int n = PyThreadState_SetAsyncExc((unsigned long)tid, exc_type);
    t->thread_id = own;
    return n;
}

void
vm_after_fork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    vm_lock = fresh;            /* a thread that held it is gone */
    vm_entries = NULL;
}

void
vm_kill_all(void)
{
    /* The lock may be held by a thread that will never run again. */
    int locked = pthread_mutex_trylock(&vm_lock) == 0;
    for (struct vm_entry *e = vm_entries; e != NULL; e = e->next) {
        pid_t tid = *e->tid;
        if (tid > 0 && e->stage != VM_DONE) {
            (void)kill(tid, SIGKILL);
        }
    }
    if (locked) {
        pthread_mutex_unlock(&vm_lock);
    }
}

/* The stage of child `tid` (GIL held, so VM_RUNNING stays true until we
 * release it), -1 if it has no entry; *tstate gets its thread state. */
static int
vm_lookup(pid_t tid, PyThreadState **tstate)
{
    int stage = -1;
    pthread_mutex_lock(&vm_lock);
    for (struct vm_entry *e = vm_entries; e != NULL; e = e->next) {
        if (*e->tid == tid) {
            stage = e->stage;
            *tstate = e->tstate;
            break;
        }
    }
    pthread_mutex_unlock(&vm_lock);
    return stage;
}

/* Its survivor need not watch for broken locks (watchdog.h). */
static void
vm_mark_killed_safely(pid_t tid)
{
    pthread_mutex_lock(&vm_lock);
    for (struct vm_entry *e = vm_entries; e != NULL; e = e->next) {
        if (*e->tid == tid) {
            e->killed_safely = 1;
        }
    }
    pthread_mutex_unlock(&vm_lock);
}

/* 1 if task `tid` shares our address space (kcmp KCMP_VM), else 0. */
static int
shares_our_memory(pid_t tid)
{
    return syscall(SYS_kcmp, getpid(), tid, 1 /* KCMP_VM */, 0, 0) == 0;
}

/* Reads /proc/<tid>/<name> into buf (NUL-terminated); -1 if it cannot. */
static int
read_proc(pid_t tid, const char *name, char *buf, size_t size)
{
    char path[64];
    (void)snprintf(path, sizeof path, "/proc/%d/%s", (int)tid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n;
    do {
        n = read(fd, buf, size - 1);
    } while (n < 0 && errno == EINTR);
    (void)close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

/* The task's state letter from /proc/<tid>/stat ('T' stopped, 'Z' gone...),
 * or 0 if it has no /proc entry any more. */
static char
task_state(pid_t tid)
{
    char buf[512];
    if (read_proc(tid, "stat", buf, sizeof buf) < 0) {
        return 0;
    }
    char *p = strrchr(buf, ')');        /* the command name may hold ')' */
    return p != NULL && p[1] == ' ' ? p[2] : 0;
}

/* Blocking system calls that wait for the outside world, where the
 * interpreter holds none of its own locks (the GIL is released around
 * them): stopped there, a task can be killed without harm to the
 * interpreter.  Not among them: futex waits (the GIL, mutexes, condition
 * variables) and writes (stdio and malloc_stats() write with their locks
 * held).  A buffered Python file's lock is held across its reads: a child
 * killed inside one leaves that file object locked (README). */
static int
safe_syscall(long nr)
{
    static const long safe[] = {
        SYS_read, SYS_readv, SYS_pread64, SYS_preadv,
        SYS_recvfrom, SYS_recvmsg, SYS_accept4,
        SYS_connect, SYS_ppoll, SYS_pselect6, SYS_epoll_pwait, SYS_nanosleep,
        SYS_clock_nanosleep, SYS_rt_sigsuspend, SYS_rt_sigtimedwait,
        SYS_wait4, SYS_waitid, SYS_semtimedop, SYS_msgrcv,
#ifdef SYS_poll
        SYS_poll,
#endif
#ifdef SYS_select
        SYS_select,
#endif
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
#ifdef SYS_pause
        SYS_pause,
#endif
#ifdef SYS_accept
        SYS_accept,
#endif
#ifdef SYS_epoll_pwait2
        SYS_epoll_pwait2,
#endif
    };
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++) {
        if (safe[i] == nr) {
            return 1;
        }
    }
    return 0;
}

/* Whether `sig` is caught or ignored in the task's handler table. */
static int
handled_by(pid_t tid, int sig)
{
    char buf[4096];
    if (read_proc(tid, "status", buf, sizeof buf) < 0) {
        return 1;                       /* unknown: assume so */
    }
    unsigned long long mask = 0, m;
    for (const char *key = "SigIgn:\t"; key != NULL;
         key = strcmp(key, "SigIgn:\t") == 0 ? "SigCgt:\t" : NULL) {
        const char *p = strstr(buf, key);
        if (p == NULL || sscanf(p + strlen(key), "%llx", &m) != 1) {
            return 1;
        }
        mask |= m;
    }
    return (mask >> (sig - 1)) & 1;
}

static void
sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    (void)nanosleep(&ts, NULL);
}

/* terminate_signal_at_safe_point(); with `withdraw`, the child's thread
 * state, any exception pending for it (ours, or one a user set) is taken
 * back first (pending.h), while the child is stopped where it cannot see
 * it: it would die pending with it. */
static int
signal_if_safe(pid_t tid, int sig, PyThreadState *withdraw)
{
    if (kill(tid, SIGSTOP) != 0) {
        return -1;
    }
    /* Stopping takes a moment (the task must enter the kernel). */
    char state = 0;
    for (int i = 0; i < 20000; i++) {
        state = task_state(tid);
        if (state == 'T' || state == 't' || state == 'Z' || state == 'X' || state == 0) {
            break;
        }
        sleep_us(10);
    }
    if (state == 'Z' || state == 'X' || state == 0) {
        return -1;
    }
    int sent = 0;
    char buf[256];
    if ((state == 'T' || state == 't') && read_proc(tid, "syscall", buf, sizeof buf) == 0) {
        /* "<nr> <args...>" while in a system call; "-1 ..." or "running"
         * in user space. */
        char *end;
        long nr = strtol(buf, &end, 10);
        if (end != buf && nr >= 0 && safe_syscall(nr)) {
            /* SIGTERM where its action is the default (the child ends as
             * killed by SIGTERM), else SIGKILL: a handler would run in the
             * child, and a Python-level one in our main thread. */
            int s = sig == SIGTERM && handled_by(tid, SIGTERM) ? SIGKILL : sig;
            if (withdraw != NULL) {
                pending_async_exc_withdraw(withdraw);
            }
            vm_mark_killed_safely(tid);
            sent = kill(tid, s) == 0;
        }
    }
    (void)kill(tid, SIGCONT);
    return sent;
}

int
terminate_signal_at_safe_point(pid_t tid, int sig)
{
    return signal_if_safe(tid, sig, NULL);
}

static double
seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

int
terminate_vm_child(pid_t tid, PyObject *exc_type, double timeout)
{
    if (tid <= 0) {
        return 0;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int asked = 0;
    for (;;) {
        PyThreadState *t = NULL;
        int stage = vm_lookup(tid, &t);
        if (stage < 0 && !shares_our_memory(tid)) {
            return asked ? 2 : 0;       /* gone, or never one of ours */
        }
        if (stage == VM_DONE) {
            return 2;                   /* it ends by itself */
        }
        /* A CLONE_THREAD child is a thread of ours: SIGSTOP would stop us
         * too.  It gets the exception only. */
        int thread = stage == VM_RUNNING && syscall(SYS_tgkill, getpid(), tid, 0) == 0;
        if (stage == VM_RUNNING && !asked) {
            /* We hold the GIL: the child is not running Python.  It waits
             * for the GIL, runs C code, or sleeps in a system call: in one
             * that is a safe point it is signalled at once, before any
             * exception is set (see below). */
            if (!thread && signal_if_safe(tid, SIGTERM, t) != 0) {
                return 2;
            }
            if (set_async_exc(t, tid, exc_type) < 1) {
                return 2;
            }
            asked = 1;
            if (thread) {
                return 1;
            }
        }
        else if (stage == VM_RUNNING) {
            if (t->async_exc == NULL) {
                return 1;               /* raised: it is unwinding */
            }
            /* Pending: the child has not reached a bytecode since.  If it
             * is found asleep in a safe call, it went there without seeing
             * the exception (it was set while the child was on its way, its
             * GIL already released - in drop_gil's hand-over wait, say) and
             * would sleep on unseen: it is killed there, the exception taken
             * back first (up to 3.12 CPython keeps one "pending" flag for the
             * whole interpreter, which a thread clears only by taking its
             * exception: left set, every thread would check for it at every
             * bytecode, and 3.11's tracing would spin on it). */
            if (signal_if_safe(tid, SIGTERM, t) != 0) {
                return 2;
            }
        }
        if (seconds_since(&start) > timeout) {
            /* Still starting, or never at a safe point: the exception (if
             * set) waits for its next bytecode. */
            return 1;
        }
        Py_BEGIN_ALLOW_THREADS
        sleep_us(2000);                 /* let it reach Python, or a safe call */
        Py_END_ALLOW_THREADS
    }
}
