/*
 * Unit test runner: runs every registered TEST, counts a test as failed if
 * any of its CHECKs failed. Optional argv[1] runs only tests whose name
 * contains it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test.h"

#define TESTS_MAX 1024

static struct {
	const char	*name;
	test_fn		*fn;
} tests[TESTS_MAX];
static int	ntests;
static int	cur_failed;
int		test_checks;

void
test_register(const char *name, test_fn *fn)
{
	if (ntests == TESTS_MAX) {
		fprintf(stderr, "too many tests\n");
		exit(2);
	}
	tests[ntests].name = name;
	tests[ntests].fn = fn;
	ntests++;
}

void
test_fail(const char *file, int line, const char *what)
{
	cur_failed++;
	fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what);
}

int
main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (int i = 0; i < ntests; i++) {
		if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
			continue;
		cur_failed = 0;
		tests[i].fn();
		if (cur_failed == 0)
			passed++;
		else {
			failed++;
			fprintf(stderr, "FAILED %s\n", tests[i].name);
		}
	}
	printf("%d checks\n", test_checks);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
