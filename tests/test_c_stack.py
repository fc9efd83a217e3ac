"""Deep C recursion in a CLONE_VM child is a RecursionError, as in a thread,
on whatever stack the child runs: carved from the suspended caller's stack or
mapped (borrowed mode), carved from a host thread's stack (thread mode).
CPython 3.14+ checks C recursion against stack bounds kept in the thread
state; pyclone sets them for each child (src/pyclone/cstack.c).  Before
3.14 a depth counter does the same job."""
import json
import signal
import sys

import pytest

import pyclone
from conftest import BORROWED, reap

THREAD = pyclone.CLONE_VM | signal.SIGCHLD
RECURSION_ERROR = 7

STACKS = [
    pytest.param(BORROWED, None, id="borrowed-carved"),
    pytest.param(BORROWED, 64 << 20, id="borrowed-mapped-64MiB"),
    pytest.param(THREAD, None, id="thread"),
    pytest.param(THREAD, pyclone.MIN_STACK_SIZE, id="thread-min-stack", marks=pytest.mark.skipif(
        sys.version_info < (3, 14),
        reason="before 3.14 C recursion is limited by depth (the recursion limit, or 3.12's "
               "C limit), which on a small stack lies beyond its end: the child overflows "
               "first, as a thread on such a stack would (docs/borrowed-mode.md, stacks)")),
]


@pytest.fixture(scope="module")
def deep_list():
    """A list nested 10**6 deep: json.dumps of it recurses in C."""
    x = []
    for _ in range(10 ** 6):
        x = [x]
    return x


def dumps_or_recursion_error(obj):
    try:
        json.dumps(obj)
    except RecursionError:
        return RECURSION_ERROR
    return 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flags,stack_size", STACKS)
def test_deep_c_recursion_raises_recursion_error(flags, stack_size, deep_list):
    pid = pyclone.clone(dumps_or_recursion_error, flags, stack_size, args=(deep_list,))
    assert reap(pid) == RECURSION_ERROR


def test_the_same_recursion_in_a_thread_raises_too(deep_list):
    """The reference behaviour the children must match."""
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(dumps_or_recursion_error(deep_list)))
    t.start()
    t.join()
    assert out == [RECURSION_ERROR]


def moderate_recursion(depth):
    nested = []
    for _ in range(depth):
        nested = [nested]
    assert json.loads(json.dumps(nested)) == nested

    def rec(n):
        return 0 if n == 0 else 1 + rec(n - 1)
    assert rec(depth) == depth
    return 0


@pytest.mark.parametrize("flags,stack_size", [
    pytest.param(BORROWED, None, id="borrowed-carved"),
    pytest.param(BORROWED, 64 << 20, id="borrowed-mapped-64MiB"),
    pytest.param(THREAD, None, id="thread"),
    pytest.param(THREAD, pyclone.MIN_STACK_SIZE, id="thread-min-stack"),
    pytest.param(BORROWED, pyclone.MIN_STACK_SIZE, id="borrowed-min-stack")])
def test_moderate_recursion_never_trips_a_false_alarm(flags, stack_size):
    # Up to 3.10 each Python call also takes C stack: less depth on a small one.
    depth = 300 if stack_size is None or stack_size > 1 << 20 else 60
    for _ in range(3):          # reused thread states get their bounds anew
        assert reap(pyclone.clone(moderate_recursion, flags, stack_size, args=(depth,))) == 0


@pytest.mark.skipif(sys.version_info < (3, 14), reason="C-stack bounds exist from 3.14")
def test_cpython_minimum_is_known_on_314_and_later():
    """On 3.14.2+ the bounds are set through CPython's own API, whose
    minimum region pyclone reads from the interpreter's header; every child
    stack pyclone makes is larger."""
    minimum = pyclone._clone.CPYTHON_MIN_STACK
    assert minimum >= 48 * 1024, "3.14.2+ exports PyUnstable_ThreadState_SetStackProtection"
    assert pyclone._rules.MIN_CHILD_STACK > minimum
