/*
 * memtrim (Linux/glibc): give freed heap memory back to the system once
 * the daemon goes idle, so its RSS returns to the baseline after a burst.
 */
#include <malloc.h>

#include "engine-memtrim.h"

void
engine_memtrim(void)
{
	(void)malloc_trim(0);
}
