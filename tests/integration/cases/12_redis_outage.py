"""Issue 2, Tests: Redis killed, hung and restarted mid-run. posternd fails
closed: /health 503 and every other admin call 503 with a JSON error within
about [redis] timeout (1s here), then works again when Redis is back, with
no restart of posternd. Two daemons share one Redis: one over its Unix
socket, one over TCP."""

import threading
import time

from harness import (Postern, Redis, check, contains, eq, expect_error, expect_status, uniq, wait_until)

TIMEOUT = 1.0		# [redis] timeout in the generated config
BOUND = TIMEOUT + 2.0	# each answer must come within this
RECOVER = 15.0		# reconnect after Redis is back


class Ctx:
	pass


def setup(env):
	c = Ctx()
	c.env = env
	c.redis = env.redis(tcp=True, unix=True)
	c.unix = env.postern(c.redis, name="posternd-unix", redis_via="unix", wait_listeners=False)
	c.tcp = env.postern(c.redis, name="posternd-tcp", redis_via="tcp", wait_listeners=False)
	c.daemons = (c.unix, c.tcp)
	return c


def _healthy(p):
	st, d = p.api.get("/health", timeout=BOUND + 2)
	return st == 200 and d == {"success": True, "redis": "ok"}


def _ensure_up(c):
	if c.redis.proc.stopped:
		c.redis.resume()
	if not c.redis.alive():
		c.redis.start()
	for p in c.daemons:
		wait_until(lambda: _healthy(p), RECOVER, "%s /health 200 with Redis up" % p.name)


def _timed(p, method, path, body=None, params=None):
	r = p.api.request(method, path, body=body, params=params, timeout=BOUND + 5)
	check(r.elapsed <= BOUND, "%s %s %s answered in %.2fs, want <= %.1fs ([redis] timeout %.0fs)" % (
	    p.name, method, path, r.elapsed, BOUND, TIMEOUT))
	return r


def _expect_unavailable(p, what, full=True):
	r = _timed(p, "GET", "/health")
	d = expect_error(r, 503, what="%s: GET /health (%s)" % (p.name, what))
	eq((d.get("success"), d.get("redis"), d.get("error")), (False, "unavailable", "Service Unavailable"),
	    "%s: /health body (%s)" % (p.name, what))
	acct = uniq("down")
	for method, path, body, params in (
	    ("GET", "/v1/accounts", None, None),
	    ("GET", "/v1/account/" + acct, None, None),
	    ("POST", "/v1/account", {"account": acct, "imap": {"host": "h.example", "port": 993}}, None),
	    ("PUT", "/v1/account/" + acct, {"name": "x"}, None),
	    ("DELETE", "/v1/account/" + acct, None, None),
	    ("POST", "/v1/tokens", {"account": acct, "description": "d", "scopes": ["smtp"]}, None),
	    ("GET", "/v1/tokens", None, {"account": acct}),
	    ("GET", "/v1/tokens/" + "0" * 64, None, None),
	    ("DELETE", "/v1/tokens/" + "0" * 64, None, None),
	    ("GET", "/v1/settings", None, None),
	    ("POST", "/v1/settings", {"ignoreMailCertErrors": False}, None))[::1 if full else 3]:
		r = _timed(p, method, path, body, params)
		d = expect_error(r, 503, what="%s: %s %s (%s)" % (p.name, method, path, what))
		eq(d.get("error"), "Service Unavailable", "%s %s error" % (method, path))
	check(p.alive(), "%s still running" % p.name)


def _works(p):
	acct = uniq("up")
	expect_status(p.api.post("/v1/account", {"account": acct, "imap": {"host": "h.example", "port": 993}}), 200,
	    "%s: POST /v1/account after recovery" % p.name)
	t = expect_status(p.api.post("/v1/tokens", {"account": acct, "description": "d", "scopes": ["smtp"]}), 200,
	    "%s: POST /v1/tokens after recovery" % p.name)
	expect_status(p.api.get("/v1/tokens/" + t["id"]), 200, "%s: GET token after recovery" % p.name)


def test_health_ok(c):
	for p in c.daemons:
		eq(tuple(p.health()), (200, {"success": True, "redis": "ok"}), "%s /health" % p.name)
		_works(p)


