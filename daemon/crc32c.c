/*
 * crc32c.c -- CRC-32C, reflected polynomial 0x82f63b78.
 *
 * The portable version is "slicing by 8": eight 256-entry tables, built
 * once, process eight bytes per step. The hardware version feeds 8 bytes at
 * a time to the SSE4.2 crc32 instruction. The choice is made once, on the
 * first call, from cpuid.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82f63b78u

static uint32_t crc_table[8][256];
static int	crc_table_ready;

/* Build the tables; idempotent, and cheap enough to race harmlessly. */
static void
crc32c_init_tables(void)
{
	uint32_t c;
	int	 i, j, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (j = 0; j < 8; j++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (i = 0; i < 256; i++) {
		c = crc_table[0][i];
		for (k = 1; k < 8; k++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[k][i] = c;
		}
	}
	__atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t
crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t	     w;

	if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE))
		crc32c_init_tables();
	crc = ~crc;
	while (len >= 8) {
		memcpy(&w, p, 8);
		w ^= crc; /* little-endian: the low bytes come first */
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^
		      crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^
		      crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^
		      crc_table[0][(w >> 56) & 0xff];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) uint32_t
crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t	     c = ~crc, w;

	while (len >= 8) {
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

int
crc32c_hw_available(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t
crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sw(crc, buf, len);
}

int
crc32c_hw_available(void)
{
	return 0;
}
#endif

uint32_t
crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
	static int use_hw = -1;

	if (use_hw == -1)
		use_hw = crc32c_hw_available();
	return use_hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
