/* sem.c - the semaphore primitives under pyclone.Semaphore.
 *
 * Nothing here lives in private memory, so these work between tasks of any
 * mode, fork-mode children included: an eventfd (the fd is inherited or
 * shared) with a count in a MAP_SHARED page, or a System V semaphore with
 * SEM_UNDO, whose permits the kernel gives back when a holder dies.  Waits
 * release the GIL, keep one deadline, and on EINTR run the signal handlers
 * and resume; so does a release's system call that may wake a waiter of
 * the same memory.
 *
 * The user count.  An eventfd keeps its count in the kernel, so every
 * acquire and every release would be a system call, where a futex
 * semaphore (multiprocessing's) makes none while nobody has to wait.  So
 * the count lives in the semaphore's shared page, as a futex semaphore's
 * does: one 64-bit word holds the value (low 32 bits) and the number of
 * tasks waiting (the next 31), changed only by compare-and-swap.  An
 * acquire that finds a permit takes it there; a release adds there and
 * makes a system call only if someone waits: it writes to a second eventfd,
 * the "hint" one, which wakes waiters.  A hint is not a permit: a woken
 * waiter looks at the word again and takes a permit if one is there, else
 * sleeps again.  So a waiter that times out or dies leaves nothing wrong
 * behind (a dead one's registration costs each later release one write),
 * and a try is always exact.  Nothing is lost in between: a task registers
 * only with a compare-and-swap that sees a value of 0; every release that
 * sees waiters hints after adding; whoever consumes a hint looks at the
 * word next, and a waiter that takes a permit while permits and waiters
 * are left hints again.
 *
 * The kernel count.  fileno() promises an eventfd that is readable while a
 * permit is there, so it moves the count into the eventfd for good (the top
 * bit of the word says so); so does a count that would not fit in 32 bits.
 * From then on every acquire and release uses the eventfd itself, as
 * below.  Semaphores made without a shared page (a kernel whose eventfd
 * cannot be tried without blocking, or a large initial value) only ever
 * have the kernel count.
 *
 * How waiters sleep.  A blocking read() both sleeps and consumes: one
 * system call per hand-off, as a futex wait.  But every task asleep in
 * read() (or in poll() of an eventfd) wakes at each write, so with
 * thousands of waiters one permit would cost thousands of wake-ups.  So
 * only one task at a time sleeps in read() -- of the hint eventfd, or of
 * the eventfd itself under the kernel count: the one that claims the
 * page's "sleeper" word; the others sleep on an epoll instance, which
 * wakes one of them per write.  A release thus wakes at most two tasks.
 * The epoll instance watches the hint eventfd edge-triggered: its waiters
 * never read it (each write wakes one of them anyway), so the task in
 * read() is its only reader and the hint that moves the count into the
 * eventfd is sure to reach it.  The sleeper word is only a hint as well: a
 * task killed while holding it costs later waiters one system call each
 * (they use the epoll instance), nothing else.
 *
 * Under the kernel count a try costs a system call, about a sixth of a
 * blocked hand-off here: wasted whenever the acquire then sleeps.  So after
 * a try that failed, the next SKIP_TRIES acquires (by any task: the
 * countdown is in the shared page) go straight to the wait, without the
 * GIL, whose read() takes a permit that is there at once.
 *
 * The non-blocking tries use preadv2(RWF_NOWAIT), so the eventfd itself can
 * be blocking; a kernel whose eventfd does not take RWF_NOWAIT (older ones
 * answer EOPNOTSUPP) gets a non-blocking eventfd, plain read()s as tries,
 * every waiter on the epoll instance, and no user count.  Writes take no
 * RWF_NOWAIT: on a blocking eventfd a release that would overflow the
 * counter would wait.  Below 2**64 - 1 that takes counts no program
 * reaches one permit at a time, so the Python layer makes the eventfd
 * non-blocking for good (sem_eventfd_unblock) before any large initial
 * value or release.
 */
#define _GNU_SOURCE
#include "sem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- deadlines -------------------------------------------------------- */

/* timeout < 0: wait forever; 0: do not wait; > 0: seconds. */
struct deadline {
    int forever;
    struct timespec at;
};