def test_redis_killed(c):
	_ensure_up(c)
	c.redis.kill()
	for p in c.daemons:
		_expect_unavailable(p, "Redis killed")
		rc, out, err = p.ctl("account", "list")
		eq(rc, 1, "%s: posternctl account list with Redis down exits 1" % p.name)
		check(err.strip(), "posternctl prints an error")


def test_redis_restarted_recovers(c):
	if c.redis.alive():
		c.redis.kill()
	pids = [p.proc.pid for p in c.daemons]
	c.redis.start()
	for p in c.daemons:
		wait_until(lambda: _healthy(p), RECOVER, "%s /health 200 after Redis restarted on the same %s" % (
		    p.name, "socket" if p is c.unix else "port"))
		_works(p)
	eq([p.proc.pid for p in c.daemons], pids, "posternd not restarted")


def test_redis_hung(c):
	_ensure_up(c)
	acct = uniq("kept")
	c.unix.add_account(acct)
	c.redis.pause()
	try:
		for p in c.daemons:
			_expect_unavailable(p, "Redis hung (SIGSTOP)", full=False)
	finally:
		c.redis.resume()
	for p in c.daemons:
		wait_until(lambda: _healthy(p), RECOVER, "%s /health 200 after SIGCONT" % p.name)
		expect_status(p.api.get(p.account_path(acct)), 200, "%s: data written before the hang" % p.name)
		_works(p)


def test_hung_concurrent_requests_each_bounded(c):
	"""Requests pile up while Redis hangs: each still gets its 503 in time
	(one timer per request, not one for the connection)."""
	_ensure_up(c)
	c.redis.pause()
	results = []
	lock = threading.Lock()

	def one(p, path):
		try:
			r = p.api.request("GET", path, timeout=BOUND + 5)
			with lock:
				results.append((p.name, path, r.status, r.elapsed))
		except Exception as e:	# noqa: BLE001
			with lock:
				results.append((p.name, path, repr(e), None))

	try:
		threads = [threading.Thread(target=one, args=(p, path)) for p in c.daemons
		    for path in ["/health"] * 5 + ["/v1/accounts"] * 5]
		for t in threads:
			t.start()
		for t in threads:
			t.join(BOUND + 10)
	finally:
		c.redis.resume()
	eq(len(results), 20, "all 20 requests answered")
	for name, path, st, el in results:
		eq(st, 503, "%s %s during the hang" % (name, path))
		check(el <= BOUND + 0.5, "%s %s answered in %.2fs" % (name, path, el))
	for p in c.daemons:
		wait_until(lambda: _healthy(p), RECOVER, "%s recovers" % p.name)


def test_flapping(c):
	_ensure_up(c)
	for i in range(3):
		c.redis.kill()
		for p in c.daemons:
			eq(_timed(p, "GET", "/health").status, 503, "%s /health after kill #%d" % (p.name, i + 1))
		c.redis.start()
	for p in c.daemons:
		wait_until(lambda: _healthy(p), RECOVER, "%s /health 200 after 3 kill/start cycles" % p.name)
		_works(p)


def test_start_without_redis(c):
	"""posternd starts with Redis down (fail closed), then comes up by
	itself when Redis appears."""
	port = c.env.port()
	p = Postern(c.env, c.redis, name="posternd-late", redis_url="redis://127.0.0.1:%d/0" % port, wait_listeners=False)
	p.start()
	try:
		_expect_unavailable(p, "Redis never started")
		Redis(c.env, tcp=True, unix=False, name="redis-late", port=port).start()
		wait_until(lambda: _healthy(p), RECOVER, "posternd-late /health 200 once Redis started")
		_works(p)
	finally:
		rc = p.stop()
	eq(rc, 0, "posternd-late exit status on SIGTERM")


def test_sigterm_with_redis_down(c):
	"""Shutdown must not hang on a dead Redis."""
	_ensure_up(c)
	p = c.env.postern(c.redis, name="posternd-stop", redis_via="tcp", wait_listeners=False)
	c.redis.kill()
	eq(p.api.get("/health", timeout=BOUND + 5).status, 503, "503 with Redis down")
	t0 = time.monotonic()
	rc = p.stop(timeout=10)
	check(time.monotonic() - t0 < 5, "posternd stopped within 5s of SIGTERM with Redis down (%.1fs)" % (time.monotonic() - t0))
	eq(rc, 0, "exit status on SIGTERM")
	c.redis.start()
	_ensure_up(c)
