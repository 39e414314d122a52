"""IMAP helpers for the Postern IMAP proxy cases (cases/2N_imap_*.py):
a raw line-level IMAP client over TCP/TLS (exact bytes, one-byte sends,
STARTTLS), a standard setup (Redis + Dovecot + posternd trusting the
harness CA), account/token shortcuts, Maildir seeding and process RSS.
Python 3 standard library only."""

import base64
import os
import re
import socket
import ssl
import time
import types

from harness import TestFailure, _short, check, child_pids, eq, expect_status, uniq, wait_until

GREETING_RE = re.compile(rb"^\* OK Postern IMAP Proxy ready for requests from (\S+) ([0-9a-f]{16})\r\n$")
PRE_CAPS_TLS = b"IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN"
PRE_CAPS_PLAIN = b"IMAP4rev1 LITERAL+ SASL-IR ID STARTTLS LOGINDISABLED"

# EmailEngine's answers, word for word (issue 3, point 3).
NO_TOKEN = b"NO [AUTHENTICATIONFAILED] Access denied, failed to authenticate user"
NO_USER = b"NO [AUTHENTICATIONFAILED] Access denied, invalid username"
NO_SCOPE = b"NO [AUTHENTICATIONFAILED] Access denied, invalid scope"
NO_IP = b"NO [AUTHENTICATIONFAILED] Access denied, traffic not accepted from this IP"
NO_ACCOUNT = b"NO [AUTHENTICATIONFAILED] Failed to authenticate user"
NO_LIMIT = b"NO [LIMIT] Too many connections for this account"
NO_TEMP = b"NO [UNAVAILABLE] Temporary authentication failure, try again later"

# Dovecot appends "(0.001 + 0.000 + 0.000 secs)." timings to tagged OKs.
_TIMING_RE = re.compile(rb" \(\d+\.\d+( \+ \d+\.\d+)* secs\)")


def normalize(data):
	"""Upstream transcript with Dovecot's timings removed (they differ
	between two otherwise identical runs)."""
	return _TIMING_RE.sub(b"", data)


class Closed(TestFailure):
	"""The server closed the connection while a line was expected."""


class Raw:
	"""A line-level IMAP client: send exact bytes, read exact lines.
	mode: "tls" (implicit), "plain" (STARTTLS listener, no TLS yet)."""

	def __init__(self, port, mode="tls", host="127.0.0.1", ctx=None, server_hostname="localhost",
	    timeout=10.0, family=None):
		self.timeout = timeout
		if family is None:
			family = socket.AF_INET6 if ":" in host else socket.AF_INET
		s = socket.socket(family, socket.SOCK_STREAM)
		s.settimeout(timeout)
		s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		s.connect((host, port))
		self.raw = s
		self.sock = s
		self.buf = bytearray()
		self.server_hostname = server_hostname
		if mode == "tls":
			self.sock = (ctx or _default_ctx()).wrap_socket(s, server_hostname=server_hostname)
		self.greeting = None

	def read_greeting(self):
		self.greeting = self.line()
		return self.greeting

	def send(self, data):
		if isinstance(data, str):
			data = data.encode()
		self.sock.sendall(data)

	def send_bytewise(self, data):
		for i in range(len(data)):
			self.sock.sendall(data[i:i + 1])

	def _fill(self, timeout=None):
		self.sock.settimeout(self.timeout if timeout is None else timeout)
		try:
			c = self.sock.recv(1 << 20)
		except ssl.SSLError as e:
			# A peer closing without close_notify is an EOF here.
			if "EOF" in str(e) or "UNEXPECTED_EOF" in str(e):
				return False
			raise
		except ConnectionResetError:
			return False
		if not c:
			return False
		self.buf += c
		return True

	def line(self, timeout=None):
		"""One line, CRLF included. Closed on EOF."""
		t = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + t
		scanned = 0
		while True:
			i = self.buf.find(b"\n", scanned)
			if i >= 0:
				break
			scanned = len(self.buf)
			left = deadline - time.monotonic()
			if left <= 0:
				raise TestFailure("no complete line within %.1fs; have %s" % (t, _short(bytes(self.buf[:600]))))
			try:
				if not self._fill(left):
					raise Closed("connection closed; pending %s" % _short(bytes(self.buf[:600])))
			except socket.timeout:
				raise TestFailure("no complete line within %.1fs; have %s" % (t, _short(bytes(self.buf[:600]))))
		out = bytes(self.buf[:i + 1])
		del self.buf[:i + 1]
		return out

	def read_exact(self, n, timeout=None):
		while len(self.buf) < n:
			if not self._fill(timeout):
				raise Closed("connection closed after %d of %d bytes" % (len(self.buf), n))
		out = bytes(self.buf[:n])
		del self.buf[:n]
		return out

	def response(self, tag, timeout=None):
		"""Everything up to and including the tagged line for tag, with
		literals read whole. Returns the raw bytes."""
		if isinstance(tag, str):
			tag = tag.encode()
		out = []
		while True:
			ln = self.line(timeout)
			out.append(ln)
			m = re.search(rb"\{(\d+)\}\r\n$", ln)
			if m:
				out.append(self.read_exact(int(m.group(1)), timeout))
				continue
			if ln.startswith(tag + b" "):
				return b"".join(out)

	def cmd(self, tag, text, timeout=None):
		"""Sends "tag text" CRLF and returns the whole response."""
		self.send(b"%s %s\r\n" % (tag.encode() if isinstance(tag, str) else tag,
		    text.encode() if isinstance(text, str) else text))
		return self.response(tag, timeout)

	def starttls(self, ctx=None):
		self.sock = (ctx or _default_ctx()).wrap_socket(self.raw, server_hostname=self.server_hostname)

	def expect_eof(self, timeout=None):
		"""Reads until the server closes; returns what came before."""
		deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
		while True:
			left = deadline - time.monotonic()
			if left <= 0:
				raise TestFailure("connection still open after %.1fs; got %s" % (
				    self.timeout if timeout is None else timeout, _short(self.buf)))
			try:
				if not self._fill(left):
					break
			except socket.timeout:
				continue
			except OSError:
				break
		out = bytes(self.buf)
		self.buf = bytearray()
		return out

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass
		try:
			self.raw.close()
		except OSError:
			pass

	def __enter__(self):
		return self

	def __exit__(self, *a):
		self.close()


