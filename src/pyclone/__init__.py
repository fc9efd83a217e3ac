"""pyclone: Linux clone() for Python.

A Python callable runs in a new task whose sharing with its parent (memory,
file descriptors, cwd/umask, signal handlers, namespaces, thread group) is
chosen flag by flag, as the system call offers it.  See the README.
"""
from ._core import clone, terminate, waitpid
from ._exit import Terminated
from ._clone3 import CloneResult, clone3
from .child import Child, ChildError, run
from ._rules import DEFAULT_STACK_SIZE, MIN_STACK_SIZE
from .flags import CSIGNAL, WALL, WCLONE, WNOTHREAD, CloneFlags
from .msgqueue import Queue
from .sync import RecursiveSemaphore, Semaphore

# Every flag as a module constant, as in C (members of CloneFlags: ints).
CLONE_NEWTIME = CloneFlags.CLONE_NEWTIME
CLONE_VM = CloneFlags.CLONE_VM
CLONE_FS = CloneFlags.CLONE_FS
CLONE_FILES = CloneFlags.CLONE_FILES
CLONE_SIGHAND = CloneFlags.CLONE_SIGHAND
CLONE_PIDFD = CloneFlags.CLONE_PIDFD
CLONE_PTRACE = CloneFlags.CLONE_PTRACE
CLONE_VFORK = CloneFlags.CLONE_VFORK
CLONE_PARENT = CloneFlags.CLONE_PARENT
CLONE_THREAD = CloneFlags.CLONE_THREAD
CLONE_NEWNS = CloneFlags.CLONE_NEWNS
CLONE_SYSVSEM = CloneFlags.CLONE_SYSVSEM
CLONE_SETTLS = CloneFlags.CLONE_SETTLS
CLONE_PARENT_SETTID = CloneFlags.CLONE_PARENT_SETTID
CLONE_CHILD_CLEARTID = CloneFlags.CLONE_CHILD_CLEARTID
CLONE_DETACHED = CloneFlags.CLONE_DETACHED
CLONE_UNTRACED = CloneFlags.CLONE_UNTRACED
CLONE_CHILD_SETTID = CloneFlags.CLONE_CHILD_SETTID
CLONE_NEWCGROUP = CloneFlags.CLONE_NEWCGROUP
CLONE_NEWUTS = CloneFlags.CLONE_NEWUTS
CLONE_NEWIPC = CloneFlags.CLONE_NEWIPC
CLONE_NEWUSER = CloneFlags.CLONE_NEWUSER
CLONE_NEWPID = CloneFlags.CLONE_NEWPID
CLONE_NEWNET = CloneFlags.CLONE_NEWNET
CLONE_IO = CloneFlags.CLONE_IO
CLONE_CLEAR_SIGHAND = CloneFlags.CLONE_CLEAR_SIGHAND
CLONE_INTO_CGROUP = CloneFlags.CLONE_INTO_CGROUP

__all__ = ["clone", "clone3", "CloneResult", "Child", "ChildError", "run", "waitpid",
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
__version__ = "0.1.0"
