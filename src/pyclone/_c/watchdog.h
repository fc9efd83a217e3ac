/* watchdog.h - never a silent hang after a CLONE_VM child was killed.
 *
 * A signal can end a CLONE_VM child anywhere: holding the GIL (repaired:
 * the survivor takes it over), asleep without it (harmless) - or queued for
 * the GIL, or inside malloc, with a lock of shared memory held or a
 * condition variable left waiting for a waiter that will never come back.
 * glibc cannot recover those; the process would hang at its next GIL
 * hand-off or allocation, silently.  So after a child of ours died by a
 * signal, a watchdog thread checks, for a few seconds, that the GIL's mutex
 * and every malloc arena can still be locked (each probe in a thread of its
 * own, with a deadline).  When one cannot, it says so on stderr, naming
 * pyclone and the child, and aborts the process - as a crashing thread
 * would end it. */
#ifndef PYCLONE_WATCHDOG_H
#define PYCLONE_WATCHDOG_H

#include <sys/types.h>

/* Child `pid` died by signal `sig` (0: unknown) without releasing what it
 * held.  Starts the watchdog (no GIL needed). */
void watchdog_after_kill(pid_t pid, int sig);

/* The signal that ended unreaped child `pid`, or 0 (it exited; or, unless
 * `block`, it is not a zombie yet).  Does not reap it (waitid WNOWAIT).
 * `block`: wait up to 0.2 s for it, for a child known to be dying: one that
 * left without returning and without holding the GIL cannot have exec'd or
 * called os._exit (both hold it), so a signal ended it. */
int watchdog_killed_by(pid_t pid, int block);

/* watchdog_killed_by() then watchdog_after_kill(), for a CLONE_VM child that
 * left without returning; `held_gil`: its thread state was current.  Call
 * before touching the GIL: a broken GIL would hang the caller there. */
void watchdog_check(pid_t pid, int held_gil);

#endif
