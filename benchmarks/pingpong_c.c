/* pingpong_c.c - the floor under pyclone.Semaphore's ping-pong: two
 * processes hand a permit back and forth through two EFD_SEMAPHORE eventfds
 * (blocking read() and write(), as pyclone's waiter asleep in read()), with
 * and without a preadv2(RWF_NOWAIT) try before each read, and through two
 * sem_t in shared memory (what multiprocessing.Semaphore is).
 *
 *   gcc -O2 -o /tmp/pingpong_c benchmarks/pingpong_c.c -pthread
 *   taskset -c 1 /tmp/pingpong_c [round trips]
 */
#define _GNU_SOURCE
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#  define RWF_NOWAIT 0x00000008
#endif

static double
seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Takes one permit of eventfd fd; with `try_first`, as pyclone without the
 * skipped tries: a RWF_NOWAIT read first, the blocking read if it failed. */
static void
take(int fd, int try_first)
{
    uint64_t value;
    if (try_first) {
        struct iovec io = {&value, sizeof value};
        if (syscall(SYS_preadv2, fd, &io, 1, -1L, -1L, RWF_NOWAIT) == (long)sizeof value) {
            return;
        }
    }
    if (read(fd, &value, sizeof value) != (ssize_t)sizeof value) {
        perror("read");
        exit(1);
    }
}

static void
give(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof one) != (ssize_t)sizeof one) {
        perror("write");
        exit(1);
    }
}

static double
eventfd_trip(int rounds, int try_first)
{
    int ping = eventfd(0, EFD_SEMAPHORE), pong = eventfd(0, EFD_SEMAPHORE);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < rounds; i++) {
            take(ping, try_first);
            give(pong);
        }
        _exit(0);
    }
    double t0 = seconds();
    for (int i = 0; i < rounds; i++) {
        give(ping);
        take(pong, try_first);
    }
    double elapsed = seconds() - t0;
    waitpid(pid, NULL, 0);
    close(ping);
    close(pong);
    return elapsed / rounds;
}

static double
sem_trip(int rounds)
{
    sem_t *s = mmap(NULL, 2 * sizeof(sem_t), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_init(&s[0], 1, 0);
    sem_init(&s[1], 1, 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < rounds; i++) {
            sem_wait(&s[0]);
            sem_post(&s[1]);
        }
        _exit(0);
    }
    double t0 = seconds();
    for (int i = 0; i < rounds; i++) {
        sem_post(&s[0]);
        sem_wait(&s[1]);
    }
    double elapsed = seconds() - t0;
    waitpid(pid, NULL, 0);
    munmap(s, 2 * sizeof(sem_t));
    return elapsed / rounds;
}

int
main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 100000;
    /* Interleaved, three times: this machine's speed drifts. */
    for (int run = 0; run < 3; run++) {
        double bare = eventfd_trip(rounds, 0), tried = eventfd_trip(rounds, 1);
        double futex = sem_trip(rounds);
        printf("eventfd %.2f us, eventfd with tries %.2f us, sem_t %.2f us per round trip;"
               " ratios to sem_t %.2f / %.2f\n", bare * 1e6, tried * 1e6, futex * 1e6,
               bare / futex, tried / futex);
    }
    return 0;
}
