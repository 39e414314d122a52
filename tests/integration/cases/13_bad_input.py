"""Issue 2, Tests: bad input to the admin API gets a clean 4xx with
docs/API.md's JSON error (and the exact `field` for a bad field), nothing is
half-written, the daemon keeps running; `posternd -t` reports config errors
as file:line: message."""

import copy
import json
import os
import secrets
import socket
import time

from harness import (HEX64, Postern, _UnixHTTPConnection, basic_setup, check, contains, eq, expect_error, expect_status, uniq, wait_until)

ACC = "bad-input-acct"
DEL = object()		# remove the key

MiB = 1024 * 1024


def setup(env):
	c = basic_setup(env)
	c.p.add_account(ACC)
	return c


def _set(body, path, value):
	b = copy.deepcopy(body)
	keys = path.split(".")
	d = b
	for k in keys[:-1]:
		if not isinstance(d.get(k), dict):
			d[k] = {}
		d = d[k]
	if value is DEL:
		d.pop(keys[-1], None)
	else:
		d[keys[-1]] = value
	return b


def _alive(c):
	check(c.p.alive(), "posternd is still running")
	wait_until(lambda: c.p.health().status == 200, 5, "GET /health 200 after bad input")


def _account_body(acct):
	return {"account": acct, "name": "N", "email": "e@example.com",
	    "imap": {"host": "imap.example.com", "port": 993, "secure": True,
		"auth": {"user": "u", "pass": "p"}, "tls": {"rejectUnauthorized": True}, "maxConnections": 5},
	    "smtp": {"host": "smtp.example.com", "port": 465, "secure": True, "auth": {"user": "u", "pass": "p"}}}


H253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
H254 = H253 + "d"

ACCOUNT_BAD = [
    ("account", DEL, "account"), ("account", "", "account"), ("account", "x" * 257, "account"),
    ("account", "bad/char", "account"), ("account", "sp ace", "account"), ("account", "nul\u0000x", "account"),
    ("imap.auth.pass", "p\u0000w", "imap.auth.pass"), ("name", "a\u0000", "name"),
    ("account", "caf\u00e9", "account"), ("account", 123, "account"), ("account", None, "account"),
    ("account", ["a"], "account"),
    ("name", 5, "name"), ("email", 5, "email"),
    ("imap", "x", "imap"), ("imap", [], "imap"),
    ("imap.host", DEL, "imap.host"), ("imap.host", "", "imap.host"), ("imap.host", H254, "imap.host"),
    ("imap.host", 5, "imap.host"), ("imap.host", "bad host!", "imap.host"),
    ("imap.port", DEL, "imap.port"), ("imap.port", 0, "imap.port"), ("imap.port", 65536, "imap.port"),
    ("imap.port", -1, "imap.port"), ("imap.port", "993", "imap.port"), ("imap.port", 99.5, "imap.port"),
    ("imap.port", True, "imap.port"), ("imap.port", None, "imap.port"), ("imap.port", 2 ** 64, "imap.port"),
    ("imap.secure", "yes", "imap.secure"), ("imap.secure", 1, "imap.secure"),
    ("imap.starttls", "maybe", "imap.starttls"), ("imap.starttls", True, "imap.starttls"),
    ("imap.auth", "x", "imap.auth"), ("imap.auth.user", 5, "imap.auth.user"),
    ("imap.auth.pass", 5, "imap.auth.pass"), ("imap.auth.pass", "p" * 1025, "imap.auth.pass"),
    ("imap.tls", "x", "imap.tls"), ("imap.tls.rejectUnauthorized", "no", "imap.tls.rejectUnauthorized"),
    ("imap.sentMailPath", 5, "imap.sentMailPath"),
    ("imap.maxConnections", 0, "imap.maxConnections"), ("imap.maxConnections", 1001, "imap.maxConnections"),
    ("imap.maxConnections", "10", "imap.maxConnections"), ("imap.maxConnections", 1.5, "imap.maxConnections"),
    ("smtp", 5, "smtp"), ("smtp.host", DEL, "smtp.host"), ("smtp.port", 70000, "smtp.port"),
    ("smtp.port", DEL, "smtp.port"), ("smtp.secure", "true", "smtp.secure"),
    ("smtp.auth.pass", "p" * 1025, "smtp.auth.pass"), ("smtp.auth.user", [], "smtp.auth.user"),
    ("oauth2", "x", "oauth2"), ("proxy", 5, "proxy"),
    ("imapIndexer", "slow", "imapIndexer"), ("imapIndexer", 1, "imapIndexer"),
    ("path", 5, "path"), ("path", {"a": 1}, "path"),
    ("bogus", 1, "bogus"), ("Account", "x", "Account"),
]

