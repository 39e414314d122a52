"""Issue 2, Tests: no secret at rest in Redis, in posternd's log or in
posternctl's output. After tokens and accounts with known passwords are made
(over the API and posternctl), `redis-cli --scan` plus a dump of every key
(TYPE, then GET/HGETALL/SMEMBERS/ZRANGE/...) holds no plaintext token or
password (nor its hex or base64), and neither does the whole posternd log
(debug level) or any posternctl output, except a token in the output of the
`token create` that made it. Also: the admin socket is 0600, posternd -T
masks the secret, and posternd refuses to start without a secret."""

import json
import os
import stat
import subprocess

from harness import (Postern, basic_setup, check, contains, eq, expect_status, flatten_bytes,
    not_contains, secret_forms, token_id, uniq, wait_until)


def setup(env):
	c = basic_setup(env)
	c.passwords = []	# every password-like secret given to Postern
	c.tokens = []		# (token, id, how)
	c.accounts = []
	c.shown = []		# stored in clear (proxy URLs), never shown
	return c


def _pw(c, label):
	s = "Pw-%s-%s-Zq7" % (label, os.urandom(6).hex())
	c.passwords.append(s)
	return s


def _proxy(c, label):
	s = "Px-%s-%s-Zq7" % (label, os.urandom(6).hex())
	c.shown.append(s)
	return "socks5://proxyuser:%s@proxy.example.com:1080" % s


def _account(c, acct):
	return {"account": acct, "name": "Secret test", "email": "s@example.com",
	    "proxy": _proxy(c, "acct"),
	    "imap": {"host": "imap.example.com", "port": 993, "secure": True,
		"auth": {"user": "s@example.com", "pass": _pw(c, "imap")}},
	    "smtp": {"host": "smtp.example.com", "port": 465, "secure": True,
		"auth": {"user": "s@example.com", "pass": _pw(c, "smtp")}},
	    "oauth2": {"provider": "app", "auth": {"user": "s@gmail.com"},
		"refreshToken": _pw(c, "refresh"), "accessToken": _pw(c, "access")}}


def _populate(c):
	if c.accounts:
		return
	# Accounts: over the API, posternctl --file and posternctl stdin, one PUT.
	a1 = uniq("sec-api")
	expect_status(c.api.post("/v1/account", _account(c, a1)), 200, "POST account")
	a2 = uniq("sec-file")
	path = c.env.path(a2 + ".json")
	with open(path, "w") as f:
		json.dump(_account(c, a2), f)
	rc, out, err = c.p.ctl("account", "add", "--file", path)
	eq(rc, 0, "posternctl account add --file (%s)" % err)
	a3 = uniq("sec-stdin")
	rc, out, err = c.p.ctl("account", "add", "--file", "-", input=json.dumps(_account(c, a3)))
	eq(rc, 0, "posternctl account add --file - (%s)" % err)
	expect_status(c.api.put("/v1/account/" + a1, {"imap": {"host": "imap2.example.com", "port": 993,
	    "auth": {"user": "s@example.com", "pass": _pw(c, "put")}}}), 200, "PUT account with a new password")
	c.accounts = [a1, a2, a3]
	# Proxy URLs with a password: the account's and the proxyUrl setting.
	expect_status(c.api.post("/v1/settings", {"proxyUrl": _proxy(c, "setting")}), 200, "POST proxyUrl")
	c.p.ctl("settings", "get")
	c.p.ctl("settings", "get", "--json")
	# Tokens: API (both paths) and posternctl; use some (list, get, revoke
	# by token value so the token travels in a request path).
	for acct in c.accounts:
		for path in ("/v1/tokens", "/v1/token"):
			d = expect_status(c.api.post(path, {"account": acct, "description": "secret test",
			    "scopes": ["imap-proxy", "smtp"], "restrictions": {"addresses": ["127.0.0.0/8"]}}), 200, "POST " + path)
			c.tokens.append((d["token"], d["id"], "api"))
		d = c.p.ctl_json("token", "create", acct, "--scope", "smtp", "--description", "ctl secret test")
		c.tokens.append((d["token"], d["id"], "ctl"))
		rc, out, err = c.p.ctl("token", "create", acct, "--scope", "imap-proxy", "--description", "ctl table")
		eq(rc, 0, "token create (table)")
	for tok, tid, _ in c.tokens:
		eq(tid, token_id(tok), "id")
	# Tokens made by the table-form create: find them by listing.
	for acct in c.accounts:
		c.p.ctl("token", "list", acct)
		c.p.ctl("token", "list", acct, "--json")
		c.p.ctl("account", "show", acct)
		c.p.ctl("account", "show", acct, "--json")
		c.api.get("/v1/account/" + acct)
		c.api.get("/v1/tokens", params={"account": acct})
	c.p.ctl("account", "list")
	c.p.ctl("account", "list", "--json")
	revoked_by_token = c.tokens[0]
	eq(tuple(c.api.delete("/v1/token/" + revoked_by_token[0])), (200, {"deleted": True}), "revoke by token value")
	rc, _, _ = c.p.ctl("token", "revoke", c.tokens[1][0])
	eq(rc, 0, "posternctl token revoke TOKEN")
	c.api.get("/v1/tokens/" + c.tokens[2][1])
	# A failed request that carries a token (unknown now).
	c.api.delete("/v1/tokens/" + c.tokens[0][0])
	# Tokens inside a longer hex run or with something around them: the
	# log masks any run of 64+ hex digits, not only an exact segment.
	live = c.tokens[3][0]
	for path in ("/v1/token/%sx" % live, "/v1/tokens/ab%s" % live, "/v1/tokens/x-%s-y" % live.upper(),
	    "/v1/token/%s0%s" % (live, live)):
		c.api.get(path)
	wait_until(lambda: "path=/v1/token/<redacted>x " in c.p.log_text(), 5, "the masked path logged")


