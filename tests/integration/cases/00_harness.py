"""Self-test of the harness pieces that need no posternd: certificates,
ports, Redis start/stop/restart/pause, Dovecot logins over imaps and
STARTTLS, the admin API client, and that cleanup leaves no process."""

import http.server
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

from harness import (Api, Dovecot, Env, Postern, Redis, check, contains, eq, imap_connect,
    pid_alive, pids_in_group, read_line, wait_until, HERE)


def setup(env):
	ctx = {"env": env}
	ctx["redis"] = env.redis(tcp=True, unix=True)
	ctx["dovecot"] = env.dovecot()
	ctx["dovecot"].add_user("alice@example.test", "alice-pw")
	return ctx


def test_certs(ctx):
	env = ctx["env"]
	c = env.certs
	rc, out, err = env.run(["openssl", "verify", "-CAfile", c.ca, c.cert])
	eq(rc, 0, "openssl verify of the server cert against the CA (%s)" % err.strip())
	rc, out, err = env.run(["openssl", "x509", "-in", c.cert, "-noout", "-subject", "-ext", "subjectAltName"])
	eq(rc, 0, "openssl x509")
	contains(out, "CN = localhost", "subject")
	for san in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"):
		contains(out, san, "subjectAltName")
	rc, out, err = env.run(["openssl", "verify", "-CAfile", c.ca, c.self_cert])
	check(rc != 0, "the self-signed cert must not verify against the CA")
	rc, out, err = env.run(["openssl", "x509", "-in", c.self_cert, "-noout", "-ext", "subjectAltName"])
	contains(out, "DNS:localhost", "self-signed cert SANs")
	for k in (c.key, c.ca_key, c.self_key):
		eq(os.stat(k).st_mode & 0o777, 0o600, "mode of %s" % k)


def test_ports_distinct_and_free(ctx):
	env = ctx["env"]
	ports = [env.port() for _ in range(20)]
	eq(len(set(ports)), 20, "20 allocated ports distinct")
	for p in ports:
		s = socket.socket()
		s.bind(("127.0.0.1", p))
		s.close()


def test_redis_tcp_and_unix(ctx):
	r = ctx["redis"]
	eq(r.cmd("SET", "k1", b"v\x00\r\n1"), "OK", "SET")
	eq(r.cmd("GET", "k1"), b"v\x00\r\n1", "GET over unix socket, binary safe")
	s = socket.create_connection(("127.0.0.1", r.port), timeout=2)
	s.sendall(b"PING\r\n")
	eq(read_line(s), b"+PONG\r\n", "PING over TCP")
	s.close()
	rc, out, err = r.cli("PING")
	eq((rc, out.strip()), (0, "PONG"), "redis-cli PING")
	r.cmd("HSET", "h1", "f", "v")
	r.cmd("SADD", "s1", "m")
	r.cmd("ZADD", "z1", "1", "m")
	d = r.dump()
	eq(d["h1"], ("hash", [b"f", b"v"]), "dump of a hash")
	eq(d["s1"], ("set", [b"m"]), "dump of a set")
	eq(d["z1"], ("zset", [b"m", b"1"]), "dump of a zset")
	r.cmd("FLUSHALL")


def test_redis_restart_same_port_and_socket(ctx):
	r = ctx["redis"]
	old_pid = r.proc.pid
	port, sock = r.port, r.sock
	r.cmd("SET", "before", "1")
	r.stop()
	check(not pid_alive(old_pid), "redis pid %d gone after stop()" % old_pid)
	check(not r.ping(timeout=0.3), "no PING answer while stopped")
	r.start()
	eq((r.port, r.sock), (port, sock), "same port and socket after restart")
	ne_pid = r.proc.pid
	check(ne_pid != old_pid, "a new process")
	check(r.ping(), "PING after restart")
	eq(r.cmd("GET", "before"), None, "no persistence: data gone after restart")
	r.kill()
	check(not r.alive(), "dead after kill()")
	r.start()
	check(r.ping(), "PING after kill + start")


def test_redis_pause_resume(ctx):
	r = ctx["redis"]
	r.pause()
	try:
		t0 = time.monotonic()
		check(not r.ping(timeout=0.5), "a SIGSTOPped redis does not answer")
		check(time.monotonic() - t0 < 2, "ping timeout bounded")
	finally:
		r.resume()
	check(r.ping(), "PING after SIGCONT")


