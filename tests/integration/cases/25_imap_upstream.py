"""Issue 3, point 4: the upstream leg. Implicit TLS, STARTTLS required,
starttls "never"; certificate verification against an untrusted
(self-signed) Dovecot, skipped by tls.rejectUnauthorized false and by the
global ignoreMailCertErrors; upstream down, silent, rejecting the password,
or not offering STARTTLS: the client gets NO [UNAVAILABLE] and the account
records lastError."""

import re
import time

from harness import check, contains, eq, expect_status, not_contains, uniq, wait_until
from imapc import (FakeServer, NO_LIMIT, Raw, dovecot_account, expect_login_ok, imap_setup,
    dovecot_with_mechanisms, login_raw, make_leaf_cert, quote, recv_line, tagged, token_for)

USERS = {"alice@example.test": "alice-pw", "plain@example.test": "plain-pw",
    "stls@example.test": "stls-pw", "tls@example.test": "tls-pw"}
UP_TIMEOUT = 2.0	# [upstream] login_timeout here


def setup(env):
	c = imap_setup(env, users=USERS, postern_extra={"upstream": {"login_timeout": "2s", "connect_timeout": "2s"}})
	# A second Dovecot with the self-signed certificate: untrusted.
	c.selfdc = env.dovecot(cert="self", name="dovecot-self")
	for u, pw in USERS.items():
		c.selfdc.add_user(u, pw)
	# A third one with a CA-signed certificate for another name only.
	c.otherdc = env.dovecot(cert=make_leaf_cert(env, "other.test", "DNS:other.test"), name="dovecot-other")
	c.otherdc.add_user("alice@example.test", "alice-pw")
	return c


def _login(c, acct, tag="a1"):
	tok = token_for(c.p, acct)
	r, resp = login_raw(c.p.imap_tls, acct, tok, tag=tag, timeout=15)
	return r, resp


def _account(c, acct):
	return expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")


def _dovecot_login_line(dc, user):
	with open(dc.log, "rb") as f:
		lines = [l for l in f.read().decode("utf-8", "replace").splitlines()
		    if "imap-login: Info: Login: user=<%s>" % user in l]
	return lines[-1] if lines else None


def _works(c, acct, user=None, dc=None):
	r, resp = _login(c, acct)
	with r:
		expect_login_ok(resp, "a1", acct)
		resp = r.cmd("s1", "SELECT INBOX")
		check(tagged(resp, "s1").startswith(b"s1 OK [READ-WRITE]"), "SELECT via the upstream: %r" % resp)
		resp = r.cmd("l1", "LOGOUT")
		check(resp.startswith(b"* BYE"), "LOGOUT: %r" % resp)
	d = _account(c, acct)
	eq((d.get("state"), d.get("lastError")), ("connected", None), "account state after a good login")
	if user is not None:
		return _dovecot_login_line(dc or c.dovecot, user)
	return None


def test_implicit_tls(c):
	acct = dovecot_account(c.p, c.dovecot, "tls@example.test", mode="imaps")
	line = _works(c, acct, "tls@example.test")
	check(line is not None and ", TLS," in line, "Dovecot saw a TLS login: %r" % line)


def test_starttls_required(c):
	acct = dovecot_account(c.p, c.dovecot, "stls@example.test", mode="starttls")
	line = _works(c, acct, "stls@example.test")
	check(line is not None and ", TLS," in line, "Dovecot saw a login after STARTTLS: %r" % line)


def test_starttls_never(c):
	acct = dovecot_account(c.p, c.dovecot, "plain@example.test", mode="plain")
	line = _works(c, acct, "plain@example.test")
	check(line is not None and ", TLS" not in line, "Dovecot saw a plaintext login: %r" % line)


def test_host_name_upstream(c):
	"""A host name goes through the resolver (evdns, /etc/hosts) and is
	verified against the certificate's DNS name."""
	acct = dovecot_account(c.p, c.dovecot, "alice@example.test", host="localhost")
	_works(c, acct)


def test_upstream_down(c):
	port = c.env.port()
	acct = uniq("down")
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": port, "secure": True,
	    "auth": {"user": "x", "pass": "y"}})
	r, resp = _login(c, acct)
	with r:
		text = b"NO [UNAVAILABLE] Upstream server unavailable: connect to 127.0.0.1:%d: Connection refused" % port
		eq(resp, b"a1 " + text + b"\r\n", "upstream down")
		eq(r.cmd("n1", "NOOP"), b"n1 OK NOOP completed\r\n", "session still usable")
	d = _account(c, acct)
	eq(d.get("state"), "connectError", "state")
	eq(d["lastError"]["response"], "connect to 127.0.0.1:%d: Connection refused" % port, "lastError.response")
	# The failed attempt gave its connection slot back.
	eq(c.redis.cmd("ZCARD", "postern:conn:" + acct), 0, "no slot held after an upstream failure")


