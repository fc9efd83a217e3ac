"""pyclone: Linux clone() for Python.

A Python callable runs in a new task whose sharing with its parent (memory,
file descriptors, cwd/umask, signal handlers, namespaces, thread group) is
chosen flag by flag, as the system call offers it.  See the README.
"""
from ._core import clone, waitpid
from ._rules import DEFAULT_STACK_SIZE, MIN_STACK_SIZE
from .flags import CSIGNAL, WALL, WCLONE, WNOTHREAD, CloneFlags

globals().update({member.name: member for member in CloneFlags})

__all__ = ["clone", "waitpid", "CloneFlags", "CSIGNAL", "WALL", "WCLONE",
           "WNOTHREAD", "DEFAULT_STACK_SIZE", "MIN_STACK_SIZE"]
__all__ += [member.name for member in CloneFlags]
__version__ = "0.1.0"
