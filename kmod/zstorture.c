// SPDX-License-Identifier: GPL-2.0
/*
 * zstorture: drive the zsmalloc API directly and verify every byte.
 *
 * Worker kthreads allocate objects of random sizes (small classes up to
 * PAGE_SIZE, so huge-class objects are included), fill each with a pattern
 * derived from (seed, thread, object, generation), verify at random, free
 * and allocate again, and call zs_compact() from time to time, while the
 * caller forces page migration from outside.  Results go to the kernel log
 * as KTAP, every line prefixed with "zstorture: " (see README.md).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/zsmalloc.h>

/*
 * API history (mm tree): 6.15 replaced zs_map_object()/zs_unmap_object()
 * with zs_obj_read_begin()/zs_obj_read_end()/zs_obj_write(); 6.16 added the
 * node id argument of zs_malloc().  A later change gave zs_obj_read_begin()
 * and zs_obj_read_end() a length argument: Kbuild probes the header for it
 * (ZST_READ_HAS_LEN) because no release number was confirmed.
 */
#ifndef ZST_OBJ_RW_API	/* -D overrides let a header shim type-check the other paths */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
#define ZST_OBJ_RW_API 1
#else
#define ZST_OBJ_RW_API 0
#endif
#endif

#ifndef ZST_MALLOC_HAS_NID
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
#define ZST_MALLOC_HAS_NID 1
#else
#define ZST_MALLOC_HAS_NID 0
#endif
#endif

#define ZST_MAX_THREADS 64
#define ZST_MAX_POOLS 16
#define ZST_MAX_REPORTED_MISMATCHES 8

static unsigned int threads = 2;
module_param(threads, uint, 0444);
MODULE_PARM_DESC(threads, "worker kthreads (1-64)");

static unsigned int objects = 2048;
module_param(objects, uint, 0444);
MODULE_PARM_DESC(objects, "object slots per thread");

static unsigned int min_size = 1;
module_param(min_size, uint, 0444);
MODULE_PARM_DESC(min_size, "smallest object in bytes");

static unsigned int max_size = PAGE_SIZE;
module_param(max_size, uint, 0444);
MODULE_PARM_DESC(max_size, "largest object in bytes (at most PAGE_SIZE; huge class above zs_huge_class_size)");

static unsigned int duration_s = 30;
module_param(duration_s, uint, 0444);
MODULE_PARM_DESC(duration_s, "seconds of torture before the final verification");

static ulong seed = 1;
module_param(seed, ulong, 0444);
MODULE_PARM_DESC(seed, "pattern and operation seed");

static unsigned int pools = 1;
module_param(pools, uint, 0444);
MODULE_PARM_DESC(pools, "zsmalloc pools; thread i uses pool i % pools");

static unsigned int compact_every = 256;
module_param(compact_every, uint, 0444);
MODULE_PARM_DESC(compact_every, "operations between zs_compact() calls per thread (0: never)");

static bool corrupt_one;
module_param(corrupt_one, bool, 0444);
MODULE_PARM_DESC(corrupt_one, "test hook: flip one byte of one live object; verification must report it");

struct zst_obj {
	unsigned long handle;	/* 0: slot empty */
	u32 size;
	u32 gen;
};

struct zst_mismatch {
	bool found;
	size_t offset;
	u8 expected;
	u8 actual;
	size_t bad_bytes;
};

struct zst_counters {
	u64 ops;
	u64 allocs;
	u64 alloc_failures;
	u64 huge_allocs;
	u64 frees;
	u64 verifies;
	u64 bytes_verified;
	u64 mismatches;
	u64 compactions;
	u64 pages_compacted;
	u64 max_pool_pages;
	u64 final_verifies;
};

struct zst_thread {
	unsigned int id;
	unsigned int pool_id;
	struct zs_pool *pool;
	struct task_struct *task;
	struct zst_obj *objs;
	u8 *buf;		/* PAGE_SIZE bounce buffer for the read/write API */
	u64 rng;
	u64 corrupt_at_op;	/* 0: no corruption from this thread */
	struct zst_counters c;
	bool done;
};

static struct zs_pool *zst_pools[ZST_MAX_POOLS];
static struct zst_thread *zst_threads;
static struct task_struct *zst_controller;
static DECLARE_WAIT_QUEUE_HEAD(zst_done_wq);
static atomic_t zst_running = ATOMIC_INIT(0);
static bool zst_abort;
static size_t zst_huge_size;

