/* sem.h - eventfd and System V semaphore primitives (see sem.c).
 * Acquire functions return 1 (acquired), 0 (timed out / would block),
 * -1 (errno set) or -2 (a signal handler raised: exception set). */
#ifndef PYCLONE_SEM_H
#define PYCLONE_SEM_H

#include "compat.h"
#include <stdint.h>

/* Whether eventfds are made blocking, with RWF_NOWAIT tries (sem.c). */
int sem_eventfd_blocking(void);
int sem_eventfd_new(uint64_t value);
/* An epoll fd watching eventfd `fd`: what waiters sleep on (sem.c). */
int sem_eventfd_waiter_new(int fd);
/* waiter: from sem_eventfd_waiter, or -1 to ppoll the eventfd itself;
 * sleeper: the semaphore's two words in shared memory, which let one task
 * sleep in read() and say how many acquires skip the try (sem.c), or NULL. */
int sem_eventfd_acquire(int fd, int waiter, uint32_t *sleeper, double timeout);
int sem_eventfd_release(int fd, uint64_t n);
/* Makes a blocking eventfd non-blocking for good, so that a write that
 * would overflow its counter fails instead of waiting (sem.c). */
int sem_eventfd_unblock(int fd, uint32_t *sleeper);

int sem_sysv_new(int value);
int sem_sysv_acquire(int id, double timeout);
int sem_sysv_release(int id, int n);
int sem_sysv_remove(int id);
int sem_sysv_value(int id);

#endif
