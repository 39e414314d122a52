"""Issue 3, points 2 and 6: the pre-login parser over awkward input (one
byte at a time, literals split across packets, LITERAL+), garbage, an
over-long line and literal, the bad-command and failed-login limits, the
login timeout, the failure delay, and the per-account connection limit
(default 10, per account maxConnections, shared by two posternd on one
Redis, slot freed when a session ends)."""

import os
import random
import re
import socket
import subprocess
import threading
import time

from harness import check, contains, eq, expect_status, uniq, wait_until
from imapc import (NO_LIMIT, NO_TEMP, NO_TOKEN, NO_USER, Closed, FakeServer, Raw, dovecot_account, expect_login_ok, imap_setup,
    login_raw, merge_extra, DelayProxy, plain_ir, quote, recv_line, rss_kb, tagged, token_for, worker_pid)

USER = "alice@example.test"
LOGIN_TIMEOUT = 2.0
FAILURE_DELAY = 1.0


def setup(env):
	c = imap_setup(env, users={USER: "alice-pw"})
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct)
	# A second daemon on the same Redis: short login timeout, a real
	# failure delay.
	c.b = env.postern(c.redis, name="posternd-b", secret=c.p.secret, extra=merge_extra(env, {
	    "imap": {"login_timeout": "2s", "failure_delay": "1s", "allow_plaintext_auth": "yes"}}))
	c.wpid = worker_pid(c.p)
	return c


def _alive(c):
	eq(worker_pid(c.p), c.wpid, "the same worker still serves (no crash, no restart)")
	r, resp = login_raw(c.p.imap_tls, c.acct, c.tok)
	with r:
		expect_login_ok(resp, "a1", c.acct)