ACCOUNT_GOOD_EDGES = [
    ("imap.port", 1), ("imap.port", 65535), ("imap.maxConnections", 1), ("imap.maxConnections", 1000),
    ("imap.auth.pass", "p" * 1024), ("imap.host", H253), ("imap.host", "127.0.0.1"), ("imap.host", "::1"),
    ("imap.sentMailPath", None), ("imap.starttls", "never"), ("imapIndexer", "fast"), ("path", "INBOX"),
    ("path", ["INBOX", "Sent"]), ("account", "x" * 256),
]


def test_account_bad_fields(c):
	failures = []
	for path, value, field in ACCOUNT_BAD:
		acct = uniq("acc")
		body = _set(_account_body(acct), path, value)
		r = c.api.post("/v1/account", body)
		what = "POST /v1/account with %s = %r" % (path, "<deleted>" if value is DEL else value if len(repr(value)) < 40 else repr(value)[:40] + "...")
		try:
			expect_error(r, 400, field, what)
		except AssertionError as e:
			failures.append(str(e))
			continue
		if path != "account":
			g = c.api.get("/v1/account/" + acct)
			if g.status != 404:
				failures.append("%s: rejected, but the account was written (GET -> %s)" % (what, g.status))
	check(not failures, "%d of %d bad account fields mishandled:\n  %s" % (len(failures), len(ACCOUNT_BAD), "\n  ".join(failures)))
	_alive(c)


def test_account_array_element_field(c):
	r = c.api.post("/v1/account", _set(_account_body(uniq("acc")), "path", ["INBOX", 1]))
	expect_error(r, 400, lambda f: isinstance(f, str) and f.startswith("path"), "path with a non-string element")


def test_account_good_edges(c):
	for path, value in ACCOUNT_GOOD_EDGES:
		acct = uniq("edge")
		body = _set(_account_body(acct), path, value)
		acct = body["account"]
		expect_status(c.api.post("/v1/account", body), 200, "POST /v1/account with %s = %r" % (path, value if len(repr(value)) < 40 else "<%d chars>" % len(value)))
		c.api.delete("/v1/account/" + acct)


def test_account_needs_a_protocol_and_an_object(c):
	expect_error(c.api.post("/v1/account", {"account": uniq("none"), "name": "x"}), 400,
	    what="account without imap, smtp or oauth2")
	for body in ([], "str", 5, None, [{"account": "x"}]):
		expect_error(c.api.post("/v1/account", json.dumps(body)), 400, what="body %r" % (body,))
	_alive(c)


def _token_body():
	return {"account": ACC, "description": "d", "scopes": ["imap-proxy"]}


def _starts(prefix):
	return lambda f: isinstance(f, str) and f.startswith(prefix)


