"""Loopback fixtures for the autoconfig and verify cases (cases/50_*.py):
no packet leaves the machine.

  Dnsmasq        dnsmasq (Debian dnsmasq-base) on 127.0.0.1:PORT serving
                 MX, SRV, A and AAAA records for test domains; every name
                 under the `local` domains (default "test") it does not
                 know is NXDOMAIN, anything else REFUSED.
  AutoconfigWeb  an HTTP or HTTPS server (threads) that answers by Host
                 header and path from a table: documents, status codes,
                 slow and oversized answers; records every request.
  StubServer     a TCP (optionally TLS) server on any loopback address and
                 port (127.0.0.0/8 is all loopback on Linux, so guessed
                 names can get their own address with the real port 993,
                 587, ...), running a handler per connection: a greeting
                 server, a silent one, an IMAP server with scripted LOGIN
                 replies.

Python 3 standard library only; every server is stopped with the Env.
"""

import http.server
import os
import random
import shutil
import socket
import ssl
import threading
import time

from harness import READY_TIMEOUT, HarnessError, _tail, wait_until


def loopback_addr(rng=random):
	"""A random 127.X.Y.Z with X in 100..199: unlikely to clash with other
	test runs on this host, which use 127.0.0.1."""
	return "127.%d.%d.%d" % (rng.randint(100, 199), rng.randint(0, 255), rng.randint(2, 254))


# ---------------------------------------------------------------- DNS

class Dnsmasq:
	"""dnsmasq in the foreground as a harness Proc.

	records: list of tuples
	  ("mx", name, host, pref)
	  ("srv", name, target, port, priority, weight)   target "." = none
	  ("a", name, address)                            IPv4 or IPv6
	  ("cname", name, target)
	local: domains answered authoritatively (unknown names: NXDOMAIN).
	"""

	def __init__(self, env, records=(), local=("test",), name="dnsmasq"):
		if shutil.which("dnsmasq") is None and not os.path.exists("/usr/sbin/dnsmasq"):
			raise HarnessError("dnsmasq not installed (make test installs it: scripts/deps.sh test)")
		self.env = env
		self.name = name
		self.port = self._udp_tcp_port()
		self.records = list(records)
		self.local = list(local)
		self.log = env.path("%s.log" % name)
		self.proc = None

	def _udp_tcp_port(self):
		"""A port free for both TCP (env.port()) and UDP."""
		for _ in range(50):
			p = self.env.port()
			s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
			try:
				s.bind(("127.0.0.1", p))
				return p
			except OSError:
				continue
			finally:
				s.close()
		raise HarnessError("no free UDP port for dnsmasq")

	@property
	def server(self):
		"""The "ip:port" form of [upstream]/[autoconfig] dns_server."""
		return "127.0.0.1:%d" % self.port

	def argv(self):
		a = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		    "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1",
		    "--port=%d" % self.port, "--user=root", "--pid-file=%s" % self.env.path("%s.pid" % self.name),
		    "--log-queries", "--log-facility=%s" % self.log, "--cache-size=0"]
		for d in self.local:
			a.append("--local=/%s/" % d)
		for r in self.records:
			kind = r[0]
			if kind == "mx":
				a.append("--mx-host=%s,%s,%d" % (r[1], r[2], r[3]))
			elif kind == "srv":
				_, name, target, port, prio, weight = r
				if target == ".":
					a.append("--srv-host=%s" % name)	# "no such service"
				else:
					a.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, prio, weight))
			elif kind == "a":
				a.append("--host-record=%s,%s" % (r[1], r[2]))
			elif kind == "cname":
				a.append("--cname=%s,%s" % (r[1], r[2]))
			else:
				raise HarnessError("unknown record kind %r" % (kind,))
		return a

	def start(self, timeout=READY_TIMEOUT):
		self.env.add_log(self.name, self.log)
		self.proc = self.env.spawn(self.name, self.argv(), self.env.path("%s-stdout.log" % self.name))
		wait_until(self._ready, timeout, "%s answering on port %d" % (self.name, self.port), interval=0.05)
		return self

	def _ready(self):
		if not self.proc.alive():
			raise HarnessError("dnsmasq exited (rc %s):\n%s" % (self.proc.popen.poll(), _tail(self.proc.log_path)))
		return self.query("ready.invalid-name.test", 1, timeout=0.3) is not None

	def stop(self):
		if self.proc:
			self.proc.stop()

	def query(self, name, qtype=1, timeout=2.0):
		"""One UDP question; returns the rcode (0 NOERROR, 3 NXDOMAIN, ...)
		or None without an answer."""
		import struct
		q = struct.pack(">HHHHHH", random.randint(1, 65535), 0x0100, 1, 0, 0, 0)
		q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
		q += struct.pack(">HH", qtype, 1)
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.settimeout(timeout)
		try:
			s.sendto(q, ("127.0.0.1", self.port))
			d = s.recv(4096)
			return d[3] & 15
		except OSError:
			return None
		finally:
			s.close()

	def queries(self):
		"""[(type, name)] asked so far, from the query log."""
		out = []
		try:
			with open(self.log, "rb") as f:
				for line in f.read().decode("utf-8", "replace").splitlines():
					i = line.find(" query[")
					if i < 0:
						continue
					rest = line[i + 7:]
					t, _, tail = rest.partition("] ")
					out.append((t, tail.split(" ")[0]))
		except OSError:
			pass
		return out