def test_command_one_byte_at_a_time(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send_bytewise(b"c1 CAPABILITY\r\n")
		eq(tagged(r.response("c1"), "c1"), b"c1 OK Capability completed", "CAPABILITY sent bytewise")
		r.send_bytewise(b"a1 LOGIN %s %s\r\n" % (c.acct.encode(), quote(c.tok).encode()))
		expect_login_ok(r.response("a1"), "a1", c.acct)
		# After login the relay passes single bytes on too.
		r.send_bytewise(b"n1 NOOP\r\n")
		check(tagged(r.response("n1"), "n1").startswith(b"n1 OK"), "NOOP sent bytewise through the relay")
	with Raw(c.p.imap_starttls, "plain") as r:
		r.read_greeting()
		r.send_bytewise(b"s1 STARTTLS\r\n")
		eq(r.line(), b"s1 OK Begin TLS negotiation now\r\n", "STARTTLS sent bytewise")
		r.starttls()
		r.send_bytewise(b"a1 AUTHENTICATE PLAIN\r\n")
		eq(r.line(), b"+ \r\n", "continuation")
		r.send_bytewise(plain_ir(c.acct, c.tok).encode() + b"\r\n")
		expect_login_ok(r.response("a1"), "a1", c.acct)


def test_literal_split_across_packets(c):
	acct, tok = c.acct.encode(), c.tok.encode()
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a1 LOGIN {%d}\r\n" % len(acct))
		eq(r.line(), b"+ Ready for literal data\r\n", "continuation")
		r.send(acct[:3])
		r.send(acct[3:] + b" {64")
		r.send(b"}\r")
		r.send(b"\n")
		eq(r.line(), b"+ Ready for literal data\r\n", "second continuation")
		for i in range(0, 64, 10):
			r.send(tok[i:i + 10])
		r.send(b"\r")
		r.send(b"\n")
		expect_login_ok(r.response("a1"), "a1", c.acct)
	# LITERAL+: no continuation, the bytes follow in several packets.
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		data = b"a2 LOGIN {%d+}\r\n%s {64+}\r\n%s\r\n" % (len(acct), acct, tok)
		for i in range(0, len(data), 7):
			r.send(data[i:i + 7])
		expect_login_ok(r.response("a2"), "a2", c.acct)
	# A literal with quotes, spaces and CRLF inside is taken verbatim.
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		weird = b'x "y"\r\nz'
		r.send(b"a3 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(weird), weird, len(tok), tok))
		eq(r.response("a3"), b"a3 NO [AUTHENTICATIONFAILED] Access denied, invalid username\r\n",
		    "account name with CRLF inside a literal")


def test_literal_limits(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		eq(r.cmd("a1", "LOGIN {100000}"), b"a1 BAD Literal too large\r\n", "synchronizing literal over literal_max")
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "session usable after the refused literal")
		eq(r.cmd("a2", "LOGIN {99999999999999999999}"), b"a2 BAD Invalid literal size\r\n", "overflowing size")
		r.send(b"a3 LOGIN {100000+}\r\n")
		eq(r.line(), b"* BYE Literal too large\r\n", "LITERAL+ over literal_max cannot be skipped: BYE")
		eq(r.expect_eof(), b"", "closed")
	_alive(c)


def test_garbage_before_login(c):
	rnd = random.Random(3)
	junk = bytes(rnd.randrange(256) for _ in range(4000))
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(junk + b"\r\n" * 12)
		lines = []
		try:
			while True:
				lines.append(r.line())
		except Closed:
			pass
		check(len(lines) >= 2, "some answers: %r" % lines)
		check(all(l.endswith(b"\r\n") for l in lines), "CRLF-terminated answers")
		check(all(b" BAD " in l for l in lines[:-1]), "BAD for each garbage command: %r" % lines)
		eq(lines[-1], b"* BYE Too many invalid commands\r\n", "BYE once bad_commands_max (10) is reached")
	_alive(c)


def test_bad_commands_limit(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		for i in range(9):
			eq(r.cmd("b%d" % i, "FROB"), b"b%d BAD Command not available before authentication\r\n" % i, "bad %d" % i)
		r.send(b"b9 FROB\r\n")
		eq(r.line(), b"b9 BAD Command not available before authentication\r\n", "tenth")
		eq(r.line(), b"* BYE Too many invalid commands\r\n", "BYE at the tenth")
		eq(r.expect_eof(), b"", "closed")
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"\x01\x02 NOOP\r\n")
		eq(r.line(), b"* BAD Invalid tag\r\n", "invalid tag")
		eq(r.cmd("y", ""), b"y BAD Missing command\r\n", "missing command")
		r.send(b"\r\n")
		eq(r.line(), b"* BAD Empty command\r\n", "empty line")
		r.send(b"t" * 40 + b" NOOP\r\n")
		eq(r.line(), b"* BAD Tag too long\r\n", "over-long tag")
		eq(r.cmd("q", 'LOGIN "unterminated'), b"q BAD Unterminated quoted string\r\n", "unterminated quoted")
		eq(r.cmd("l", "LOGIN onlyone"), b"l BAD Invalid arguments\r\n", "LOGIN with one argument")
		eq(r.cmd("n", "NOOP"), b"n OK NOOP completed\r\n", "still usable")


def test_long_line_before_login(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		try:
			r.send(b"a1 LOGIN " + b"x" * 100 * 1024 + b"\r\n")
		except OSError:	# the server may stop reading first
			pass
		eq(r.line(), b"* BYE Line too long\r\n", "100 KB line")
		r.expect_eof()
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		# No line end at all: closed once line_max is reached.
		try:
			r.send(b"y" * 100 * 1024)
		except OSError:	# the server may stop reading first
			pass
		eq(r.line(), b"* BYE Line too long\r\n", "100 KB without CRLF")
		r.expect_eof()
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		r.send(b"a2 AUTHENTICATE PLAIN\r\n")
		eq(r.line(), b"+ \r\n", "continuation")
		try:
			r.send(b"A" * 100 * 1024 + b"\r\n")
		except OSError:	# the server may stop reading first
			pass
		eq(r.line(), b"* BYE Line too long\r\n", "100 KB SASL response")
		r.expect_eof()
	_alive(c)


def test_over_long_line_reply_survives(c):
	"""Lingering close: posternd stops reading at line_max and says BYE; a
	client still sending its 768 KB line must be able to finish the write
	and read the BYE, not get a reset (closing with unread input sends a
	RST; over TLS the client's write fails)."""
	for i in range(4):
		with Raw(c.p.imap_tls) as r:
			r.read_greeting()
			r.send(b"a%d LOGIN " % i + b"x" * 768 * 1024 + b"\r\n")
			eq(r.line(timeout=10), b"* BYE Line too long\r\n", "BYE after a 768 KB line (%d)" % i)
			r.expect_eof()


def test_login_timeout(c):
	# A logged-in session on the same daemon is not affected by it.
	live, resp = login_raw(c.b.imap_tls, c.acct, c.tok)
	expect_login_ok(resp, "a1", c.acct)
	with Raw(c.b.imap_starttls, "plain") as r, Raw(c.b.imap_tls, "none") as silent:
		t0 = time.monotonic()
		r.read_greeting()
		eq(r.line(timeout=10), b"* BYE Login timeout, closing connection\r\n", "BYE at the login timeout")
		r.expect_eof()
		dt = time.monotonic() - t0
		check(dt >= LOGIN_TIMEOUT - 0.2, "BYE after %.2fs, want >= %.1fs" % (dt, LOGIN_TIMEOUT))
		# Counted from accept: a client that never starts TLS is closed
		# too, at the same time (no BYE can reach it).
		silent.expect_eof(timeout=10)
		dt = time.monotonic() - t0
		check(dt < LOGIN_TIMEOUT + 1.5, "TLS client without handshake closed after %.2fs" % dt)
	with live:
		resp = live.cmd("n1", "NOOP")
		check(tagged(resp, "n1").startswith(b"n1 OK"), "logged-in session outlives the login timeout: %r" % resp)


def test_failure_delay(c):
	"""Each part on a fresh connection: posternd-b's login timeout is 2s."""
	with Raw(c.b.imap_tls) as r:
		r.read_greeting()
		t0 = time.monotonic()
		eq(r.cmd("f1", "LOGIN %s %s" % (c.acct, "0" * 64)), b"f1 " + NO_TOKEN + b"\r\n", "failed login")
		dt = time.monotonic() - t0
		check(dt >= FAILURE_DELAY - 0.1, "failure answered after %.2fs, want >= %.1fs" % (dt, FAILURE_DELAY))
	with Raw(c.b.imap_tls) as r:
		r.read_greeting()
		# Input during the delay waits for it and is answered in order.
		t0 = time.monotonic()
		r.send(b"f2 LOGIN %s %s\r\nn1 NOOP\r\n" % (c.acct.encode(), b"1" * 64))
		eq(r.line(timeout=10), b"f2 " + NO_TOKEN + b"\r\n", "failure")
		eq(r.line(timeout=10), b"n1 OK NOOP completed\r\n", "pipelined NOOP after the delay")
		check(time.monotonic() - t0 >= FAILURE_DELAY - 0.1, "delayed")
		# A good login is not delayed by the failure before it.
		expect_login_ok(r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok))), "a1", c.acct)


