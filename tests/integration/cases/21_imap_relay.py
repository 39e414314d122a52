"""Issue 3, point 5: after login Postern relays bytes unchanged. The same
commands give the same bytes through Postern as directly from Dovecot;
imaplib's SELECT/SEARCH/FETCH/APPEND/STORE/EXPUNGE/LOGOUT, IDLE, commands
pipelined behind LOGIN, a 50 MB APPEND, and backpressure both ways: a
client that stops reading during a ~150 MB FETCH, and an upstream that
stops reading during a large APPEND, leave posternd's worker RSS bounded."""

import hashlib
import imaplib
import os
import re
import signal
import time

from harness import check, contains, eq, imap_connect, wait_until
from imapc import (Raw, dovecot_account, keepalive_on, expect_login_ok, imap_setup, io_rchar, login_raw, make_message,
    normalize, quote, rss_kb, seed_maildir, tagged, token_for, worker_pid)

TEST_TIMEOUT = 240
USERS = {"alice@example.test": "alice-pw", "big@example.test": "big-pw", "app@example.test": "app-pw",
    "idle@example.test": "idle-pw", "slow@example.test": "slow-pw", "pipe@example.test": "pipe-pw",
    "tail@example.test": "tail-pw"}
RSS_GROWTH_MAX_KB = 64 * 1024
BIG_COUNT = 15
BIG_SIZE = 10 * 1024 * 1024


def setup(env):
	c = imap_setup(env, users=USERS)
	c.accts = {}
	c.toks = {}
	for u in USERS:
		c.accts[u] = dovecot_account(c.p, c.dovecot, u)
		c.toks[u] = token_for(c.p, c.accts[u])
	seed_maildir(c.dovecot, "alice@example.test", [make_message(i, size=200 + 3000 * i) for i in range(1, 8)])
	c.tail_msgs = [make_message(i, size=size) for i, size in enumerate((3 * 1024 * 1024, 40 * 1024, 300), 1)]
	seed_maildir(c.dovecot, "tail@example.test", c.tail_msgs)
	return c


def _proxy(c, user):
	r, resp = login_raw(c.p.imap_tls, c.accts[user], c.toks[user], timeout=30)
	expect_login_ok(resp, "a1", c.accts[user])
	return r


def _direct(c, user):
	r = Raw(c.dovecot.imaps_port, timeout=30)
	r.read_greeting()
	resp = r.cmd("a1", "LOGIN %s %s" % (quote(user), quote(USERS[user])))
	check(tagged(resp, "a1").startswith(b"a1 OK"), "direct login: %r" % resp)
	return r


SCRIPT = [
    ("e1", 'EXAMINE INBOX'),
    ("s1", 'SEARCH ALL'),
    ("s2", 'UID SEARCH SUBJECT "message 3"'),
    ("f1", 'FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)'),
    ("f2", 'FETCH 1:* BODY.PEEK[]'),
    ("f3", 'UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.100>)'),
    ("l1", 'LIST "" "*"'),
    ("st", 'STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)'),
    ("n1", 'NOOP'),
    ("x1", 'XNOSUCHCOMMAND'),
    ("u1", 'UNSELECT'),
    ("lo", 'LOGOUT'),
]


def _transcript(r):
	out = []
	for tag, cmd in SCRIPT:
		out.append(normalize(r.cmd(tag, cmd)))
	out.append(r.expect_eof())
	r.close()
	return out


def test_same_bytes_as_direct(c):
	u = "alice@example.test"
	d1 = _transcript(_direct(c, u))
	p = _transcript(_proxy(c, u))
	d2 = _transcript(_direct(c, u))
	eq(d1, d2, "two direct runs agree (the script has no side effects)")
	for (tag, cmd), a, b in zip(SCRIPT + [("eof", "")], p, d1):
		eq(a, b, "response to %s %s through Postern vs direct" % (tag, cmd))
	contains(p[4], b"Body of message 7.", "FETCH BODY[] returned message bodies")


def test_imaplib_session(c):
	u = "app@example.test"
	m = imaplib.IMAP4_SSL("localhost", c.p.imap_tls, ssl_context=c.env.ssl_context(), timeout=30)
	try:
		eq(m.login(c.accts[u], c.toks[u])[0], "OK", "LOGIN")
		msg = make_message(1, subject="via imaplib")
		typ, data = m.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(time.time()), msg)
		eq(typ, "OK", "APPEND")
		check(b"APPENDUID" in data[0], "APPENDUID from Dovecot: %r" % data)
		typ, data = m.select("INBOX")
		eq((typ, data), ("OK", [b"1"]), "SELECT")
		typ, data = m.search(None, "FLAGGED")
		eq((typ, data), ("OK", [b"1"]), "SEARCH")
		typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
		eq(typ, "OK", "FETCH")
		eq(data[0][1], msg, "FETCH returns the appended bytes")
		contains(data[0][0], b"\\Flagged", "flags")
		eq(m.store("1", "+FLAGS", r"\Deleted")[0], "OK", "STORE")
		typ, data = m.expunge()
		eq((typ, data), ("OK", [b"1"]), "EXPUNGE")
		typ, data = m.logout()
		eq(typ, "BYE", "LOGOUT")
	finally:
		try:
			m.shutdown()
		except OSError:
			pass
	d = c.dovecot.login(u)
	eq(d.select("INBOX"), ("OK", [b"0"]), "Dovecot sees the expunge")
	d.logout()