def test_dovecot_imaps_login(ctx):
	d = ctx["dovecot"]
	for host in ("localhost", "127.0.0.1"):
		m = d.login("alice@example.test", mode="imaps", host=host)
		typ, data = m.select("INBOX")
		eq(typ, "OK", "SELECT INBOX over imaps via %s" % host)
		m.logout()
	m = d.login("alice@example.test", mode="imaps")
	msg = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: harness\r\n\r\nhello\r\n"
	typ, _ = m.append("INBOX", None, None, msg)
	eq(typ, "OK", "APPEND")
	m.select("INBOX")
	typ, data = m.search(None, "SUBJECT", "harness")
	eq(typ, "OK", "SEARCH")
	ids = data[0].split()
	check(ids, "SEARCH finds the appended message")
	typ, data = m.fetch(ids[-1], "(BODY.PEEK[])")
	eq(data[0][1], msg, "FETCH returns the message byte for byte")
	m.logout()
	md = d.maildir("alice@example.test")
	check(os.path.isdir(os.path.join(md, "cur")) or os.path.isdir(os.path.join(md, "new")), "Maildir under the temp dir")
	eq(os.stat(md).st_uid, 8, "Maildir owned by mail(8)")


def test_dovecot_starttls_login(ctx):
	d = ctx["dovecot"]
	m = imap_connect(ctx["env"], "localhost", d.imap_port, mode="plain")
	contains(m.capabilities, "STARTTLS", "plaintext port capabilities")
	m.starttls(ssl_context=ctx["env"].ssl_context())
	m.login("alice@example.test", "alice-pw")
	eq(m.select("INBOX")[0], "OK", "SELECT after STARTTLS")
	m.logout()
	if d.has_v6:
		m = imap_connect(ctx["env"], "::1", d.imaps_port, mode="imaps", user="alice@example.test", password="alice-pw")
		m.logout()


def test_dovecot_self_signed_untrusted(ctx):
	env = ctx["env"]
	d2 = Dovecot(env, cert="self", name="dovecot-self")
	d2.start()
	try:
		try:
			imap_connect(env, "localhost", d2.imaps_port, mode="imaps")
		except ssl.SSLCertVerificationError:
			pass
		else:
			check(False, "a self-signed upstream must fail verification with the harness CA")
		m = imap_connect(env, "localhost", d2.imaps_port, mode="imaps", ctx=env.ssl_context(ca=False))
		m.logout()
	finally:
		d2.stop()
	check(not pids_in_group(d2.proc.pid), "dovecot-self: no process left in its group")


def test_dovecot_fast_failures_and_add_user(ctx):
	d = ctx["dovecot"]
	for i in range(3):
		t0 = time.monotonic()
		try:
			d.login("alice@example.test", "wrong", mode="imaps")
		except Exception as e:  # imaplib.IMAP4.error
			contains(str(e), "AUTHENTICATIONFAILED", "failed login")
		else:
			check(False, "a wrong password must fail")
		check(time.monotonic() - t0 < 3, "failed login %d took %.1fs (auth penalty not off?)" % (i, time.monotonic() - t0))
	t0 = time.monotonic()
	d.login("alice@example.test", mode="imaps").logout()
	check(time.monotonic() - t0 < 3, "good login right after failures is fast")
	d.add_user("bob@example.test", "bob-pw")
	wait_until(lambda: d.login("bob@example.test", mode="starttls").logout(), 5, "a user added at runtime to log in")


def test_postern_conf_generated(ctx):
	env = ctx["env"]
	p = Postern(env, ctx["redis"], name="posternd-conf", extra={"imap": {"failure_delay": "2s", "login_timeout": None},
	    "postern": {"secret_file": "/nonexistent"}})
	text = open(p.write_conf()).read()
	for s in ("[postern]", "log_level = debug", "workers = 1", "[redis]", "url = unix:%s" % ctx["redis"].sock,
	    "prefix = postern:", "timeout = 1s", "[admin]", "socket = %s" % p.admin_sock, "[tls]",
	    "cert = %s" % env.certs.cert, "listen = 127.0.0.1:%d tls, 127.0.0.1:%d starttls" % (p.imap_tls, p.imap_starttls),
	    "failure_delay = 2s", "listen = 127.0.0.1:%d starttls, 127.0.0.1:%d tls" % (p.smtp_starttls, p.smtp_tls),
	    "secret_file = /nonexistent"):
		contains(text, s, "postern.conf")
	check("login_timeout" not in text, "a None override drops the key")
	eq(len({p.imap_tls, p.imap_starttls, p.smtp_starttls, p.smtp_tls}), 4, "four distinct ports")