def _rejecting_server(conn, record):
	"""A fake upstream that refuses every AUTHENTICATE PLAIN at once."""
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] fake ready\r\n")
	while True:
		ln = recv_line(conn)
		if not ln:
			return
		record(ln)
		m = re.match(rb"^(\S+) AUTHENTICATE PLAIN \S+\r\n$", ln)
		conn.sendall(b"%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n" % (m.group(1) if m else b"*"))


def test_upstream_rejection_delayed(c):
	"""The upstream refusing the stored password is answered after the
	failure delay, like a bad token."""
	srv = FakeServer(c.env, _rejecting_server)
	try:
		acct = uniq("reject")
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
		    "auth": {"user": "u", "pass": "p"}})
		with Raw(c.b.imap_tls) as r:
			r.read_greeting()
			t0 = time.monotonic()
			eq(r.cmd("f1", "LOGIN %s %s" % (acct, quote(token_for(c.p, acct)))),
			    b"f1 NO [UNAVAILABLE] Upstream server rejected the login: [AUTHENTICATIONFAILED] Authentication "
			    b"failed.\r\n", "upstream rejection")
			dt = time.monotonic() - t0
			check(dt >= FAILURE_DELAY - 0.1, "rejection answered after %.2fs, want >= %.1fs" % (dt, FAILURE_DELAY))
		eq(srv.accepted, 1, "one upstream connection")
	finally:
		srv.stop()