def test_pipelined_after_login(c):
	u = "pipe@example.test"
	r = Raw(c.p.imap_tls, timeout=30)
	with r:
		r.read_greeting()
		r.send(b"a1 LOGIN %s %s\r\nb1 SELECT INBOX\r\nb2 SEARCH ALL\r\nb3 NOOP\r\nb4 LOGOUT\r\n" % (
		    c.accts[u].encode(), quote(c.toks[u]).encode()))
		expect_login_ok(r.response("a1"), "a1", c.accts[u])
		check(tagged(r.response("b1"), "b1").startswith(b"b1 OK [READ-WRITE]"), "pipelined SELECT")
		eq(normalize(r.response("b2")), b"* SEARCH\r\nb2 OK Search completed.\r\n", "pipelined SEARCH")
		check(tagged(r.response("b3"), "b3").startswith(b"b3 OK"), "pipelined NOOP")
		resp = r.response("b4")
		check(resp.startswith(b"* BYE"), "pipelined LOGOUT: %r" % resp)
		eq(r.expect_eof(), b"", "closed after the upstream's LOGOUT")
	# The pipelined tail of the same packet also works when split over
	# the login: LITERAL+ login and a command in one send.
	r = Raw(c.p.imap_tls, timeout=30)
	with r:
		r.read_greeting()
		acct = c.accts[u].encode()
		r.send(b"a1 LOGIN {%d+}\r\n%s {64+}\r\n%s\r\nb1 NOOP\r\n" % (len(acct), acct, c.toks[u].encode()))
		expect_login_ok(r.response("a1"), "a1", c.accts[u])
		check(tagged(r.response("b1"), "b1").startswith(b"b1 OK"), "NOOP behind a LITERAL+ login")


def test_small_replies_after_bulk(c):
	"""After a bulk read from the upstream the relay waits for 64 KiB or
	2 ms before waking (proxy/relay.c, SO_RCVLOWAT): the tail of a large
	FETCH and every small reply after it still arrive (a missing timer
	would hang them until the read timeout)."""
	u = "tail@example.test"
	r = _proxy(c, u)
	with r:
		check(tagged(r.cmd("s1", "SELECT INBOX"), "s1").startswith(b"s1 OK"), "SELECT")
		for i, msg in enumerate(c.tail_msgs, 1):
			resp = r.cmd("f%d" % i, "FETCH %d BODY.PEEK[]" % i, timeout=10)
			check(tagged(resp, "f%d" % i).startswith(b"f%d OK" % i), "FETCH %d answered" % i)
			contains(resp, b"{%d}\r\n" % len(msg) + msg + b")\r\n", "FETCH %d returns the message whole" % i)
			for j in range(5):
				tag = "n%d%d" % (i, j)
				check(tagged(r.cmd(tag, "NOOP", timeout=5), tag).startswith(tag.encode() + b" OK"),
				    "NOOP %d after FETCH %d answered" % (j, i))
		check(tagged(r.cmd("l1", "LOGOUT"), "l1").startswith(b"l1 OK"), "LOGOUT")


def test_idle(c):
	u = "idle@example.test"
	r = _proxy(c, u)
	with r:
		check(tagged(r.cmd("s1", "SELECT INBOX"), "s1").startswith(b"s1 OK"), "SELECT")
		r.send(b"i1 IDLE\r\n")
		eq(r.line(), b"+ idling\r\n", "IDLE continuation from Dovecot")
		d = c.dovecot.login(u)
		d.append("INBOX", None, None, make_message(1, subject="arrives during IDLE"))
		d.logout()
		got = []
		while b"EXISTS" not in b"".join(got):
			got.append(r.line(timeout=30))
		contains(b"".join(got), b"* 1 EXISTS", "new mail announced during IDLE")
		r.send(b"DONE\r\n")
		resp = normalize(r.response("i1"))
		check(resp.endswith(b"i1 OK Idle completed.\r\n"), "IDLE done: %r" % resp)
		check(tagged(r.cmd("l1", "LOGOUT"), "l1").startswith(b"l1 OK"), "LOGOUT")


