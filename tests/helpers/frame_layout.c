/* Prints the offsets of _PyInterpreterFrame's fields as the installed
 * CPython's own internal header defines them (tests only: compared with what
 * the build of pyclone._clone saw, src/pyclone/frames.c). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_interpframe_structs.h"
#  define STACK stackpointer
#else
#  include "internal/pycore_frame.h"
#  define STACK stacktop
#endif

#if PY_VERSION_HEX >= 0x030D0000
#  define CODE f_executable
#else
#  define CODE f_code
#endif
#if PY_VERSION_HEX >= 0x030C0000
#  define FUNC f_funcobj
#else
#  define FUNC f_func
#endif

int
main(void)
{
    printf("{\"previous\": %zu, \"f_locals\": %zu, \"func\": %zu, \"code\": %zu, "
           "\"frame_obj\": %zu, \"stack\": %zu, \"owner\": %zu, \"localsplus\": %zu}\n",
           offsetof(_PyInterpreterFrame, previous), offsetof(_PyInterpreterFrame, f_locals),
           offsetof(_PyInterpreterFrame, FUNC), offsetof(_PyInterpreterFrame, CODE),
           offsetof(_PyInterpreterFrame, frame_obj), offsetof(_PyInterpreterFrame, STACK),
           offsetof(_PyInterpreterFrame, owner), offsetof(_PyInterpreterFrame, localsplus));
    return 0;
}