# ---------------------------------------------------------------- HTTP(S)

class _Handler(http.server.BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"

	def log_message(self, fmt, *args):	# quiet; the server records
		pass

	def do_GET(self):
		web = self.server.web
		host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
		path = self.path.split("?", 1)[0]
		web.requests.append((host, self.path))
		route = web.routes.get((host, path)) or web.routes.get(("*", path))
		if route is None:
			route = (404, b"not here\n", 0)
		status, body, delay = route
		if callable(body):
			body = body()
		if delay:
			time.sleep(delay)
		try:
			self.send_response(status)
			self.send_header("Content-Type", "text/xml; charset=utf-8")
			self.send_header("Content-Length", str(len(body)))
			self.end_headers()
			self.wfile.write(body)
		except OSError:
			pass


class _Server(http.server.ThreadingHTTPServer):
	daemon_threads = True
	allow_reuse_address = True


class AutoconfigWeb:
	"""routes: {(host, path): (status, body bytes, delay seconds)}; host
	"*" matches any Host header. tls=(cert, key) serves HTTPS."""

	def __init__(self, env, routes=None, tls=None, host="127.0.0.1"):
		self.env = env
		self.routes = dict(routes or {})
		self.requests = []
		self.srv = _Server((host, 0), _Handler)
		self.srv.web = self
		self.port = self.srv.server_address[1]
		if tls is not None:
			ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
			ctx.load_cert_chain(*tls)
			self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
		self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
		self.thread.start()
		env.notes.append("autoconfig web server on port %d" % self.port)

	def add(self, host, path, body, status=200, delay=0):
		if isinstance(body, str):
			body = body.encode()
		self.routes[(host, path)] = (status, body, delay)

	def stop(self):
		self.srv.shutdown()
		self.srv.server_close()


def client_config(imap=(), smtp=(), domain="example.test", extra=""):
	"""A Mozilla clientConfig document. imap/smtp: [(host, port, socketType)]
	in document order."""
	out = ['<?xml version="1.0" encoding="UTF-8"?>', '<clientConfig version="1.1">',
	    '  <emailProvider id="%s">' % domain, "    <domain>%s</domain>" % domain,
	    "    <displayName>Test %s</displayName>" % domain]
	for h, p, s in imap:
		out += ['    <incomingServer type="imap">', "      <hostname>%s</hostname>" % h,
		    "      <port>%d</port>" % p, "      <socketType>%s</socketType>" % s,
		    "      <username>%EMAILADDRESS%</username>",
		    "      <authentication>password-cleartext</authentication>", "    </incomingServer>"]
	for h, p, s in smtp:
		out += ['    <outgoingServer type="smtp">', "      <hostname>%s</hostname>" % h,
		    "      <port>%d</port>" % p, "      <socketType>%s</socketType>" % s,
		    "      <username>%EMAILADDRESS%</username>",
		    "      <authentication>password-cleartext</authentication>", "    </outgoingServer>"]
	out += [extra, "  </emailProvider>", "</clientConfig>", ""]
	return "\n".join(out).encode()


# ---------------------------------------------------------------- TCP stubs

class StubServer:
	"""Listens on (addr, port) (port 0: any); handler(conn) runs in a
	thread per connection with a socket already wrapped in TLS when
	tls=(cert, key). Records accepted connections in .accepted."""

	def __init__(self, env, handler, addr="127.0.0.1", port=0, tls=None):
		self.env = env
		self.handler = handler
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.sock.bind((addr, port))
		self.sock.listen(32)
		self.addr = addr
		self.port = self.sock.getsockname()[1]
		self.ctx = None
		if tls is not None:
			self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
			self.ctx.load_cert_chain(*tls)
		self.accepted = 0
		self.conns = []
		self.stopped = False
		threading.Thread(target=self._loop, daemon=True).start()

	def _loop(self):
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
			if self.ctx is not None:
				conn = self.ctx.wrap_socket(conn, server_side=True)
				self.conns.append(conn)
			self.handler(conn)
		except (OSError, ssl.SSLError):
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
				c.close()
			except OSError:
				pass


def read_line(conn, limit=4096):
	buf = b""
	while not buf.endswith(b"\n") and len(buf) < limit:
		c = conn.recv(1)
		if not c:
			break
		buf += c
	return buf


def silent_handler(conn):
	"""Accepts and never says a word (until the client gives up)."""
	try:
		while conn.recv(4096):
			pass
	except OSError:
		pass


def imap_greeting_handler(ctx=None):
	"""An IMAP server that greets and, given ctx (an SSLContext), offers
	STARTTLS; enough for autoconfig's probe."""
	def handler(conn):
		conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] stub ready\r\n")
		line = read_line(conn)
		tag = line.split(b" ", 1)[0]
		if ctx is not None and b"STARTTLS" in line.upper():
			conn.sendall(tag + b" OK Begin TLS negotiation now\r\n")
			t = ctx.wrap_socket(conn, server_side=True)
			silent_handler(t)
			return
		conn.sendall(tag + b" BAD no\r\n")
	return handler