def test_upstream_rejects_password(c):
	acct = dovecot_account(c.p, c.dovecot, "alice@example.test", password="wrong-pw")
	r, resp = _login(c, acct)
	with r:
		eq(resp, b"a1 NO [UNAVAILABLE] Upstream server rejected the login: "
		    b"[AUTHENTICATIONFAILED] Authentication failed.\r\n", "upstream said NO")
	d = _account(c, acct)
	eq(d.get("state"), "authenticationError", "state")
	eq(d["lastError"]["response"], "[AUTHENTICATIONFAILED] Authentication failed.", "lastError.response")
	check(re.match(r"^\d{4}-\d\d-\d\dT", d["lastError"].get("time", "")), "lastError.time: %r" % d["lastError"])
	not_contains(c.p.log_text(), "wrong-pw", "posternd log")
	# Fixing the password clears the error at the next good login.
	expect_status(c.api.put(c.p.account_path(acct), {"imap": {"host": "127.0.0.1", "port": c.dovecot.imaps_port,
	    "secure": True, "auth": {"user": "alice@example.test", "pass": "alice-pw"}}}), 200, "PUT account")
	_works(c, acct)


def test_untrusted_certificate(c):
	acct = dovecot_account(c.p, c.selfdc, "alice@example.test")
	r, resp = _login(c, acct)
	with r:
		eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: certificate verify failed: "
		    b"self-signed certificate\r\n", "self-signed upstream refused")
	d = _account(c, acct)
	eq((d.get("state"), d["lastError"]["response"]), ("connectError", "certificate verify failed: self-signed certificate"),
	    "lastError")
	# STARTTLS to the same server: refused the same way, before credentials.
	acct2 = dovecot_account(c.p, c.selfdc, "stls@example.test", mode="starttls")
	r, resp = _login(c, acct2)
	with r:
		eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: certificate verify failed: "
		    b"self-signed certificate\r\n", "self-signed upstream refused after STARTTLS")
	check(_dovecot_login_line(c.selfdc, "stls@example.test") is None, "no login reached the untrusted server")


def test_reject_unauthorized_false(c):
	acct = dovecot_account(c.p, c.selfdc, "alice@example.test", tls={"rejectUnauthorized": False})
	_works(c, acct, "alice@example.test", c.selfdc)
	acct2 = dovecot_account(c.p, c.selfdc, "stls@example.test", mode="starttls", tls={"rejectUnauthorized": False})
	line = _works(c, acct2, "stls@example.test", c.selfdc)
	check(line is not None and ", TLS," in line, "STARTTLS login to the self-signed server: %r" % line)


def test_ignore_mail_cert_errors(c):
	acct = dovecot_account(c.p, c.selfdc, "tls@example.test")
	r, resp = _login(c, acct)
	r.close()
	contains(resp, b"certificate verify failed", "refused before the setting")
	expect_status(c.api.post("/v1/settings", {"ignoreMailCertErrors": True}), 200, "POST settings")
	try:
		_works(c, acct, "tls@example.test", c.selfdc)
	finally:
		expect_status(c.api.post("/v1/settings", {"ignoreMailCertErrors": False}), 200, "POST settings")
	r, resp = _login(c, acct)
	r.close()
	contains(resp, b"certificate verify failed", "refused again once the setting is off")


def test_wrong_host_name(c):
	"""A certificate from the trusted CA for another name: refused (host
	name verification), accepted with rejectUnauthorized false."""
	acct = dovecot_account(c.p, c.otherdc, "alice@example.test", host="127.0.0.1")
	r, resp = _login(c, acct)
	with r:
		eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: certificate verify failed: "
		    b"IP address mismatch\r\n", "certificate for another host")
	acct = dovecot_account(c.p, c.otherdc, "alice@example.test", host="localhost")
	r, resp = _login(c, acct)
	with r:
		eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: certificate verify failed: "
		    b"hostname mismatch\r\n", "certificate for another host name")
	acct = dovecot_account(c.p, c.otherdc, "alice@example.test", host="localhost", tls={"rejectUnauthorized": False})
	_works(c, acct)


def _no_starttls_server(conn, record):
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LOGIN] fake ready\r\n")
	while True:
		ln = recv_line(conn)
		if not ln:
			return
		record(ln)
		tag = ln.split(b" ", 1)[0]
		if b"CAPABILITY" in ln.upper():
			conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n" % tag)
		else:
			conn.sendall(b"%s BAD no\r\n" % tag)


def test_starttls_not_offered(c):
	srv = FakeServer(c.env, _no_starttls_server)
	try:
		acct = uniq("nostls")
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False,
		    "auth": {"user": "u", "pass": "secret-pass"}})
		r, resp = _login(c, acct)
		with r:
			eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: upstream does not offer STARTTLS\r\n",
			    "STARTTLS required, not offered")
		check(all(b"secret-pass" not in x and b"LOGIN" not in x.upper() and b"AUTHENTICATE" not in x.upper()
		    for x in srv.received), "no credentials sent in clear: %r" % srv.received)
	finally:
		srv.stop()