_CTX = {}


def _default_ctx():
	return _CTX["ca"]


def set_default_ca(env):
	_CTX["ca"] = env.ssl_context()


def quote(s):
	return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def plain_ir(user, token):
	return base64.b64encode(b"\0" + user.encode() + b"\0" + token.encode()).decode()


# ---------------------------------------------------------------- setup

def imap_setup(env, users=None, postern_extra=None, dovecot=True, postern=True, **postern_kw):
	"""Redis + Dovecot (CA-signed cert) + posternd trusting the harness CA
	for upstreams, failure_delay 0. Returns a ctx: .env .redis .dovecot .p
	.api (postern=False: no posternd, the case starts its own). postern_kw
	goes to Postern (e.g. imap_proxy=True)."""
	c = types.SimpleNamespace(env=env)
	set_default_ca(env)
	c.redis = env.redis(tcp=True, unix=True)
	if dovecot:
		c.dovecot = env.dovecot()
		for u, pw in (users or {}).items():
			c.dovecot.add_user(u, pw)
	if postern:
		c.p = env.postern(c.redis, extra=merge_extra(env, postern_extra), **postern_kw)
		c.api = c.p.api
	return c


def merge_extra(env, extra=None):
	out = {"tls": {"ca_file": env.certs.ca}, "imap": {"failure_delay": "0"}}
	for sec, kv in (extra or {}).items():
		if kv is None:
			out[sec] = None
			continue
		out.setdefault(sec, {}).update(kv)
	return out


def dovecot_account(p, dovecot, user, password=None, account=None, mode="imaps", host="127.0.0.1", **imap_extra):
	"""Creates an account whose IMAP upstream is Dovecot. mode: imaps
	(secure), starttls (secure false, STARTTLS required), plain (starttls
	never). Returns the account id."""
	account = account or uniq("acct")
	password = dovecot.users[user] if password is None else password
	imap = {"host": host, "port": dovecot.imaps_port if mode == "imaps" else dovecot.imap_port,
	    "secure": mode == "imaps", "auth": {"user": user, "pass": password}}
	if mode == "plain":
		imap["starttls"] = "never"
	imap.update(imap_extra)
	p.add_account(account, imap=imap)
	return account


def token_for(p, account, scopes=("imap-proxy",), **kw):
	return p.create_token(account, scopes=scopes, **kw)["token"]


def login_raw(port, account, token, mode="tls", tag="a1", **kw):
	"""Connects, reads the greeting, LOGINs; returns (Raw, response)."""
	r = Raw(port, mode, **kw)
	r.read_greeting()
	resp = r.cmd(tag, "LOGIN %s %s" % (account, quote(token)))
	return r, resp


def tagged(resp, tag):
	"""The tagged line of a response, without CRLF."""
	if isinstance(tag, str):
		tag = tag.encode()
	lines = resp.split(b"\r\n")
	for ln in reversed(lines):
		if ln.startswith(tag + b" "):
			return ln
	raise TestFailure("no tagged %r line in %s" % (tag, _short(resp)))


