"""Issue 3: IMAP pre-login and the login check. Greeting, capabilities on
both listeners, STARTTLS, LOGIN and AUTHENTICATE PLAIN (imaplib and raw),
every EmailEngine error text, Redis down, and the failure delay."""

import base64
import imaplib
import re
import time

from harness import check, contains, eq, expect_status, matches, token_id, uniq, wait_until
from imapc import (GREETING_RE, NO_ACCOUNT, NO_IP, NO_SCOPE, NO_TEMP, NO_TOKEN, NO_USER,
    PRE_CAPS_PLAIN, PRE_CAPS_TLS, FakeServer, Raw, dovecot_account, expect_login_ok, imap_setup,
    login_raw, plain_ir, quote, recv_line, tagged, token_for, session_log)

USER = "alice@example.test"


def setup(env):
	c = imap_setup(env, users={USER: "alice-pw"})
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct)
	return c


def test_greeting_and_capability_tls(c):
	with Raw(c.p.imap_tls) as r:
		g = r.read_greeting()
		m = GREETING_RE.match(g)
		check(m is not None, "greeting format: %r" % g)
		eq(m.group(1), b"127.0.0.1", "client address in the greeting")
		resp = r.cmd("c1", "CAPABILITY")
		eq(resp, b"* CAPABILITY " + PRE_CAPS_TLS + b"\r\nc1 OK Capability completed\r\n", "CAPABILITY on 2993")
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "NOOP")
		resp = r.cmd("i1", 'ID ("name" "test")')
		matches(r'^\* ID \("name" "Postern" "version" "[^"]+"\)\r\ni1 OK ID completed\r\n$', resp.decode(), "ID")
		eq(r.cmd("x1", "SELECT INBOX"), b"x1 BAD Command not available before authentication\r\n", "SELECT before login")
		eq(r.cmd("s1", "STARTTLS"), b"s1 BAD TLS is already active\r\n", "STARTTLS on the TLS port")
		eq(r.cmd("l1", "LOGOUT"), b"* BYE Logging out\r\nl1 OK Logout completed\r\n", "LOGOUT")
		eq(r.expect_eof(), b"", "closed after LOGOUT")


def test_tls_versions(c):
	"""TLS 1.2 and 1.3 are accepted; whatever is negotiated uses an AEAD
	cipher (the modern default list)."""
	import ssl
	for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
		ctx = c.env.ssl_context()
		ctx.minimum_version = ctx.maximum_version = v
		with Raw(c.p.imap_tls, ctx=ctx) as r:
			check(GREETING_RE.match(r.read_greeting()), "greeting over %s" % v.name)
			name, proto, bits = r.sock.cipher()
			eq(r.sock.version(), v.name.replace("_", "."), "negotiated version")
			check("GCM" in name or "CHACHA20" in name, "AEAD cipher over %s: %s" % (v.name, name))


def test_session_ids_differ(c):
	ids = set()
	for _ in range(3):
		with Raw(c.p.imap_tls) as r:
			ids.add(GREETING_RE.match(r.read_greeting()).group(2))
	eq(len(ids), 3, "each connection gets its own session id")


def test_plaintext_listener_capabilities_and_starttls(c):
	with Raw(c.p.imap_starttls, "plain") as r:
		check(GREETING_RE.match(r.read_greeting()), "greeting on 2143: %r" % r.greeting)
		eq(r.cmd("c1", "CAPABILITY"), b"* CAPABILITY " + PRE_CAPS_PLAIN + b"\r\nc1 OK Capability completed\r\n",
		    "CAPABILITY before STARTTLS: LOGINDISABLED, no AUTH=")
		refuse = b"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections, use STARTTLS first"
		eq(r.cmd("l1", "LOGIN %s %s" % (c.acct, quote(c.tok))), b"l1 " + refuse + b"\r\n", "LOGIN before STARTTLS")
		eq(r.cmd("a1", "AUTHENTICATE PLAIN " + plain_ir(c.acct, c.tok)), b"a1 " + refuse + b"\r\n",
		    "AUTHENTICATE before STARTTLS")
		eq(r.cmd("s1", "STARTTLS"), b"s1 OK Begin TLS negotiation now\r\n", "STARTTLS")
		r.starttls()
		eq(r.cmd("c2", "CAPABILITY"), b"* CAPABILITY " + PRE_CAPS_TLS + b"\r\nc2 OK Capability completed\r\n",
		    "CAPABILITY after STARTTLS")
		eq(r.cmd("s2", "STARTTLS"), b"s2 BAD TLS is already active\r\n", "second STARTTLS")
		expect_login_ok(r.cmd("l2", "LOGIN %s %s" % (c.acct, quote(c.tok))), "l2", c.acct)
		resp = r.cmd("n2", "NOOP")
		eq(tagged(resp, "n2")[:6], b"n2 OK ", "NOOP relayed to Dovecot")


