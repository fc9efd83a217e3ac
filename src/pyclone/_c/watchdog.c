/* watchdog.c - see watchdog.h.  The GIL's mutex is found through the
 * interpreter's own internal headers (hence Py_BUILD_CORE). */
#define Py_BUILD_CORE 1
#define _GNU_SOURCE
#include "compat.h"
#include "terminate.h"
#include "watchdog.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if PYCLONE_KNOWN_INTERNALS
#  if PY_VERSION_HEX >= 0x030C0000
#    include "internal/pycore_interp.h"     /* interp->ceval.gil */
#  else
#    include "internal/pycore_runtime.h"    /* _PyRuntime.ceval.gil */
#  endif
#endif

#define PROBE_DEADLINE_S 1      /* a lock held this long is held for ever */
#define WATCH_PROBES 20         /* one every 100 ms: 2 s after the kill */

static pthread_mutex_t *
gil_mutex(void)
{
#if PYCLONE_KNOWN_INTERNALS && PY_VERSION_HEX >= 0x030C0000
    PyInterpreterState *interp = PyInterpreterState_Main();
    return interp != NULL && interp->ceval.gil != NULL ? &interp->ceval.gil->mutex : NULL;
#elif PYCLONE_KNOWN_INTERNALS
    return &_PyRuntime.ceval.gil.mutex;
#else
    return NULL;
#endif
}

struct watch {
    pid_t pid;
    int sig;
};

/* One probe: each lock taken and given back at once.  mallinfo2() (glibc
 * 2.33+; mallinfo() before) locks every arena in turn. */
static void *
probe(void *arg)
{
    pthread_mutex_t *m = gil_mutex();
    if (m != NULL) {
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
    }
    /* Called through dlsym, so that a build on glibc 2.33+ loads on older. */
    struct mallinfo2_like { size_t field[10]; };
    static struct mallinfo2_like (*info2)(void);
    static int looked;
    if (!looked) {
        *(void **)&info2 = dlsym(RTLD_DEFAULT, "mallinfo2");
        looked = 1;
    }
    if (info2 != NULL) {
        struct mallinfo2_like mi = info2();
        (void)mi;
    }
    else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
        (void)mi;
    }
    return arg;
}

static PYCLONE_NORETURN void
give_up(const struct watch *w)
{
    char msg[400];
    char how[32] = "by a signal";
    if (w->sig > 0) {
        (void)snprintf(how, sizeof how, "by signal %d", w->sig);
    }
    int n = snprintf(msg, sizeof msg,
        "pyclone: CLONE_VM child %d was killed %s while it held or waited for a "
        "lock in the memory it shares with this process (the GIL's or malloc's); that "
        "lock can never be released, so this process cannot go on: aborting (process %d). "
        "End CLONE_VM children with pyclone.terminate() or Child.terminate(), not "
        "SIGKILL.\n", (int)w->pid, how, (int)getpid());
    if (n > 0) {
        ssize_t unused = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)unused;
    }
    /* Our other CLONE_VM children would live on in our memory, stuck. */
    vm_kill_all();
    abort();
}

static void *
watch_main(void *arg)
{
    struct watch w = *(struct watch *)arg;
    free(arg);
    for (int i = 0; i < WATCH_PROBES; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, probe, NULL) != 0) {
            break;
        }
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += PROBE_DEADLINE_S;
        if (pthread_timedjoin_np(t, NULL, &deadline) == ETIMEDOUT) {
            give_up(&w);
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        (void)nanosleep(&pause, NULL);
    }
    return NULL;
}

void
watchdog_after_kill(pid_t pid, int sig)
{
    struct watch *w = malloc(sizeof *w);
    if (w == NULL) {
        return;
    }
    w->pid = pid;
    w->sig = sig;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Signals are for the interpreter's threads, not for ours. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, &attr, watch_main, w) != 0) {
        free(w);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

int
watchdog_killed_by(pid_t pid, int block)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* A dying task is a zombie within microseconds; bounded all the same
     * (a child that exec'd from C code without the GIL lives on). */
    for (int tries = block ? 2000 : 1;; ) {
        int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | WNOHANG | __WALL);
        if (r == 0 && info.si_pid == pid) {
            break;
        }
        if ((r != 0 && errno != EINTR) || --tries <= 0) {
            return 0;
        }
        struct timespec pause = {0, 100 * 1000};
        (void)nanosleep(&pause, NULL);
    }
    return info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED ? info.si_status : 0;
}

void
watchdog_check(pid_t pid, int held_gil)
{
    /* Without the GIL it cannot have exec'd or called os._exit: a signal
     * (whose number another thread's waitpid may have taken already). */
    int sig = watchdog_killed_by(pid, !held_gil);
    if (sig != 0 || !held_gil) {
        watchdog_after_kill(pid, sig);
    }
}
