/*
 * Minimal unit-test harness. Each t_*.c file defines TEST(name) { ... }
 * bodies; a constructor registers them, so no central list needs editing.
 * main.c runs them all and prints "N passed, N failed" as its last line.
 */
#ifndef TESTS_UNIT_TEST_H
#define TESTS_UNIT_TEST_H

#include <stdio.h>
#include <string.h>

typedef void test_fn(void);
void	test_register(const char *name, test_fn *fn);
void	test_fail(const char *file, int line, const char *what);
extern int test_checks;

#define TEST(name)							\
	static void test_##name(void);					\
	__attribute__((constructor)) static void reg_##name(void)	\
	{ test_register(#name, test_##name); }				\
	static void test_##name(void)

#define CHECK(c) do { test_checks++; if (!(c))				\
	test_fail(__FILE__, __LINE__, #c); } while (0)

#define CHECK_INT(a, op, b) do { long long a_ = (long long)(a),		\
	b_ = (long long)(b); test_checks++;				\
	if (!(a_ op b_)) { char m_[256]; snprintf(m_, sizeof(m_),	\
	    "%s %s %s (%lld vs %lld)", #a, #op, #b, a_, b_);		\
	    test_fail(__FILE__, __LINE__, m_); } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b);		\
	test_checks++;							\
	if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {		\
	    char m_[512]; snprintf(m_, sizeof(m_), "%s == %s (\"%s\" vs \"%s\")", \
	    #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");		\
	    test_fail(__FILE__, __LINE__, m_); } } while (0)

#endif