def test_starttls_discards_pipelined_plaintext(c):
	"""CVE-2011-0411: a command sent in clear right behind STARTTLS must not
	be executed inside TLS."""
	with Raw(c.p.imap_starttls, "plain") as r:
		r.read_greeting()
		r.send(b"s1 STARTTLS\r\nx1 CAPABILITY\r\n")
		eq(r.line(), b"s1 OK Begin TLS negotiation now\r\n", "STARTTLS answer")
		eq(r.buf, b"", "nothing else in clear")
		r.starttls()
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "first answer inside TLS is ours, not x1's")


def test_imaplib_starttls_login(c):
	m = imaplib.IMAP4("localhost", c.p.imap_starttls, timeout=10)
	try:
		check(b"LOGINDISABLED" in m.capabilities or "LOGINDISABLED" in m.capabilities, "imaplib sees LOGINDISABLED")
		m.starttls(ssl_context=c.env.ssl_context())
		typ, data = m.login(c.acct, c.tok)
		eq((typ, data), ("OK", [("%s authenticated" % c.acct).encode()]), "imaplib LOGIN after STARTTLS")
		typ, data = m.select("INBOX")
		eq(typ, "OK", "SELECT through the relay")
		m.logout()
	finally:
		try:
			m.shutdown()
		except OSError:
			pass


def test_login_imaplib_tls(c):
	m = imaplib.IMAP4_SSL("localhost", c.p.imap_tls, ssl_context=c.env.ssl_context(), timeout=10)
	typ, data = m.login(c.acct, c.tok)
	eq((typ, data), ("OK", [("%s authenticated" % c.acct).encode()]), "imaplib LOGIN")
	typ, data = m.capability()
	eq(typ, "OK", "CAPABILITY after login (Dovecot's)")
	check(b"IDLE" in data[0], "post-login capabilities are Dovecot's: %r" % data)
	eq(m.logout()[0], "BYE", "LOGOUT relayed")


def test_login_raw_capabilities(c):
	r, resp = login_raw(c.p.imap_tls, c.acct, c.tok)
	with r:
		caps = expect_login_ok(resp, "a1", c.acct)
		check(b"IDLE" in caps, "Dovecot's post-login capabilities: %r" % caps)
		resp = r.cmd("c1", "CAPABILITY")
		line = resp.split(b"\r\n")[0]
		# Dovecot's own list less what only applies before login.
		want = [x for x in line.split()[2:] if x not in (b"SASL-IR", b"STARTTLS", b"LOGINDISABLED")
		    and not x.startswith(b"AUTH=")]
		eq(sorted(caps), sorted(want), "untagged CAPABILITY at login = Dovecot's post-login list")


def test_login_forms(c):
	"""Quoted, atom-like and literal arguments all reach the login check."""
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a1 LOGIN {%d}\r\n" % len(c.acct))
		eq(r.line(), b"+ Ready for literal data\r\n", "synchronizing literal continuation")
		r.send(c.acct.encode() + b" {64}\r\n")
		eq(r.line(), b"+ Ready for literal data\r\n", "second continuation")
		r.send(c.tok.encode() + b"\r\n")
		expect_login_ok(r.response("a1"), "a1", c.acct)
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a2 LOGIN {%d+}\r\n%s {64+}\r\n%s\r\n" % (len(c.acct), c.acct.encode(), c.tok.encode()))
		expect_login_ok(r.response("a2"), "a2", c.acct)
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		expect_login_ok(r.cmd("a3", "login %s %s" % (quote(c.acct), c.tok)), "a3", c.acct)