TOKEN_BAD = [
    ("account", DEL, "account"), ("account", 5, "account"), ("account", "", "account"),
    ("description", DEL, "description"), ("description", "", "description"),
    ("description", "x" * 1025, "description"), ("description", 5, "description"),
    ("scopes", DEL, "scopes"), ("scopes", [], "scopes"), ("scopes", ["bogus"], _starts("scopes")),
    ("scopes", "smtp", "scopes"), ("scopes", [5], _starts("scopes")), ("scopes", ["smtp", "imap"], _starts("scopes")),
    ("restrictions", "x", "restrictions"),
    ("restrictions.addresses", "10.0.0.0/8", "restrictions.addresses"),
    ("restrictions.addresses", ["300.1.1.1/8"], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["10.0.0.0/33"], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["::1/129"], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["garbage"], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["10.0.0.0/-1"], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["10.0.0.0/8", 5], _starts("restrictions.addresses")),
    ("restrictions.addresses", ["1.2.3.4/8x"], _starts("restrictions.addresses")),
    ("expires", "not a date", "expires"), ("expires", "2001-01-01T00:00:00Z", "expires"), ("expires", 5, "expires"),
    ("ttl", 0, "ttl"), ("ttl", 31536001, "ttl"), ("ttl", "60", "ttl"), ("ttl", -1, "ttl"), ("ttl", 1.5, "ttl"),
    ("metadata", "x", "metadata"), ("metadata", {"k": "x" * 5000}, "metadata"),
]


def _token_count(c):
	return expect_status(c.api.get("/v1/tokens", params={"account": ACC}), 200, "token list")["total"]


def test_token_bad_fields(c):
	before = _token_count(c)
	failures = []
	for path, value, field in TOKEN_BAD:
		for url in ("/v1/tokens", "/v1/token"):
			r = c.api.post(url, _set(_token_body(), path, value))
			try:
				expect_error(r, 400, field, "POST %s with %s = %s" % (url, path, "<deleted>" if value is DEL else repr(value)[:40]))
			except AssertionError as e:
				failures.append(str(e))
	check(not failures, "%d bad token bodies mishandled:\n  %s" % (len(failures), "\n  ".join(failures)))
	eq(_token_count(c), before, "no token written by rejected requests")
	_alive(c)


def test_token_expires_and_ttl_both(c):
	body = dict(_token_body(), ttl=60, expires="2099-01-01T00:00:00Z")
	expect_error(c.api.post("/v1/tokens", body), 400, lambda f: f in ("expires", "ttl"), "both expires and ttl")


def test_token_good_edges(c):
	for path, value in (("ttl", 1), ("ttl", 31536000), ("description", "x" * 1024), ("metadata", {"k": "x" * 4000}),
	    ("restrictions.addresses", ["0.0.0.0/0", "::/0", "192.0.2.1/32", "2001:db8::1/128", "::ffff:10.0.0.0/104"]),
	    ("expires", "2099-12-31T23:59:59Z"), ("expires", "2099-12-31T23:59:59.123Z")):
		r = c.api.post("/v1/tokens", _set(_token_body(), path, value))
		d = expect_status(r, 200, "token with %s = %s" % (path, repr(value)[:60]))
		check(HEX64.match(d.get("token", "")), "a token")


def test_token_for_missing_account(c):
	r = c.api.post("/v1/tokens", dict(_token_body(), account=uniq("nobody")))
	check(r.status in (400, 404), "token for a missing account: HTTP %s" % r.status)
	expect_error(r, r.status, "account" if r.status == 400 else None, "token for a missing account")


def test_query_params(c):
	expect_error(c.api.get("/v1/tokens"), 400, "account", "GET /v1/tokens without account")
	for path, params, field in (("/v1/tokens", {"account": ACC, "pageSize": 0}, "pageSize"),
	    ("/v1/tokens", {"account": ACC, "pageSize": 1001}, "pageSize"),
	    ("/v1/tokens", {"account": ACC, "pageSize": "abc"}, "pageSize"),
	    ("/v1/tokens", {"account": ACC, "page": -1}, "page"),
	    ("/v1/tokens", {"account": ACC, "page": "x"}, "page"),
	    ("/v1/accounts", {"pageSize": 0}, "pageSize"), ("/v1/accounts", {"pageSize": 1001}, "pageSize"),
	    ("/v1/accounts", {"page": "-3"}, "page")):
		expect_error(c.api.get(path, params=params), 400, field, "GET %s %s" % (path, params))
	for ps in (1, 1000):
		expect_status(c.api.get("/v1/tokens", params={"account": ACC, "pageSize": ps}), 200, "pageSize %d" % ps)
	_alive(c)


