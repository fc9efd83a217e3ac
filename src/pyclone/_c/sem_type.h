/* sem_type.h - pyclone._clone.SemaphoreCore, the C base of
 * pyclone.Semaphore: acquire() and release() for the common calls, the
 * rest handed to the Python class (sem_type.c). */
#ifndef PYCLONE_SEM_TYPE_H
#define PYCLONE_SEM_TYPE_H

#include "compat.h"

/* Adds the type to the module: 0, or -1 with an exception set. */
int sem_type_add(PyObject *module);

#endif