def _login_only_rejecting_server(conn, record):
	"""A fake upstream with no AUTH= (so Postern uses LOGIN) that refuses
	it; literals in the LOGIN are accepted with "+"."""
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
	tag, cmd = None, b""
	while True:
		ln = recv_line(conn)
		if not ln:
			return
		record(ln)
		if tag is None:
			tag, cmd = ln.split(b" ", 1)[0], ln
		if re.search(rb"\{\d+\}\r\n$", ln):
			conn.sendall(b"+ go on\r\n")
			continue
		if b" CAPABILITY" in cmd.upper():
			conn.sendall(b"* CAPABILITY IMAP4rev1\r\n%s OK done\r\n" % tag)
		else:
			conn.sendall(b"%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n" % tag)
		tag = None


def test_upstream_login_command_rejected(c):
	"""An upstream without SASL that refuses LOGIN: a clear NO, and the
	worker lives on (it used to crash looking for an OAuth2 error report
	on a login that had no SASL state)."""
	srv = FakeServer(c.env, _login_only_rejecting_server)
	try:
		acct = uniq("loginonly")
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
		    "auth": {"user": "u", "pass": "p"}})
		tok = token_for(c.p, acct)
		for i in range(2):
			with Raw(c.b.imap_tls) as r:
				r.read_greeting()
				eq(r.cmd("g%d" % i, "LOGIN %s %s" % (acct, quote(tok))),
				    b"g%d NO [UNAVAILABLE] Upstream server rejected the login: [AUTHENTICATIONFAILED] "
				    b"Authentication failed.\r\n" % i, "LOGIN refused upstream (try %d)" % (i + 1))
		check(srv.accepted >= 2, "the fake upstream got both logins")
	finally:
		srv.stop()
	# Both workers still serve: a normal login works.
	with Raw(c.b.imap_tls) as r:
		r.read_greeting()
		expect_login_ok(r.cmd("h1", "LOGIN %s %s" % (c.acct, quote(c.tok))), "h1", c.acct)


def test_wrong_secret_is_temporary(c):
	"""A daemon whose secret cannot open the stored password answers with
	a temporary failure, never "Failed to authenticate user"."""
	other = c.env.postern(c.redis, name="posternd-other-secret", extra=merge_extra(c.env))
	try:
		with Raw(other.imap_tls) as r:
			r.read_greeting()
			eq(r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok))), b"a1 " + NO_TEMP + b"\r\n", "wrong secret")
	finally:
		eq(other.stop(), 0, "posternd-other-secret exit status")


def test_log_lines_not_injectable(c):
	"""The account name a client sends is logged sanitized: no line of the
	log starts with anything but the timestamp."""
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		weird = b'evil\r\nlevel=info event=forged'
		r.send(b"a1 LOGIN {%d+}\r\n%s %s\r\n" % (len(weird), weird, quote(c.tok).encode()))
		eq(r.response("a1"), b"a1 " + NO_USER + b"\r\n", "login with CRLF in the account")
	log = c.p.log_text()
	bad = [l for l in log.splitlines() if not l.startswith("ts=")]
	eq(bad, [], "log lines not starting with ts=")


def _slots(c, acct):
	return c.redis.cmd("ZCARD", "postern:conn:" + acct)


