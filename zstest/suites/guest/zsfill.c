/* zsfill: write or verify the deterministic zstest data mix on a file or block device.
 *
 *   zsfill write|verify TARGET --blocks N [--start B] [--stride S --phase P [--group G]]
 *          [--seed X] [--mix C:I:S] [--direct|--buffered] [--until FILE]
 *
 * Blocks are 4 KiB; block b lives at byte offset b*4096 and its content is a pure
 * function of (seed, b) (see pattern.h), so verify regenerates and compares byte
 * for byte. --stride/--phase select every S-th block (to punch holes in a pool); with
 * --group G they select every S-th run of G blocks (G = the kernel's page size / 4 KiB: whole
 * zram pages of a 64K-page kernel).
 * --until FILE repeats the pass until FILE exists (I/O kept running during a
 * migration), at least once. Prints one "zsfill ..." summary line of key=value
 * pairs and up to 16 "bad ..." lines; exit 0 when all blocks matched, 1 when a
 * block differed, 2 on usage or I/O errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define CHUNK_BLOCKS 64
#define MAX_BAD_LINES 16

static void usage(void)
{
	fprintf(stderr, "usage: zsfill write|verify TARGET --blocks N [--start B] [--stride S --phase P [--group G]]"
			" [--seed X] [--mix C:I:S] [--direct|--buffered] [--until FILE]\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct opts {
	int write;
	const char *target, *until;
	uint64_t blocks, start, stride, phase, group, seed;
	struct mix mix;
	int direct;  /* -1: decide from the target's type */
};

struct tally {
	uint64_t blocks, kinds[3], bad, bytes, passes;
};

static void report_bad(struct tally *t, uint64_t block, enum kind k, const uint8_t *got, const uint8_t *want)
{
	unsigned off = 0;
	const uint64_t *g = (const uint64_t *)got;

	while (off < BLOCK_SIZE && got[off] == want[off])
		off++;
	if (t->bad < MAX_BAD_LINES) {
		const char *why = "corrupted";
		if (g[0] == 0x5453455453575aULL && g[2] != block)
			why = "misplaced";
		else if (g[0] == 0x5453455453575aULL && g[1] != ((const uint64_t *)want)[1])
			why = "stale";
		printf("bad block=%llu kind=%d first_diff=%u reason=%s\n",
		       (unsigned long long)block, (int)k, off, why);
	}
	t->bad++;
}

static int do_chunk(int fd, const struct opts *o, uint64_t first, unsigned n, uint8_t *buf,
		    uint8_t *want, struct tally *t)
{
	size_t len = (size_t)n * BLOCK_SIZE;
	off_t off = (off_t)first * BLOCK_SIZE;
	unsigned j;
	ssize_t r;

	if (o->write) {
		for (j = 0; j < n; j++) {
			enum kind k = block_kind(o->seed, first + j, &o->mix);
			fill_block((uint64_t *)(buf + (size_t)j * BLOCK_SIZE), o->seed, first + j, k);
			t->kinds[k]++;
		}
		r = pwrite(fd, buf, len, off);
	} else {
		r = pread(fd, buf, len, off);
	}
	if (r != (ssize_t)len) {
		fprintf(stderr, "zsfill: %s at block %llu: %s\n", o->write ? "write" : "read",
			(unsigned long long)first, r < 0 ? strerror(errno) : "short transfer");
		return -1;
	}
	if (!o->write) {
		for (j = 0; j < n; j++) {
			enum kind k = block_kind(o->seed, first + j, &o->mix);
			fill_block((uint64_t *)want, o->seed, first + j, k);
			t->kinds[k]++;
			if (memcmp(buf + (size_t)j * BLOCK_SIZE, want, BLOCK_SIZE))
				report_bad(t, first + j, k, buf + (size_t)j * BLOCK_SIZE, want);
		}
	}
	t->blocks += n;
	t->bytes += len;
	return 0;
}

