"""HAProxy PROXY protocol (v1 and v2) on IMAP listeners flagged "proxy":
the address in the header is the client's for the greeting, the token's
CIDR restrictions, the last-used IP and the logs; bytes after the header
(a TLS ClientHello, a pipelined command) are left to the protocol; a bad,
over-long or missing header closes the connection without a reply; the
login timeout bounds the wait; a normal listener expects no header.
203.0.113.7 and 2001:db8::7 are documentation addresses that only appear
as text in the headers: all traffic stays on loopback."""

import socket
import ssl
import struct
import time

from harness import Postern, check, contains, eq, expect_status, token_id, wait_until
from imapc import (GREETING_RE, NO_IP, Closed, Raw, _default_ctx, dovecot_account, expect_login_ok,
    imap_setup, merge_extra, quote, token_for)

USER = "alice@example.test"
SRC4 = "203.0.113.7"
SRC6 = "2001:db8::7"
V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src=SRC4, dst="192.0.2.1", sport=51234, dport=993, proto="TCP4"):
	return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(cmd=0x21, fam=0x11, src=SRC4, dst="192.0.2.1", sport=51234, dport=993, tlvs=b""):
	if fam == 0x11:
		addr = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
	elif fam == 0x21:
		addr = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
	else:
		addr, sport, dport = b"", None, None
	if sport is not None:
		addr += struct.pack("!HH", sport, dport)
	body = addr + tlvs
	return V2SIG + bytes([cmd, fam]) + struct.pack("!H", len(body)) + body


class TlsAfter:
	"""A TLS client over an already connected socket (ssl.SSLObject), so
	that the ClientHello leaves in the same send() as the bytes before it:
	the server must not swallow it with the PROXY header. Offers what Raw
	uses of a socket: settimeout, recv, sendall, close."""

	def __init__(self, sock, prefix, server_hostname="localhost"):
		self.s = sock
		self.inc = ssl.MemoryBIO()
		self.out = ssl.MemoryBIO()
		self.obj = _default_ctx().wrap_bio(self.inc, self.out, server_hostname=server_hostname)
		pending = prefix
		while True:
			try:
				self.obj.do_handshake()
				break
			except ssl.SSLWantReadError:
				pending += self.out.read()
				if pending:
					self.s.sendall(pending)
					pending = b""
				self._pull()
		self._push()

	def _push(self):
		data = self.out.read()
		if data:
			self.s.sendall(data)

	def _pull(self):
		data = self.s.recv(65536)
		if not data:
			self.inc.write_eof()
		else:
			self.inc.write(data)

	def settimeout(self, t):
		self.s.settimeout(t)

	def sendall(self, data):
		self.obj.write(data)
		self._push()

	def recv(self, n):
		while True:
			try:
				return self.obj.read(n)
			except ssl.SSLWantReadError:
				self._push()
				self._pull()
			except ssl.SSLZeroReturnError:
				return b""

	def close(self):
		self.s.close()


def proxied(port, header, tls=True):
	"""Raw over a "proxy" listener: header, then (tls) the ClientHello in
	the same send. Greeting read."""
	r = Raw(port, "plain")
	if tls:
		r.sock = TlsAfter(r.raw, header)
	else:
		r.send(header)
	r.read_greeting()
	return r


def greeting_addr(r):
	m = GREETING_RE.match(r.greeting)
	check(m is not None, "greeting format: %r" % r.greeting)
	return m.group(1).decode()


def setup(env):
	c = imap_setup(env, users={USER: "alice-pw"}, imap_proxy=True)
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct, restrictions={"addresses": ["203.0.113.0/24"]})
	return c