def test_connection_limit(c):
	acct = dovecot_account(c.p, c.dovecot, USER)
	tok = token_for(c.p, acct)
	sessions = []
	try:
		for i in range(10):
			r, resp = login_raw(c.p.imap_tls, acct, tok)
			sessions.append(r)
			expect_login_ok(resp, "a1", acct)
		eq(_slots(c, acct), 10, "ten slots held")
		with Raw(c.p.imap_tls) as r:
			r.read_greeting()
			eq(r.cmd("a1", "LOGIN %s %s" % (acct, quote(tok))), b"a1 " + NO_LIMIT + b"\r\n", "11th connection")
			# The refused attempt holds no slot; a freed one can be taken.
			sessions.pop(0).close()
			wait_until(lambda: _slots(c, acct) == 9, 10, "slot freed after a session closed")
			expect_login_ok(r.cmd("a2", "LOGIN %s %s" % (acct, quote(tok))), "a2", acct)
			# Logging out through the relay frees the slot too.
			resp = r.cmd("l1", "LOGOUT")
			check(resp.startswith(b"* BYE"), "LOGOUT")
		wait_until(lambda: _slots(c, acct) == 9, 10, "slot freed after LOGOUT")
	finally:
		for r in sessions:
			r.close()
	wait_until(lambda: _slots(c, acct) == 0, 10, "all slots freed")


def test_connection_limit_per_account_and_shared(c):
	"""maxConnections on the account; the count is shared by two daemons
	on the same Redis."""
	acct = dovecot_account(c.p, c.dovecot, USER, maxConnections=3)
	tok = token_for(c.p, acct)
	sessions = []
	try:
		for p in (c.p, c.b, c.p):
			r, resp = login_raw(p.imap_tls, acct, tok)
			sessions.append(r)
			expect_login_ok(resp, "a1", acct)
		for p in (c.b, c.p):
			with Raw(p.imap_tls) as r:
				r.read_greeting()
				eq(r.cmd("a1", "LOGIN %s %s" % (acct, quote(tok))), b"a1 " + NO_LIMIT + b"\r\n",
				    "4th connection on %s" % p.name)
	finally:
		for r in sessions:
			r.close()
	wait_until(lambda: _slots(c, acct) == 0, 10, "all slots freed")


def test_login_timeout_while_taking_a_slot(c):
	"""The login timeout fires while the slot script is in flight (held
	by a forwarder in front of Redis): the BYE comes at the timeout and
	the slot the script takes afterwards is given back, not leaked until
	its 3-minute expiry."""
	proxy = DelayProxy(c.env, c.redis.port)
	slow = c.env.postern(c.redis, name="posternd-slow", secret=c.p.secret,
	    redis_url="redis://127.0.0.1:%d/0" % proxy.port, timeout="10s",
	    extra=merge_extra(c.env, {"imap": {"login_timeout": "2s"}}))
	try:
		acct = dovecot_account(c.p, c.dovecot, USER)
		tok = token_for(c.p, acct)
		n0 = _calls(c, "zremrangebyscore")
		proxy.hold(b"ZREMRANGEBYSCORE", 3.0)
		with Raw(slow.imap_tls) as r:
			r.read_greeting()
			r.send(b"a1 LOGIN %s %s\r\n" % (acct.encode(), quote(tok).encode()))
			eq(r.line(timeout=10), b"* BYE Login timeout, closing connection\r\n", "BYE during the slot request")
			r.expect_eof()
		eq(proxy.held, 1, "the slot script was held")
		# The script runs once the forwarder lets it go, then the release.
		wait_until(lambda: _calls(c, "zremrangebyscore") > n0, 10, "the held slot script to run")
		wait_until(lambda: c.redis.cmd("ZCARD", "postern:conn:" + acct) == 0, 5, "the late slot released")
	finally:
		slow.stop()
		proxy.stop()


def _calls(c, cmd):
	"""Calls of a Redis command so far (Lua's calls included)."""
	info = c.redis.cmd("INFO", "commandstats").decode()
	m = re.search(r"cmdstat_%s:calls=(\d+)" % cmd, info)
	return int(m.group(1)) if m else 0


def test_allow_plaintext_auth(c):
	"""allow_plaintext_auth = yes: AUTH=PLAIN and LOGIN before STARTTLS."""
	with Raw(c.b.imap_starttls, "plain") as r:
		r.read_greeting()
		eq(r.cmd("c1", "CAPABILITY"), b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID STARTTLS AUTH=PLAIN\r\n"
		    b"c1 OK Capability completed\r\n", "capabilities with plaintext login allowed")
		expect_login_ok(r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok))), "a1", c.acct)