def _all_tokens(c):
	"""Tokens from c.tokens plus any 64-hex token printed by a table-form
	`token create` (whose sha256 is a known id)."""
	import re
	out = {t for t, _, _ in c.tokens}
	for argv, rc, so, se, _ in c.p.ctl_history:
		if "create" in argv and "token" in argv:
			for h in re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", so):
				out.add(h)
	ids = {token_id(t) for t in out}
	return [t for t in out if t not in ids]


def test_redis_holds_no_plaintext(c):
	_populate(c)
	keys = c.redis.scan_keys()
	check(keys, "redis-cli --scan found no keys at all: is the dump looking at the right Redis?")
	for k in keys:
		check(k.startswith("postern:"), "key %r outside [redis] prefix 'postern:'" % k)
	dump = c.redis.dump()
	blob = b"\n".join(k.encode() + b"\n" + t.encode() + b"\n" + flatten_bytes(v) for k, (t, v) in dump.items())
	# Sanity: the dump sees the data (ids are stored, per docs/API.md).
	some_id = c.tokens[-1][1]
	check(some_id.encode() in blob or bytes.fromhex(some_id) in blob,
	    "token id %s... not found anywhere in the Redis dump (%d keys): the dump is not seeing the store" % (some_id[:12], len(dump)))
	leaks = []
	for s in c.passwords + _all_tokens(c) + [c.p.secret]:
		for form in secret_forms(s):
			if form in blob:
				key = next((k for k, (t, v) in dump.items() if form in k.encode() + flatten_bytes(v)), "?")
				leaks.append("%s... (as %r...) in key %s" % (s[:10], form[:12], key))
				break
	check(not leaks, "plaintext secrets in Redis:\n  " + "\n  ".join(leaks))


def test_posternd_log_has_no_secret(c):
	_populate(c)
	log = c.p.log_text()
	check(log.strip(), "posternd log is empty: is log_level = debug writing to stderr?")
	for s in c.passwords + c.shown + _all_tokens(c) + [c.p.secret]:
		not_contains(log, s, "posternd log (%s)" % c.p.log_path)
		for form in secret_forms(s)[1:]:
			not_contains(log.encode(), form, "posternd log, encoded secret")


def test_ctl_outputs_have_no_secret(c):
	_populate(c)
	tokens = _all_tokens(c)
	for argv, rc, out, err, stdin in c.p.ctl_history:
		cmd = " ".join(argv[3:])
		creating = "token" in argv and "create" in argv
		for s in c.passwords + c.shown + [c.p.secret]:
			not_contains(out + err, s, "posternctl %s output" % cmd)
		for t in tokens:
			not_contains(err, t, "posternctl %s stderr" % cmd)
			if creating and t in out:
				continue	# shown once, by the create that made it
			not_contains(out, t, "posternctl %s output" % cmd)


def test_get_and_list_return_no_secret(c):
	_populate(c)
	texts = []
	for acct in c.accounts:
		texts.append(c.api.get("/v1/account/" + acct).raw)
		texts.append(c.api.get("/v1/tokens", params={"account": acct, "pageSize": 1000}).raw)
		texts.append(c.api.get("/v1/tokens/account/" + acct).raw)
	texts.append(c.api.get("/v1/accounts", params={"pageSize": 1000}).raw)
	texts.append(c.api.get("/v1/settings").raw)
	for tok, tid, _ in c.tokens:
		texts.append(c.api.get("/v1/tokens/" + tid).raw)
	blob = b"\n".join(texts)
	for s in c.passwords + c.shown + _all_tokens(c) + [c.p.secret]:
		for form in secret_forms(s):
			not_contains(blob, form, "API responses")


def test_admin_socket_mode_0600(c):
	st = os.stat(c.p.admin_sock)
	check(stat.S_ISSOCK(st.st_mode), "admin socket is a socket")
	eq(oct(st.st_mode & 0o777), oct(0o600), "admin socket mode")


