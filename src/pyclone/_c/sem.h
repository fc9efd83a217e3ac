/* sem.h - eventfd and System V semaphore primitives (see sem.c).
 * Acquire functions return 1 (acquired), 0 (timed out / would block),
 * -1 (errno set) or -2 (a signal handler raised: exception set). */
#ifndef PYCLONE_SEM_H
#define PYCLONE_SEM_H

#include "compat.h"
#include <stdint.h>

/* The head of an eventfd semaphore's MAP_SHARED page, seen by tasks of
 * every mode (sem.c says what each word means). */
struct sem_shared {
    uint32_t sleeper;       /* who sleeps in read() */
    uint32_t skips;         /* kernel count: acquires left that skip the try */
    uint64_t state;         /* user count: value, waiters, or "in the eventfd" */
};

/* An eventfd semaphore as one task holds it. */
struct sem_eventfd {
    int fd;                     /* the eventfd: fileno(), the kernel count */
    int hint;                   /* the user count's wake-up eventfd, or -1 */
    int waiter;                 /* the epoll fd waiters sleep on, or -1 */
    struct sem_shared *shared;  /* NULL: the count is the eventfd's, always */
};

/* Whether eventfds are made blocking, with RWF_NOWAIT tries, and the user
 * count can be used (sem.c). */
int sem_eventfd_blocking(void);
int sem_eventfd_new(uint64_t value);
/* The wake-up eventfd of a user count. */
int sem_eventfd_hint_new(void);
/* An epoll fd watching eventfd `fd` (and `hint`, if >= 0): what waiters
 * sleep on (sem.c). */
int sem_eventfd_waiter_new(int fd, int hint);
int sem_eventfd_acquire(const struct sem_eventfd *s, double timeout);
/* Releases are called with the GIL; with drop_gil (a waiter of this memory
 * may be asleep) they drop it around a system call that may wake one. */
int sem_eventfd_release(const struct sem_eventfd *s, uint64_t n, int drop_gil);
/* Moves a user count into the eventfd for good (fileno() needs it there). */
int sem_eventfd_share(const struct sem_eventfd *s);
/* The count into the eventfd, then the eventfd non-blocking for good, so
 * that a write that would overflow its counter fails instead of waiting. */
int sem_eventfd_unblock(const struct sem_eventfd *s);
/* The user count's value, or -1 once it is in the eventfd. */
int64_t sem_eventfd_user_value(const struct sem_eventfd *s);

int sem_sysv_new(int value);
int sem_sysv_acquire(int id, double timeout);
int sem_sysv_release(int id, int n, int drop_gil);
int sem_sysv_remove(int id);
int sem_sysv_value(int id);

#endif
