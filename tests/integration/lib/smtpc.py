"""SMTP helpers for the Postern SMTP proxy cases (cases/30_smtp_*.py): a
raw reply-level SMTP client (exact bytes, STARTTLS, implicit TLS), the
standard setup (Redis + Dovecot with LMTP + Postfix + posternd trusting
the harness CA), account/token shortcuts, test messages, reading what
Dovecot received over IMAP, and swaks. Python 3 standard library only."""

import base64
import re
import shutil
import socket
import ssl
import types

from harness import TestFailure, _short, check, eq, expect_status, uniq, wait_until
from postfix import LmtpDovecot, Postfix

DOMAIN = "example.test"
# Upstream mailboxes: Postfix accepts these, Dovecot stores their mail.
USERS = {
    "alice@example.test": "alice-pw",
    "bob@example.test": "bob-pw",
    "carol@example.test": "carol-pw",
    # Upstream logins of one test each (Postfix's log is read per user).
    "dave@example.test": "dave-pw",
    "erin@example.test": "erin-pw",
    "frank@example.test": "frank-pw",
    "grace@example.test": "grace-pw",
    "smuggle0@example.test": "smuggle0-pw",
    "smuggle1@example.test": "smuggle1-pw",
    "smuggle2@example.test": "smuggle2-pw",
}
REFUSED = "refused@example.test"	# 550 5.7.1 at RCPT (check_recipient_access)
UNKNOWN = "nobody@example.test"		# 550 5.1.1 at RCPT (unlisted recipient)

REPLY_RE = re.compile(rb"^([2-5]\d\d)([ -])(.*)\r\n$", re.S)


class Closed(TestFailure):
	"""The server closed the connection while a reply was expected."""


class Reply:
	"""One SMTP reply: code (int), lines (text after the code, bytes),
	raw (every line with its CRLF)."""

	def __init__(self, code, lines, raw):
		self.code = code
		self.lines = lines
		self.raw = raw

	@property
	def text(self):
		return b"\n".join(self.lines).decode("utf-8", "replace")

	@property
	def first(self):
		"""'535 5.7.8 Authentication credentials invalid' (first line)."""
		return "%d %s" % (self.code, self.lines[0].decode("utf-8", "replace"))

	def __repr__(self):
		return "Reply(%r)" % self.raw


class Smtp:
	"""A raw SMTP client. mode: "plain" (STARTTLS listener, no TLS yet) or
	"tls" (implicit TLS). Replies are read line by line, exactly."""

	def __init__(self, port, mode="plain", host="127.0.0.1", ctx=None, timeout=15.0, greeting=True):
		self.timeout = timeout
		self.ctx = ctx
		s = socket.create_connection((host, port), timeout=timeout)
		s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		self.raw = s
		self.sock = s
		self.buf = bytearray()
		if mode == "tls":
			self.sock = self._ctx().wrap_socket(s, server_hostname="localhost")
		self.greeting = self.reply() if greeting else None

	def _ctx(self):
		if self.ctx is None:
			raise TestFailure("Smtp: TLS needs a ctx (env.ssl_context())")
		return self.ctx

	def send(self, data):
		if isinstance(data, str):
			data = data.encode()
		self.sock.sendall(data)

	def _fill(self, timeout=None):
		self.sock.settimeout(self.timeout if timeout is None else timeout)
		try:
			c = self.sock.recv(65536)
		except (ConnectionResetError, ssl.SSLError) as e:
			raise Closed("connection reset while reading (%r); buffered %s" % (e, _short(bytes(self.buf))))
		if not c:
			raise Closed("connection closed; buffered %s" % _short(bytes(self.buf)))
		self.buf += c

	def line(self, timeout=None):
		while b"\n" not in self.buf:
			self._fill(timeout)
		i = self.buf.index(b"\n") + 1
		ln = bytes(self.buf[:i])
		del self.buf[:i]
		return ln

	def reply(self, timeout=None):
		lines, raw = [], b""
		while True:
			ln = self.line(timeout)
			raw += ln
			m = REPLY_RE.match(ln)
			if not m:
				raise TestFailure("malformed SMTP reply line %s (so far %s)" % (_short(ln), _short(raw)))
			code = int(m.group(1))
			lines.append(m.group(3))
			if m.group(2) == b" ":
				return Reply(code, lines, raw)

	def cmd(self, line, timeout=None):
		self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
		return self.reply(timeout)

	def expect(self, line, code, enhanced=None, text=None, what=None):
		"""Sends line, checks the code (and the enhanced code / text at
		the start of the first line); returns the Reply."""
		r = self.cmd(line)
		check_reply(r, code, enhanced, text, what or (line if isinstance(line, str) else repr(line)))
		return r

	def starttls(self, ctx=None):
		self.expect("STARTTLS", 220, "2.0.0")
		self.sock = (ctx or self._ctx()).wrap_socket(self.raw, server_hostname="localhost")
		check(not self.buf, "bytes before the TLS handshake: %r" % bytes(self.buf))

	def ehlo(self, name="client.example.test"):
		r = self.expect("EHLO " + name, 250)
		return [l.decode() for l in r.lines[1:]]

	def nothing_pending(self, wait=0.3):
		"""True if the server sends nothing within `wait` seconds (a
		bounded probe for an answer that must not come)."""
		if self.buf:
			return False
		self.sock.settimeout(wait)
		try:
			c = self.sock.recv(65536)
		except (socket.timeout, TimeoutError):
			return True
		except ssl.SSLError:
			return True
		self.buf += c
		return False

	def expect_eof(self, timeout=None):
		"""Reads until EOF; returns what came before it."""
		out = bytes(self.buf)
		self.buf.clear()
		self.sock.settimeout(self.timeout if timeout is None else timeout)
		while True:
			try:
				c = self.sock.recv(65536)
			except (ConnectionResetError, BrokenPipeError):
				return out
			except (socket.timeout, TimeoutError):
				raise TestFailure("no EOF within %ss; got %s" % (self.sock.gettimeout(), _short(out)))
			except ssl.SSLError:
				return out
			if not c:
				return out
			out += c

	def close(self):
		for s in (self.sock, self.raw):
			try:
				s.close()
			except OSError:
				pass

	def __enter__(self):
		return self

	def __exit__(self, *a):
		self.close()


