/*
 * crc32c.c: CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
 * storage record, of the meta file and of every frame on the wire. CRC32C rather than the zlib CRC32 because x86 (SSE4.2) and
 * ARMv8 compute it in one instruction per 8 bytes; the table path is the portable fallback.
 * Same interface as zlib's crc32(): pass 0 to start, the previous result to continue.
 */
#include <string.h>

#include "crc32c.h"

static uint32_t table[8][256];
static int table_ready;

static void init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
        }
    }
    table_ready = 1;
}

/* Slicing-by-8: eight table lookups per 8 bytes. */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t len)
{
    if (!table_ready) {
        /* Racing initializers write identical values: harmless. */
        init_table();
    }
    while (len >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    }
    return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p,
                                                          size_t len)
{
    uint64_t c64 = c;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        len -= 8;
    }
    c = (uint32_t)c64;
    while (len--) {
        c = __builtin_ia32_crc32qi(c, *p++);
    }
    return c;
}

uint32_t hr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    crc = ~crc;
    crc = hw ? crc_hw(crc, buf, len) : crc_sw(crc, buf, len);
    return ~crc;
}
#else
uint32_t hr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_sw(~crc, buf, len);
}
#endif