def test_authenticate_plain(c):
	# SASL-IR (RFC 4959).
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		expect_login_ok(r.cmd("a1", "AUTHENTICATE PLAIN " + plain_ir(c.acct, c.tok)), "a1", c.acct)
	# Continuation form.
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a2 AUTHENTICATE PLAIN\r\n")
		eq(r.line(), b"+ \r\n", "empty continuation")
		r.send(plain_ir(c.acct, c.tok) + "\r\n")
		expect_login_ok(r.response("a2"), "a2", c.acct)
	# "*" cancels (RFC 9051 6.2.2), and the session goes on.
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a3 AUTHENTICATE PLAIN\r\n")
		eq(r.line(), b"+ \r\n", "continuation")
		r.send(b"*\r\n")
		eq(r.line(), b"a3 BAD Authentication cancelled\r\n", "cancelled")
		expect_login_ok(r.cmd("a4", "AUTHENTICATE PLAIN " + plain_ir(c.acct, c.tok)), "a4", c.acct)
	# Bad base64 and unknown mechanism.
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		eq(r.cmd("a5", "AUTHENTICATE PLAIN !!!!"), b"a5 BAD Invalid SASL PLAIN response\r\n", "bad base64")
		eq(r.cmd("a6", "AUTHENTICATE CRAM-MD5"), b"a6 NO [CANNOT] Unsupported authentication mechanism\r\n",
		    "unsupported mechanism")
	# imaplib's authenticate() waits for "+" (no SASL-IR).
	m = imaplib.IMAP4_SSL("localhost", c.p.imap_tls, ssl_context=c.env.ssl_context(), timeout=10)
	typ, data = m.authenticate("PLAIN", lambda _: b"\0" + c.acct.encode() + b"\0" + c.tok.encode())
	eq((typ, data), ("OK", [("%s authenticated" % c.acct).encode()]), "imaplib AUTHENTICATE PLAIN")
	m.logout()


def _login_fails(c, account, token, expect, port=None, authenticate=False):
	with Raw(port or c.p.imap_tls) as r:
		r.read_greeting()
		if authenticate:
			resp = r.cmd("f1", "AUTHENTICATE PLAIN " + plain_ir(account, token))
		else:
			resp = r.cmd("f1", "LOGIN %s %s" % (quote(account), quote(token)))
		eq(resp, b"f1 " + expect + b"\r\n", "login of %s" % account)
		# A failed login leaves the session usable.
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "NOOP after a failed login")


def test_wrong_token(c):
	_login_fails(c, c.acct, "0" * 64, NO_TOKEN)
	_login_fails(c, c.acct, "not-a-token", NO_TOKEN)
	_login_fails(c, c.acct, c.tok[:-1] + ("0" if c.tok[-1] != "0" else "1"), NO_TOKEN, authenticate=True)


def test_wrong_account(c):
	other = dovecot_account(c.p, c.dovecot, USER)
	_login_fails(c, other, c.tok, NO_USER)
	_login_fails(c, "no-such-account", c.tok, NO_USER)


def test_missing_scope(c):
	for scopes in (["smtp"], ["api"], ["smtp", "api"]):
		tok = token_for(c.p, c.acct, scopes=scopes)
		_login_fails(c, c.acct, tok, NO_SCOPE)
	tok = token_for(c.p, c.acct, scopes=["*"])
	r, resp = login_raw(c.p.imap_tls, c.acct, tok)
	with r:
		expect_login_ok(resp, "a1", c.acct)


def test_ip_restrictions(c):
	tok = token_for(c.p, c.acct, restrictions={"addresses": ["10.0.0.0/8", "2001:db8::/32"]})
	_login_fails(c, c.acct, tok, NO_IP)
	tok = token_for(c.p, c.acct, restrictions={"addresses": ["10.0.0.0/8", "127.0.0.0/8"]})
	r, resp = login_raw(c.p.imap_tls, c.acct, tok)
	with r:
		expect_login_ok(resp, "a1", c.acct)


def test_expired_token(c):
	tok = token_for(c.p, c.acct, ttl=1)
	tid = token_id(tok)
	# Poll until the token has expired: the admin API stops showing it.
	wait_until(lambda: c.api.get("/v1/tokens/" + tid)[0] == 404, 10, "token with ttl 1 to expire")
	_login_fails(c, c.acct, tok, NO_TOKEN)