def check_reply(r, code, enhanced=None, text=None, what="reply"):
	check(r.code == code, "%s: expected %d, got %r" % (what, code, r.raw))
	first = r.lines[0].decode("utf-8", "replace")
	if enhanced is not None:
		check(first.split(" ", 1)[0] == enhanced, "%s: expected enhanced code %s, got %r" % (what, enhanced, r.raw))
	if text is not None:
		rest = first.split(" ", 1)[1] if enhanced is not None and " " in first else first
		check(rest.startswith(text), "%s: expected text %r, got %r" % (what, text, r.raw))


def plain_b64(user, secret, authzid=""):
	return base64.b64encode(("%s\0%s\0%s" % (authzid, user, secret)).encode()).decode()


def b64(s):
	return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


# ---------------------------------------------------------------- setup

def smtp_setup(env, postern_extra=None, users=None):
	"""Redis + Dovecot (LMTP) + Postfix + posternd (failure delay 0, the
	harness CA trusted for upstreams). Returns a ctx: .env .redis .dovecot
	.postfix .p .api."""
	c = types.SimpleNamespace(env=env)
	c.redis = env.redis(tcp=False, unix=True)
	c.dovecot = LmtpDovecot(env)
	c.dovecot.start()
	c.postfix = Postfix(env, c.dovecot, users=users or USERS, refused=[REFUSED])
	c.postfix.start()
	c.p = env.postern(c.redis, extra=merge_extra(env, postern_extra))
	c.api = c.p.api
	return c


def merge_extra(env, extra=None):
	out = {"tls": {"ca_file": env.certs.ca}, "smtp": {"failure_delay": "0"}}
	for sec, kv in (extra or {}).items():
		out.setdefault(sec, {}).update(kv)
	return out


def smtp_account(c, user, password=None, mode="starttls", port=None, account=None, **smtp_extra):
	"""An account whose SMTP upstream is the harness Postfix: mode
	starttls (submission port, STARTTLS required) or tls (smtps port).
	Returns the account id."""
	account = account or uniq("acct")
	password = c.postfix.users[user] if password is None else password
	if port is None:
		port = c.postfix.smtps_port if mode == "tls" else c.postfix.submission_port
	smtp = {"host": "127.0.0.1", "port": port, "secure": mode == "tls",
	    "auth": {"user": user, "pass": password}}
	smtp.update(smtp_extra)
	c.p.add_account(account, smtp=smtp)
	return account