def test_append_50mb(c):
	u = "app@example.test"
	msg = make_message(50, size=50 * 1024 * 1024, subject="fifty megabytes")
	r = _proxy(c, u)
	with r:
		r.send(b"p1 APPEND INBOX {%d}\r\n" % len(msg))
		eq(r.line(), b"+ OK\r\n", "continuation for the literal (Dovecot's)")
		r.send(msg + b"\r\n")
		resp = r.response("p1", timeout=120)
		check(re.match(rb"^p1 OK \[APPENDUID \d+ \d+\] Append completed", resp), "APPEND: %r" % resp)
		uid = int(re.match(rb"^p1 OK \[APPENDUID \d+ (\d+)\]", resp).group(1))
		r.cmd("s1", "SELECT INBOX")
		resp = r.cmd("f1", "UID FETCH %d (RFC822.SIZE BODY.PEEK[])" % uid, timeout=120)
		contains(resp[:200], b"RFC822.SIZE %d" % len(msg), "size through the proxy")
		i = resp.index(b"{%d}\r\n" % len(msg)) + len(b"{%d}\r\n" % len(msg))
		eq(hashlib.sha256(resp[i:i + len(msg)]).hexdigest(), hashlib.sha256(msg).hexdigest(),
		    "50 MB message read back through Postern is unchanged")
		r.cmd("l1", "LOGOUT")
	# And Dovecot stored exactly those bytes.
	root = c.dovecot.maildir(u)
	files = [os.path.join(root, d, f) for d in ("cur", "new") for f in os.listdir(os.path.join(root, d))]
	stored = msg.replace(b"\r\n", b"\n")	# Dovecot's Maildir uses LF
	big = [f for f in files if os.path.getsize(f) == len(stored)]
	eq(len(big), 1, "one 50 MB file in the Maildir")
	with open(big[0], "rb") as f:
		eq(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(stored).hexdigest(), "stored bytes")


test_append_50mb.timeout = 300


def _stalled(pid, what, settle=0.6, timeout=60):
	"""Waits until the worker stops reading (its rchar no longer grows
	across `settle` seconds of polling): backpressure has kicked in."""
	last = [io_rchar(pid), time.monotonic()]

	def still():
		now = io_rchar(pid)
		t = time.monotonic()
		if now != last[0]:
			last[0], last[1] = now, t
			return False
		return t - last[1] >= settle
	wait_until(still, timeout, what, interval=0.1)