def test_token_use_recorded(c):
	tok = token_for(c.p, c.acct)
	d = expect_status(c.api.get("/v1/tokens/" + token_id(tok)), 200, "GET token")
	check("lastUsed" not in d, "unused token has no lastUsed: %r" % d)
	r, resp = login_raw(c.p.imap_tls, c.acct, tok)
	r.close()
	d = wait_until(lambda: (lambda d: d if "lastUsed" in d else None)(c.api.get("/v1/tokens/" + token_id(tok))[1]),
	    5, "lastUsed recorded")
	eq(d.get("ip"), "127.0.0.1", "last IP recorded")


def test_revoked_token_refused(c):
	tok = token_for(c.p, c.acct)
	r, resp = login_raw(c.p.imap_tls, c.acct, tok)
	with r:
		expect_login_ok(resp, "a1", c.acct)
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		_login_fails(c, c.acct, tok, NO_TOKEN)
		# revoke_closes_sessions is off here: the live session continues.
		resp = r.cmd("s1", "SELECT INBOX")
		check(tagged(resp, "s1").startswith(b"s1 OK "), "live session after revocation: %r" % resp)
		resp = r.cmd("n1", "NOOP")
		check(tagged(resp, "n1").startswith(b"n1 OK "), "NOOP after revocation: %r" % resp)


def test_account_missing(c):
	# An account without IMAP settings.
	acct = uniq("smtponly")
	c.p.add_account(acct, smtp={"host": "127.0.0.1", "port": 25, "auth": {"user": "u", "pass": "p"}})
	tok = token_for(c.p, acct)
	_login_fails(c, acct, tok, NO_ACCOUNT)
	# The account record vanished behind the token's back (deleting the
	# account through the API revokes its tokens, so go to Redis).
	acct2 = dovecot_account(c.p, c.dovecot, USER)
	tok2 = token_for(c.p, acct2)
	eq(c.redis.cmd("DEL", "postern:acct:" + acct2), 1, "DEL account hash")
	_login_fails(c, acct2, tok2, NO_ACCOUNT)


def test_redis_down(c):
	try:
		c.redis.pause()
		for port in (c.p.imap_tls,):
			with Raw(port) as r:
				r.read_greeting()
				t0 = time.monotonic()
				resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)), timeout=15)
				dt = time.monotonic() - t0
				eq(resp, b"a1 " + NO_TEMP + b"\r\n", "LOGIN with Redis hung")
				check(dt < 1.0 + 2.0, "answered in %.2fs, want within the 1s Redis timeout (+2s)" % dt)
		c.redis.resume()
		c.redis.stop()
		with Raw(c.p.imap_tls) as r:
			r.read_greeting()
			t0 = time.monotonic()
			resp = r.cmd("a2", "LOGIN %s %s" % (c.acct, quote(c.tok)), timeout=15)
			eq(resp, b"a2 " + NO_TEMP + b"\r\n", "LOGIN with Redis stopped")
			check(time.monotonic() - t0 < 3.0, "answered quickly with Redis stopped")
	finally:
		if c.redis.proc.stopped:
			c.redis.resume()
		if not c.redis.alive():
			c.redis.start()

	# Redis runs without persistence: the restart lost the records.
	wait_until(lambda: c.api.get("/health")[0] == 200, 20, "admin API sees Redis again", interval=0.1)
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct)

	def ok():
		r, resp = login_raw(c.p.imap_tls, c.acct, c.tok)
		r.close()
		return resp.endswith(b"a1 OK %s authenticated\r\n" % c.acct.encode())
	wait_until(ok, 20, "logins work again once Redis is back", interval=0.1)


