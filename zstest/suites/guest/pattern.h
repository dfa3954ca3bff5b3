/* The deterministic data mix shared by zsfill and memtouch.
 *
 * Block i of a run with seed s is a pure function of (s, i): the writer and the
 * verifier regenerate it and compare byte for byte. Three kinds, chosen per block:
 *  - compressible: 8-byte words, a varying share of them random, the rest from a
 *    small dictionary, so compressed sizes spread over many zsmalloc size classes;
 *  - incompressible: all random (zram stores it in zsmalloc's huge class);
 *  - same-filled: one 8-byte word repeated (zram keeps it without zsmalloc).
 * Every non-same block starts with a header naming seed and block, so a block
 * that lands at the wrong place is told apart from a corrupted one.
 */
#ifndef ZSTEST_PATTERN_H
#define ZSTEST_PATTERN_H

#include <stdint.h>
#include <string.h>

#define BLOCK_SIZE 4096
#define WORDS (BLOCK_SIZE / 8)

enum kind { KIND_COMPRESSIBLE = 0, KIND_INCOMPRESSIBLE = 1, KIND_SAME = 2 };

struct mix { unsigned c, i, s; };  /* relative weights */

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline enum kind block_kind(uint64_t seed, uint64_t block, const struct mix *m)
{
	unsigned total = m->c + m->i + m->s;
	unsigned r = (unsigned)(splitmix64(seed * 0x100000001b3ULL ^ block) % total);
	if (r < m->c)
		return KIND_COMPRESSIBLE;
	if (r < m->c + m->i)
		return KIND_INCOMPRESSIBLE;
	return KIND_SAME;
}

static inline void fill_block(uint64_t *w, uint64_t seed, uint64_t block, enum kind k)
{
	uint64_t state = splitmix64(seed ^ (block * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a);
	unsigned j;

	if (k == KIND_SAME) {
		/* a quarter of them zero, the others one repeated non-zero word whose two 32-bit
		 * halves are equal: same-filled for zram on 32-bit kernels too (it compares
		 * unsigned longs) */
		uint64_t v = (state & 3) ? ((state | 1) & 0xffffffffULL) * 0x100000001ULL : 0;
		for (j = 0; j < WORDS; j++)
			w[j] = v;
		return;
	}
	if (k == KIND_INCOMPRESSIBLE) {
		for (j = 0; j < WORDS; j++) {
			state = splitmix64(state);
			w[j] = state;
		}
	} else {
		static const char dict[8][9] = { "zsmalloc", "zram-obj", "migrate.", "compact!",
						 "movable_", "hotplug.", "pagepage", "0123abcd" };
		unsigned pct = (unsigned)(state % 45);  /* 0..44 % random words */
		for (j = 0; j < WORDS; j++) {
			state = splitmix64(state);
			if ((state % 100) < pct)
				w[j] = splitmix64(state ^ j);
			else
				memcpy(&w[j], dict[(state >> 8) & 7], 8);
		}
	}
	w[0] = 0x5453455453575aULL;  /* "ZWSTEST" */
	w[1] = seed;
	w[2] = block;
	w[3] = (uint64_t)k;
}

#endif