def test_settings_bad(c):
	before = expect_status(c.api.get("/v1/settings"), 200, "GET /v1/settings")
	for body, field in (({"noSuchSetting": 1}, "noSuchSetting"), ({"ignoreMailCertErrors": "yes"}, "ignoreMailCertErrors"),
	    ({"ignoreMailCertErrors": 1}, "ignoreMailCertErrors"), ({"proxyUrl": 5}, "proxyUrl"),
	    ({"revokeClosesSessions": "x"}, "revokeClosesSessions"), ({"logs": "x"}, "logs"),
	    ({"ignoreMailCertErrors": True, "bogus": 1}, "bogus")):
		expect_error(c.api.post("/v1/settings", body), 400, field, "POST /v1/settings %s" % body)
	for body in ([], "x", 5):
		expect_error(c.api.post("/v1/settings", json.dumps(body)), 400, what="settings body %r" % (body,))
	eq(c.api.get("/v1/settings").json, before, "settings unchanged after rejected updates")


MALFORMED = [b"{", b'{"account": }', b"nul", b'{"account": "x"} trailing', b"", b"[" * 100000,
    b'{"a":' * 50000, b'{"account": "x",}', b"\x00\x01\x02", b'"unterminated', b"{'account': 'x'}",
    b'{"account": "x"\x00}']


def test_malformed_json(c):
	acct = uniq("mal")
	c.p.add_account(acct)
	failures = []
	for raw in MALFORMED:
		for method, path in (("POST", "/v1/account"), ("POST", "/v1/tokens"), ("POST", "/v1/token"),
		    ("POST", "/v1/settings"), ("PUT", "/v1/account/" + acct)):
			what = "%s %s with %r" % (method, path, raw[:30])
			try:
				expect_error(c.api.request(method, path, body=raw), 400, None, what)
			except AssertionError as e:
				failures.append(str(e))
			except OSError as e:	# http.client.RemoteDisconnected too
				failures.append("%s: no HTTP answer: %r" % (what, e))
			check(c.p.alive(), "posternd died on %s %s with %r" % (method, path, raw[:30]))
	check(not failures, "%d malformed bodies mishandled:\n  %s" % (len(failures), "\n  ".join(failures)))
	# Invalid UTF-8 is malformed JSON too; here the account id would be
	# rejected anyway, so any 400 will do.
	expect_error(c.api.post("/v1/account", b'{"account": "\xff\xfe", "imap": {"host": "h", "port": 1}}'), 400,
	    what="invalid UTF-8 in the account id")
	_alive(c)


def test_oversized_body(c):
	big = b'{"account": "' + b"a" * (2 * MiB) + b'"}'
	for path in ("/v1/account", "/v1/tokens", "/v1/settings"):
		expect_error(c.api.post(path, big), 413, what="POST %s with a 2 MiB body" % path)
		_alive(c)
	expect_error(c.api.put("/v1/account/" + ACC, big), 413, what="PUT with a 2 MiB body")
	r = c.api.post("/v1/account", big, chunked=True)
	# evhttp's own reply to a too-long chunked body may not be our JSON.
	eq(r.status, 413, "chunked 2 MiB body")
	_alive(c)
	# Under the 1 MiB default cap: parsed, rejected for the unknown field.
	pad = b"a" * (MiB - 200)
	r = c.api.post("/v1/account", b'{"account": "%s", "imap": {"host": "h.example", "port": 1}, "pad": "%s"}' % (uniq("pad").encode(), pad))
	expect_error(r, 400, "pad", "a body just under 1 MiB is read (and the unknown field rejected)")
	_alive(c)