def test_three_failed_logins_bye(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		for i in range(2):
			eq(r.cmd("f%d" % i, "LOGIN %s %s" % (c.acct, "0" * 64)), b"f%d %s\r\n" % (i, NO_TOKEN), "failure %d" % i)
		r.send(b"f2 LOGIN %s %s\r\n" % (c.acct.encode(), b"0" * 64))
		eq(r.line(), b"f2 " + NO_TOKEN + b"\r\n", "third failure")
		eq(r.line(), b"* BYE Too many failed logins\r\n", "BYE after the third failure")
		eq(r.expect_eof(), b"", "closed")


def test_nothing_after_logout(c):
	"""Commands pipelined behind LOGOUT are neither answered nor run: a
	LOGIN there never reaches the login check or the upstream."""
	bye = b"* BYE Logging out\r\na OK Logout completed\r\n"
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a LOGOUT\r\nb NOOP\r\n")
		eq(r.expect_eof(), bye, "LOGOUT then NOOP")
	acct = dovecot_account(c.p, c.dovecot, USER)
	tok = token_for(c.p, acct)
	with Raw(c.p.imap_tls) as r:
		sid = GREETING_RE.match(r.read_greeting()).group(2).decode()
		r.send(b"a LOGOUT\r\nb LOGIN %s %s\r\n" % (acct.encode(), quote(tok).encode()))
		eq(r.expect_eof(), bye, "LOGOUT then LOGIN")
	lines = session_log(c.p, sid)
	eq([l for l in lines if "event=login" in l], [], "login attempts after LOGOUT")
	eq(c.redis.cmd("ZCARD", "postern:conn:" + acct), 0, "connection slots taken")


def _read_login(conn, record):
	"""Reads the proxy's LOGIN (literals, LITERAL+) on a fake upstream;
	returns its tag, or None on EOF."""
	ln = recv_line(conn)
	record(ln)
	m = re.match(rb"^(\S+) LOGIN ", ln)
	if not m:
		return None
	while ln.endswith(b"+}\r\n"):
		ln = recv_line(conn)
		record(ln)
	return m.group(1)


def _fake_upstream(c, handler):
	srv = FakeServer(c.env, handler)
	acct = uniq("fake")
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
	    "auth": {"user": "u", "pass": "p"}})
	return srv, acct


LONG_CAPS = b" ".join(b"X-LONG-CAPABILITY-%04d" % i for i in range(300))	# ~7 KB


def _long_caps_server(conn, record):
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n")
	tag = _read_login(conn, record)
	if tag is None:
		return
	conn.sendall(b"%s OK [CAPABILITY IMAP4rev1 SASL-IR IDLE AUTH=PLAIN %s STARTTLS] logged in\r\n" % (
	    tag, LONG_CAPS))
	while True:
		ln = recv_line(conn)
		if not ln:
			return
		conn.sendall(b"%s OK done\r\n" % ln.split(b" ", 1)[0])


def test_long_upstream_capabilities(c):
	"""A capability list of several KB reaches the client whole, filtered
	as usual, and the tagged OK follows it."""
	srv, acct = _fake_upstream(c, _long_caps_server)
	try:
		r, resp = login_raw(c.p.imap_tls, acct, token_for(c.p, acct), timeout=5)
		with r:
			eq(resp, b"* CAPABILITY IMAP4rev1 IDLE " + LONG_CAPS + b"\r\na1 OK %s authenticated\r\n" % acct.encode(),
			    "login response with a 7 KB capability list")
			eq(r.cmd("n1", "NOOP"), b"n1 OK done\r\n", "relayed after it")
	finally:
		srv.stop()


UP_REJECTED = b"NO [UNAVAILABLE] Upstream server rejected the login: [AUTHENTICATIONFAILED] Authentication failed."


def test_upstream_rejections_counted(c):
	"""The upstream refusing the stored password counts as a failed login:
	the third ends with the same BYE as three bad tokens (a client must
	not be able to hammer the real server into locking the mailbox)."""
	acct = dovecot_account(c.p, c.dovecot, USER, password="not-alice-pw")
	tok = token_for(c.p, acct)
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		for i in range(2):
			eq(r.cmd("f%d" % i, "LOGIN %s %s" % (acct, quote(tok)), timeout=15),
			    b"f%d %s\r\n" % (i, UP_REJECTED), "upstream rejection %d" % i)
		r.send(b"f2 LOGIN %s %s\r\n" % (acct.encode(), quote(tok).encode()))
		eq(r.line(timeout=15), b"f2 %s\r\n" % UP_REJECTED, "third rejection")
		eq(r.line(), b"* BYE Too many failed logins\r\n", "BYE after the third rejection")
		eq(r.expect_eof(), b"", "closed")
	# Not being able to reach the upstream is not the client's failure.
	acct, port = uniq("down"), c.env.port()
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": port, "secure": False, "starttls": "never",
	    "auth": {"user": "u", "pass": "p"}})
	tok = token_for(c.p, acct)
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		for i in range(4):
			eq(r.cmd("u%d" % i, "LOGIN %s %s" % (acct, quote(tok)), timeout=15),
			    b"u%d NO [UNAVAILABLE] Upstream server unavailable: connect to 127.0.0.1:%d: Connection refused"
			    b"\r\n" % (i, port), "connect failure %d" % i)
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "still usable after connect failures")