def test_config_dump_masks_secret(c):
	p = Postern(c.env, c.redis, name="posternd-T", wait_listeners=False,
	    extra={"postern": {"secret_file": c.env.path("secret-file")}})
	with open(c.env.path("secret-file"), "w") as f:
		f.write("file-secret-" + os.urandom(16).hex() + "\n")
	os.chmod(c.env.path("secret-file"), 0o600)
	file_secret = open(c.env.path("secret-file")).read().strip()
	p.write_conf()
	for extra_env in ({"POSTERN_SECRET": p.secret}, {}):
		rc, out, err = c.env.run([c.env.bin("posternd"), "-T", "-c", p.conf_path], extra_env=extra_env,
		    unset_env=("POSTERN_SECRET",))
		eq(rc, 0, "posternd -T (%s)" % err[-300:])
		contains(out, "[redis]", "posternd -T prints the effective config")
		not_contains(out + err, p.secret, "posternd -T output")
		not_contains(out + err, file_secret, "posternd -T output")


def _run_no_secret(c, conf):
	try:
		return c.env.run([c.env.bin("posternd"), "-f", "-c", conf], timeout=10, unset_env=("POSTERN_SECRET",))
	except subprocess.TimeoutExpired:
		check(False, "posternd kept running for 10s without a secret (killed)")


def test_no_secret_refuses_to_start(c):
	p = Postern(c.env, c.redis, name="posternd-nosecret", secret=None, wait_listeners=False)
	p.write_conf()
	rc, out, err = _run_no_secret(c, p.conf_path)
	check(rc != 0, "posternd without a secret must refuse to start (exit %d)" % rc)
	contains((out + err).lower(), "secret", "the message says what is missing")
	check(not os.path.exists(p.admin_sock), "no admin socket left behind")
	rc, out, err = c.env.run([c.env.bin("posternd"), "-t", "-c", p.conf_path], timeout=20,
	    unset_env=("POSTERN_SECRET",))
	check(rc != 0, "posternd -t without a secret fails too (exit %d)" % rc)
	# An empty secret file is no secret either.
	empty = c.env.path("empty-secret")
	open(empty, "w").close()
	os.chmod(empty, 0o600)
	p2 = Postern(c.env, c.redis, name="posternd-emptysecret", secret=None, wait_listeners=False,
	    extra={"postern": {"secret_file": empty}})
	p2.write_conf()
	rc, out, err = _run_no_secret(c, p2.conf_path)
	check(rc != 0, "posternd with an empty secret file must refuse to start (exit %d)" % rc)
	contains((out + err).lower(), "secret", "the message says what is wrong")


def _ctl_from(c, name, owner, dir_mode=0o755):
	"""Runs a copy of posternctl (so that no checkout socket is near the
	binary) with no -s and no POSTERN_ADMIN_SOCKET, from a directory that
	holds run/admin.sock owned by uid `owner`. Returns (rc, stderr, whether
	the planted socket was connected to)."""
	import shutil
	import socket
	import threading
	base = c.env.path("ctl-" + name)
	os.makedirs(os.path.join(base, "bin"))
	os.makedirs(os.path.join(base, "cwd", "run"))
	os.chmod(os.path.join(base, "cwd", "run"), dir_mode)
	ctl = os.path.join(base, "bin", "posternctl")
	shutil.copy(c.env.bin("posternctl"), ctl)
	sock_path = os.path.join(base, "cwd", "run", "admin.sock")
	srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	srv.bind(sock_path)
	srv.listen(4)
	srv.settimeout(0.2)
	os.chown(sock_path, owner, owner)
	contacted = []
	stop = threading.Event()

	def accept():
		while not stop.is_set():
			try:
				conn, _ = srv.accept()
			except socket.timeout:
				continue
			contacted.append(True)
			conn.close()
	t = threading.Thread(target=accept, daemon=True)
	t.start()
	env = dict(os.environ)
	env.pop("POSTERN_ADMIN_SOCKET", None)
	try:
		p = subprocess.run([ctl, "health"], capture_output=True, timeout=30, cwd=os.path.join(base, "cwd"),
		    env=env)
	finally:
		stop.set()
		t.join(5)
		srv.close()
	return p.returncode, p.stderr.decode("utf-8", "replace"), bool(contacted)


def test_ctl_ignores_foreign_socket_in_cwd(c):
	"""A run/admin.sock in the current directory (say /tmp/run/admin.sock,
	planted by another local user) must not receive posternctl's requests,
	which carry passwords for `account add`; one of our own still works."""
	if os.geteuid() != 0:
		c.env.note("not root: cannot make a socket owned by another user; foreign case skipped")
	else:
		rc, err, contacted = _ctl_from(c, "foreign", 65534)
		check(not contacted, "posternctl connected to a socket owned by another user")
		eq(rc, 1, "no usable socket (%s)" % err)
		contains(err, "./run/admin.sock (ignored: not owned by you)", "the skipped socket is named")
	rc, err, contacted = _ctl_from(c, "worldwritable", os.geteuid(), dir_mode=0o777)
	check(not contacted, "posternctl connected to a socket in a world-writable directory")
	contains(err, "./run/admin.sock (ignored: its directory is not yours alone)", "the skipped socket is named")
	rc, err, contacted = _ctl_from(c, "own", os.geteuid())
	check(contacted, "posternctl did not use our own ./run/admin.sock (%s)" % err)
