/* baseline.c - the clones pyclone's benchmarks compare against, done in C:
 * the module pyclone._baseline, built with pyclone (so an installed
 * `python -m pyclone bench` has it too).  One call = one child started,
 * exited and reaped, the child doing nothing but _exit(0); called with no
 * arguments (METH_NOARGS), so the Python call around it costs tens of
 * nanoseconds and the figure is the system calls' own.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int
child_exit(void *arg)
{
    (void)arg;
    _exit(0);
}

/* CLONE_VM|CLONE_VFORK|SIGCHLD on a stack carved below our own stack
 * pointer, as pyclone's borrowed mode does; then waitpid. */
static int
baseline_borrowed(void)
{
    char here;
    char *top = (char *)(((unsigned long)&here - 16384) & ~15UL);
    pid_t pid = clone(child_exit, top, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|SIGCHLD (the seeds' light-weight
 * process, what thread mode makes) on a stack mapped once and reused: the
 * child has exited when waitpid returns, so the stack is free again. */
static char *thread_stack;
#define THREAD_STACK_SIZE (256 * 1024)

static int
baseline_thread(void)
{
    if (thread_stack == NULL) {
        void *p = mmap(NULL, THREAD_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (p == MAP_FAILED) {
            return -1;
        }
        thread_stack = p;
    }
    pid_t pid = clone(child_exit, thread_stack + THREAD_STACK_SIZE,
                      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | SIGCHLD, NULL);
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* fork() + _exit(0) in the child + waitpid. */
static int
baseline_fork(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* vfork-style spawn of a program (what posix_spawn does), for reference. */
static int
baseline_spawn(const char *path)
{
    char *argv[] = {(char *)path, NULL};
    char *envp[] = {NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        execve(path, argv, envp);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    int status;
    return waitpid(pid, &status, 0) == pid ? 0 : -1;
}

/* ---- the module ------------------------------------------------------- */

static PyObject *
result(int r)
{
    if (r < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
py_borrowed(PyObject *m, PyObject *unused)
{
    return result(baseline_borrowed());
}

static PyObject *
py_thread(PyObject *m, PyObject *unused)
{
    return result(baseline_thread());
}

static PyObject *
py_fork(PyObject *m, PyObject *unused)
{
    return result(baseline_fork());
}

static PyObject *
py_spawn(PyObject *m, PyObject *path)
{
    const char *p = PyUnicode_AsUTF8(path);
    return p == NULL ? NULL : result(baseline_spawn(p));
}

static PyMethodDef baseline_methods[] = {
    {"borrowed", py_borrowed, METH_NOARGS,
     "borrowed($module, /)\n--\n\nclone(CLONE_VM|CLONE_VFORK|SIGCHLD) + waitpid."},
    {"thread", py_thread, METH_NOARGS,
     "thread($module, /)\n--\n\nclone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|SIGCHLD)"
     " + waitpid."},
    {"fork", py_fork, METH_NOARGS, "fork($module, /)\n--\n\nfork() + waitpid."},
    {"spawn", py_spawn, METH_O, "spawn($module, path, /)\n--\n\nvfork() + execve + waitpid."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef baseline_module = {
    PyModuleDef_HEAD_INIT, "pyclone._baseline",
    "The C clones pyclone's benchmarks compare against (benchmarks/baseline.c).",
    -1, baseline_methods,
};

PyMODINIT_FUNC
PyInit__baseline(void)
{
    return PyModule_Create(&baseline_module);
}
