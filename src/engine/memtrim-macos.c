/*
 * memtrim (macOS): the system allocator returns memory by itself.
 */
#include "engine-memtrim.h"

void
engine_memtrim(void)
{
}
