/* memtouch: fill anonymous memory with the zstest data mix, then verify every page.
 *
 *   memtouch --mb M [--seed X] [--mix C:I:S] [--passes P]
 *
 * Maps M MiB, writes every 4 KiB page (page i gets block i of pattern.h), then reads
 * all of them back P times (default 2), comparing byte for byte. Run under a memory
 * limit smaller than M, the kernel must swap pages out and back in between. Prints
 * one "memtouch ..." summary line of key=value pairs and up to 16 "bad ..." lines;
 * exit 0 when every page matched, 1 when one differed, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "pattern.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: memtouch --mb M [--seed X] [--mix C:I:S] [--passes P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t mb = 0, seed = 7, pages, i, bad = 0, kinds[3] = { 0 };
	unsigned passes = 2, p;
	struct mix m = { 5, 2, 3 };
	uint64_t want[WORDS];
	double t0, t_fill;
	uint8_t *mem;
	int a;

	for (a = 1; a + 1 < argc; a += 2) {
		if (!strcmp(argv[a], "--mb")) mb = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--seed")) seed = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--passes")) passes = (unsigned)strtoul(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--mix")) {
			if (sscanf(argv[a + 1], "%u:%u:%u", &m.c, &m.i, &m.s) != 3 || m.c + m.i + m.s == 0)
				usage();
		} else
			usage();
	}
	if (a != argc || !mb || !passes)
		usage();
	pages = mb * 1024 * 1024 / BLOCK_SIZE;
	mem = mmap(NULL, pages * BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("memtouch: mmap");
		return 2;
	}
	t0 = now();
	for (i = 0; i < pages; i++) {
		enum kind k = block_kind(seed, i, &m);
		fill_block((uint64_t *)(mem + i * BLOCK_SIZE), seed, i, k);
		kinds[k]++;
	}
	t_fill = now() - t0;
	for (p = 0; p < passes; p++) {
		for (i = 0; i < pages; i++) {
			const uint8_t *got = mem + i * BLOCK_SIZE;
			fill_block(want, seed, i, block_kind(seed, i, &m));
			if (memcmp(got, want, BLOCK_SIZE)) {
				if (bad < 16)
					printf("bad page=%llu pass=%u\n", (unsigned long long)i, p);
				bad++;
			}
		}
	}
	printf("memtouch mb=%llu pages=%llu passes=%u compressible=%llu incompressible=%llu same=%llu "
	       "bytes=%llu bad=%llu fill_seconds=%.3f seconds=%.3f status=%s\n",
	       (unsigned long long)mb, (unsigned long long)pages, passes,
	       (unsigned long long)kinds[0], (unsigned long long)kinds[1], (unsigned long long)kinds[2],
	       (unsigned long long)(pages * BLOCK_SIZE * passes), (unsigned long long)bad,
	       t_fill, now() - t0, bad ? "mismatch" : "ok");
	return bad ? 1 : 0;
}
