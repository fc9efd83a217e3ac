"""pyclone: Linux clone() for Python.

A Python callable runs in a new task whose sharing with its parent (memory,
file descriptors, cwd/umask, signal handlers, namespaces, thread group) is
chosen flag by flag, as the system call offers it.  See docs/ (or `make docs`).
"""
from ._core import clone, terminate, wait4, waitpid
from ._exit import Terminated
from ._rules import DEFAULT_STACK_SIZE, MIN_STACK_SIZE
from .flags import CSIGNAL, FLAG_VALUES as _FLAG_VALUES, WALL, WCLONE, WNOTHREAD
from ._version import __version__ as __version__

# `import pyclone` loads only what clone() needs (a few milliseconds); the
# rest is imported at its first use: Child needs pickle, select and
# traceback, Queue needs pickle and queue, the flag enum needs enum.
_LAZY = {
    "clone3": "_clone3", "CloneResult": "_clone3",
    "Child": "child", "ChildError": "child", "run": "child",
    "Semaphore": "sync", "RecursiveSemaphore": "sync", "Queue": "msgqueue",
    "CloneFlags": "flags",
}


def __getattr__(name):
    if name in _LAZY:
        module = __import__(f"{__name__}.{_LAZY[name]}", fromlist=[name])
        value = getattr(module, name)
    elif name in _FLAG_VALUES:
        # Every flag as a module constant, as in C (a CloneFlags member: an int).
        value = getattr(__getattr__("CloneFlags"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = ["clone", "clone3", "CloneResult", "Child", "ChildError", "run", "waitpid", "wait4",
           "terminate", "Terminated", "Semaphore", "RecursiveSemaphore", "Queue",
           "CloneFlags", "CSIGNAL", "WALL", "WCLONE",
           "WNOTHREAD", "DEFAULT_STACK_SIZE", "MIN_STACK_SIZE",
           "CLONE_NEWTIME",
           "CLONE_VM",
           "CLONE_FS",
           "CLONE_FILES",
           "CLONE_SIGHAND",
           "CLONE_PIDFD",
           "CLONE_PTRACE",
           "CLONE_VFORK",
           "CLONE_PARENT",
           "CLONE_THREAD",
           "CLONE_NEWNS",
           "CLONE_SYSVSEM",
           "CLONE_SETTLS",
           "CLONE_PARENT_SETTID",
           "CLONE_CHILD_CLEARTID",
           "CLONE_DETACHED",
           "CLONE_UNTRACED",
           "CLONE_CHILD_SETTID",
           "CLONE_NEWCGROUP",
           "CLONE_NEWUTS",
           "CLONE_NEWIPC",
           "CLONE_NEWUSER",
           "CLONE_NEWPID",
           "CLONE_NEWNET",
           "CLONE_IO",
           "CLONE_CLEAR_SIGHAND",
           "CLONE_INTO_CGROUP",
           ]
