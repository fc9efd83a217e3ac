/* sem.c - the semaphore primitives under pyclone.Semaphore.
 *
 * Nothing here lives in private memory, so these work between tasks of any
 * mode, fork-mode children included: an eventfd in EFD_SEMAPHORE mode (the
 * fd is inherited or shared), or a System V semaphore with SEM_UNDO, whose
 * permits the kernel gives back when a holder dies.  Waits release the GIL,
 * keep one deadline, and on EINTR run the signal handlers and resume.
 *
 * How an eventfd waiter sleeps.  A blocking read() both sleeps and takes
 * the permit: one system call per hand-off, as a futex wait.  But every
 * task asleep in read() (or in poll() of the eventfd) wakes at each write,
 * so with thousands of waiters one permit would cost thousands of wake-ups.
 * So only one task at a time sleeps in read(): the one that claims the
 * semaphore's "sleeper" word (in a MAP_SHARED page, so tasks of every mode
 * see it); the others sleep on an epoll instance watching the eventfd,
 * which wakes one of them per write.  A release thus wakes at most two
 * tasks.  The word is only a hint: whatever it says, every permit is taken
 * by a read of the eventfd, so a task killed while holding it costs later
 * waiters one system call each (they use the epoll instance), nothing else.
 *
 * A try costs a system call (an eventfd has no count in user memory, as a
 * futex semaphore has), about a sixth of a blocked hand-off here: wasted
 * whenever the acquire then sleeps, as every acquire of a ping-pong does.
 * So after a try that failed, the next SKIP_TRIES acquires of the
 * semaphore (by any task: the countdown is the second word of the sleeper
 * page) go straight to the wait, without the GIL, whose read() takes a
 * permit that is there at once.  The price, once contention is over: up
 * to SKIP_TRIES uncontended acquires release the GIL for a moment.
 *
 * The non-blocking tries use preadv2(RWF_NOWAIT), so the eventfd itself can
 * be blocking; a kernel whose eventfd does not take RWF_NOWAIT (older ones
 * answer EOPNOTSUPP) gets a non-blocking eventfd, plain read()s as tries,
 * and every waiter on the epoll instance.  Writes take no RWF_NOWAIT: on a
 * blocking eventfd a release that would overflow the counter would wait.
 * Below 2**64 - 1 that takes counts no program reaches one permit at a
 * time, so the Python layer makes the eventfd non-blocking for good
 * (sem_eventfd_unblock) before any large initial value or release.
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
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    if (!d->forever) {
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

/* ---- eventfd ---------------------------------------------------------- */

#ifndef RWF_NOWAIT
#  define RWF_NOWAIT 0x00000008     /* <linux/fs.h>, Linux 4.14 */
#endif

/* 1: preadv2(RWF_NOWAIT) on an eventfd says EAGAIN instead of sleeping;
 * 0: it does not (older kernels); -1: not asked yet.  Asked once, by
 * the first semaphore, under the GIL. */
static int nowait_reads = -1;

/* The sleeper word's bits: a task sleeps in read(); none ever may again
 * (the eventfd was made non-blocking: sem_eventfd_unblock). */
#define SLEEPER_ASLEEP 1u
#define SLEEPER_NEVER 2u
/* sleeper[1]: acquires left that skip the try (see the top of this file). */
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
sem_eventfd_waiter_new(int fd)
{
    /* One epoll instance per semaphore, shared by every task that has the
     * fds (inherited, or the same fd table): epoll_wait's sleepers are woken
     * one at a time, where a release would wake every ppoll() on the eventfd
     * itself -- with thousands of waiters, thousands of wake-ups per permit.
     * Level-triggered: a woken waiter that loses the read race sleeps again. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
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

int
sem_eventfd_acquire(int fd, int waiter, uint32_t *sleeper, double timeout)
{
    uint32_t *skips = sleeper != NULL && timeout != 0 && nowait_reads > 0 ? sleeper + 1 : NULL;
    int r;
    if (skips != NULL && __atomic_load_n(skips, __ATOMIC_RELAXED) > 0) {
        /* Contended lately: the wait's read() is the try (a hint, raced
         * on by every task: a lost decrement costs one try). */
        __atomic_fetch_sub(skips, 1, __ATOMIC_RELAXED);
        r = 0;
    }
    else {
        r = try_take(fd);           /* uncontended: no GIL hand-off */
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
        r = eventfd_wait(fd, waiter, sleeper, &d, &interrupted);
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
        r = try_take(fd);
        if (r != 0) {
            return r;
        }
    }
}

int
sem_eventfd_unblock(int fd, uint32_t *sleeper)
{
    /* No new sleeper in read() first, then a non-blocking fd: a task that
     * claimed the word just before gets EAGAIN and goes to the epoll
     * instance; one already asleep in read() is not affected (the flag is
     * looked at before sleeping). */
    __atomic_fetch_or(sleeper, SLEEPER_NEVER, __ATOMIC_SEQ_CST);
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int
sem_eventfd_release(int fd, uint64_t n)
{
    ssize_t w = write(fd, &n, sizeof n);
    return w == (ssize_t)sizeof n ? 0 : -1;     /* EAGAIN: counter full */
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
sem_sysv_release(int id, int n)
{
    struct sembuf op = {0, (short)n, SEM_UNDO};
    return semop(id, &op, 1);       /* ERANGE: past SEMVMX */
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