def test_v1_tls_login_uses_header_address(c):
	with proxied(c.p.imap_tls_proxy, v1()) as r:
		eq(greeting_addr(r), SRC4, "client address in the greeting")
		resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		expect_login_ok(resp, "a1", c.acct)
		resp = r.cmd("s1", "SELECT INBOX")
		contains(resp, b"s1 OK", "SELECT through the relay")
	d = wait_until(lambda: (lambda d: d if "lastUsed" in d else None)(c.api.get("/v1/tokens/" + token_id(c.tok))[1]),
	    5, "lastUsed recorded")
	eq(d.get("ip"), SRC4, "last IP recorded is the header's")
	log = c.p.log_text()
	contains(log, "peer=%s:51234 event=login result=ok" % SRC4, "login logged with the header's address")
	contains(log, "event=proxy_header result=ok version=1 via=127.0.0.1:", "header logged with the socket address")


def test_restricted_token_refused_on_normal_listener(c):
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		eq(greeting_addr(r), "127.0.0.1", "normal listener: socket address")
		resp = r.cmd("f1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		eq(resp, b"f1 " + NO_IP + b"\r\n", "token for 203.0.113.0/24 from 127.0.0.1")
	# And through the proxy listener from an address outside the range.
	with proxied(c.p.imap_tls_proxy, v1(src="198.51.100.1")) as r:
		eq(greeting_addr(r), "198.51.100.1", "greeting")
		resp = r.cmd("f2", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		eq(resp, b"f2 " + NO_IP + b"\r\n", "token for 203.0.113.0/24 from 198.51.100.1")


def test_v1_header_bytewise_then_tls(c):
	"""The header trickles in one byte at a time (kept between reads), then
	a separate TLS handshake."""
	with Raw(c.p.imap_tls_proxy, "plain") as r:
		r.send_bytewise(v1(proto="TCP6", src=SRC6, dst="2001:db8::1", sport=4000))
		time.sleep(0.1)
		r.starttls()
		r.read_greeting()
		eq(greeting_addr(r), SRC6, "IPv6 address from a v1 header")
		resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		eq(resp, b"a1 " + NO_IP + b"\r\n", "2001:db8::7 is outside 203.0.113.0/24")


def test_v2_tcp4_starttls_listener_keeps_pipelined_bytes(c):
	"""v2 with a TLV, and a command in the same send: the command is
	answered, so nothing after the header was consumed with it."""
	tlv = b"\x01\x00\x04imap" + b"\x04\x00\x02\x00\x00"
	with Raw(c.p.imap_starttls_proxy, "plain") as r:
		r.send(v2(tlvs=tlv) + b"c1 NOOP\r\n")
		r.read_greeting()
		eq(greeting_addr(r), SRC4, "v2 TCP4 address in the greeting")
		eq(r.response("c1"), b"c1 OK NOOP completed\r\n", "command sent with the header")
		eq(r.cmd("s1", "STARTTLS"), b"s1 OK Begin TLS negotiation now\r\n", "STARTTLS")
		r.starttls()
		resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		expect_login_ok(resp, "a1", c.acct)


def test_v2_tls_login(c):
	with proxied(c.p.imap_tls_proxy, v2()) as r:
		eq(greeting_addr(r), SRC4, "v2 header before the ClientHello")
		resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		expect_login_ok(resp, "a1", c.acct)
	with proxied(c.p.imap_tls_proxy, v2(fam=0x21, src=SRC6, dst="2001:db8::1")) as r:
		eq(greeting_addr(r), SRC6, "v2 TCP6 address")
	with proxied(c.p.imap_tls_proxy, v2(fam=0x21, src="::ffff:" + SRC4, dst="::1")) as r:
		eq(greeting_addr(r), SRC4, "IPv4-mapped address as IPv4")


def test_local_and_unknown_keep_socket_address(c):
	with proxied(c.p.imap_tls_proxy, v2(cmd=0x20, fam=0x00)) as r:
		eq(greeting_addr(r), "127.0.0.1", "v2 LOCAL")
	with proxied(c.p.imap_tls_proxy, v2(cmd=0x21, fam=0x00)) as r:
		eq(greeting_addr(r), "127.0.0.1", "v2 PROXY AF_UNSPEC")
	with proxied(c.p.imap_starttls_proxy, b"PROXY UNKNOWN\r\n", tls=False) as r:
		eq(greeting_addr(r), "127.0.0.1", "v1 UNKNOWN")
		resp = r.cmd("a1", "LOGIN %s %s" % (c.acct, quote(c.tok)))
		check(resp.startswith(b"a1 NO "), "LOGIN before STARTTLS refused: %r" % resp)


def _closed_silently(port, data, what, tls=False):
	with Raw(port, "plain") as r:
		if tls:
			try:
				TlsAfter(r.raw, data)
			except socket.timeout:
				check(False, "%s: still open after %.0fs" % (what, r.timeout))
			except (ssl.SSLError, OSError):
				return
			check(False, "%s: TLS handshake succeeded" % what)
		r.send(data)
		eq(r.expect_eof(timeout=5), b"", "%s: closed without a reply" % what)


def test_bad_headers_close_without_reply(c):
	before = c.p.log_text().count("event=proxy_header result=bad")
	bad = [
	    (b"GET / HTTP/1.0\r\n\r\n", "HTTP"),
	    (b"a1 LOGIN x y\r\n", "IMAP without a header"),
	    (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n", "v1 missing port"),
	    (b"PROXY TCP4 203.0.113.300 192.0.2.1 1 2\r\n", "v1 bad address"),
	    (b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n", "v1 bare LF"),
	    (b"PROXY UNKNOWN " + b"a" * 200, "v1 over 107 bytes"),
	    (V2SIG + b"\x21\x11\x02\x09", "v2 length over the cap"),
	    (V2SIG + b"\x21\x11\x00\x0b" + b"\x00" * 11, "v2 block too short"),
	    (V2SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12, "v2 UDP"),
	    (V2SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12, "v2 version 3"),
	]
	for data, what in bad:
		_closed_silently(c.p.imap_starttls_proxy, data, what)
	# A TLS client that skips the header.
	_closed_silently(c.p.imap_tls_proxy, b"", "TLS without a header", tls=True)
	n = len(bad) + 1
	wait_until(lambda: c.p.log_text().count("event=proxy_header result=bad") - before >= n, 5,
	    "%d event=proxy_header result=bad lines" % n)
	# The daemon is still serving.
	with proxied(c.p.imap_tls_proxy, v1()) as r:
		eq(greeting_addr(r), SRC4, "still serving")


def test_normal_listener_expects_no_header(c):
	with Raw(c.p.imap_starttls, "plain") as r:
		r.read_greeting()
		eq(greeting_addr(r), "127.0.0.1", "no header expected")
		r.send(v1())
		ln = r.line()
		check(ln.startswith(b"PROXY BAD "), "a header is an IMAP line there: %r" % ln)
	with Raw(c.p.imap_tls) as r:
		r.read_greeting()
		eq(greeting_addr(r), "127.0.0.1", "TLS listener")


def test_header_wait_bounded_and_shutdown(c):
	"""A second daemon with a 1 s login timeout: a partial header is closed
	by the timer; SIGTERM with a session still waiting exits cleanly."""
	p = Postern(c.env, c.redis, name="posternd-pp", secret=c.p.secret, imap_proxy=True,
	    extra=merge_extra(c.env, {"imap": {"login_timeout": "1s"}}))
	p.start()
	try:
		with Raw(p.imap_tls_proxy, "plain") as r:
			r.send(b"PROXY TCP4 203.0.113.7 ")
			t0 = time.monotonic()
			eq(r.expect_eof(timeout=10), b"", "closed without a reply")
			check(time.monotonic() - t0 < 5, "closed by the login timer")
		wait_until(lambda: "login timeout waiting for the PROXY header" in p.log_text(), 5, "timeout logged")
		waiting = Raw(p.imap_tls_proxy, "plain")
		waiting.send(V2SIG[:5])
		time.sleep(0.2)
		eq(p.stop(), 0, "exit status with a session waiting for its header")
		waiting.close()
	finally:
		p.stop()
