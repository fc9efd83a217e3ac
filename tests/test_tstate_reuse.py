"""CLONE_VM children reuse a finished child's thread state (borrowed mode:
one idle state per calling thread; thread mode: one per host).  Nothing
per-thread may carry over from one child to the next."""
import contextvars
import signal
import sys
import threading

import pytest

import pyclone
from conftest import reap

P = pyclone
MODES = {"borrowed": P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD,
         "thread": P.CLONE_VM | signal.SIGCHLD}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_consecutive_children_start_fresh(mode):
    local = threading.local()
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    def first():
        local.x = "first"
        var.set("first")
        sys.set_coroutine_origin_tracking_depth(5)

    def second():
        seen.append((getattr(local, "x", None), var.get(),
                     sys.get_coroutine_origin_tracking_depth()))
    for _ in range(3):
        assert reap(P.clone(first, MODES[mode])) == 0
        assert reap(P.clone(second, MODES[mode])) == 0
    assert seen == [(None, "unset", 0)] * 3


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_tracing_child_does_not_pass_its_tracer_on(mode):
    calls = []

    def tracer(frame, event, arg):
        calls.append(event)

    def plain():
        def inner():
            return 1
        inner()
        return 0
    assert reap(P.clone(sys.settrace, MODES[mode], args=(tracer,))) == 0
    del calls[:]
    assert reap(P.clone(plain, MODES[mode])) == 0
    assert calls == []
    assert sys.gettrace() is None