def expect_login_ok(resp, tag, account):
	"""The hand-over: "* CAPABILITY ..." without pre-login capabilities,
	then "tag OK <account> authenticated"."""
	lines = resp.split(b"\r\n")
	check(len(lines) == 3 and lines[2] == b"", "login response must be two lines, got %s" % _short(resp))
	check(lines[0].startswith(b"* CAPABILITY IMAP4rev1"), "untagged CAPABILITY first, got %s" % _short(lines[0]))
	caps = lines[0].split()[2:]
	for bad in (b"STARTTLS", b"LOGINDISABLED"):
		check(bad not in caps, "%s must not be in post-login capabilities %s" % (bad, _short(lines[0])))
	check(not any(c.upper().startswith(b"AUTH=") for c in caps), "no AUTH= after login: %s" % _short(lines[0]))
	eq(lines[1], b"%s OK %s authenticated" % (tag.encode(), account.encode()), "tagged login reply")
	return caps


# ---------------------------------------------------------------- processes

def children(pid):
	return child_pids(pid)


def worker_pid(p):
	"""The (single) worker of posternd p."""
	return wait_until(lambda: (children(p.proc.pid) or [None])[0], 10, "%s worker process" % p.name)


def rss_kb(pid):
	with open("/proc/%d/status" % pid) as f:
		for ln in f:
			if ln.startswith("VmRSS:"):
				return int(ln.split()[1])
	raise TestFailure("no VmRSS for %d" % pid)


def io_rchar(pid):
	with open("/proc/%d/io" % pid) as f:
		for ln in f:
			if ln.startswith("rchar:"):
				return int(ln.split()[1])
	return 0


# ---------------------------------------------------------------- mail

def make_message(i, size=0, subject=None):
	"""An RFC 5322 message; size pads the body to about that many bytes
	with 76-char lines."""
	subject = subject or "message %d" % i
	head = ("From: Sender <sender@example.test>\r\nTo: alice@example.test\r\n"
	    "Subject: %s\r\nMessage-ID: <m%d-%s@example.test>\r\n"
	    "Date: Mon, 02 Jan 2023 10:00:%02d +0000\r\n\r\n" % (subject, i, uniq("id"), i % 60)).encode()
	body = b"Body of message %d.\r\n" % i
	if size > len(head) + len(body):
		line = (b"%d-" % i * 40)[:76] + b"\r\n"
		n = (size - len(head) - len(body)) // len(line)
		body += line * n
	return head + body


def seed_maildir(dovecot, user, messages, folder=None):
	"""Writes messages straight into the user's Maildir (new/), owned by
	mail(8) like Dovecot's own files. Dovecot picks them up on SELECT."""
	root = dovecot.maildir(user)
	d = os.path.join(root, "." + folder) if folder else root
	for sub in ("", "cur", "new", "tmp"):
		path = os.path.join(d, sub)
		os.makedirs(path, exist_ok=True)
	for dirpath in _parents(dovecot.dir, d):
		try:
			os.chown(dirpath, 8, 8)
		except OSError:
			pass
	for i, m in enumerate(messages):
		name = "%d.M%dP%d.seed%d,S=%d" % (int(time.time()), i, os.getpid(), i, len(m))
		tmp = os.path.join(d, "tmp", name)
		with open(tmp, "wb") as f:
			f.write(m)
		os.chown(tmp, 8, 8)
		os.rename(tmp, os.path.join(d, "new", name))


def _parents(top, d):
	"""top/mail/... down to d, for chown (Dovecot runs as mail)."""
	out = []
	rel = os.path.relpath(d, os.path.join(top, "mail"))
	cur = os.path.join(top, "mail")
	for part in rel.split(os.sep):
		cur = os.path.join(cur, part)
		out.append(cur)
		for sub in ("cur", "new", "tmp"):
			out.append(os.path.join(cur, sub))
	return [p for p in out if os.path.isdir(p)]


# ---------------------------------------------------------------- fake upstream

