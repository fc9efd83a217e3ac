/* Prints the offsets of _PyInterpreterFrame's fields as CPython's own
 * internal header defines them (tests only: checks src/pyclone/frames.c). */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_frame.h"

#if PY_VERSION_HEX >= 0x030D0000
#  define CODE f_executable
#  define FUNC f_funcobj
#elif PY_VERSION_HEX >= 0x030C0000
#  define CODE f_code
#  define FUNC f_funcobj
#else
#  define CODE f_code
#  define FUNC f_func
#endif

int
main(void)
{
    printf("{\"previous\": %zu, \"f_locals\": %zu, \"f_func\": %zu, \"f_code\": %zu, "
           "\"frame_obj\": %zu, \"stacktop\": %zu, \"owner\": %zu, \"localsplus\": %zu}\n",
           offsetof(_PyInterpreterFrame, previous), offsetof(_PyInterpreterFrame, f_locals),
           offsetof(_PyInterpreterFrame, FUNC), offsetof(_PyInterpreterFrame, CODE),
           offsetof(_PyInterpreterFrame, frame_obj), offsetof(_PyInterpreterFrame, stacktop),
           offsetof(_PyInterpreterFrame, owner), offsetof(_PyInterpreterFrame, localsplus));
    return 0;
}
