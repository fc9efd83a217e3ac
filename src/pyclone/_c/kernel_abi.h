/* kernel_abi.h - what pyclone takes from the kernel's ABI itself rather
 * than from libc's headers, which lag behind the kernel (glibc 2.36 has no
 * clone3 wrapper and lacks the newest CLONE_* bits) or cannot hold it (the
 * legacy flags word is 32 bits wide).  One place for each such value.
 */
#ifndef PYCLONE_KERNEL_ABI_H
#define PYCLONE_KERNEL_ABI_H

#include <stdint.h>
#include <sys/syscall.h>

#ifndef __NR_clone3
#  define __NR_clone3 435        /* the same number on every architecture (Linux 5.3) */
#endif

/* struct clone_args of <linux/sched.h>, version 2 (88 bytes, Linux 5.7);
 * the kernel takes any of its versions, named by their size. */
struct kernel_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define CLONE_ARGS_SIZE_VER0 64    /* Linux 5.3 */
#define CLONE_ARGS_SIZE_VER1 80    /* + set_tid, set_tid_size (5.5) */
#define CLONE_ARGS_SIZE_VER2 88    /* + cgroup (5.7) */

/* CLONE_* bits pyclone sets or tests itself, as 64-bit values: the two
 * above bit 31 exist only in clone3's flags, and CLONE_NEWTIME (0x80) lies
 * in the legacy call's exit-signal byte. */
#define CLONE_NEWTIME_BIT       0x00000080ULL   /* Linux 5.6 */
#define CLONE_PIDFD_BIT         0x00001000ULL   /* Linux 5.2 */
#define CLONE_CHILD_SETTID_BIT  0x01000000ULL
#define CLONE_CLEAR_SIGHAND_BIT 0x100000000ULL  /* clone3 only, Linux 5.5 */
#define CLONE_INTO_CGROUP_BIT   0x200000000ULL  /* clone3 only, Linux 5.7 */

/* MAX_PID_NS_LEVEL: PID namespaces nest at most this deep, so clone3 takes
 * at most this many set_tid entries (one per level). */
#define MAX_SET_TID 32

#endif
