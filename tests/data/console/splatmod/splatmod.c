// SPDX-License-Identifier: GPL-2.0
/*
 * splatmod: makes the kernel print one real splat on load, for zstest's own
 * tests (recorded console logs, live splat detection).  Never for a verdict.
 *   insmod splatmod.ko what=warn|oops|bug|vm_bug_on|alloc_fail
 * Loading succeeds when the splat did not kill the task (busybox insmod would
 * call the init a second time after a failure); rmmod splatmod unloads it.
 */
#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mmdebug.h>
#include <linux/module.h>
#include <linux/slab.h>

static char *what = "warn";
module_param(what, charp, 0444);

static int *volatile splat_null;

static void alloc_fail(void)
{
	/* order-10 blocks without __GFP_NOWARN until the allocator gives up and warns */
	LIST_HEAD(held);
	struct page *page, *next;
	int n;

	for (n = 0; n < 4096; n++) {
		page = alloc_pages(GFP_KERNEL | __GFP_NORETRY, 10);
		if (!page)
			break;
		list_add(&page->lru, &held);
	}
	list_for_each_entry_safe(page, next, &held, lru)
		__free_pages(page, 10);
}

static int __init splatmod_init(void)
{
	pr_info("splatmod: making a %s splat\n", what);
	if (!strcmp(what, "warn")) {
		WARN(1, "splatmod: a WARN for zstest");
	} else if (!strcmp(what, "oops")) {
		*splat_null = 1;
	} else if (!strcmp(what, "bug")) {
		BUG();
	} else if (!strcmp(what, "vm_bug_on")) {
		struct page *page = alloc_page(GFP_KERNEL);

		VM_BUG_ON_PAGE(page, page);
	} else if (!strcmp(what, "alloc_fail")) {
		alloc_fail();
	}
	return 0;
}
module_init(splatmod_init);

static void __exit splatmod_exit(void)
{
}
module_exit(splatmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("zstest: one real kernel splat on load");