def test_client_stops_reading_large_fetch(c):
	u = "big@example.test"
	msgs = [make_message(i, size=BIG_SIZE) for i in range(1, BIG_COUNT + 1)]
	total = sum(len(m) for m in msgs)
	seed_maildir(c.dovecot, u, msgs)
	want = [hashlib.sha256(m).hexdigest() for m in msgs]
	del msgs
	wpid = worker_pid(c.p)
	r = _proxy(c, u)
	with r:
		check(tagged(r.cmd("s1", "SELECT INBOX", timeout=60), "s1").startswith(b"s1 OK"), "SELECT")
		base = rss_kb(wpid)
		r0 = io_rchar(wpid)
		r.send(b"f1 FETCH 1:* BODY.PEEK[]\r\n")
		first = r.line(timeout=60)
		check(first.startswith(b"* 1 FETCH (BODY[] {"), "FETCH starts: %r" % first)
		# Stop reading: Postern must stop reading Dovecot, not buffer it.
		_stalled(wpid, "posternd's worker to stop reading while the client does not")
		read_so_far = io_rchar(wpid) - r0
		grown = rss_kb(wpid) - base
		c.env.note("paused FETCH: worker read %d of %d bytes, RSS +%d KB" % (read_so_far, total, grown))
		check(read_so_far < total // 2, "worker read %d of %d bytes while the client was paused" % (read_so_far, total))
		check(grown < RSS_GROWTH_MAX_KB, "worker RSS grew %d KB while the client was paused (max %d KB)" % (
		    grown, RSS_GROWTH_MAX_KB))
		# Resume: everything arrives, unchanged.
		got = []
		ln = first
		while True:
			m = re.match(rb"^\* (\d+) FETCH \(BODY\[\] \{(\d+)\}\r\n$", ln)
			if not m:
				break
			body = r.read_exact(int(m.group(2)), timeout=60)
			got.append(hashlib.sha256(body).hexdigest())
			eq(r.line(timeout=60), b")\r\n", "end of FETCH item %s" % m.group(1).decode())
			ln = r.line(timeout=60)
		check(normalize(ln).startswith(b"f1 OK Fetch completed"), "FETCH completed: %r" % ln)
		eq(got, want, "all %d messages arrive unchanged after the pause" % BIG_COUNT)
		check(rss_kb(wpid) - base < RSS_GROWTH_MAX_KB, "RSS still bounded after the FETCH")
		r.cmd("l1", "LOGOUT")


test_client_stops_reading_large_fetch.timeout = 300


def _dovecot_mail_pid(c, user):
	with open(c.dovecot.log, "rb") as f:
		lines = [l for l in f.read().decode("utf-8", "replace").splitlines()
		    if "imap-login: Info: Login: user=<%s>" % user in l]
	m = re.search(r"mpid=(\d+)", lines[-1]) if lines else None
	check(m is not None, "Dovecot login line for %s" % user)
	return int(m.group(1))


def test_upstream_stops_reading_large_append(c):
	"""Backpressure client -> upstream: Dovecot's imap process is stopped
	while the client sends a 100 MB LITERAL+ APPEND."""
	u = "slow@example.test"
	size = 100 * 1024 * 1024
	wpid = worker_pid(c.p)
	r = _proxy(c, u)
	mpid = _dovecot_mail_pid(c, u)
	chunk = (b"x" * 998 + b"\r\n") * 1024
	base = rss_kb(wpid)
	import threading
	err = []

	def sender():
		try:
			msg_head = b"Subject: slow\r\n\r\n"
			n = size - len(msg_head)
			r.send(b"p1 APPEND INBOX {%d+}\r\n" % size + msg_head)
			while n > 0:
				part = chunk[:n]
				r.send(part)
				n -= len(part)
			r.send(b"\r\n")
		except Exception as e:	# noqa: BLE001 - reported by the test
			err.append(e)
	os.kill(mpid, signal.SIGSTOP)
	t = threading.Thread(target=sender, daemon=True)
	try:
		t.start()
		_stalled(wpid, "posternd's worker to stop reading the client while Dovecot does not read")
		grown = rss_kb(wpid) - base
		c.env.note("stopped upstream: worker RSS +%d KB" % grown)
		check(t.is_alive(), "the client is blocked, not finished")
		check(grown < RSS_GROWTH_MAX_KB, "worker RSS grew %d KB while the upstream was stopped (max %d KB)" % (
		    grown, RSS_GROWTH_MAX_KB))
	finally:
		os.kill(mpid, signal.SIGCONT)
	t.join(120)
	check(not t.is_alive() and not err, "the APPEND was sent completely: %r" % err)
	resp = r.response("p1", timeout=120)
	check(re.match(rb"^p1 OK \[APPENDUID", resp), "APPEND completed after the upstream resumed: %r" % resp)
	r.cmd("l1", "LOGOUT")
	r.close()


test_upstream_stops_reading_large_append.timeout = 300


def test_keepalive_both_legs(c):
	"""TCP keepalive on the client leg and on the upstream leg."""
	u = "alice@example.test"
	r = _proxy(c, u)
	with r:
		local = r.sock.getsockname()[1]
		# ss shows one timer per socket: keepalive once nothing is in
		# flight (poll past the retransmit timer of the last reply).
		wait_until(lambda: keepalive_on("sport = :%d and dport = :%d" % (c.p.imap_tls, local))[0], 10,
		    "client leg (posternd's socket) to show a keepalive timer")
		# posternd's sockets towards Dovecot's imaps port.
		import subprocess

		def upstream_leg():
			out = subprocess.run(["ss", "-tnopH", "state", "established", "dport = :%d" % c.dovecot.imaps_port],
			    capture_output=True, text=True).stdout.splitlines()
			mine = [l for l in out if "pid=%d," % worker_pid(c.p) in l]
			return mine and all("keepalive" in l for l in mine)
		wait_until(upstream_leg, 10, "upstream leg to show a keepalive timer")
		r.cmd("l1", "LOGOUT")


def test_close_propagates_and_frees_slot(c):
	u = "alice@example.test"
	acct = c.accts[u]
	key = "postern:conn:" + acct
	# Client vanishes: the upstream session ends and the slot is released.
	r = _proxy(c, u)
	mpid = _dovecot_mail_pid(c, u)
	eq(c.redis.cmd("ZCARD", key), 1, "one slot while logged in")
	r.close()
	wait_until(lambda: c.redis.cmd("ZCARD", key) == 0, 10, "slot released after the client closed")
	wait_until(lambda: _dovecot_disconnected(c, mpid), 10, "Dovecot session ended after the client closed")
	# Upstream vanishes: the client sees the connection end at once.
	r = _proxy(c, u)
	with r:
		mpid = _dovecot_mail_pid(c, u)
		os.kill(mpid, signal.SIGKILL)
		t0 = time.monotonic()
		r.expect_eof(timeout=10)
		check(time.monotonic() - t0 < 5, "client closed promptly after the upstream died")
	wait_until(lambda: c.redis.cmd("ZCARD", key) == 0, 10, "slot released after the upstream died")


def _dovecot_disconnected(c, mpid):
	with open(c.dovecot.log, "rb") as f:
		return any(b"<%d>" % mpid in l and b"Disconnected" in l for l in f.read().splitlines())
