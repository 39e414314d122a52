"""Issue 3, points 1 and 7: IPv6 listener, SIGHUP certificate reload
without dropping sessions, SIGTERM drain (logged-in sessions finish, new
connections refused, bounded, exit status 0), and token revocation:
live sessions continue by default, end with "* BYE" when
revoke_closes_sessions = yes (on every daemon sharing the Redis) or when
the revokeClosesSessions setting says so."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

from harness import Postern, TestFailure, check, contains, eq, expect_status, token_id, uniq, wait_until
from imapc import (GREETING_RE, NO_IP, Closed, FakeServer, Raw, dovecot_account, expect_login_ok, imap_setup,
    login_raw, make_leaf_cert, merge_extra, quote, recv_line, tagged, token_for, session_log)

USER = "alice@example.test"


def _postern(c, name, extra=None, v6=False, own_cert=False):
	p = Postern(c.env, c.redis, name=name, secret=c.secret, extra=merge_extra(c.env, extra))
	if own_cert:
		tls = os.path.join(p.dir, "tls")
		os.makedirs(tls, exist_ok=True)
		p.cert, p.key = os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem")
		shutil.copy(c.env.certs.cert, p.cert)
		shutil.copy(c.env.certs.key, p.key)
		p.extra.setdefault("tls", {}).update({"cert": p.cert, "key": p.key})
	if v6:
		p.imap_v6 = c.env.port("::1")
		p.extra.setdefault("imap", {})["listen"] = "127.0.0.1:%d tls, 127.0.0.1:%d starttls, [::1]:%d tls" % (
		    p.imap_tls, p.imap_starttls, p.imap_v6)
	return p.start()


def setup(env):
	c = imap_setup(env, users={USER: "alice-pw"}, postern=False)
	c.secret = "it-secret-lifecycle-%d" % os.getpid()
	c.p = _postern(c, "posternd", v6=True, own_cert=True)
	c.api = c.p.api
	c.rv = _postern(c, "posternd-revoke", extra={"postern": {"revoke_closes_sessions": "yes"}})
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct)
	return c


def _session(p, acct, tok, **kw):
	r, resp = login_raw(p.imap_tls, acct, tok, **kw)
	expect_login_ok(resp, "a1", acct)
	return r


def _noop_ok(r, tag="n1"):
	resp = r.cmd(tag, "NOOP")
	check(tagged(resp, tag).startswith(tag.encode() + b" OK"), "NOOP through the relay: %r" % resp)


def test_ipv6_listener(c):
	with Raw(c.p.imap_v6, host="::1") as r:
		g = r.read_greeting()
		check(g.startswith(b"* OK Postern IMAP Proxy ready for requests from ::1 "), "greeting over IPv6: %r" % g)
		expect_login_ok(r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok))), "a1", c.acct)
		_noop_ok(r)
	tok6 = token_for(c.p, c.acct, restrictions={"addresses": ["::1/128"]})
	r, resp = login_raw(c.p.imap_v6, c.acct, tok6, host="::1")
	with r:
		expect_login_ok(resp, "a1", c.acct)
	r, resp = login_raw(c.p.imap_tls, c.acct, tok6)
	with r:
		eq(resp, b"a1 " + NO_IP + b"\r\n", "IPv6-only token over IPv4")
	tok4 = token_for(c.p, c.acct, restrictions={"addresses": ["127.0.0.0/8"]})
	r, resp = login_raw(c.p.imap_v6, c.acct, tok4, host="::1")
	with r:
		eq(resp, b"a1 " + NO_IP + b"\r\n", "IPv4-only token over IPv6")


def _expect_bye_then_eof(r, what):
	t0 = time.monotonic()
	got = r.expect_eof(timeout=10)
	check(got.endswith(b"* BYE Access token revoked\r\n"), "%s: BYE, got %r" % (what, got))
	check(time.monotonic() - t0 < 3, "%s: closed promptly after the BYE" % what)


def test_revoke_closes_sessions(c):
	tok = token_for(c.p, c.acct)
	other = token_for(c.p, c.acct)
	keep_main = _session(c.p, c.acct, tok)		# revoke_closes_sessions = no
	gone = _session(c.rv, c.acct, tok)		# = yes
	gone_too = _session(c.rv, c.acct, tok)
	stays = _session(c.rv, c.acct, other)		# another token
	try:
		for r in (keep_main, gone, gone_too, stays):
			_noop_ok(r)
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		_expect_bye_then_eof(gone, "session on the revoke_closes_sessions daemon")
		_expect_bye_then_eof(gone_too, "second session with the revoked token")
		_noop_ok(stays, "n2")
		_noop_ok(keep_main, "n2")
		# New logins with the revoked token are refused everywhere.
		for p in (c.p, c.rv):
			r, resp = login_raw(p.imap_tls, c.acct, tok)
			r.close()
			eq(resp, b"a1 NO [AUTHENTICATIONFAILED] Access denied, failed to authenticate user\r\n",
			    "revoked token on %s" % p.name)
	finally:
		for r in (keep_main, gone, gone_too, stays):
			r.close()


def test_revoke_bye_stops_the_relay(c):
	"""After the BYE nothing the client sends reaches the upstream."""
	tok = token_for(c.p, c.acct)
	r = _session(c.rv, c.acct, tok)
	with r:
		r.cmd("s1", "SELECT INBOX")
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		eq(r.line(timeout=10), b"* BYE Access token revoked\r\n", "BYE")
		try:
			r.send(b"x1 APPEND INBOX {20+}\r\nSubject: leaked\r\n\r\nx\r\n")
		except OSError:
			pass
		r.expect_eof(timeout=5)
	d = c.dovecot.login(USER)
	typ, data = d.select("INBOX")
	typ, data = d.search(None, 'SUBJECT "leaked"')
	d.logout()
	eq(data, [b""], "the APPEND after the BYE never reached Dovecot")


def test_revoke_setting_overrides_config(c):
	expect_status(c.api.post("/v1/settings", {"revokeClosesSessions": True}), 200, "POST settings")
	tok = token_for(c.p, c.acct)
	r = _session(c.p, c.acct, tok)		# config says no, the setting yes
	with r:
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		_expect_bye_then_eof(r, "setting revokeClosesSessions true")
	expect_status(c.api.post("/v1/settings", {"revokeClosesSessions": False}), 200, "POST settings")
	tok = token_for(c.p, c.acct)
	r = _session(c.rv, c.acct, tok)		# config says yes, the setting no
	with r:
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		# Once the daemon has seen the revocation, this session goes on.
		wait_until(lambda: "event=revoke token=%s close_sessions=no" % token_id(tok) in c.rv.log_text(), 10,
		    "posternd-revoke to process the revocation")
		_noop_ok(r)


def _fake_account(c, srv):
	acct = uniq("fake")
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
	    "auth": {"user": "u", "pass": "p"}})
	return acct


def _fake_login(conn, record):
	"""Greets, reads the proxy's LOGIN (LITERAL+); returns its tag."""
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n")
	ln = recv_line(conn)
	record(ln)
	tag = ln.split(b" ", 1)[0]
	while ln.endswith(b"+}\r\n"):
		ln = recv_line(conn)
	return tag