def _sockq(local_port, peer_port):
	"""(Recv-Q, Send-Q) of the established TCP socket from local_port to
	peer_port on 127.0.0.1, or None."""
	out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d and dport = :%d )" % (
	    local_port, peer_port)], capture_output=True, text=True).stdout.split()
	return (int(out[0]), int(out[1])) if len(out) >= 2 else None


def test_unread_replies_bounded(c):
	"""A client that pipelines valid commands (ID NIL) and never reads the
	answers: posternd stops reading it once some replies are queued
	(its worker's memory stays flat), and a client that then reads gets
	every reply, in order, and can go on."""
	n = 600000
	cmds = b"".join(b"t%d ID NIL\r\n" % i for i in range(n))	# ~8 MB
	pid = worker_pid(c.p)
	s = socket.create_connection(("127.0.0.1", c.p.imap_starttls), timeout=30)
	try:
		s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
		buf = b""
		while not buf.endswith(b"\r\n"):
			buf += s.recv(4096)
		s.sendall(b"i0 ID NIL\r\n")
		while b"i0 OK" not in buf:
			buf += s.recv(4096)
		untagged = buf.split(b"\r\n")[1] + b"\r\n"
		eq(buf.split(b"\r\n")[2], b"i0 OK ID completed", "ID reply")
		want = b"".join(untagged + b"t%d OK ID completed\r\n" % i for i in range(n))
		base = rss_kb(pid)
		st = {"sent": 0, "err": None}

		def sender():
			try:
				while st["sent"] < len(cmds):
					try:
						st["sent"] += s.send(cmds[st["sent"]:st["sent"] + 65536])
					except socket.timeout:
						continue
			except OSError as e:
				st["err"] = e
		th = threading.Thread(target=sender, daemon=True)
		th.start()
		# posternd has stopped reading: its side of the connection holds
		# unread input, and nothing moves for a while.
		cport = s.getsockname()[1]
		hist = []

		def stopped():
			if st["sent"] >= len(cmds) or st["err"]:
				return True
			q = _sockq(c.p.imap_starttls, cport)
			hist.append((st["sent"], q))
			return len(hist) >= 6 and q is not None and q[0] > 0 and len(set(hist[-6:])) == 1
		wait_until(stopped, 60, "posternd to stop reading or take everything", interval=0.1)
		check(st["err"] is None, "sending failed: %r" % st["err"])
		check(st["sent"] < len(cmds), "posternd read all %d bytes of commands from a client that reads "
		    "nothing (its replies are queued without bound)" % len(cmds))
		grown = rss_kb(pid) - base
		check(grown < 16 * 1024, "worker RSS grew by %d KB while the client did not read" % grown)
		# Now read: every reply in order, and the sender gets to finish.
		got = bytearray()
		peak = 0
		deadline = time.monotonic() + 120
		while len(got) < len(want) and time.monotonic() < deadline:
			d = s.recv(1 << 20)
			if not d:
				break
			got += d
			peak = max(peak, rss_kb(pid) - base)
		eq(len(got), len(want), "bytes of replies")
		check(bytes(got) == want, "replies in order, byte for byte (first difference at %d)" % next(
		    (i for i in range(len(want)) if got[i] != want[i]), -1))
		th.join(30)
		check(not th.is_alive() and st["sent"] == len(cmds), "all commands sent once the client reads")
		check(peak < 16 * 1024, "worker RSS grew by %d KB while replies were read" % peak)
		s.sendall(b"n1 NOOP\r\n")
		buf = b""
		while not buf.endswith(b"\r\n"):
			buf += s.recv(4096)
		eq(buf, b"n1 OK NOOP completed\r\n", "session usable afterwards")
	finally:
		s.close()
	eq(worker_pid(c.p), c.wpid, "the same worker still serves")


def test_daemon_survived(c):
	_alive(c)
	check(c.b.alive(), "posternd-b alive")
