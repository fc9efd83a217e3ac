/* stack.h - stacks for CLONE_VM children.
 *
 * A child's stack is, in order of preference, the unused part of a stack
 * that already exists (the suspended caller's in borrowed mode): nothing to
 * allocate or free, and CPython's stack-limit computations, which look at
 * the current pthread's stack, stay right.  Otherwise a fresh mapping with
 * a PROT_NONE guard page below it. */
#ifndef PYCLONE_STACK_H
#define PYCLONE_STACK_H

#include <stddef.h>
#include <stdint.h>

/* What a child's frames leave alone above them when its stack is carved
 * below a running frame (the caller's in borrowed mode, the host's in thread
 * mode): that frame, suspended in clone(), and what glibc's wrapper pushes. */
#define CARVE_MARGIN (16 * 1024)

/* The initial stack pointer of a child carved `margin` bytes below `here`,
 * an address in the carving frame, 16-byte aligned as the ABI wants. */
static inline void *
stack_carve_top(const void *here, size_t margin)
{
    return (void *)(((uintptr_t)here - margin) & ~(uintptr_t)15);
}

struct child_stack {
    void *top;          /* 16-byte aligned initial stack pointer */
    void *low;          /* lowest address the child may use (above the guard) */
    void *map_base;     /* mapping to release, or NULL when carved */
    size_t map_len;
};

/* Bytes left between the caller's stack pointer (less `margin`) and the
 * guard of the calling thread's stack; 0 if unknown. */
size_t stack_room_below_sp(size_t margin);

/* Carves the child's stack below the caller's stack pointer when the
 * calling thread's stack has at least `carve_min` bytes left there (the
 * child then gets all of them), else maps a new stack of `map_size` bytes
 * plus a guard page.  Sizes are whole pages.  Returns 0, or -1 with errno
 * set (mmap/mprotect failed). */
int stack_acquire(struct child_stack *st, size_t carve_min, size_t map_size);

/* Releases a mapping made by stack_acquire (nothing for a carved stack). */
void stack_release(struct child_stack *st);

#endif