static u64 zst_mix(u64 x)
{
	/* splitmix64 finaliser: distinct inputs give unrelated streams */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static u64 zst_next(u64 *state)
{
	u64 x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static bool zst_every(u64 count, u32 n)
{
	u32 rem;

	div_u64_rem(count, n, &rem);
	return rem == 0;
}

static u32 zst_rand_below(struct zst_thread *t, u32 n)
{
	u32 rem;

	if (!n)
		return 0;
	/* div_u64_rem, not %: a 64-bit modulo needs libgcc's __umoddi3 on 32-bit kernels */
	div_u64_rem(zst_next(&t->rng), n, &rem);
	return rem;
}

static u64 zst_pattern_seed(unsigned int tid, unsigned int idx, u32 gen)
{
	u64 s = zst_mix(seed ^ zst_mix(((u64)tid << 48) ^ ((u64)idx << 20) ^ gen));

	return s ? s : 1;
}

static void zst_fill(u8 *dst, size_t size, u64 pseed)
{
	u64 r = 0;
	size_t i;

	for (i = 0; i < size; i++) {
		if (!(i & 7))
			r = zst_next(&pseed);
		dst[i] = (u8)(r >> ((i & 7) * 8));
	}
}

static void zst_compare(const u8 *src, size_t size, u64 pseed, struct zst_mismatch *m)
{
	u64 r = 0;
	size_t i;
	u8 want;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < size; i++) {
		if (!(i & 7))
			r = zst_next(&pseed);
		want = (u8)(r >> ((i & 7) * 8));
		if (src[i] != want) {
			if (!m->found) {
				m->found = true;
				m->offset = i;
				m->expected = want;
				m->actual = src[i];
			}
			m->bad_bytes++;
		}
	}
}

static unsigned long zst_malloc(struct zs_pool *pool, size_t size)
{
	gfp_t gfp = GFP_KERNEL | __GFP_NOWARN | __GFP_NORETRY | __GFP_HIGHMEM | __GFP_MOVABLE;

#if ZST_MALLOC_HAS_NID
	return zs_malloc(pool, size, gfp, NUMA_NO_NODE);
#else
	return zs_malloc(pool, size, gfp);
#endif
}

static void zst_write_obj(struct zst_thread *t, struct zst_obj *o, unsigned int idx)
{
	u64 pseed = zst_pattern_seed(t->id, idx, o->gen);
#if ZST_OBJ_RW_API
	zst_fill(t->buf, o->size, pseed);
	zs_obj_write(t->pool, o->handle, t->buf, o->size);
#else
	u8 *dst = zs_map_object(t->pool, o->handle, ZS_MM_WO);

	zst_fill(dst, o->size, pseed);
	zs_unmap_object(t->pool, o->handle);
#endif
}

static void zst_read_compare(struct zst_thread *t, struct zst_obj *o, unsigned int idx,
			     struct zst_mismatch *m)
{
	u64 pseed = zst_pattern_seed(t->id, idx, o->gen);
	const u8 *src;

#if ZST_OBJ_RW_API
#ifdef ZST_READ_HAS_LEN
	src = zs_obj_read_begin(t->pool, o->handle, o->size, t->buf);
	zst_compare(src, o->size, pseed, m);
	zs_obj_read_end(t->pool, o->handle, o->size, (void *)src);
#else
	src = zs_obj_read_begin(t->pool, o->handle, t->buf);
	zst_compare(src, o->size, pseed, m);
	zs_obj_read_end(t->pool, o->handle, (void *)src);
#endif
#else
	/* mapped with preemption off: compare only, report after unmapping */
	src = zs_map_object(t->pool, o->handle, ZS_MM_RO);
	zst_compare(src, o->size, pseed, m);
	zs_unmap_object(t->pool, o->handle);
#endif
}

static void zst_flip_byte(struct zst_thread *t, struct zst_obj *o, size_t offset)
{
#if ZST_OBJ_RW_API
	const u8 *src;

#ifdef ZST_READ_HAS_LEN
	src = zs_obj_read_begin(t->pool, o->handle, o->size, t->buf);
	memmove(t->buf, src, o->size);
	zs_obj_read_end(t->pool, o->handle, o->size, (void *)src);
#else
	src = zs_obj_read_begin(t->pool, o->handle, t->buf);
	memmove(t->buf, src, o->size);
	zs_obj_read_end(t->pool, o->handle, (void *)src);
#endif
	t->buf[offset] ^= 0xff;
	zs_obj_write(t->pool, o->handle, t->buf, o->size);
#else
	u8 *dst = zs_map_object(t->pool, o->handle, ZS_MM_RW);

	dst[offset] ^= 0xff;
	zs_unmap_object(t->pool, o->handle);
#endif
}

/* Verify one object; a corrupted object is reported once and then freed. */
static bool zst_verify(struct zst_thread *t, unsigned int idx, const char *phase)
{
	struct zst_obj *o = &t->objs[idx];
	struct zst_mismatch m;

	zst_read_compare(t, o, idx, &m);
	t->c.verifies++;
	t->c.bytes_verified += o->size;
	if (!m.found)
		return true;
	t->c.mismatches++;
	if (t->c.mismatches <= ZST_MAX_REPORTED_MISMATCHES)
		pr_err("# MISMATCH thread=%u pool=%u phase=%s obj=%u handle=0x%lx size=%u gen=%u offset=%zu expected=0x%02x actual=0x%02x bad_bytes=%zu\n",
		       t->id, t->pool_id, phase, idx, o->handle, o->size, o->gen,
		       m.offset, m.expected, m.actual, m.bad_bytes);
	return false;
}

static void zst_free(struct zst_thread *t, unsigned int idx)
{
	struct zst_obj *o = &t->objs[idx];

	zs_free(t->pool, o->handle);
	o->handle = 0;
	t->c.frees++;
}

static void zst_alloc(struct zst_thread *t, unsigned int idx)
{
	struct zst_obj *o = &t->objs[idx];
	u32 size = min_size + zst_rand_below(t, max_size - min_size + 1);
	unsigned long handle = zst_malloc(t->pool, size);

	if (!handle || IS_ERR_VALUE(handle)) {
		t->c.alloc_failures++;
		return;
	}
	o->handle = handle;
	o->size = size;
	o->gen++;
	t->c.allocs++;
	if (size > zst_huge_size)
		t->c.huge_allocs++;
	zst_write_obj(t, o, idx);
}

static void zst_corrupt_one(struct zst_thread *t)
{
	unsigned int start = zst_rand_below(t, objects);
	unsigned int i, idx;
	size_t offset;

	for (i = 0; i < objects; i++) {
		idx = (start + i) % objects;
		if (t->objs[idx].handle)
			break;
	}
	if (i == objects)
		return;	/* nothing live yet: try again at the next operation */
	offset = t->objs[idx].size / 2;
	zst_flip_byte(t, &t->objs[idx], offset);
	t->corrupt_at_op = 0;
	pr_info("# corrupt_one: thread=%u obj=%u size=%u offset=%zu flipped (test hook)\n",
		t->id, idx, t->objs[idx].size, offset);
}

static void zst_one_op(struct zst_thread *t)
{
	unsigned int idx = zst_rand_below(t, objects);
	u32 dice = zst_rand_below(t, 100);
	unsigned long pages;

	t->c.ops++;
	if (!t->objs[idx].handle) {
		zst_alloc(t, idx);
	} else if (dice < 45) {
		if (!zst_verify(t, idx, "run"))
			zst_free(t, idx);
	} else {
		/* free after verifying, then usually reuse the slot at once */
		zst_verify(t, idx, "free");
		zst_free(t, idx);
		if (dice < 85)
			zst_alloc(t, idx);
	}
	if (compact_every && zst_every(t->c.ops, compact_every)) {
		t->c.pages_compacted += zs_compact(t->pool);
		t->c.compactions++;
	}
	if (t->corrupt_at_op && t->c.ops >= t->corrupt_at_op)
		zst_corrupt_one(t);
	pages = zs_get_total_pages(t->pool);
	if (pages > t->c.max_pool_pages)
		t->c.max_pool_pages = pages;
}

static int zst_worker(void *arg)
{
	struct zst_thread *t = arg;
	unsigned long deadline = jiffies + (unsigned long)duration_s * HZ;
	unsigned int i;

	while (!READ_ONCE(zst_abort) && time_before(jiffies, deadline)) {
		zst_one_op(t);
		cond_resched();
	}
	/* Final phase, also after rmmod: verify every live object, free all. */
	for (i = 0; i < objects; i++) {
		if (!t->objs[i].handle)
			continue;
		zst_verify(t, i, "final");
		t->c.final_verifies++;
		zst_free(t, i);
		cond_resched();
	}
	WRITE_ONCE(t->done, true);
	atomic_dec(&zst_running);
	wake_up(&zst_done_wq);
	/* Stay until kthread_stop() so the controller can always stop us safely. */
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

static const char *zst_api_name(void)
{
#if ZST_OBJ_RW_API
#ifdef ZST_READ_HAS_LEN
	return "zs_obj_read_begin_len";
#else
	return "zs_obj_read_begin";
#endif
#else
	return "zs_map_object";
#endif
}

static unsigned long zst_wait_pool_empty(struct zs_pool *pool)
{
	unsigned long pages = zs_get_total_pages(pool);
	int tries;

	/* an empty zspage under migration is freed later by a work item */
	for (tries = 0; pages && tries < 50; tries++) {
		msleep(100);
		pages = zs_get_total_pages(pool);
	}
	return pages;
}

static void zst_report(unsigned long started)
{
	struct zst_counters total = {};
	unsigned int i, n = 0;
	bool pass = true;
	unsigned long leaked = 0;
	struct zst_thread *t;

	for (i = 0; i < threads; i++) {
		t = &zst_threads[i];
		if (!t->task)
			continue;
		total.ops += t->c.ops;
		total.allocs += t->c.allocs;
		total.alloc_failures += t->c.alloc_failures;
		total.huge_allocs += t->c.huge_allocs;
		total.frees += t->c.frees;
		total.verifies += t->c.verifies;
		total.bytes_verified += t->c.bytes_verified;
		total.mismatches += t->c.mismatches;
		total.compactions += t->c.compactions;
		total.pages_compacted += t->c.pages_compacted;
		total.max_pool_pages += t->c.max_pool_pages;
		pr_info("# thread%u: pool=%u ops=%llu allocs=%llu alloc_failures=%llu huge_allocs=%llu frees=%llu verifies=%llu final_verifies=%llu bytes_verified=%llu mismatches=%llu compactions=%llu pages_compacted=%llu max_pool_pages=%llu\n",
			i, t->pool_id, t->c.ops, t->c.allocs, t->c.alloc_failures,
			t->c.huge_allocs, t->c.frees, t->c.verifies, t->c.final_verifies,
			t->c.bytes_verified, t->c.mismatches, t->c.compactions,
			t->c.pages_compacted, t->c.max_pool_pages);
		n++;
		if (t->c.mismatches || t->c.allocs != t->c.frees) {
			pass = false;
			pr_info("not ok %u thread%u\n", n, i);
		} else {
			pr_info("ok %u thread%u\n", n, i);
		}
	}
	for (i = 0; i < pools; i++)
		leaked += zst_wait_pool_empty(zst_pools[i]);
	pr_info("# pools: pools=%u pages_left_after_free=%lu\n", pools, leaked);
	n++;
	if (leaked) {
		pass = false;
		pr_info("not ok %u pools\n", n);
	} else {
		pr_info("ok %u pools\n", n);
	}
	pr_info("# zstorture done: result=%s threads=%u ops=%llu allocs=%llu alloc_failures=%llu huge_allocs=%llu frees=%llu verifies=%llu bytes_verified=%llu mismatches=%llu compactions=%llu pages_compacted=%llu elapsed_ms=%u\n",
		READ_ONCE(zst_abort) ? "aborted" : (pass ? "pass" : "fail"), threads,
		total.ops, total.allocs, total.alloc_failures, total.huge_allocs, total.frees,
		total.verifies, total.bytes_verified, total.mismatches, total.compactions,
		total.pages_compacted, jiffies_to_msecs(jiffies - started));
}

static int zst_control(void *unused)
{
	unsigned long started = jiffies;
	unsigned int i;

	pr_info("KTAP version 1\n");
	pr_info("# zstorture: threads=%u objects=%u min_size=%u max_size=%u duration_s=%u seed=%lu pools=%u compact_every=%u corrupt_one=%d\n",
		threads, objects, min_size, max_size, duration_s, seed, pools,
		compact_every, corrupt_one);
	pr_info("# zstorture: api=%s page_size=%lu huge_class_size=%zu kernel=%u.%u\n",
		zst_api_name(), PAGE_SIZE, zst_huge_size,
		(unsigned int)LINUX_VERSION_CODE >> 16,
		((unsigned int)LINUX_VERSION_CODE >> 8) & 0xff);
	pr_info("1..%u\n", threads + 1);

	atomic_set(&zst_running, threads);
	for (i = 0; i < threads; i++)
		wake_up_process(zst_threads[i].task);

	wait_event_interruptible(zst_done_wq,
				 !atomic_read(&zst_running) || kthread_should_stop());
	if (atomic_read(&zst_running)) {
		/* rmmod during the run: the workers finish their final phase */
		WRITE_ONCE(zst_abort, true);
		wait_event(zst_done_wq, !atomic_read(&zst_running));
	}
	for (i = 0; i < threads; i++) {
		kthread_stop(zst_threads[i].task);
	}
	zst_report(started);

	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

static void zst_free_all(void)
{
	unsigned int i;

	if (zst_threads) {
		for (i = 0; i < threads; i++) {
			kvfree(zst_threads[i].objs);
			kfree(zst_threads[i].buf);
		}
		kfree(zst_threads);
		zst_threads = NULL;
	}
	for (i = 0; i < ZST_MAX_POOLS; i++) {
		if (zst_pools[i])
			zs_destroy_pool(zst_pools[i]);
		zst_pools[i] = NULL;
	}
}

static int zst_check_params(void)
{
	if (!threads || threads > ZST_MAX_THREADS || !pools || pools > ZST_MAX_POOLS ||
	    !objects || !min_size || min_size > max_size || max_size > PAGE_SIZE) {
		pr_err("# bad parameters: need 1 <= threads <= %d, 1 <= pools <= %d, objects >= 1, 1 <= min_size <= max_size <= %lu\n",
		       ZST_MAX_THREADS, ZST_MAX_POOLS, PAGE_SIZE);
		return -EINVAL;
	}
	if (pools > threads)
		pools = threads;
	return 0;
}

static int __init zst_init(void)
{
	char name[32];
	unsigned int i;
	int err;

	err = zst_check_params();
	if (err)
		return err;
	zst_abort = false;
	for (i = 0; i < pools; i++) {
		snprintf(name, sizeof(name), "zstorture%u", i);
		zst_pools[i] = zs_create_pool(name);
		if (!zst_pools[i]) {
			err = -ENOMEM;
			goto fail;
		}
	}
	zst_huge_size = zs_huge_class_size(zst_pools[0]);
	zst_threads = kcalloc(threads, sizeof(*zst_threads), GFP_KERNEL);
	if (!zst_threads) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < threads; i++) {
		struct zst_thread *t = &zst_threads[i];

		t->id = i;
		t->pool_id = i % pools;
		t->pool = zst_pools[t->pool_id];
		t->rng = zst_mix(seed + 0x1000 + i) | 1;
		t->objs = kvcalloc(objects, sizeof(*t->objs), GFP_KERNEL);
		t->buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
		if (!t->objs || !t->buf) {
			err = -ENOMEM;
			goto fail;
		}
	}
	if (corrupt_one)	/* a quarter into the run of thread 0, when objects are live */
		zst_threads[0].corrupt_at_op = max_t(u64, objects / 2, 16);

	/* create all workers stopped, so a failure here leaves nothing running */
	for (i = 0; i < threads; i++) {
		struct task_struct *task = kthread_create(zst_worker, &zst_threads[i],
							  "zstorture/%u", i);

		if (IS_ERR(task)) {
			err = PTR_ERR(task);
			goto fail_threads;
		}
		zst_threads[i].task = task;
	}
	zst_controller = kthread_run(zst_control, NULL, "zstorture");
	if (IS_ERR(zst_controller)) {
		err = PTR_ERR(zst_controller);
		zst_controller = NULL;
		goto fail_threads;
	}
	return 0;

fail_threads:
	for (i = 0; i < threads; i++)
		if (zst_threads[i].task)
			kthread_stop(zst_threads[i].task);	/* never woken: threadfn not run */
fail:
	pr_err("# zstorture: setup failed (%d)\n", err);
	zst_free_all();
	return err;
}

static void __exit zst_exit(void)
{
	if (zst_controller) {
		WRITE_ONCE(zst_abort, true);
		kthread_stop(zst_controller);
	}
	zst_free_all();
}

module_init(zst_init);
module_exit(zst_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("zsmalloc torture test: random sizes, verify every byte, compaction, migration");
