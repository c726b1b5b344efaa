/*
 * crc32c.h: CRC32C (Castagnoli), the checksum of storage records and of wire frames.
 * Pure C; safe from any thread (the lookup table is filled once with identical values).
 */
#ifndef HR_CRC32C_H
#define HR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Same interface as zlib's crc32(): pass 0 to start, the previous result to continue. */
uint32_t hr_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