static void
deadline_start(struct deadline *d, double timeout)
{
    d->forever = timeout < 0;
    if (!d->forever) {              /* (forever never reads the clock) */
        clock_gettime(CLOCK_MONOTONIC, &d->at);
        double whole = floor(timeout);
        d->at.tv_sec += (time_t)whole;
        d->at.tv_nsec += (long)((timeout - whole) * 1e9);
        if (d->at.tv_nsec >= 1000000000L) {
            d->at.tv_sec++;
            d->at.tv_nsec -= 1000000000L;
        }
    }
}

/* Time left, or NULL for forever; 0 left once the deadline passed. */
static struct timespec *
deadline_left(struct deadline *d, struct timespec *left)
{
    if (d->forever) {
        return NULL;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left->tv_sec = d->at.tv_sec - now.tv_sec;
    left->tv_nsec = d->at.tv_nsec - now.tv_nsec;
    if (left->tv_nsec < 0) {
        left->tv_sec--;
        left->tv_nsec += 1000000000L;
    }
    if (left->tv_sec < 0) {
        left->tv_sec = 0;
        left->tv_nsec = 0;
    }
    return left;
}

static int
deadline_passed(struct deadline *d)
{
    struct timespec left;
    return !d->forever && deadline_left(d, &left) != NULL
           && left.tv_sec == 0 && left.tv_nsec == 0;
}

/* Seconds left as a timeout (-1: forever, 0 once passed). */
static double
deadline_seconds(struct deadline *d)
{
    struct timespec left;
    if (deadline_left(d, &left) == NULL) {
        return -1.0;
    }
    return (double)left.tv_sec + (double)left.tv_nsec / 1e9;
}

/* ---- eventfd: the kernel count ----------------------------------------- */

#ifndef RWF_NOWAIT
#  define RWF_NOWAIT 0x00000008     /* <linux/fs.h>, Linux 4.14 */
#endif

/* 1: preadv2(RWF_NOWAIT) on an eventfd says EAGAIN instead of sleeping
 * (and 64-bit atomics need no lock, for the user count); 0: not; -1: not
 * asked yet.  Asked once, by the first semaphore, under the GIL. */
static int nowait_reads = -1;

/* The sleeper word's bits: a task sleeps in read(); none ever may again
 * (the eventfd was made non-blocking: sem_eventfd_unblock). */
#define SLEEPER_ASLEEP 1u
#define SLEEPER_NEVER 2u
/* Acquires that skip the try after one failed (see the top of this file). */
#define SKIP_TRIES 16u

/* preadv2 by number: glibc has a wrapper only from 2.26.  Offset -1 (both
 * halves, for 32-bit kernels) reads at the file position, as read() does. */
static ssize_t
read_nowait(int fd, uint64_t *value)
{
    struct iovec io = {value, sizeof *value};
    return syscall(SYS_preadv2, fd, &io, 1, -1L, -1L, RWF_NOWAIT);
}

static int
probe_nowait_reads(void)
{
    if (!__atomic_always_lock_free(sizeof(uint64_t), 0)) {
        return 0;       /* a lock in private memory would not be shared */
    }
    int fd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    uint64_t value;
    int ok = read_nowait(fd, &value) < 0 && errno == EAGAIN;
    (void)close(fd);
    return ok;
}

int
sem_eventfd_blocking(void)
{
    if (nowait_reads < 0) {
        nowait_reads = probe_nowait_reads();
    }
    return nowait_reads;
}

int
sem_eventfd_new(uint64_t value)
{
    /* Blocking where the tries can say RWF_NOWAIT (see the top of this
     * file), else non-blocking so that a plain read() is the try.
     * eventfd() takes an unsigned int: larger initial values are written
     * after. */
    int fd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC
                        | (sem_eventfd_blocking() ? 0 : EFD_NONBLOCK));
    if (fd >= 0 && value > 0 && write(fd, &value, sizeof value) != (ssize_t)sizeof value) {
        int err = errno;
        (void)close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

int
sem_eventfd_hint_new(void)
{
    /* Not EFD_SEMAPHORE: the one reader takes every pending hint at once. */
    return eventfd(0, EFD_CLOEXEC);
}

int
sem_eventfd_waiter_new(int fd, int hint)
{
    /* One epoll instance per semaphore, shared by every task that has the
     * fds (inherited, or the same fd table): epoll_wait's sleepers are woken
     * one at a time, where a release would wake every ppoll() on the eventfd
     * itself -- with thousands of waiters, thousands of wake-ups per permit.
     * The eventfd level-triggered: a woken waiter that loses the read race
     * sleeps again.  The hint eventfd edge-triggered: one waiter wakes per
     * write, and none has to read it (see the top of this file). */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
    struct epoll_event hev = {.events = EPOLLIN | EPOLLET, .data = {.fd = hint}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0
        || (hint >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, hint, &hev) != 0)) {
        int err = errno;
        (void)close(ep);
        errno = err;
        return -1;
    }
    return ep;
}

/* Takes a permit if one is there: 1, 0 (none), -1 (errno set).  Safe
 * without the GIL: only system calls. */
static int
try_take(int fd)
{
    uint64_t one;
    ssize_t n = nowait_reads > 0 ? read_nowait(fd, &one) : read(fd, &one, sizeof one);
    if (n == (ssize_t)sizeof one) {
        return 1;
    }
    return n < 0 && errno != EAGAIN && errno != EINTR ? -1 : 0;
}

/* Milliseconds for epoll_wait, rounded up (never early: the deadline is
 * checked again after it), -1 for forever. */
static int
wait_ms(struct deadline *d)
{
    struct timespec left;
    if (deadline_left(d, &left) == NULL) {
        return -1;
    }
    double ms = ceil((double)left.tv_sec * 1e3 + (double)left.tv_nsec / 1e6);
    return ms > (double)INT_MAX ? INT_MAX : (int)ms;
}

/* Waits without the GIL until a permit is ours (1), the deadline passed
 * (0), an error (-1, errno set) or a signal (0 and *interrupted: the caller
 * runs the handlers with the GIL and calls again).  A waiter that loses the
 * read to another goes back to sleep without touching the GIL, so a
 * release costs one GIL hand-off, not one per waiter. */
static int
eventfd_wait(int fd, int waiter, uint32_t *sleeper, struct deadline *d, int *interrupted)
{
    /* The caller has just tried the read, or skipped it (the read() below
     * and the level-triggered epoll_wait return at once on a permit). */
    for (;;) {
        if (deadline_passed(d)) {
            return 0;
        }
        uint32_t none = 0;
        if (d->forever && sleeper != NULL && nowait_reads > 0
            && __atomic_compare_exchange_n(sleeper, &none, SLEEPER_ASLEEP, 0,
                                           __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            /* The one sleeper in read(): it wakes with its permit taken. */
            uint64_t one;
            ssize_t n = read(fd, &one, sizeof one);
            int err = errno;
            __atomic_fetch_and(sleeper, ~SLEEPER_ASLEEP, __ATOMIC_RELEASE);
            if (n == (ssize_t)sizeof one) {
                return 1;
            }
            errno = err;
            if (err == EINTR) {
                *interrupted = 1;
                return 0;
            }
            if (err != EAGAIN) {
                return -1;
            }
            /* Made non-blocking meanwhile (sem_eventfd_unblock): epoll. */
        }
        int r;
        if (waiter >= 0) {
            struct epoll_event ev;
            r = epoll_wait(waiter, &ev, 1, wait_ms(d));
        }
        else {
            struct pollfd p = {fd, POLLIN, 0};
            struct timespec left;
            r = ppoll(&p, 1, deadline_left(d, &left), NULL);
        }
        if (r < 0) {
            if (errno == EINTR) {
                *interrupted = 1;
                return 0;
            }
            return -1;
        }
        r = try_take(fd);
        if (r != 0) {
            return r;
        }
    }
}

static int
kernel_acquire(const struct sem_eventfd *s, double timeout)
{
    uint32_t *sleeper = s->shared != NULL ? &s->shared->sleeper : NULL;
    uint32_t *skips = sleeper != NULL && timeout != 0 && nowait_reads > 0
                      ? &s->shared->skips : NULL;
    int r;
    if (skips != NULL && __atomic_load_n(skips, __ATOMIC_RELAXED) > 0) {
        /* Contended lately: the wait's read() is the try (a hint, raced
         * on by every task: a lost decrement costs one try). */
        __atomic_fetch_sub(skips, 1, __ATOMIC_RELAXED);
        r = 0;
    }
    else {
        r = try_take(s->fd);        /* uncontended: no GIL hand-off */
        if (r != 0 || timeout == 0) {
            return r;
        }
        if (skips != NULL) {
            __atomic_store_n(skips, SKIP_TRIES, __ATOMIC_RELAXED);
        }
    }
    struct deadline d;
    deadline_start(&d, timeout);
    for (;;) {
        int interrupted = 0, err;
        Py_BEGIN_ALLOW_THREADS
        r = eventfd_wait(s->fd, s->waiter, sleeper, &d, &interrupted);
        err = errno;
        Py_END_ALLOW_THREADS
        if (!interrupted) {
            errno = err;
            return r;
        }
        if (PyErr_CheckSignals() < 0) {
            return -2;              /* a handler raised: propagate */
        }
        /* The handlers ran: try again, then sleep again. */
        r = try_take(s->fd);
        if (r != 0) {
            return r;
        }
    }
}

static int
kernel_release(int fd, uint64_t n)
{
    ssize_t w = write(fd, &n, sizeof n);
    return w == (ssize_t)sizeof n ? 0 : -1;     /* EAGAIN: counter full */
}

/* With `drop_gil`, a release that may wake a sleeper makes its system call
 * without the GIL (the callers hold it).  The caller knows when a task of
 * its own memory (a thread-mode child, a thread) may be asleep on the
 * semaphore: such a task, woken, needs this GIL at once, and with the GIL
 * still held here it would wake only to wait for it -- each hand-off then
 * cost two more context switches and GIL round trips (on one CPU a
 * thread-mode ping-pong took 12 us a round trip instead of 4).  A sleeper
 * in another process has a GIL of its own, and the release keeps ours
 * (dropping and taking it costs about 50-200 ns).  take_gil keeps errno. */
static int
kernel_release_maybe_without_gil(int fd, uint64_t n, int drop_gil)
{
    if (!drop_gil) {
        return kernel_release(fd, n);
    }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = kernel_release(fd, n);
    Py_END_ALLOW_THREADS
    return r;
}

/* ---- eventfd: the user count ------------------------------------------- */

/* The state word (see the top of this file). */
#define STATE_KERNEL (UINT64_C(1) << 63)      /* the count is in the eventfd */
#define STATE_WAITER (UINT64_C(1) << 32)      /* one registered waiter */
#define STATE_VALUE(st) ((uint32_t)(st))
#define STATE_WAITERS(st) (((st) & ~STATE_KERNEL) >> 32)
/* A release past this moves the count into the eventfd. */
#define USER_VALUE_MAX UINT32_C(0x7fffffff)

#define CAS(word, expected, desired) \
    __atomic_compare_exchange_n((word), (expected), (desired), 0, \
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

static uint64_t
load_state(const struct sem_eventfd *s)
{
    return __atomic_load_n(&s->shared->state, __ATOMIC_SEQ_CST);
}

/* Wakes a waiter.  A write to an eventfd fails only if its counter would
 * pass 2**64 - 2 (a hint adds 1 per release) or if the fd is not open
 * (the Python layer never calls with a closed semaphore): nothing to do. */
static void
hint(const struct sem_eventfd *s)
{
    uint64_t one = 1;
    ssize_t w = write(s->hint, &one, sizeof one);
    (void)w;
}

/* After taking a permit as a waiter, or leaving: wake the next waiter if
 * permits are left for one (the hint that woke us may have been meant for
 * several). */
static void
pass_on(const struct sem_eventfd *s, uint64_t st)
{
    if (STATE_VALUE(st) > 0 && STATE_WAITERS(st) > 0) {
        hint(s);
    }
}

/* Stops waiting: takes a permit if one is there and `take` (1), else
 * drops the registration (0).  Nothing to drop under the kernel count. */
static int
user_leave(const struct sem_eventfd *s, int take)
{
    uint64_t st = load_state(s);
    for (;;) {
        if (st & STATE_KERNEL) {
            return 0;
        }
        if (take && STATE_VALUE(st) > 0) {
            if (CAS(&s->shared->state, &st, st - 1 - STATE_WAITER)) {
                pass_on(s, st - 1 - STATE_WAITER);
                return 1;
            }
        }
        else if (CAS(&s->shared->state, &st, st - STATE_WAITER)) {
            pass_on(s, st - STATE_WAITER);
            return 0;
        }
    }
}

/* Sleeps until a hint may have come, the deadline passed or a signal
 * (*interrupted): 0, or -1 with errno set.  Without the GIL. */
static int
await_hint(const struct sem_eventfd *s, struct deadline *d, int *interrupted)
{
    uint32_t none = 0;
    if (d->forever
        && __atomic_compare_exchange_n(&s->shared->sleeper, &none, SLEEPER_ASLEEP, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        /* The one reader of the hint eventfd: it takes every pending hint. */
        uint64_t hints;
        ssize_t n = read(s->hint, &hints, sizeof hints);
        int err = errno;
        __atomic_fetch_and(&s->shared->sleeper, ~SLEEPER_ASLEEP, __ATOMIC_RELEASE);
        if (n < 0 && err == EINTR) {
            *interrupted = 1;
        }
        else if (n < 0 && err != EAGAIN) {      /* EAGAIN: the count moved */
            errno = err;
            return -1;
        }
        return 0;
    }
    /* Edge-triggered on the hint eventfd: nothing to read after. */
    struct epoll_event ev;
    if (epoll_wait(s->waiter, &ev, 1, wait_ms(d)) < 0) {
        if (errno != EINTR) {
            return -1;
        }
        *interrupted = 1;
    }
    return 0;
}

/* A registered waiter's wait, without the GIL: 1 (a permit taken), 0 (the
 * deadline passed, or a signal: *interrupted; or the count moved into the
 * eventfd: *kernel), -1 (errno set).  Still registered unless 1 or
 * *kernel. */
static int
user_wait(const struct sem_eventfd *s, struct deadline *d, int *interrupted, int *kernel)
{
    for (;;) {
        uint64_t st = load_state(s);
        if (st & STATE_KERNEL) {
            *kernel = 1;
            return 0;
        }
        if (STATE_VALUE(st) > 0) {
            if (CAS(&s->shared->state, &st, st - 1 - STATE_WAITER)) {
                pass_on(s, st - 1 - STATE_WAITER);
                return 1;
            }
            continue;
        }
        if (deadline_passed(d)) {
            return 0;
        }
        if (await_hint(s, d, interrupted) < 0) {
            return -1;
        }
        if (*interrupted) {
            return 0;
        }
    }
}

int
sem_eventfd_acquire(const struct sem_eventfd *s, double timeout)
{
    if (s->shared == NULL) {
        return kernel_acquire(s, timeout);
    }
    /* A permit if one is there, without a system call or the GIL's
     * release; else, unless only trying, register as a waiter. */
    uint64_t st = load_state(s);
    for (;;) {
        if (st & STATE_KERNEL) {
            return kernel_acquire(s, timeout);
        }
        if (STATE_VALUE(st) > 0) {
            if (CAS(&s->shared->state, &st, st - 1)) {
                return 1;
            }
        }
        else if (timeout == 0) {
            return 0;
        }
        else if (CAS(&s->shared->state, &st, st + STATE_WAITER)) {
            break;
        }
    }
    struct deadline d;
    deadline_start(&d, timeout);
    for (;;) {
        int interrupted = 0, kernel = 0, r, err;
        Py_BEGIN_ALLOW_THREADS
        r = user_wait(s, &d, &interrupted, &kernel);
        err = errno;
        Py_END_ALLOW_THREADS
        if (kernel) {
            /* The count moved into the eventfd (and our registration with
             * it): wait there for what is left of the time. */
            return kernel_acquire(s, deadline_seconds(&d));
        }
        if (r != 0 || !interrupted) {
            if (r == 0) {
                r = user_leave(s, 1);   /* timed out: a permit may just have come */
            }
            else if (r < 0) {
                (void)user_leave(s, 0);
            }
            errno = err;
            return r;
        }
        if (PyErr_CheckSignals() < 0) {
            (void)user_leave(s, 0);
            return -2;              /* a handler raised: propagate */
        }
    }
}

int
sem_eventfd_release(const struct sem_eventfd *s, uint64_t n, int drop_gil)
{
    if (s->shared == NULL) {
        return kernel_release_maybe_without_gil(s->fd, n, drop_gil);
    }
    uint64_t st = load_state(s);
    for (;;) {
        if (st & STATE_KERNEL) {
            return kernel_release_maybe_without_gil(s->fd, n, drop_gil);
        }
        if (n > USER_VALUE_MAX - STATE_VALUE(st)) {
            if (sem_eventfd_share(s) < 0) {
                return -1;
            }
            st = load_state(s);
            continue;
        }
        if (CAS(&s->shared->state, &st, st + n)) {
            break;
        }
    }
    if (STATE_WAITERS(st) > 0) {
        if (drop_gil) {         /* see kernel_release_maybe_without_gil() */
            Py_BEGIN_ALLOW_THREADS
            hint(s);
            Py_END_ALLOW_THREADS
        }
        else {
            hint(s);
        }
    }
    return 0;
}

int
sem_eventfd_share(const struct sem_eventfd *s)
{
    if (s->shared == NULL) {
        return 0;
    }
    /* First out of the epoll set: from here on its waiters wait for the
     * eventfd (a hint now would not wake them, and needs not: they are
     * woken by the count arriving there, or by a later release to it). */
    (void)epoll_ctl(s->waiter, EPOLL_CTL_DEL, s->hint, NULL);
    uint64_t st = load_state(s);
    do {
        if (st & STATE_KERNEL) {
            return 0;               /* another task moved it */
        }
    } while (!CAS(&s->shared->state, &st, STATE_KERNEL));
    int failed = STATE_VALUE(st) > 0 && kernel_release(s->fd, STATE_VALUE(st)) < 0;
    int err = errno;
    /* The one task that may sleep in read() of the hint eventfd: a read
     * that starts from now on returns at once (EAGAIN), and one asleep gets
     * a hint -- nobody else reads it, so it cannot be taken first.  Either
     * way it finds the count moved. */
    int flags = fcntl(s->hint, F_GETFL);
    if (flags >= 0) {
        (void)fcntl(s->hint, F_SETFL, flags | O_NONBLOCK);
    }
    hint(s);
    errno = err;
    return failed ? -1 : 0;
}

int
sem_eventfd_unblock(const struct sem_eventfd *s)
{
    if (sem_eventfd_share(s) < 0) {
        return -1;
    }
    /* No new sleeper in read() first, then a non-blocking fd: a task that
     * claimed the word just before gets EAGAIN and goes to the epoll
     * instance; one already asleep in read() is not affected (the flag is
     * looked at before sleeping). */
    if (s->shared != NULL) {
        __atomic_fetch_or(&s->shared->sleeper, SLEEPER_NEVER, __ATOMIC_SEQ_CST);
    }
    int flags = fcntl(s->fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
}

int64_t
sem_eventfd_user_value(const struct sem_eventfd *s)
{
    if (s->shared == NULL) {
        return -1;
    }
    uint64_t st = load_state(s);
    return st & STATE_KERNEL ? -1 : (int64_t)STATE_VALUE(st);
}

/* ---- System V ---------------------------------------------------------- */

int
sem_sysv_new(int value)
{
    int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    if (id < 0) {
        return -1;
    }
    if (semctl(id, 0, SETVAL, value) < 0) {
        int err = errno;
        (void)semctl(id, 0, IPC_RMID);
        errno = err;
        return -1;
    }
    return id;
}

int
sem_sysv_acquire(int id, double timeout)
{
    struct deadline d;
    deadline_start(&d, timeout);
    for (;;) {
        struct sembuf op = {0, -1, SEM_UNDO | (timeout == 0 ? IPC_NOWAIT : 0)};
        struct timespec left;
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = semtimedop(id, &op, 1, timeout == 0 ? NULL : deadline_left(&d, &left));
        Py_END_ALLOW_THREADS
        if (r == 0) {
            return 1;
        }
        if (errno == EAGAIN) {
            return 0;               /* IPC_NOWAIT, or the timeout passed */
        }
        if (errno == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                return -2;
            }
            continue;
        }
        return -1;
    }
}

int
sem_sysv_release(int id, int n, int drop_gil)
{
    struct sembuf op = {0, (short)n, SEM_UNDO};
    if (!drop_gil) {
        return semop(id, &op, 1);   /* ERANGE: past SEMVMX */
    }
    int r;
    Py_BEGIN_ALLOW_THREADS          /* see kernel_release_maybe_without_gil() */
    r = semop(id, &op, 1);
    Py_END_ALLOW_THREADS
    return r;
}

int
sem_sysv_remove(int id)
{
    return semctl(id, 0, IPC_RMID);
}

int
sem_sysv_value(int id)
{
    return semctl(id, 0, GETVAL);
}