def smtp_greeting_handler(ctx=None):
	"""An SMTP server: 220, EHLO (STARTTLS if ctx), STARTTLS."""
	def handler(conn):
		conn.sendall(b"220 stub.test ESMTP ready\r\n")
		while True:
			line = read_line(conn)
			if not line:
				return
			cmd = line.strip().upper()
			if cmd.startswith(b"EHLO"):
				conn.sendall(b"250-stub.test\r\n" + (b"250-STARTTLS\r\n" if ctx else b"") + b"250 8BITMIME\r\n")
			elif cmd == b"STARTTLS" and ctx is not None:
				conn.sendall(b"220 2.0.0 go ahead\r\n")
				t = ctx.wrap_socket(conn, server_side=True)
				silent_handler(t)
				return
			elif cmd == b"QUIT":
				conn.sendall(b"221 bye\r\n")
				return
			else:
				conn.sendall(b"502 no\r\n")
	return handler


def imap_login_handler(reply):
	"""An IMAP server (run it with tls=...) that refuses every LOGIN or
	AUTHENTICATE with `reply` (text after "tag NO "), as providers do."""
	def handler(conn):
		conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] stub ready\r\n")
		while True:
			line = read_line(conn)
			if not line:
				return
			parts = line.split(b" ")
			tag = parts[0]
			cmd = parts[1].strip().upper() if len(parts) > 1 else b""
			if cmd == b"CAPABILITY":
				conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag + b" OK done\r\n")
			elif cmd in (b"LOGIN", b"AUTHENTICATE"):
				if b"{" in line and not line.rstrip().endswith(b"+}"):
					conn.sendall(b"+ go\r\n")
					continue
				conn.sendall(tag + b" NO " + reply.encode() + b"\r\n")
			elif cmd == b"LOGOUT":
				conn.sendall(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
				return
			elif tag.startswith(b"*") or tag == b"":
				continue
			else:
				conn.sendall(tag + b" BAD unknown\r\n")
	return handler


def closed_port():
	"""A loopback TCP port nothing listens on (bound, then closed)."""
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	s.bind(("127.0.0.1", 0))
	p = s.getsockname()[1]
	s.close()
	return p