def test_unknown_paths_404(c):
	for method, path in (("GET", "/"), ("GET", "/v1"), ("GET", "/v2/tokens"), ("GET", "/v1/nope"),
	    ("GET", "/health/x"), ("GET", "/v1/accounts/x/y"), ("POST", "/v1/nope"), ("DELETE", "/v1/tokens/account"),
	    ("GET", "/v1/tokens/" + "z" * 64), ("GET", "/v1/account/" + uniq("nobody")), ("GET", "/%2e%2e/etc/passwd"),
	    ("GET", "/v1/settingsx"), ("GET", "/v1/tokens/" + "0" * 64 + "/x")):
		expect_error(c.api.request(method, path), 404, what="%s %s" % (method, path))
	r = c.api.get("/v1/" + "x" * 20000)
	check(400 <= r.status < 500, "a 20 KB path: 4xx, got %s" % r.status)
	_alive(c)


def test_wrong_method_405(c):
	tid = "0" * 64
	for method, path in (("PATCH", "/v1/tokens"), ("PUT", "/v1/tokens"), ("DELETE", "/v1/tokens"),
	    ("PUT", "/health"), ("POST", "/health"), ("DELETE", "/health"), ("DELETE", "/v1/accounts"),
	    ("POST", "/v1/accounts"), ("PUT", "/v1/settings"), ("DELETE", "/v1/settings"),
	    ("PATCH", "/v1/account/" + ACC), ("POST", "/v1/account/" + ACC), ("POST", "/v1/tokens/" + tid),
	    ("PUT", "/v1/tokens/" + tid), ("POST", "/v1/tokens/account/" + ACC)):
		body = {} if method in ("POST", "PUT", "PATCH") else None
		expect_error(c.api.request(method, path, body=body), 405, what="%s %s" % (method, path))
	_alive(c)


def test_protocol_garbage(c):
	for data in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
	    b"GET / HTTP/9.9\r\n\r\n", b"GET /health HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
	    b"POST /v1/account HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
	    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 200000 + b"\r\n\r\n",
	    b"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
		c.p.api.raw(data, timeout=3)
		check(c.p.alive(), "posternd died on %r" % data[:40])
	for _ in range(50):
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		try:
			s.connect(c.p.admin_sock)
		except BlockingIOError:
			time.sleep(0.01)	# listen backlog full for a moment
		s.close()
	_alive(c)


def test_keepalive(c):
	"""Two requests on one HTTP/1.1 connection (curl and http.client reuse it)."""
	conn = _UnixHTTPConnection(c.p.admin_sock, 10)
	try:
		for i in range(2):
			conn.request("GET", "/health", headers={"Host": "localhost"})
			r = conn.getresponse()
			eq(r.status, 200, "request %d on a kept-alive connection" % (i + 1))
			eq(json.loads(r.read()), {"success": True, "redis": "ok"}, "body %d" % (i + 1))
	finally:
		conn.close()
	_alive(c)


# ---------------------------------------------------------------- posternd -t

def _conf_with(c, name, mutate):
	"""Writes a valid config (as the running daemon's) and applies mutate
	to its lines; returns (path, lines)."""
	p = Postern(c.env, c.redis, name=name, wait_listeners=False)
	p.write_conf()
	with open(p.conf_path) as f:
		lines = f.read().split("\n")
	lines = mutate(lines)
	with open(p.conf_path, "w") as f:
		f.write("\n".join(lines))
	return p, lines


def _insert_after(section, text):
	def m(lines):
		i = lines.index("[%s]" % section)
		return lines[:i + 1] + [text] + lines[i + 1:]
	return m


