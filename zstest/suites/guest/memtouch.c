/* memtouch: fill anonymous memory with the zstest data mix, then verify every page.
 *
 *   memtouch --mb M [--seed X] [--mix C:I:S] [--passes P]
 *            [--reclaim MEMORY_RECLAIM --cycles N [--stat FILE]]
 *
 * Maps M MiB, writes every 4 KiB page (page i gets block i of pattern.h), then reads
 * all of them back P times (default 2), comparing byte for byte. Run under a memory
 * limit smaller than M, the kernel must swap pages out and back in between. Prints
 * one "memtouch ..." summary line of key=value pairs and up to 16 "bad ..." lines;
 * exit 0 when every page matched, 1 when one differed, 2 on usage errors.
 *
 * With --reclaim (a cgroup v2 memory.reclaim file; memtouch must run in that cgroup) the
 * passes are N swap cycles instead: write the mapping's size to the file (the kernel swaps
 * the pages out, timed), read one word of every page (they swap back in, timed), then verify
 * every page. One "cycle ..." line per cycle; --stat FILE prints FILE's first line after each
 * swap-out (e.g. a zram device's mm_stat, while the pages are in it). A reclaim the kernel
 * could not complete (EAGAIN) is reported as reclaim=short, not an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: memtouch --mb M [--seed X] [--mix C:I:S] [--passes P]"
		" [--reclaim MEMORY_RECLAIM --cycles N [--stat FILE]]\n");
	exit(2);
}

static uint64_t verify_all(const uint8_t *mem, uint64_t pages, uint64_t seed, const struct mix *m,
			   unsigned pass, uint64_t *want, uint64_t bad)
{
	uint64_t i;

	for (i = 0; i < pages; i++) {
		fill_block(want, seed, i, block_kind(seed, i, m));
		if (memcmp(mem + i * BLOCK_SIZE, want, BLOCK_SIZE)) {
			if (bad < 16)
				printf("bad page=%llu pass=%u\n", (unsigned long long)i, pass);
			bad++;
		}
	}
	return bad;
}

/* Ask the kernel to reclaim len bytes of this cgroup: 0 done, 1 short (EAGAIN), -1 error. */
static int reclaim(const char *path, uint64_t len)
{
	char text[32];
	int fd = open(path, O_WRONLY), n, rc = 0;

	if (fd < 0) {
		fprintf(stderr, "memtouch: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = snprintf(text, sizeof(text), "%llu", (unsigned long long)len);
	if (write(fd, text, n) != n) {
		rc = errno == EAGAIN ? 1 : -1;
		if (rc < 0)
			fprintf(stderr, "memtouch: write %s: %s\n", path, strerror(errno));
	}
	close(fd);
	return rc;
}

static void show_first_line(const char *path, unsigned cycle)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f || !fgets(line, sizeof(line), f))
		strcpy(line, "unreadable\n");
	if (f)
		fclose(f);
	printf("stat cycle=%u %s%s", cycle, line, strchr(line, '\n') ? "" : "\n");
}

/* N swap cycles over the filled mapping; returns the pages that differed. */
static uint64_t swap_cycles(uint8_t *mem, uint64_t pages, uint64_t seed, const struct mix *m,
			    unsigned cycles, const char *reclaim_path, const char *stat_path,
			    uint64_t *want, double *out_total, double *in_total, int *failed)
{
	volatile uint64_t sink = 0;
	uint64_t bad = 0, i;
	unsigned c;
	double t0, t_out, t_in;
	int rc;

	for (c = 0; c < cycles; c++) {
		t0 = now();
		rc = reclaim(reclaim_path, pages * BLOCK_SIZE);
		t_out = now() - t0;
		if (rc < 0) {
			*failed = 1;
			return bad;
		}
		if (stat_path)
			show_first_line(stat_path, c);
		t0 = now();
		for (i = 0; i < pages; i++)
			sink += *(volatile uint64_t *)(mem + i * BLOCK_SIZE + 64);
		t_in = now() - t0;
		bad = verify_all(mem, pages, seed, m, c, want, bad);
		printf("cycle n=%u swapout_seconds=%.6f swapin_seconds=%.6f reclaim=%s\n",
		       c, t_out, t_in, rc ? "short" : "ok");
		fflush(stdout);
		*out_total += t_out;
		*in_total += t_in;
	}
	(void)sink;
	return bad;
}

int main(int argc, char **argv)
{
	uint64_t mb = 0, seed = 7, pages, i, bad = 0, kinds[3] = { 0 };
	unsigned passes = 2, p, cycles = 0;
	const char *reclaim_path = NULL, *stat_path = NULL;
	struct mix m = { 5, 2, 3 };
	uint64_t want[WORDS];
	double t0, t_fill, t_out = 0, t_in = 0;
	int failed = 0;
	uint8_t *mem;
	int a;

	for (a = 1; a + 1 < argc; a += 2) {
		if (!strcmp(argv[a], "--mb")) mb = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--seed")) seed = strtoull(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--passes")) passes = (unsigned)strtoul(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--cycles")) cycles = (unsigned)strtoul(argv[a + 1], NULL, 0);
		else if (!strcmp(argv[a], "--reclaim")) reclaim_path = argv[a + 1];
		else if (!strcmp(argv[a], "--stat")) stat_path = argv[a + 1];
		else if (!strcmp(argv[a], "--mix")) {
			if (sscanf(argv[a + 1], "%u:%u:%u", &m.c, &m.i, &m.s) != 3 || m.c + m.i + m.s == 0)
				usage();
		} else
			usage();
	}
	if (a != argc || !mb || !passes || !reclaim_path != !cycles || (stat_path && !reclaim_path))
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
	if (reclaim_path) {
		bad = swap_cycles(mem, pages, seed, &m, cycles, reclaim_path, stat_path, want,
				  &t_out, &t_in, &failed);
		passes = cycles;
	} else {
		for (p = 0; p < passes; p++)
			bad = verify_all(mem, pages, seed, &m, p, want, bad);
	}
	printf("memtouch mb=%llu pages=%llu passes=%u compressible=%llu incompressible=%llu same=%llu "
	       "bytes=%llu bad=%llu fill_seconds=%.3f seconds=%.3f",
	       (unsigned long long)mb, (unsigned long long)pages, passes,
	       (unsigned long long)kinds[0], (unsigned long long)kinds[1], (unsigned long long)kinds[2],
	       (unsigned long long)(pages * BLOCK_SIZE * passes), (unsigned long long)bad,
	       t_fill, now() - t0);
	if (reclaim_path)
		printf(" cycles=%u swapout_seconds=%.6f swapin_seconds=%.6f", cycles, t_out, t_in);
	printf(" status=%s\n", failed ? "error" : bad ? "mismatch" : "ok");
	return failed ? 2 : bad ? 1 : 0;
}
