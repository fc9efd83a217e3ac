/* frames.h - what a CLONE_VM child's abandoned Python frames still hold.
 *
 * A child that leaves without returning (os.execv, os._exit, a fatal
 * signal) never unwinds its Python frames: their references stay taken
 * and, on 3.11+, they stay in the thread state's data stack.  The survivor
 * releases them before deleting the child's thread state. */
#ifndef PYCLONE_FRAMES_H
#define PYCLONE_FRAMES_H

#include "compat.h"

/* Takes the abandoned frames off the child's thread state, as soon as the
 * child is gone and before the survivor reuses the child's C stack (entry
 * frames live there from 3.11 on): the chain is relinked so that it no
 * longer passes through that stack, and the thread state's current frame is
 * reset.  Returns the chain to hand to frames_release_abandoned(), or NULL
 * when there is nothing that can be released exactly (no frames; or frames
 * that other objects can still reach - a frame object, a running
 * generator - whose data stack is then kept alive: a bounded leak).
 * Touches only the dead child's thread state; needs no GIL. */
void *frames_abandon(PyThreadState *child);

/* Releases what the chain from frames_abandon() holds: locals, function and
 * code object and, where CPython recorded its extent (3.14+), each frame's
 * evaluation stack.  Needs the GIL; objects may be finalised, so Python code
 * may run. */
void frames_release_abandoned(void *chain);

/* 1 when this build reads CPython's frames (its internal headers are those
 * of a version pyclone was tested against), else 0: abandoned frames are
 * then left alone, a bounded leak. */
int frames_known(void);

/* Field offsets of _PyInterpreterFrame as this build saw them (3.11+), for
 * the test that compares them with a program built against the installed
 * interpreter's own header. */
PyObject *frames_layout(void);

#endif