class FakeServer:
	"""A scripted TCP server on 127.0.0.1 for upstream misbehaviour
	(no STARTTLS offered, silence, BYE). handler(conn, record) runs in a
	thread per connection; record(bytes) appends to .received. stop()
	closes everything (called by the Env's cleanup through atexit too)."""

	def __init__(self, env, handler):
		import threading
		self.env = env
		self.handler = handler
		self.received = []
		self.conns = []
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.sock.bind(("127.0.0.1", 0))
		self.sock.listen(16)
		self.port = self.sock.getsockname()[1]
		self.stopped = False
		self.accepted = 0
		self.thread = threading.Thread(target=self._loop, daemon=True)
		self.thread.start()

	def _loop(self):
		import threading
		while not self.stopped:
			try:
				conn, _ = self.sock.accept()
			except OSError:
				return
			self.accepted += 1
			self.conns.append(conn)
			threading.Thread(target=self._run, args=(conn,), daemon=True).start()

	def _run(self, conn):
		try:
			conn.settimeout(30)
			self.handler(conn, self.received.append)
		except OSError:
			pass
		finally:
			try:
				conn.close()
			except OSError:
				pass

	def stop(self):
		self.stopped = True
		try:
			self.sock.close()
		except OSError:
			pass
		for c in self.conns:
			try:
				c.shutdown(socket.SHUT_RDWR)
				c.close()
			except OSError:
				pass


def recv_line(conn):
	buf = b""
	while not buf.endswith(b"\n"):
		c = conn.recv(1)
		if not c:
			break
		buf += c
	return buf


def make_leaf_cert(env, name, san):
	"""A server certificate signed by the harness CA with the given
	subjectAltName (e.g. "DNS:other.test"); returns (cert, key) paths."""
	from harness import _openssl
	c = env.certs
	d = os.path.join(c.dir, name)
	os.makedirs(d, exist_ok=True)
	key, csr, crt, ext = (os.path.join(d, n) for n in ("key.pem", "req.csr", "cert.pem", "ext.cnf"))
	_openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", key, "-out", csr,
	    "-subj", "/CN=%s" % name)
	with open(ext, "w") as f:
		f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		    "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % san)
	_openssl("x509", "-req", "-in", csr, "-CA", c.ca, "-CAkey", c.ca_key, "-CAcreateserial",
	    "-out", crt, "-days", "30", "-sha256", "-extfile", ext)
	os.chmod(key, 0o600)
	return crt, key


class DelayProxy:
	"""A TCP forwarder in front of Redis that can hold the client->server
	stream once a marker (e.g. b"ZREMRANGEBYSCORE", the slot script) goes
	through: hold(marker, seconds) delays that chunk and, to keep order,
	everything after it on the same connection. Lets a test freeze a
	request mid-flight deterministically."""

	def __init__(self, env, port):
		import threading
		self.target = port
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.sock.bind(("127.0.0.1", 0))
		self.sock.listen(16)
		self.port = self.sock.getsockname()[1]
		self.marker = None
		self.delay = 0.0
		self.held = 0
		self.conns = []
		self.stopped = False
		threading.Thread(target=self._loop, daemon=True).start()

	def hold(self, marker, seconds):
		self.delay = seconds
		self.marker = marker

	def _loop(self):
		import threading
		while not self.stopped:
			try:
				c, _ = self.sock.accept()
			except OSError:
				return
			u = socket.create_connection(("127.0.0.1", self.target))
			self.conns += [c, u]
			threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
			threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

	def _pump(self, src, dst, upward):
		try:
			while True:
				d = src.recv(65536)
				if not d:
					break
				if upward and self.marker is not None and self.marker in d:
					self.marker = None
					self.held += 1
					time.sleep(self.delay)
				dst.sendall(d)
		except OSError:
			pass
		finally:
			for s in (src, dst):
				try:
					s.shutdown(socket.SHUT_RDWR)
				except OSError:
					pass

	def stop(self):
		self.stopped = True
		try:
			self.sock.close()
		except OSError:
			pass
		for s in self.conns:
			try:
				s.close()
			except OSError:
				pass


def dovecot_with_mechanisms(env, name, mechanisms, users):
	"""A Dovecot (harness class) whose auth_mechanisms line is replaced:
	appended after the template, the later setting wins."""
	from harness import Dovecot

	class _D(Dovecot):
		def write_conf(self):
			super().write_conf()
			with open(self.conf, "a") as f:
				f.write("\nauth_mechanisms = %s\n" % mechanisms)
	d = _D(env, name=name, users=users)
	d.start()
	return d


def keepalive_on(port_filter):
	"""True if every established TCP socket ss(8) lists for the filter
	(e.g. "sport = :993") has a keepalive timer."""
	import subprocess
	out = subprocess.run(["ss", "-tnoH", "state", "established", port_filter], capture_output=True,
	    text=True).stdout.strip().splitlines()
	return out and all("keepalive" in l for l in out), out


def session_log(p, sid):
	"""posternd's log lines of one session, once its close is logged."""
	def closed():
		ls = [l for l in p.log_text().splitlines() if "sess=%s " % sid in l]
		return ls if any("event=close " in l for l in ls) else None
	return wait_until(closed, 10, "session %s to be closed" % sid)