def test_revoke_during_upstream_login(c):
	"""The token is revoked while the upstream login is in flight: BYE,
	the upstream connection is dropped, and the late upstream OK neither
	reaches the client nor starts a relay."""
	seen, go, gone = threading.Event(), threading.Event(), threading.Event()

	def held(conn, record):
		tag = _fake_login(conn, record)
		seen.set()
		go.wait(30)
		try:
			conn.sendall(b"%s OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n" % tag)
			while recv_line(conn):
				pass
		except OSError:
			pass
		gone.set()
	srv = FakeServer(c.env, held)
	# An earlier test may have turned the setting off.
	expect_status(c.api.post("/v1/settings", {"revokeClosesSessions": True}), 200, "POST settings")
	try:
		acct = _fake_account(c, srv)
		tok = token_for(c.p, acct)
		with Raw(c.rv.imap_tls) as r:
			sid = GREETING_RE.match(r.read_greeting()).group(2).decode()
			r.send(b"a1 LOGIN %s %s\r\n" % (acct.encode(), quote(tok).encode()))
			check(seen.wait(10), "the upstream got the LOGIN")
			expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
			eq(r.line(timeout=10), b"* BYE Access token revoked\r\n", "BYE during the upstream login")
			# The upstream answers now; the client is still connected.
			go.set()
			check(gone.wait(10), "posternd closed the upstream connection")
			eq(r.expect_eof(), b"", "nothing after the BYE")
		lines = session_log(c.rv, sid)
		eq([l for l in lines if "event=login result=ok" in l], [], "logins completed after the revocation")
		wait_until(lambda: c.redis.cmd("ZCARD", "postern:conn:" + acct) == 0, 10, "the connection slot released")
	finally:
		go.set()
		srv.stop()
		expect_status(c.api.post("/v1/settings", {"revokeClosesSessions": False}), 200, "POST settings")


def _ss(flt):
	"""(Recv-Q, Send-Q) summed over the established TCP sockets ss(8)
	lists for a filter."""
	out = subprocess.run(["ss", "-tnH", "state", "established", flt], capture_output=True,
	    text=True).stdout.splitlines()
	rows = [l.split() for l in out if l.strip()]
	return sum(int(r[0]) for r in rows), sum(int(r[1]) for r in rows)