class _Handler(http.server.BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"

	def log_message(self, *a):
		pass

	def address_string(self):
		return "unix"

	def _send(self, status, obj, close=False):
		b = json.dumps(obj).encode()
		self.send_response(status)
		self.send_header("Content-Type", "application/json")
		self.send_header("Content-Length", str(len(b)))
		if close:
			self.send_header("Connection", "close")
		self.end_headers()
		self.wfile.write(b)

	def do_GET(self):
		self._send(200, {"path": self.path})

	def do_POST(self):
		n = int(self.headers.get("Content-Length", "0"))
		if n > 1024 * 1024:
			# Like evhttp: answer 413 without reading the body, then close.
			self._send(413, {"statusCode": 413, "error": "Payload Too Large", "message": "too big"}, close=True)
			self.close_connection = True
			return
		body = self.rfile.read(n)
		self._send(200, json.loads(body))


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
	daemon_threads = True


def test_api_client_over_unix_socket(ctx):
	env = ctx["env"]
	path = env.path("fake-admin.sock")
	srv = _UnixServer(path, _Handler)
	t = threading.Thread(target=srv.serve_forever, daemon=True)
	t.start()
	try:
		api = Api(path)
		st, data = api.get("/v1/tokens", params={"account": "a b", "page": 0})
		eq((st, data), (200, {"path": "/v1/tokens?account=a+b&page=0"}), "GET with params")
		eq(tuple(api.post("/v1/token", {"x": [1, 2]})), (200, {"x": [1, 2]}), "POST json")
		r = api.post("/v1/account", b"x" * (2 * 1024 * 1024))
		eq(r.status, 413, "2 MiB body answered 413 before being read")
	finally:
		srv.shutdown()
		srv.server_close()


_CHILD = r"""
import sys, time
sys.path.insert(0, %(lib)r)
import harness
harness.install_signal_handlers()
env = harness.Env(None, "child")
r = env.redis(tcp=True, unix=True)
d = env.dovecot()
print(env.dir, r.proc.pid, d.proc.pid, flush=True)
try:
	time.sleep(120)
finally:
	env.cleanup()
"""


def test_cleanup_on_signal_leaves_nothing(ctx):
	"""A child harness with redis + dovecot, interrupted by SIGTERM and by
	SIGINT, stops every process it started and removes its temp dir."""
	for sig in (signal.SIGTERM, signal.SIGINT):
		p = subprocess.Popen([sys.executable, "-c", _CHILD % {"lib": HERE}], stdout=subprocess.PIPE,
		    stderr=subprocess.PIPE, start_new_session=True)
		try:
			line = p.stdout.readline().decode().split()
			check(len(line) == 3, "child harness started: %r %s" % (line, p.stderr.read(2000) if p.poll() is not None else ""))
			tmp, rpid, dpid = line[0], int(line[1]), int(line[2])
			group = pids_in_group(dpid)
			check(len(group) >= 3, "dovecot master has children in its group: %r" % group)
			p.send_signal(sig)
			p.wait(30)
			for pid in [rpid] + group:
				check(not pid_alive(pid), "pid %d still alive after child harness got signal %d" % (pid, sig))
			check(not pids_in_group(dpid), "dovecot group empty")
			check(not os.path.exists(tmp), "temp dir %s removed" % tmp)
		finally:
			if p.poll() is None:
				p.terminate()	# lets the child harness stop its servers
				try:
					p.wait(30)
				except subprocess.TimeoutExpired:
					p.kill()
					p.wait()


def test_cleanup_on_normal_exit_leaves_nothing(ctx):
	env2 = Env(None, "inner")
	r = env2.redis(tcp=True, unix=False)
	d = env2.dovecot()
	pids = [r.proc.pid] + pids_in_group(d.proc.pid)
	r.pause()	# a stopped process must still be stopped by cleanup
	env2.cleanup()
	for pid in pids:
		check(not pid_alive(pid), "pid %d alive after Env.cleanup()" % pid)
	check(not os.path.exists(env2.dir), "temp dir removed")