static int one_pass(int fd, const struct opts *o, uint8_t *buf, uint8_t *want, struct tally *t)
{
	uint64_t i = 0;

	while (i < o->blocks) {
		uint64_t b = o->start + i;
		unsigned n = 1;
		uint64_t left = o->group - i % o->group;   /* blocks to the end of this group */
		if ((i / o->group) % o->stride != o->phase) {
			i += left;
			continue;
		}
		if (o->stride == 1)
			left = o->blocks - i;
		if (left > o->blocks - i)
			left = o->blocks - i;
		n = left < CHUNK_BLOCKS ? (unsigned)left : CHUNK_BLOCKS;
		if (do_chunk(fd, o, b, n, buf, want, t))
			return -1;
		i += n;
	}
	if (o->write && fdatasync(fd) && errno != EINVAL) {
		fprintf(stderr, "zsfill: fdatasync: %s\n", strerror(errno));
		return -1;
	}
	t->passes++;
	return 0;
}

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = { .stride = 1, .group = 1, .seed = 1, .mix = { 5, 3, 2 }, .direct = -1 };
	struct tally t = { 0 };
	struct stat st;
	uint8_t *buf, *want;
	double t0;
	int fd, i, flags, rc = 0;

	if (argc < 3)
		usage();
	if (!strcmp(argv[1], "write"))
		o.write = 1;
	else if (strcmp(argv[1], "verify"))
		usage();
	o.target = argv[2];
	for (i = 3; i < argc; i++) {
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
		if (!strcmp(a, "--direct")) { o.direct = 1; continue; }
		if (!strcmp(a, "--buffered")) { o.direct = 0; continue; }
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--blocks")) o.blocks = num(v);
		else if (!strcmp(a, "--start")) o.start = num(v);
		else if (!strcmp(a, "--stride")) o.stride = num(v);
		else if (!strcmp(a, "--phase")) o.phase = num(v);
		else if (!strcmp(a, "--group")) o.group = num(v);
		else if (!strcmp(a, "--seed")) o.seed = num(v);
		else if (!strcmp(a, "--until")) o.until = v;
		else if (!strcmp(a, "--mix")) {
			if (sscanf(v, "%u:%u:%u", &o.mix.c, &o.mix.i, &o.mix.s) != 3 ||
			    o.mix.c + o.mix.i + o.mix.s == 0)
				usage();
		} else
			usage();
	}
	if (!o.blocks || !o.stride || !o.group || o.phase >= o.stride)
		usage();
	if (o.direct < 0)
		o.direct = stat(o.target, &st) == 0 && S_ISBLK(st.st_mode);
	flags = (o.write ? O_RDWR | O_CREAT : O_RDONLY) | (o.direct ? O_DIRECT : 0);
	fd = open(o.target, flags, 0644);
	if (fd < 0) {
		fprintf(stderr, "zsfill: open %s: %s\n", o.target, strerror(errno));
		return 2;
	}
	if (posix_memalign((void **)&buf, BLOCK_SIZE, (size_t)CHUNK_BLOCKS * BLOCK_SIZE) ||
	    posix_memalign((void **)&want, BLOCK_SIZE, BLOCK_SIZE))
		return 2;
	t0 = now();
	do {
		if (one_pass(fd, &o, buf, want, &t)) {
			rc = 2;
			break;
		}
	} while (o.until && access(o.until, F_OK) != 0);
	if (rc == 0 && t.bad)
		rc = 1;
	printf("zsfill op=%s target=%s seed=%llu passes=%llu blocks=%llu compressible=%llu "
	       "incompressible=%llu same=%llu bytes=%llu bad=%llu seconds=%.3f status=%s\n",
	       o.write ? "write" : "verify", o.target, (unsigned long long)o.seed,
	       (unsigned long long)t.passes, (unsigned long long)t.blocks,
	       (unsigned long long)t.kinds[0], (unsigned long long)t.kinds[1],
	       (unsigned long long)t.kinds[2], (unsigned long long)t.bytes,
	       (unsigned long long)t.bad, now() - t0, rc == 0 ? "ok" : rc == 1 ? "mismatch" : "error");
	close(fd);
	return rc;
}