def test_half_close_with_stuck_upstream(c):
	"""The client half-closes while its last bytes wait for an upstream
	that no longer reads: the session is closed at the flush bound, not
	held (descriptors, connection slot) until the idle timeout."""
	stop = threading.Event()

	def stuck(conn, record):
		tag = _fake_login(conn, record)
		conn.sendall(b"%s OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n" % tag)
		stop.wait(60)		# reads nothing more
	srv = FakeServer(c.env, stuck)
	srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	try:
		acct = _fake_account(c, srv)
		r = _session(c.p, acct, token_for(c.p, acct))
		with r:
			cport = r.sock.getsockname()[1]
			towards_client = "( sport = :%d and dport = :%d )" % (cport, c.p.imap_tls)
			from_client = "( sport = :%d and dport = :%d )" % (c.p.imap_tls, cport)
			towards_up = "( dport = :%d )" % srv.port
			from_up = "( sport = :%d )" % srv.port
			chunk = b"x" * 32768
			queued = 0
			# Fill the kernel buffers towards the upstream until a chunk
			# stays inside posternd (its output to the upstream).
			for i in range(1000):
				r.send(chunk)
				wait_until(lambda: _ss(towards_client)[1] == 0 and _ss(from_client)[0] == 0, 10,
				    "posternd to read chunk %d" % i)
				try:
					wait_until(lambda: _ss(towards_up)[1] + _ss(from_up)[0] >= queued + len(chunk), 1,
					    "chunk %d in the kernel" % i)
				except TestFailure:
					break
				queued += len(chunk)
			else:
				raise TestFailure("the upstream connection never filled up")
			half = socket.socket(fileno=os.dup(r.sock.fileno()))
			half.shutdown(socket.SHUT_WR)
			half.close()
			t0 = time.monotonic()
			r.expect_eof(timeout=15)
			dt = time.monotonic() - t0
			check(dt < 10, "session closed %.1fs after the half-close" % dt)
		wait_until(lambda: c.redis.cmd("ZCARD", "postern:conn:" + acct) == 0, 10, "the connection slot released")
	finally:
		stop.set()
		srv.stop()


def _peer_der(port):
	ctx = ssl.create_default_context(cafile=None)
	ctx.check_hostname = False
	ctx.verify_mode = ssl.CERT_NONE
	with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
		with ctx.wrap_socket(s, server_hostname="localhost") as t:
			return t.getpeercert(binary_form=True)


def _der(path):
	with open(path) as f:
		return ssl.PEM_cert_to_DER_cert(f.read())


def _replace(src, dst):
	tmp = dst + ".new"
	shutil.copy(src, tmp)
	os.replace(tmp, dst)


def test_sighup_reloads_certificate(c):
	p = c.p
	eq(_peer_der(p.imap_tls), _der(c.env.certs.cert), "initial certificate")
	live = _session(p, c.acct, c.tok)
	with live:
		cert, key = make_leaf_cert(c.env, "reloaded", "DNS:localhost,IP:127.0.0.1,IP:::1")
		_replace(cert, p.cert)
		_replace(key, p.key)
		p.reload()
		wait_until(lambda: _peer_der(p.imap_tls) == _der(cert), 10, "new connections to present the new certificate")
		# Verified by clients that trust the CA.
		r, resp = login_raw(p.imap_tls, c.acct, c.tok)
		with r:
			expect_login_ok(resp, "a1", c.acct)
		_noop_ok(live)
		# A broken certificate file: the reload fails, the old one stays.
		with open(p.cert, "w") as f:
			f.write("not a certificate\n")
		p.reload()
		wait_until(lambda: "event=reload result=fail" in p.log_text(), 10, "failed reload logged")
		eq(_peer_der(p.imap_tls), _der(cert), "still the last good certificate")
		_noop_ok(live, "n2")
		check(p.alive(), "posternd survives a bad reload")
		_replace(cert, p.cert)


def test_sigterm_drains(c):
	p = _postern(c, "posternd-drain", extra={"postern": {"drain_timeout": "30s"}})
	relayed = _session(p, c.acct, c.tok)
	waiting = Raw(p.imap_tls)
	waiting.read_greeting()
	try:
		p.proc.send_signal(signal.SIGTERM)
		eq(waiting.line(timeout=10), b"* BYE Server shutting down\r\n", "BYE to a session not logged in")
		waiting.expect_eof()
		wait_until(lambda: _refused(p.imap_tls), 10, "new connections refused while draining")
		_noop_ok(relayed)
		r = relayed.cmd("s1", "SELECT INBOX")
		check(tagged(r, "s1").startswith(b"s1 OK"), "a draining session keeps working")
		resp = relayed.cmd("l1", "LOGOUT")
		check(resp.startswith(b"* BYE"), "LOGOUT")
		t0 = time.monotonic()
		rc = p.proc.wait(15)
		eq(rc, 0, "posternd exit status after the drain")
		check(time.monotonic() - t0 < 10, "exits once the last session ended, not at the 30s bound")
	finally:
		relayed.close()
		waiting.close()


def test_sigterm_drain_bound(c):
	p = _postern(c, "posternd-drain-bound", extra={"postern": {"drain_timeout": "1s"}})
	relayed = _session(p, c.acct, c.tok)
	with relayed:
		t0 = time.monotonic()
		p.proc.send_signal(signal.SIGTERM)
		relayed.expect_eof(timeout=15)
		dt = time.monotonic() - t0
		check(0.8 <= dt < 8, "session closed at the 1s drain bound (after %.2fs)" % dt)
		eq(p.proc.wait(15), 0, "posternd exit status")


def _refused(port):
	try:
		with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
			s.settimeout(1)
			return s.recv(1) == b""
	except OSError:
		return True
