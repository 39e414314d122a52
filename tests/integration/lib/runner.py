"""Runs one integration case file: python3 runner.py BUILD_DIR CASE.py [PATTERN] [RESULT_FILE]

A case file is a module with, in this order of use:
  setup(env) -> ctx      optional; starts what its tests share (default ctx = env)
  test_*(ctx)            run in definition order; a test may take no argument
  teardown(ctx)          optional
  TEST_TIMEOUT = 120     optional, seconds per test (SIGALRM); a test
                         function may set its own: test_x.timeout = 300
One Env (temp dir, ports, processes) is shared by the file's tests and
cleaned up at the end, on failure and on SIGTERM/SIGINT.

Prints "PASS id (s)" / "FAIL id (s)" per test, id = "NN_name.test_func";
on FAIL, the reason and the tail of every server log. PATTERN selects tests
whose id contains it (or matches it as a glob when it has *?[). Writes
"passed failed" to RESULT_FILE. Exit status 1 if any test failed.
A problem found after the tests (posternd exiting non-zero at SIGTERM, e.g.
LeakSanitizer, or a sanitizer report in its log) is one more failure,
"NN_name.teardown".
"""

import fnmatch
import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class TestTimeout(Exception):
	pass


def _alarm(signum, frame):
	raise TestTimeout("test timed out")


def selected(test_id, pattern):
	if not pattern:
		return True
	if any(c in pattern for c in "*?["):
		return fnmatch.fnmatch(test_id, pattern) or fnmatch.fnmatch(test_id, "*" + pattern + "*")
	return pattern in test_id


def fmt_exc(e):
	if isinstance(e, (harness.TestFailure, harness.HarnessError, TestTimeout)):
		tb = traceback.extract_tb(e.__traceback__)
		where = ""
		for fr in reversed(tb):
			if "/cases/" in fr.filename:
				where = " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
				break
		return "%s: %s%s" % (type(e).__name__, e, where)
	return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


def indent(text, prefix="    "):
	return "\n".join(prefix + l for l in str(text).splitlines())


def call(fn, ctx):
	try:
		n = len(inspect.signature(fn).parameters)
	except (TypeError, ValueError):
		n = 1
	return fn(ctx) if n else fn()


def main():
	if len(sys.argv) < 3:
		print(__doc__, file=sys.stderr)
		return 2
	build, case = sys.argv[1], sys.argv[2]
	pattern = sys.argv[3] if len(sys.argv) > 3 else ""
	result_file = sys.argv[4] if len(sys.argv) > 4 else None
	cname = os.path.splitext(os.path.basename(case))[0]
	passed = failed = 0

	def result():
		if result_file:
			with open(result_file, "w") as f:
				f.write("%d %d\n" % (passed, failed))

	harness.install_signal_handlers()
	harness.become_subreaper()
	signal.signal(signal.SIGALRM, _alarm)

	try:
		spec = importlib.util.spec_from_file_location("case_" + cname, case)
		mod = importlib.util.module_from_spec(spec)
		spec.loader.exec_module(mod)
	except Exception as e:	# noqa: BLE001
		print("FAIL %s (cannot load)\n%s" % (cname, indent(fmt_exc(e))), flush=True)
		failed = 1
		result()
		return 1

	tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
	tests = [(n, f) for n, f in tests if selected("%s.%s" % (cname, n), pattern)]
	if not tests:
		result()
		return 0
	per_test = getattr(mod, "TEST_TIMEOUT", 120)

	env = harness.Env(build, cname)
	interrupted = False
	try:
		ctx = env
		setup_err = None
		if hasattr(mod, "setup"):
			t0 = time.monotonic()
			signal.alarm(int(getattr(mod, "SETUP_TIMEOUT", 180)))
			try:
				ctx = mod.setup(env)
				if ctx is None:
					ctx = env
			except KeyboardInterrupt:
				raise
			except Exception as e:	# noqa: BLE001
				setup_err = e
			finally:
				signal.alarm(0)
			if setup_err is not None:
				env.failed = True
				print("FAIL %s.setup (%.2fs)\n%s\n%s" % (cname, time.monotonic() - t0,
				    indent(fmt_exc(setup_err)), env.log_tails()), flush=True)
				for n, _ in tests:
					print("FAIL %s.%s (setup failed)" % (cname, n), flush=True)
				failed += len(tests)
				return 1
		for n, fn in tests:
			tid = "%s.%s" % (cname, n)
			t0 = time.monotonic()
			signal.alarm(int(getattr(fn, "timeout", per_test)))
			err = None
			try:
				call(fn, ctx)
			except KeyboardInterrupt:
				raise
			except Exception as e:	# noqa: BLE001
				err = e
			finally:
				signal.alarm(0)
			dt = time.monotonic() - t0
			if err is None:
				passed += 1
				print("PASS %s (%.2fs)" % (tid, dt), flush=True)
			else:
				failed += 1
				env.failed = True
				print("FAIL %s (%.2fs)\n%s\n%s" % (tid, dt, indent(fmt_exc(err)), env.log_tails()), flush=True)
		if hasattr(mod, "teardown"):
			try:
				call(mod.teardown, ctx)
			except Exception as e:	# noqa: BLE001
				failed += 1
				env.failed = True
				print("FAIL %s.teardown\n%s" % (cname, indent(fmt_exc(e))), flush=True)
	except KeyboardInterrupt as e:
		interrupted = True
		env.failed = True
		print("FAIL %s (interrupted: %s)" % (cname, e), flush=True)
		failed += 1
	finally:
		signal.alarm(0)
		# Ignore further SIGTERM/SIGINT while stopping servers.
		signal.signal(signal.SIGTERM, signal.SIG_IGN)
		signal.signal(signal.SIGINT, signal.SIG_IGN)
		# Stop servers first, then look at exit codes and logs.
		for p in reversed(list(env._procs)):
			try:
				p.stop()
			except Exception as e:	# noqa: BLE001
				print("  [harness] stopping %s: %r" % (p.name, e), file=sys.stderr)
		if not interrupted:
			problems = env.problems()
			if problems:
				failed += 1
				env.failed = True
				print("FAIL %s.teardown\n%s\n%s" % (cname, indent("\n".join(problems)), env.log_tails()), flush=True)
		env.cleanup()
		result()
	return 1 if failed else 0


if __name__ == "__main__":
	sys.exit(main())
