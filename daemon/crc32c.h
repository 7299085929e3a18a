/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of journal records.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table-driven
 * portable version otherwise; both give the standard check value
 * crc32c("123456789") == 0xe3069283.
 */
#ifndef STASHD_CRC32C_H
#define STASHD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over buf[0..len). */
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);
/* The portable and the hardware versions, for tests. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
/* 1 when crc32c_extend uses the CPU instruction. */
int crc32c_hw_available(void);

/*
 * Stored CRCs are masked (as LevelDB does) so that a CRC computed over data
 * that itself holds CRCs does not degenerate.
 */
static inline uint32_t
crc32c_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static inline uint32_t
crc32c_unmask(uint32_t masked)
{
	uint32_t rot = masked - 0xa282ead8u;

	return (rot >> 17) | (rot << 15);
}

#endif /* STASHD_CRC32C_H */
