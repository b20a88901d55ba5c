/*
 * engine-memtrim: a platform hook the proxy calls when it goes idle
 * (memtrim-linux.c, memtrim-macos.c).
 */
#ifndef HALTON_ENGINE_MEMTRIM_H
#define HALTON_ENGINE_MEMTRIM_H

void engine_memtrim(void);

#endif