def _t(c, p, args=("-t",)):
	return c.env.run([c.env.bin("posternd")] + list(args) + ["-c", p.conf_path], timeout=30,
	    extra_env={"POSTERN_SECRET": p.secret}, unset_env=("POSTERN_SECRET",))


def test_config_check_ok(c):
	p, _ = _conf_with(c, "cfg-ok", lambda l: l)
	rc, out, err = _t(c, p)
	eq(rc, 0, "posternd -t on a good config (stdout %r, stderr %r)" % (out[-300:], err[-300:]))


def test_config_check_errors(c):
	cases = [
	    ("unknown key", _insert_after("redis", "bogus_key = 1"), "bogus_key = 1"),
	    ("bad duration", _insert_after("redis", "timeout = banana"), "timeout = banana"),
	    ("bad log level", _insert_after("postern", "log_level = loud"), "log_level = loud"),
	    ("bad workers", _insert_after("postern", "workers = -3"), "workers = -3"),
	    ("line without =", _insert_after("admin", "this line has no equals sign"), "this line has no equals sign"),
	    ("bad listen port", _insert_after("imap", "listen = 127.0.0.1:99999 tls"), "listen = 127.0.0.1:99999 tls"),
	    ("bad listen mode", _insert_after("imap", "listen = 127.0.0.1:2993 sometimes"), "listen = 127.0.0.1:2993 sometimes"),
	    ("bad redis url", _insert_after("redis", "url = http://nope"), "url = http://nope"),
	    ("unknown section", lambda l: l + ["[nosuchsection]", "foo = 1"], "foo = 1"),
	]
	failures = []
	for i, (label, mutate, marker) in enumerate(cases):
		p, lines = _conf_with(c, "cfg-bad-%d" % i, mutate)
		lineno = lines.index(marker) + 1
		rc, out, err = _t(c, p)
		text = out + err
		want = "%s:%d:" % (p.conf_path, lineno)
		alt = "%s:%d:" % (p.conf_path, lineno - 1) if label == "unknown section" else want
		if rc != 1:
			failures.append("%s: exit %d, want 1 (output %r)" % (label, rc, text[-300:]))
		elif want not in text and alt not in text:
			failures.append("%s: output lacks %r: %r" % (label, want, text[-300:]))
		else:
			msg = text[text.find(p.conf_path):].split("\n")[0]
			check(len(msg.split(":", 2)[2].strip()) > 0 if msg.count(":") >= 2 else False,
			    "%s: no message after file:line: %r" % (label, msg))
	check(not failures, "posternd -t on bad configs:\n  " + "\n  ".join(failures))


def test_config_check_conf_d(c):
	"""conf.d/*.conf next to the config file are read in lexical order; an
	error there is reported with that file's name and line."""
	p, _ = _conf_with(c, "cfg-confd", lambda l: l)
	d = os.path.join(os.path.dirname(p.conf_path), "conf.d")
	os.makedirs(d, exist_ok=True)
	with open(os.path.join(d, "10-ok.conf"), "w") as f:
		f.write("[postern]\nlog_level = info\n")
	bad = os.path.join(d, "20-bad.conf")
	with open(bad, "w") as f:
		f.write("# comment\n[redis]\nbogus = 1\n")
	rc, out, err = _t(c, p)
	eq(rc, 1, "posternd -t with a bad conf.d file (%r)" % (out + err)[-300:])
	contains(out + err, "%s:3:" % bad, "error names the conf.d file and line")
	os.unlink(bad)
	rc, out, err = _t(c, p)
	eq(rc, 0, "posternd -t once the bad conf.d file is gone (%r)" % (out + err)[-300:])


def test_config_check_missing_file(c):
	rc, out, err = c.env.run([c.env.bin("posternd"), "-t", "-c", c.env.path("no-such.conf")],
	    extra_env={"POSTERN_SECRET": "x" * 32})
	eq(rc, 1, "posternd -t on a missing file")
	contains(out + err, c.env.path("no-such.conf"), "the message names the file")