def token_for(c, account, scopes=("smtp",), **kw):
	return c.p.create_token(account, scopes=list(scopes), **kw)["token"]


def get_account(c, account):
	return expect_status(c.api.get(c.p.account_path(account)), 200, "GET account %s" % account)


def login(c, account, token, mode="plain"):
	"""A raw session on the STARTTLS listener (after STARTTLS) or the
	TLS listener, EHLO done, AUTH PLAIN accepted. Returns the Smtp."""
	port = c.p.smtp_tls if mode == "tls" else c.p.smtp_starttls
	s = Smtp(port, "tls" if mode == "tls" else "plain", ctx=c.env.ssl_context())
	check_reply(s.greeting, 220)
	if mode != "tls":
		s.ehlo()
		s.starttls()
	s.ehlo()
	s.expect("AUTH PLAIN " + plain_b64(account, token), 235, "2.7.0", what="AUTH PLAIN")
	return s


# ---------------------------------------------------------------- messages

def make_message(frm, to, subject=None, body=None, mid=None, extra_headers=()):
	"""A CRLF message (bytes) with a unique Message-ID; returns (mid, msg)."""
	mid = mid or "<%s@client.example.test>" % uniq("m")
	hdrs = ["From: <%s>" % frm, "To: %s" % ", ".join("<%s>" % t for t in (to if isinstance(to, (list, tuple)) else [to])),
	    "Subject: %s" % (subject or "test " + mid), "Date: Sun, 22 Nov 2026 10:00:00 +0000",
	    "Message-ID: %s" % mid] + list(extra_headers)
	if body is None:
		body = b"Hello.\r\n"
	if isinstance(body, str):
		body = body.encode()
	return mid, ("\r\n".join(hdrs) + "\r\n\r\n").encode() + body


def dot_stuff(msg):
	"""RFC 5321 4.5.2 transparency, plus the terminator."""
	out = re.sub(rb"(?m)^\.", b"..", msg)
	if not out.endswith(b"\r\n"):
		out += b"\r\n"
	return out + b".\r\n"


# ---------------------------------------------------------------- mailbox

def imap(c, user):
	return c.dovecot.login(user)


def find(c, user, mid, peek=True):
	"""The messages in user's INBOX whose Message-ID is mid: list of raw
	bytes (CRLF, as Dovecot serves them)."""
	m = imap(c, user)
	try:
		m.select("INBOX", readonly=True)
		typ, data = m.search(None, "HEADER", "Message-ID", '"%s"' % mid)
		out = []
		for num in data[0].split():
			typ, d = m.fetch(num, "(BODY.PEEK[])")
			out.append(d[0][1])
		return out
	finally:
		try:
			m.logout()
		except Exception:	# noqa: BLE001
			pass


def wait_delivered(c, user, mid, timeout=30):
	"""Polls (IMAP) until mid is in user's INBOX; returns its raw bytes.
	Fails if it is there more than once."""
	got = wait_until(lambda: find(c, user, mid), timeout, "delivery of %s to %s" % (mid, user), interval=0.1)
	eq(len(got), 1, "copies of %s in %s's INBOX" % (mid, user))
	return got[0]


TRACE_RE = re.compile(rb"^(Return-Path|Delivered-To|Received): ", re.I)


def check_identical(delivered, sent, what="delivered message"):
	"""delivered = trace headers (Return-Path, Delivered-To, Received,
	added by Postfix and Dovecot) + exactly the bytes sent."""
	check(delivered.endswith(sent), "%s: does not end with the %d bytes sent (got %d bytes: %s)" % (
	    what, len(sent), len(delivered), _short(delivered[:600])))
	prefix = delivered[:len(delivered) - len(sent)]
	# Each added header line starts a trace field or continues one.
	for ln in prefix.split(b"\r\n")[:-1]:
		check(TRACE_RE.match(ln) or ln[:1] in (b" ", b"\t"),
		    "%s: unexpected line before the message: %r" % (what, ln))


# ---------------------------------------------------------------- swaks

def swaks(c, *args, timeout=120):
	"""Runs swaks; returns (rc, transcript text)."""
	exe = shutil.which("swaks")
	if exe is None:
		raise TestFailure("swaks not installed (make test installs it: scripts/deps.sh test)")
	rc, out, err = c.env.run([exe, "--hide-informational"] + [str(a) for a in args], timeout=timeout)
	return rc, out + err
