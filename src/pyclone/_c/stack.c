/* stack.c - see stack.h. */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* Per-thread cache of the calling thread's stack bounds: for the main
 * thread glibc's pthread_getattr_np() parses /proc/self/maps, far too slow
 * for every clone.  A borrowed child shares its parent's TLS and runs on
 * the parent's stack, so the cached bounds hold for it too. */
static __thread uintptr_t stack_low;    /* lowest usable address, 0 = unknown */
static __thread int stack_looked;

static uintptr_t
thread_stack_low(void)
{
    if (!stack_looked) {
        pthread_attr_t attr;
        stack_looked = 1;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void *addr;
            size_t size, guard = 0;
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                (void)pthread_attr_getguardsize(&attr, &guard);
                /* glibc reports the guard inside [addr, addr+size) for
                 * threads it created; stay above it, with some slack for
                 * the main thread, whose reported bottom is the rlimit. */
                stack_low = (uintptr_t)addr + guard + 64 * 1024;
            }
            pthread_attr_destroy(&attr);
        }
    }
    return stack_low;
}

size_t
stack_room_below_sp(size_t margin)
{
    char here;
    uintptr_t sp = (uintptr_t)&here;
    uintptr_t low = thread_stack_low();
    if (low == 0 || sp < low + margin) {
        return 0;
    }
    return sp - margin - low;
}

int
stack_acquire(struct child_stack *st, size_t carve_min, size_t map_size)
{
    if (stack_room_below_sp(CARVE_MARGIN) >= carve_min) {
        char here;
        st->top = stack_carve_top(&here, CARVE_MARGIN);
        st->low = (void *)thread_stack_low();
        st->map_base = NULL;
        st->map_len = 0;
        return 0;
    }
    size_t page = (size_t)getpagesize();
    size_t len = map_size + page;
    /* MAP_NORESERVE|lazily committed: an 8 MiB stack costs what it touches. */
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE,
                      -1, 0);
    if (base == MAP_FAILED) {
        return -1;
    }
    if (mprotect(base, page, PROT_NONE) != 0) {
        int err = errno;
        (void)munmap(base, len);
        errno = err;
        return -1;
    }
    st->map_base = base;
    st->map_len = len;
    st->top = (void *)(((uintptr_t)base + len) & ~(uintptr_t)15);
    st->low = (char *)base + page;
    return 0;
}

void
stack_release(struct child_stack *st)
{
    if (st->map_base != NULL) {
        (void)munmap(st->map_base, st->map_len);
        st->map_base = NULL;
    }
}
