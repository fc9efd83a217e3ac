"""What the frames of a CLONE_VM child that never returned (os._exit, exec,
a fatal signal) hold is released once the child is gone: locals on every
version, the evaluation stack too where CPython records its extent (3.14+).
Frames that other objects can still reach are kept (src/pyclone/frames.c)."""
import gc
import os
import signal
import sys
import weakref

import pytest

import pyclone
from conftest import BORROWED, reap

THREAD = pyclone.CLONE_VM | signal.SIGCHLD
MODES = [pytest.param(BORROWED, id="borrowed"), pytest.param(THREAD, id="thread")]


class Token:
    pass


def _nested(depth, leaf):
    return leaf() if depth == 0 else _nested(depth - 1, leaf)


def _takes_two(a, b):
    return a, b


@pytest.mark.parametrize("flags", MODES)
@pytest.mark.xfail(sys.version_info < (3, 14), strict=True,
                   reason="up to 3.13 a frame calling into C keeps its evaluation-stack "
                          "extent in a C local: those values leak (docs/caveats.md)")
def test_evaluation_stack_values_are_released(flags):
    refs = []

    def make():
        token = Token()
        refs.append(weakref.ref(token))
        return token

    def leaf():
        # make()'s Token lives only on this frame's evaluation stack when
        # os._exit is called.
        _takes_two(make(), os._exit(0))
    assert reap(pyclone.clone(_nested, flags, args=(5, leaf))) == 0
    gc.collect()
    assert refs[0]() is None


@pytest.mark.parametrize("flags", MODES)
def test_locals_below_a_c_call_into_python_are_released(flags):
    """The chain passes through entry frames on the child's C stack (map()
    calls back into Python): the survivor must not read them after reusing
    that stack, and the frames below them are released too."""
    refs = []

    def outer():
        token = Token()
        refs.append(weakref.ref(token))
        list(map(lambda _: _nested(3, lambda: os._exit(0)), [1]))
    assert reap(pyclone.clone(outer, flags)) == 0
    gc.collect()
    assert refs and refs[0]() is None


@pytest.mark.parametrize("flags", MODES)
def test_frames_of_a_running_generator_are_kept(flags):
    """A generator owns its frame; the frames are kept (a bounded leak)
    rather than finalising a generator that is still marked as running."""
    refs = []

    def gen():
        token = Token()
        refs.append(weakref.ref(token))
        yield os._exit(0)

    def child():
        next(gen())
    assert reap(pyclone.clone(child, flags)) == 0
    gc.collect()
    assert refs[0]() is not None
    assert reap(pyclone.clone(lambda: 0, flags)) == 0     # the parent goes on


@pytest.mark.parametrize("flags", MODES)
def test_child_without_python_frames(flags):
    """os._exit as the callable itself: no Python frame at all (3.15 still
    has its sentinel base frame, which is not one of the child's)."""
    for _ in range(3):
        assert reap(pyclone.clone(os._exit, flags, args=(3,))) == 3
    assert reap(pyclone.clone(lambda: 0, flags)) == 0