def _silent_server(conn, record):
	while True:
		d = conn.recv(4096)
		if not d:
			return
		record(d)


def test_upstream_silent_times_out(c):
	srv = FakeServer(c.env, _silent_server)
	try:
		acct = uniq("silent")
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
		    "auth": {"user": "u", "pass": "p"}})
		t0 = time.monotonic()
		r, resp = _login(c, acct)
		dt = time.monotonic() - t0
		with r:
			eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: upstream login timed out "
			    b"(waiting for greeting)\r\n", "silent upstream")
		check(dt >= UP_TIMEOUT - 0.1, "answered after the upstream login timeout (%.2fs)" % dt)
	finally:
		srv.stop()


def _bye_server(conn, record):
	conn.sendall(b"* BYE [UNAVAILABLE] Too busy\r\n")


def test_upstream_bye_greeting(c):
	srv = FakeServer(c.env, _bye_server)
	try:
		acct = uniq("bye")
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
		    "auth": {"user": "u", "pass": "p"}})
		r, resp = _login(c, acct)
		with r:
			eq(resp, b"a1 NO [UNAVAILABLE] Upstream server unavailable: upstream refused: [UNAVAILABLE] Too busy\r\n",
			    "BYE greeting")
	finally:
		srv.stop()


def _literal_login_server(conn, record):
	"""No AUTH= and no LITERAL+: the proxy must LOGIN with synchronizing
	literals, waiting for each "+"."""
	conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
	ln = recv_line(conn)
	record(ln)
	m = re.match(rb"^(\S+) LOGIN \{(\d+)\}\r\n$", ln)
	if not m:
		conn.sendall(b"* BAD expected LOGIN {n}\r\n")
		return
	tag = m.group(1)
	conn.sendall(b"+ go\r\n")
	user = b""
	while len(user) < int(m.group(2)):
		user += conn.recv(int(m.group(2)) - len(user))
	record(user)
	rest = recv_line(conn)
	record(rest)
	m2 = re.match(rb"^ \{(\d+)\}\r\n$", rest)
	conn.sendall(b"+ go\r\n")
	pw = b""
	while len(pw) < int(m2.group(1)):
		pw += conn.recv(int(m2.group(1)) - len(pw))
	record(pw)
	record(recv_line(conn))
	conn.sendall(b"%s OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n" % tag)
	while True:
		ln = recv_line(conn)
		if not ln:
			return
		t = ln.split(b" ", 1)[0]
		conn.sendall(b"* ECHO %s%s OK echoed\r\n" % (ln, t))


def test_login_with_literals(c):
	srv = FakeServer(c.env, _literal_login_server)
	try:
		acct = uniq("lit")
		pw = 'p "w\\ \xe9'
		c.p.add_account(acct, imap={"host": "127.0.0.1", "port": srv.port, "secure": False, "starttls": "never",
		    "auth": {"user": "us er", "pass": pw}})
		r, resp = _login(c, acct)
		with r:
			eq(resp, b"* CAPABILITY IMAP4rev1 IDLE\r\na1 OK %s authenticated\r\n" % acct.encode(), "login via literals")
			eq(r.cmd("x1", "XYZZY"), b"* ECHO x1 XYZZY\r\nx1 OK echoed\r\n", "relay after a literal LOGIN")
		eq(srv.received[1:4], [b"us er", b" {%d}\r\n" % len(pw.encode()), pw.encode()], "user and password literals")
	finally:
		srv.stop()


def test_sasl_scram_upstream(c):
	"""The strongest mechanism both sides have, through libsasl2: SCRAM-SHA-256
	when Dovecot offers it (besides PLAIN and CRAM-MD5), CRAM-MD5 over a
	plaintext leg when that is all it has besides LOGIN."""
	users = {"scram@example.test": "scram-pw"}
	d = dovecot_with_mechanisms(c.env, "dovecot-scram", "plain login cram-md5 scram-sha-256", users)
	acct = dovecot_account(c.p, d, "scram@example.test")
	line = _works(c, acct, "scram@example.test", d)
	check(line is not None and "method=SCRAM-SHA-256" in line, "Dovecot saw SCRAM-SHA-256: %r" % line)
	contains(c.p.log_text(), "account=%s upstream=127.0.0.1:%d mech=SCRAM-SHA-256" % (acct, d.imaps_port), "posternd log")
	d2 = dovecot_with_mechanisms(c.env, "dovecot-cram", "login cram-md5", users)
	acct = dovecot_account(c.p, d2, "scram@example.test", mode="plain")
	line = _works(c, acct, "scram@example.test", d2)
	check(line is not None and "method=CRAM-MD5" in line, "Dovecot saw CRAM-MD5: %r" % line)
	d.stop()
	d2.stop()
