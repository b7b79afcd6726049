// glibc's heap statistics (mallinfo2), which Swift's Glibc module leaves out:
// the benchmark counts the bytes a structure holds while it is alive.
#ifndef TASK_SCHEDULER_CMALLOC_SHIM_H
#define TASK_SCHEDULER_CMALLOC_SHIM_H

#include <malloc.h>

#endif
