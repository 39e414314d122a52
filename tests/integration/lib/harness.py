"""Integration test harness for Postern: real redis-server, dovecot and
posternd on loopback, in a private temp dir, on free ports.

A case file (tests/integration/cases/NN_name.py) is a module with an optional
setup(env) -> ctx, test_*(ctx) functions run in definition order, and an
optional teardown(ctx); lib/runner.py runs it. Everything a case starts goes
through an Env, which stops every process by PID (SIGTERM, then SIGKILL of the
process group it created) at the end, on failure, on SIGTERM/SIGINT and at
exit. Python 3 standard library only.
"""

import atexit
import base64
import hashlib
import http.client
import imaplib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION_DIR = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(os.path.dirname(INTEGRATION_DIR))
CONF_DIR = os.path.join(INTEGRATION_DIR, "conf")

STOP_TIMEOUT = 10.0	# SIGTERM -> SIGKILL bound, seconds
READY_TIMEOUT = 20.0	# startup bound (ASan builds are slow)

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ISO8601 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")


class TestFailure(AssertionError):
	"""A check failed; the message says what was expected and what came."""


class HarnessError(RuntimeError):
	"""The harness could not set something up (missing binary, no readiness)."""


# ---------------------------------------------------------------- assertions

def _short(v, limit=600):
	s = repr(v)
	return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


def check(cond, msg):
	if not cond:
		raise TestFailure(msg)


def eq(actual, expected, what="value"):
	if actual != expected:
		raise TestFailure("%s: expected %s, got %s" % (what, _short(expected), _short(actual)))


def ne(actual, unexpected, what="value"):
	if actual == unexpected:
		raise TestFailure("%s: must not be %s" % (what, _short(unexpected)))


def contains(haystack, needle, what="text"):
	if needle not in haystack:
		raise TestFailure("%s: expected to contain %s, got %s" % (what, _short(needle), _short(haystack)))


def not_contains(haystack, needle, what="text"):
	"""Fails without printing the needle's context twice (it may be a secret)."""
	if needle in haystack:
		i = haystack.index(needle)
		ctx = haystack[max(0, i - 80):i + len(needle) + 80]
		raise TestFailure("%s: must not contain %s; found at offset %d: %s" % (what, _short(needle), i, _short(ctx)))


def matches(regex, text, what="text"):
	if not isinstance(text, str) or not re.search(regex, text):
		raise TestFailure("%s: expected to match /%s/, got %s" % (what, regex, _short(text)))


def is_type(value, typ, what="value"):
	if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
		raise TestFailure("%s: expected %s, got %s" % (what, getattr(typ, "__name__", typ), _short(value)))


def expect_status(reply, status, what="request"):
	"""reply is an Api Reply (status, json). Returns the json."""
	st, data = reply
	if isinstance(status, (tuple, list, set)):
		ok = st in status
	else:
		ok = st == status
	if not ok:
		raise TestFailure("%s: expected HTTP %s, got %s, body %s" % (what, status, st, _short(getattr(reply, "raw", data))))
	return data


def expect_error(reply, status, field=None, what="request"):
	"""Checks docs/API.md's error shape: JSON with statusCode == status, an
	error string and a message; field must equal `field` when given (a
	callable field is a predicate)."""
	data = expect_status(reply, status, what)
	check(isinstance(data, dict), "%s: HTTP %s body is not a JSON object: %s" % (what, status, _short(getattr(reply, "raw", data))))
	eq(data.get("statusCode"), status, "%s: statusCode" % what)
	check(isinstance(data.get("error"), str) and data["error"],
	    "%s: error must be a non-empty string: %s" % (what, _short(data)))
	check("message" in data, "%s: error body has no message: %s" % (what, _short(data)))
	if field is not None:
		if callable(field):
			check(field(data.get("field")), "%s: unexpected field %s in %s" % (what, _short(data.get("field")), _short(data)))
		else:
			eq(data.get("field"), field, "%s: field" % what)
	return data


def wait_until(fn, timeout=10.0, what="condition", interval=0.05):
	"""Polls fn() until it returns a true value; returns that value."""
	deadline = time.monotonic() + timeout
	last_exc = None
	while True:
		try:
			v = fn()
			if v:
				return v
		except Exception as e:	# noqa: BLE001 - polled; report the last one
			last_exc = e
		if time.monotonic() >= deadline:
			raise TestFailure("timed out after %.1fs waiting for %s%s" % (
			    timeout, what, "; last error: %r" % last_exc if last_exc else ""))
		time.sleep(interval)


def secret_forms(secret):
	"""Ways a secret could leak: itself, hex, base64; for a 64-hex token
	also upper case, the raw 32 bytes and their base64."""
	b = secret.encode() if isinstance(secret, str) else secret
	forms = {b, b.hex().encode(), base64.b64encode(b), base64.b64encode(b).rstrip(b"=")}
	if isinstance(secret, str) and HEX64.match(secret):
		raw = bytes.fromhex(secret)
		forms |= {secret.upper().encode(), raw, base64.b64encode(raw).rstrip(b"="),
		    base64.urlsafe_b64encode(raw).rstrip(b"=")}
	return [f for f in forms if len(f) >= 8]


def token_id(token):
	"""docs/API.md: id = hex SHA-256 of the 32 raw bytes of the token."""
	return hashlib.sha256(bytes.fromhex(token)).hexdigest()


# ---------------------------------------------------------------- processes

_live_envs = []


def _cleanup_all():
	for env in list(_live_envs):
		env.cleanup()


atexit.register(_cleanup_all)


class Interrupted(KeyboardInterrupt):
	pass


def install_signal_handlers():
	"""SIGTERM/SIGINT/SIGHUP raise Interrupted (a KeyboardInterrupt) once,
	so try/finally and atexit stop the servers; later signals are ignored
	so they cannot cut the cleanup short. run.sh forwards its signals as
	SIGTERM via timeout(1); SIGINT may arrive as SIG_IGN for a background
	job, hence set explicitly."""
	hit = []

	def handler(signum, frame):
		if hit:
			return
		hit.append(signum)
		raise Interrupted("signal %d" % signum)
	for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
		signal.signal(s, handler)


def become_subreaper():
	"""Orphans of our servers (a dovecot child outliving its master) are
	re-parented to us rather than to PID 1, so reap_orphans() can collect
	them and nothing lingers, not even a zombie."""
	try:
		import ctypes
		libc = ctypes.CDLL(None, use_errno=True)
		libc.prctl(36, 1, 0, 0, 0)	# PR_SET_CHILD_SUBREAPER
	except (OSError, AttributeError):
		pass


def reap_orphans(keep=()):
	"""waitpid() our zombie children that no Popen owns."""
	me = os.getpid()
	for d in os.listdir("/proc"):
		if not d.isdigit() or int(d) in keep:
			continue
		try:
			with open("/proc/%s/stat" % d) as f:
				st = f.read()
		except OSError:
			continue
		fields = st[st.rindex(")") + 2:].split()
		if int(fields[1]) == me and fields[0] == "Z":
			try:
				os.waitpid(int(d), os.WNOHANG)
			except ChildProcessError:
				pass


def _live_pids(field, value):
	"""Live (non-zombie) processes whose /proc/PID/stat field (counted
	after the command name: 1 = ppid, 2 = pgrp) equals value."""
	out = []
	for d in os.listdir("/proc"):
		if not d.isdigit():
			continue
		try:
			with open("/proc/%s/stat" % d) as f:
				st = f.read()
		except OSError:
			continue
		fields = st[st.rindex(")") + 2:].split()
		if int(fields[field]) == value and fields[0] != "Z":
			out.append(int(d))
	return out


def pids_in_group(pgid):
	return _live_pids(2, pgid)


def child_pids(pid):
	return _live_pids(1, pid)


def _describe(pids):
	out = []
	for p in pids:
		try:
			with open("/proc/%d/cmdline" % p, "rb") as f:
				cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
			with open("/proc/%d/stat" % p) as f:
				st = f.read()
			out.append("%d[%s] %s" % (p, st[st.rindex(")") + 2:].split()[0], cmd))
		except OSError:
			pass
	return ", ".join(out)


def pid_alive(pid):
	try:
		with open("/proc/%d/stat" % pid) as f:
			st = f.read()
	except OSError:
		return False
	return st[st.rindex(")") + 2:].split()[0] != "Z"


class Proc:
	"""A process we started in its own session/process group (so Ctrl-C on
	run.sh reaches only the runner, and stray children can be found by
	pgid = our pid). Registered with its Env."""

	def __init__(self, env, name, argv, log_path, extra_env=None, unset_env=(), cwd=None):
		self.env = env
		self.name = name
		self.argv = argv
		self.log_path = log_path
		e = dict(os.environ)
		for k in unset_env:
			e.pop(k, None)
		if extra_env:
			e.update(extra_env)
		with open(log_path, "ab") as logf:
			self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
			    stderr=subprocess.STDOUT, cwd=cwd or env.dir, env=e, start_new_session=True)
		self.pid = self.popen.pid
		self.rc = None
		self.stopped = False	# SIGSTOPped by us
		self.check_exit = False	# teardown fails if it exited non-zero
		self.expect_fail = False	# ... unless a test meant it to
		env._procs.append(self)

	def alive(self):
		return self.popen.poll() is None

	def send_signal(self, sig):
		if self.alive():
			os.kill(self.pid, sig)

	def pause(self):
		self.send_signal(signal.SIGSTOP)
		self.stopped = True

	def resume(self):
		self.send_signal(signal.SIGCONT)
		self.stopped = False

	def wait(self, timeout):
		try:
			self.rc = self.popen.wait(timeout)
		except subprocess.TimeoutExpired:
			return None
		return self.rc

	def _kill_group(self, sig):
		try:
			os.killpg(self.pid, sig)
		except (ProcessLookupError, PermissionError):
			pass

	def stop(self, timeout=STOP_TIMEOUT, sig=signal.SIGTERM):
		"""SIGTERM (or sig), wait up to timeout, then SIGKILL the group.
		Also reaps children left in our process group. Returns the exit
		status (negative: killed by that signal)."""
		if self.alive():
			if self.stopped:
				self.resume()
			os.kill(self.pid, sig)
			if self.wait(timeout) is None:
				self.env.note("%s (pid %d) ignored signal %d for %.0fs: SIGKILL" % (self.name, self.pid, sig, timeout))
				self._kill_group(signal.SIGKILL)
				self.wait(5)
		else:
			self.rc = self.popen.poll()
		# Children of a master (dovecot's) normally exit with it; a master
		# stopped while a child was busy can leave some behind: SIGTERM the
		# group after a grace second, SIGKILL it after the bound.
		t0 = time.monotonic()
		termed = False
		while pids_in_group(self.pid):
			waited = time.monotonic() - t0
			if waited >= timeout:
				self.env.note("%s: children still running %.0fs after it: SIGKILL %s" % (
				    self.name, timeout, _describe(pids_in_group(self.pid))))
				self._kill_group(signal.SIGKILL)
				time.sleep(0.1)
				break
			if waited >= 1.0 and not termed:
				self._kill_group(signal.SIGCONT)
				self._kill_group(signal.SIGTERM)
				termed = True
			time.sleep(0.05)
		return self.rc

	def kill(self):
		"""SIGKILL now (crash simulation); waits for it to be gone."""
		self._kill_group(signal.SIGKILL)
		self.wait(5)
		return self.rc


class Env:
	"""One temp dir + port allocator + process registry for one case file."""

	def __init__(self, build_dir=None, name="it"):
		self.name = name
		self.build_dir = os.path.abspath(build_dir) if build_dir else os.path.join(REPO_ROOT, "build")
		self.dir = tempfile.mkdtemp(prefix="postern-it-%s-" % re.sub(r"[^A-Za-z0-9_]", "", name)[:20], dir="/tmp")
		# Dovecot's mail uid (8) must traverse to its Maildirs.
		os.chmod(self.dir, 0o711)
		self._ports = set()
		self._procs = []
		self.logs = {}		# label -> path, tailed on failure
		self.notes = []
		self.failed = False
		self.keep = os.environ.get("POSTERN_IT_KEEP") == "1"
		self._certs = None
		self.cleaned = False
		_live_envs.append(self)

	# -- paths, ports, logs

	def path(self, *parts):
		return os.path.join(self.dir, *parts)

	def note(self, msg):
		self.notes.append(msg)
		print("  [harness] %s" % msg, file=sys.stderr, flush=True)

	def port(self, host="127.0.0.1"):
		"""A free TCP port: bind port 0, read it, close. Never hands out the
		same port twice in one Env; also checks ::1 is free on it."""
		for _ in range(200):
			fam = socket.AF_INET6 if ":" in host else socket.AF_INET
			s = socket.socket(fam, socket.SOCK_STREAM)
			try:
				s.bind((host, 0))
				p = s.getsockname()[1]
			finally:
				s.close()
			if p in self._ports:
				continue
			if not _port_free("::1", p):
				continue
			self._ports.add(p)
			return p
		raise HarnessError("no free port")

	def add_log(self, label, path):
		self.logs[label] = path

	def log_tails(self, lines=30):
		out = []
		for label, p in self.logs.items():
			try:
				with open(p, "rb") as f:
					data = f.read()
			except OSError:
				continue
			tail = data.decode("utf-8", "replace").splitlines()[-lines:]
			out.append("  --- last %d lines of %s (%s) ---" % (len(tail), label, p))
			out.extend("  | " + l for l in tail)
		for n in self.notes[-10:]:
			out.append("  [note] " + n)
		return "\n".join(out)

	def bin(self, name):
		p = os.path.join(self.build_dir, name)
		if not os.access(p, os.X_OK):
			raise HarnessError("%s not found or not executable (build it first: make all)" % p)
		return p

	@property
	def certs(self):
		if self._certs is None:
			self._certs = make_certs(self.path("certs"))
		return self._certs

	def ssl_context(self, ca=True):
		"""Client context trusting the harness CA (verify on), or none (ca=False)."""
		if ca:
			return ssl.create_default_context(cafile=self.certs.ca)
		ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
		ctx.check_hostname = False
		ctx.verify_mode = ssl.CERT_NONE
		return ctx

	def run(self, argv, input=None, timeout=30, extra_env=None, unset_env=()):
		"""Runs a command to completion: (rc, stdout, stderr) as text."""
		e = dict(os.environ)
		for k in unset_env:
			e.pop(k, None)
		if extra_env:
			e.update(extra_env)
		if isinstance(input, str):
			input = input.encode()
		p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd=self.dir, env=e)
		return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

	def spawn(self, name, argv, log_path=None, **kw):
		log_path = log_path or self.path("%s.log" % name)
		self.add_log(name, log_path)
		return Proc(self, name, argv, log_path, **kw)

	# -- shortcuts

	def redis(self, **kw):
		r = Redis(self, **kw)
		r.start()
		return r

	def dovecot(self, **kw):
		d = Dovecot(self, **kw)
		d.start()
		return d

	def postern(self, redis, **kw):
		p = Postern(self, redis, **kw)
		p.start()
		return p

	# -- teardown

	def problems(self):
		"""Post-run checks: posternd exit status (LeakSanitizer exits 23)
		and sanitizer reports in posternd logs."""
		out = []
		for p in self._procs:
			if p.check_exit and p.rc not in (None, 0) and not p.expect_fail:
				out.append("%s (pid %d) exited with status %s" % (p.name, p.pid, p.rc))
		for label, path in self.logs.items():
			if not label.startswith("posternd"):
				continue
			try:
				with open(path, "rb") as f:
					t = f.read().decode("utf-8", "replace")
			except OSError:
				continue
			for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer"):
				if pat in t:
					out.append("%s: sanitizer report (%s)" % (path, pat))
					break
		return out

	def cleanup(self):
		"""Stops every registered process, newest first. Keeps the temp dir
		when something failed (or POSTERN_IT_KEEP=1), removes it otherwise."""
		if self.cleaned:
			return
		self.cleaned = True
		for p in reversed(self._procs):
			try:
				p.stop()
			except Exception as e:	# noqa: BLE001 - keep stopping the others
				print("  [harness] stopping %s: %r" % (p.name, e), file=sys.stderr)
		reap_orphans(keep={p.pid for p in self._procs})
		if self in _live_envs:
			_live_envs.remove(self)
		if self.failed or self.keep:
			print("  [harness] kept %s" % self.dir, file=sys.stderr)
		else:
			shutil.rmtree(self.dir, ignore_errors=True)

	def __enter__(self):
		return self

	def __exit__(self, et, ev, tb):
		if et is not None:
			self.failed = True
		self.cleanup()


def _port_free(host, port):
	fam = socket.AF_INET6 if ":" in host else socket.AF_INET
	s = socket.socket(fam, socket.SOCK_STREAM)
	try:
		s.bind((host, port))
		return True
	except OSError as e:
		# No ::1 on this host: nothing can clash there.
		return e.errno == 99
	finally:
		s.close()


def tcp_accepts(port, host="127.0.0.1", timeout=0.5):
	try:
		with socket.create_connection((host, port), timeout=timeout):
			return True
	except OSError:
		return False


def read_line(sock, limit=65536):
	buf = b""
	while not buf.endswith(b"\n") and len(buf) < limit:
		c = sock.recv(1)
		if not c:
			break
		buf += c
	return buf


# ---------------------------------------------------------------- certificates

class Certs:
	"""Paths: ca (CA cert), ca_key, cert/key (CN localhost, SANs
	DNS:localhost IP:127.0.0.1 IP:::1, signed by ca), self_cert/self_key
	(same names, self-signed: untrusted by ca)."""

	def __init__(self, d):
		self.dir = d
		self.ca = os.path.join(d, "ca.crt")
		self.ca_key = os.path.join(d, "ca.key")
		self.cert = os.path.join(d, "localhost.crt")
		self.key = os.path.join(d, "localhost.key")
		self.self_cert = os.path.join(d, "selfsigned.crt")
		self.self_key = os.path.join(d, "selfsigned.key")


def _openssl(*args, cwd=None):
	p = subprocess.run(("openssl",) + args, capture_output=True, cwd=cwd)
	if p.returncode != 0:
		raise HarnessError("openssl %s failed: %s" % (" ".join(args[:2]), p.stderr.decode(errors="replace")))
	return p.stdout.decode(errors="replace")


def make_certs(d):
	"""Makes a CA, a CA-signed server cert for localhost and a separate
	self-signed one in directory d (created). Returns Certs."""
	if shutil.which("openssl") is None:
		raise HarnessError("openssl not installed (make test installs it: scripts/deps.sh test)")
	os.makedirs(d, exist_ok=True)
	c = Certs(d)
	san = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
	_openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
	    "-keyout", c.ca_key, "-out", c.ca, "-subj", "/CN=Postern Test CA",
	    "-addext", "basicConstraints=critical,CA:TRUE",
	    "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	csr = os.path.join(d, "localhost.csr")
	_openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
	    "-keyout", c.key, "-out", csr, "-subj", "/CN=localhost")
	ext = os.path.join(d, "localhost.ext")
	with open(ext, "w") as f:
		f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
		    "extendedKeyUsage=serverAuth\n%s\n" % san)
	_openssl("x509", "-req", "-in", csr, "-CA", c.ca, "-CAkey", c.ca_key, "-CAcreateserial",
	    "-out", c.cert, "-days", "825", "-sha256", "-extfile", ext)
	_openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "825",
	    "-keyout", c.self_key, "-out", c.self_cert, "-subj", "/CN=localhost",
	    "-addext", san, "-addext", "basicConstraints=critical,CA:FALSE",
	    "-addext", "extendedKeyUsage=serverAuth")
	for k in (c.ca_key, c.key, c.self_key):
		os.chmod(k, 0o600)
	return c


# ---------------------------------------------------------------- redis

class Redis:
	"""redis-server on a TCP port and/or a Unix socket, no persistence.
	stop()/start() reuse the same port and socket (restart tests);
	kill() is a SIGKILL; pause()/resume() are SIGSTOP/SIGCONT (a hung Redis).
	url_unix / url_tcp are the forms [redis] url takes."""

	def __init__(self, env, tcp=True, unix=True, name="redis", port=None):
		if shutil.which("redis-server") is None:
			raise HarnessError("redis-server not installed (make test installs it: scripts/deps.sh test)")
		self.env = env
		self.name = name
		self.port = port or (env.port() if tcp else None)
		self.sock = env.path("%s.sock" % name) if unix else None
		self.dir = env.path(name)
		os.makedirs(self.dir, exist_ok=True)
		self.log = env.path("%s.log" % name)
		self.proc = None

	@property
	def url_tcp(self):
		return "redis://127.0.0.1:%d/0" % self.port

	@property
	def url_unix(self):
		return "unix:%s" % self.sock

	def start(self, timeout=READY_TIMEOUT):
		if self.proc and self.proc.alive():
			raise HarnessError("%s already running" % self.name)
		argv = ["redis-server", "--port", str(self.port or 0), "--bind", "127.0.0.1",
		    "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
		    "--databases", "4", "--protected-mode", "no"]
		if self.sock:
			argv += ["--unixsocket", self.sock, "--unixsocketperm", "700"]
		self.proc = self.env.spawn(self.name, argv, self.log)
		wait_until(lambda: self._ready_or_dead(), timeout, "%s to answer PING" % self.name)
		return self

	def _ready_or_dead(self):
		if not self.proc.alive():
			raise HarnessError("%s exited (rc %s) during startup:\n%s" % (self.name, self.proc.popen.poll(), _tail(self.log)))
		return self.ping(timeout=0.5)

	def ping(self, timeout=1.0):
		try:
			return self.cmd("PING", timeout=timeout) == "PONG"
		except (OSError, RedisError):
			return False

	def stop(self):
		if self.proc:
			self.proc.stop()

	def kill(self):
		if self.proc:
			self.proc.kill()

	def restart(self):
		self.stop()
		return self.start()

	def pause(self):
		self.proc.pause()

	def resume(self):
		self.proc.resume()

	def alive(self):
		return bool(self.proc and self.proc.alive())

	def _connect(self, timeout):
		if self.sock:
			s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
			s.settimeout(timeout)
			s.connect(self.sock)
		else:
			s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
		return s

	def cmd(self, *args, timeout=5.0):
		"""One command over a fresh connection (RESP2, binary safe).
		Bulk strings come back as bytes, simple strings as str."""
		s = self._connect(timeout)
		try:
			s.sendall(_resp_encode(args))
			return _resp_read(s.makefile("rb"))
		finally:
			s.close()

	def cli(self, *args, timeout=30):
		"""redis-cli against this server (unix socket preferred)."""
		conn = ["-s", self.sock] if self.sock else ["-h", "127.0.0.1", "-p", str(self.port)]
		return self.env.run(["redis-cli"] + conn + list(args), timeout=timeout)

	def scan_keys(self, pattern="*"):
		"""All keys, with `redis-cli --scan` as the issue asks."""
		rc, out, err = self.cli("--scan", "--pattern", pattern)
		if rc != 0:
			raise HarnessError("redis-cli --scan failed: %s" % err)
		return [k for k in out.split("\n") if k]

	def dump(self, pattern="*"):
		"""{key: (type, value)} for every key: TYPE then GET / HGETALL /
		SMEMBERS / ZRANGE WITHSCORES / LRANGE / XRANGE."""
		out = {}
		for k in self.scan_keys(pattern):
			t = self.cmd("TYPE", k)
			if t == "string":
				v = self.cmd("GET", k)
			elif t == "hash":
				v = self.cmd("HGETALL", k)
			elif t == "set":
				v = self.cmd("SMEMBERS", k)
			elif t == "zset":
				v = self.cmd("ZRANGE", k, "0", "-1", "WITHSCORES")
			elif t == "list":
				v = self.cmd("LRANGE", k, "0", "-1")
			elif t == "stream":
				v = self.cmd("XRANGE", k, "-", "+")
			else:
				v = None
			out[k] = (t, v)
		return out


class RedisError(Exception):
	pass


def _resp_encode(args):
	out = [b"*%d\r\n" % len(args)]
	for a in args:
		b = a if isinstance(a, bytes) else str(a).encode()
		out.append(b"$%d\r\n%s\r\n" % (len(b), b))
	return b"".join(out)


def _resp_read(f):
	line = f.readline()
	if not line:
		raise RedisError("connection closed")
	t, rest = line[:1], line[1:-2]
	if t == b"+":
		return rest.decode()
	if t == b"-":
		raise RedisError(rest.decode())
	if t == b":":
		return int(rest)
	if t == b"$":
		n = int(rest)
		if n < 0:
			return None
		data = f.read(n + 2)
		return data[:-2]
	if t == b"*":
		n = int(rest)
		if n < 0:
			return None
		return [_resp_read(f) for _ in range(n)]
	raise RedisError("bad reply %r" % line)


def flatten_bytes(value):
	"""All bytes inside a dump value (for substring searches)."""
	if value is None:
		return b""
	if isinstance(value, bytes):
		return value
	if isinstance(value, str):
		return value.encode()
	if isinstance(value, int):
		return str(value).encode()
	return b"\n".join(flatten_bytes(v) for v in value)


def _tail(path, lines=30):
	try:
		with open(path, "rb") as f:
			return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
	except OSError:
		return "(no log)"


# ---------------------------------------------------------------- dovecot

class Dovecot:
	"""Dovecot 2.3 as the IMAP upstream: plaintext+STARTTLS port imap_port,
	implicit TLS port imaps_port, both on 127.0.0.1 (and ::1 when the host
	has it), cert = the CA-signed localhost cert (cert="self" for the
	self-signed one, or a (cert, key) pair of paths). Users in a passwd-file with {PLAIN} passwords,
	Maildirs under the temp dir owned by mail(8).

	TODO(SMTP issue): submission. Dovecot's submission service needs a relay
	(Postfix, see class Postfix); add `protocols = imap submission`, a
	submission_relay_host pointing at Postfix's port and two inet listeners
	(587 STARTTLS, 465 TLS), and readiness on the 220 greeting."""

	def __init__(self, env, cert="ca", name="dovecot", users=None, oauth2=None):
		"""oauth2: an introspection URL (lib/oauth_fake.py) to add the
		XOAUTH2/OAUTHBEARER mechanisms with an oauth2 passdb beside the
		password one (TEST-HARNESS-NOTES.md)."""
		if shutil.which("dovecot") is None:
			raise HarnessError("dovecot not installed (make test installs it: scripts/deps.sh test)")
		self.env = env
		self.name = name
		self.dir = env.path(name)
		self.imap_port = env.port()
		self.imaps_port = env.port()
		self.conf = os.path.join(self.dir, "dovecot.conf")
		self.log = env.path("%s.log" % name)
		self.passwd = os.path.join(self.dir, "passwd")
		self.users = dict(users or {})
		c = env.certs
		if isinstance(cert, tuple):	# (cert path, key path)
			self.cert, self.key = cert
		else:
			self.cert, self.key = (c.self_cert, c.self_key) if cert == "self" else (c.cert, c.key)
		self.proc = None
		self.has_v6 = _have_v6()
		self.oauth2 = oauth2

	def add_user(self, user, password):
		"""Adds (or changes) a user; Dovecot rereads the passwd-file when it
		changes, so this works while it runs."""
		self.users[user] = password
		self._write_passwd()

	def _write_passwd(self):
		tmp = self.passwd + ".tmp"
		with open(tmp, "w") as f:
			for u, p in self.users.items():
				f.write("%s:{PLAIN}%s::::::\n" % (u, p))
		os.chmod(tmp, 0o644)
		os.replace(tmp, self.passwd)

	def write_conf(self):
		os.makedirs(self.dir, exist_ok=True)
		mail = os.path.join(self.dir, "mail")
		os.makedirs(mail, exist_ok=True)
		os.chown(mail, 8, 8)
		os.chmod(mail, 0o700)
		os.chmod(self.dir, 0o755)
		with open(os.path.join(CONF_DIR, "dovecot.conf.in")) as f:
			tpl = string.Template(f.read())
		dh = "/usr/share/dovecot/dh.pem"
		text = tpl.substitute(
		    dir=self.dir, log=self.log,
		    listen="127.0.0.1, ::1" if self.has_v6 else "127.0.0.1",
		    instance="postern-it-%d-%s" % (os.getpid(), os.path.basename(self.env.dir)[-8:]),
		    cert=self.cert, key=self.key,
		    ssl_dh="ssl_dh = <%s" % dh if os.path.exists(dh) else "",
		    imap_port=self.imap_port, imaps_port=self.imaps_port)
		with open(self.conf, "w") as f:
			f.write(text)
			if self.oauth2:
				f.write(_dovecot_oauth2_conf(self.dir, self.oauth2))
		self._write_passwd()

	def start(self, timeout=READY_TIMEOUT):
		self.write_conf()
		self.env.add_log(self.name, self.log)
		self.proc = self.env.spawn(self.name + "-master", ["dovecot", "-F", "-c", self.conf],
		    self.env.path("%s-stdout.log" % self.name))
		wait_until(self._ready, timeout, "%s greeting on ports %d and %d" % (self.name, self.imap_port, self.imaps_port), interval=0.1)
		return self

	def _ready(self):
		if not self.proc.alive():
			raise HarnessError("dovecot exited (rc %s):\n%s\n%s" % (self.proc.popen.poll(), _tail(self.log), _tail(self.proc.log_path)))
		with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
			if not read_line(s).startswith(b"* OK"):
				return False
		ctx = ssl.create_default_context(cafile=self.env.certs.ca)
		ctx.check_hostname = False
		ctx.verify_mode = ssl.CERT_NONE
		with socket.create_connection(("127.0.0.1", self.imaps_port), timeout=2) as raw:
			with ctx.wrap_socket(raw, server_hostname="localhost") as s:
				return read_line(s).startswith(b"* OK")

	def stop(self):
		if self.proc:
			self.proc.stop()

	def restart(self):
		self.stop()
		return self.start()

	def maildir(self, user):
		return os.path.join(self.dir, "mail", user, "Maildir")

	def login(self, user, password=None, mode="imaps", host="localhost"):
		"""imaplib session logged in directly to Dovecot (for reference
		runs and self-tests). mode: imaps | starttls | plain."""
		password = self.users[user] if password is None else password
		return imap_connect(self.env, host, self.imaps_port if mode == "imaps" else self.imap_port,
		    mode, user=user, password=password)


def _dovecot_oauth2_conf(d, url):
	"""Bearer tokens checked at url on every login (auth_cache_size = 0),
	so the fake provider counts upstream logins."""
	path = os.path.join(d, "oauth2.conf")
	with open(path, "w") as f:
		f.write("introspection_url = %s\nintrospection_mode = post\n"
		    "force_introspection = yes\nusername_attribute = username\n"
		    "active_attribute = active\nactive_value = true\n" % url)
	return ("\n# OAuth2 upstream logins (lib/oauth_fake.py)\n"
	    "auth_mechanisms = plain login xoauth2 oauthbearer\n"
	    "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
	    "  args = %s\n}\n" % path)


def _have_v6():
	try:
		s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
		s.bind(("::1", 0))
		s.close()
		return True
	except OSError:
		return False


def imap_connect(env, host, port, mode="imaps", user=None, password=None, ctx=None, timeout=10):
	"""imaplib client: mode imaps (implicit TLS), starttls, or plain.
	TLS verifies the harness CA and the host name unless ctx is given.
	Logs in when user is given."""
	ctx = ctx or env.ssl_context()
	if mode == "imaps":
		m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=timeout)
	else:
		m = imaplib.IMAP4(host, port, timeout=timeout)
		if mode == "starttls":
			m.starttls(ssl_context=ctx)
	if user is not None:
		m.login(user, password)
	return m


# ---------------------------------------------------------------- postfix

class Postfix:
	"""TODO(SMTP issue): Postfix 3.7 as the SMTP upstream, from a private
	config dir, per TEST-HARNESS-NOTES.md: master started directly
	(`/usr/lib/postfix/sbin/master -c DIR -d`), `postfix -c DIR check` under
	`script -qec`, maillog_file under maillog_file_prefixes plus a postlog
	service, data_directory owned by postfix, chroot = n everywhere,
	SASL via the Dovecot auth-postfix listener (Dovecot.dir/run/auth-postfix),
	`virtual_alias_domains =`, default_transport/relay_transport = error:,
	smtp_dns_support_level = disabled, local test domains over LMTP to
	Dovecot. Listeners: 587 STARTTLS and 465 TLS on 127.0.0.1, readiness on
	the 220 greeting, stop by the master's PID."""

	def __init__(self, env, dovecot):
		raise NotImplementedError("Postfix upstream is planned for the SMTP issue")


# ---------------------------------------------------------------- postern

class Reply(tuple):
	"""(status, json) plus .raw (bytes), .headers (dict, lower-case keys),
	.elapsed (seconds)."""

	def __new__(cls, status, data, raw=b"", headers=None, elapsed=0.0):
		r = tuple.__new__(cls, (status, data))
		r.status = status
		r.json = data
		r.raw = raw
		r.headers = headers or {}
		r.elapsed = elapsed
		return r


class _UnixHTTPConnection(http.client.HTTPConnection):
	def __init__(self, path, timeout):
		super().__init__("localhost", timeout=timeout)
		self._unix_path = path

	def connect(self):
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.settimeout(self.timeout)
		try:
			s.connect(self._unix_path)
		except OSError:
			s.close()
			raise
		self.sock = s


class Api:
	"""HTTP/1.1 client for the admin API over its Unix socket. Each call
	uses a fresh connection and returns Reply(status, parsed JSON or None)."""

	def __init__(self, sock_path, timeout=15.0):
		self.sock_path = sock_path
		self.timeout = timeout

	def request(self, method, path, body=None, params=None, headers=None, timeout=None, chunked=False):
		if params:
			path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
		if isinstance(body, (dict, list)) or body is True or body is False or isinstance(body, (int, float)):
			body = json.dumps(body).encode()
		elif isinstance(body, str):
			body = body.encode()
		hdrs = {"Host": "localhost", "Accept": "application/json"}
		if body is not None:
			hdrs["Content-Type"] = "application/json"
			if chunked:
				hdrs["Transfer-Encoding"] = "chunked"
			else:
				hdrs["Content-Length"] = str(len(body))
		hdrs.update(headers or {})
		conn = _UnixHTTPConnection(self.sock_path, self.timeout if timeout is None else timeout)
		t0 = time.monotonic()
		try:
			conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
			for k, v in hdrs.items():
				conn.putheader(k, v)
			try:
				if body is not None and chunked:
					conn.endheaders()
					for i in range(0, len(body), 65536):
						part = body[i:i + 65536]
						conn.send(b"%x\r\n%s\r\n" % (len(part), part))
					conn.send(b"0\r\n\r\n")
				else:
					conn.endheaders(body)
			except (BrokenPipeError, ConnectionResetError):
				# The server may answer (413) and close before reading it
				# all: its answer is still in our receive buffer.
				pass
			resp = conn.getresponse()
			raw = resp.read()
			hd = {k.lower(): v for k, v in resp.getheaders()}
		finally:
			conn.close()
		elapsed = time.monotonic() - t0
		data = None
		if raw:
			try:
				data = json.loads(raw)
			except ValueError:
				data = None
		return Reply(resp.status, data, raw, hd, elapsed)

	def get(self, path, params=None, **kw):
		return self.request("GET", path, params=params, **kw)

	def post(self, path, body=None, **kw):
		return self.request("POST", path, body=body, **kw)

	def put(self, path, body=None, **kw):
		return self.request("PUT", path, body=body, **kw)

	def delete(self, path, **kw):
		return self.request("DELETE", path, **kw)

	def raw(self, data, timeout=5.0):
		"""Sends raw bytes on a new connection; returns whatever comes back
		until EOF or timeout (for non-HTTP garbage)."""
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.settimeout(timeout)
		s.connect(self.sock_path)
		out = b""
		try:
			s.sendall(data)
			while True:
				c = s.recv(65536)
				if not c:
					break
				out += c
		except (socket.timeout, ConnectionResetError, BrokenPipeError):
			pass
		finally:
			s.close()
		return out


def _q(s):
	return urllib.parse.quote(s, safe="@+")


class Postern:
	"""posternd with a generated postern.conf.

	Ports: imap_tls, imap_starttls, smtp_starttls, smtp_tls (127.0.0.1);
	imap_proxy=True adds imap_tls_proxy and imap_starttls_proxy, the same
	listeners flagged "proxy" (a PROXY protocol header comes first).
	extra={"section": {"key": "value" or None to drop}} overrides or adds
	keys; redis_via="unix"|"tcp"; redis_url overrides both. secret=None
	starts without POSTERN_SECRET. wait_listeners=False: ready as soon as the
	admin socket answers /health (for cases that only need the admin API).
	At teardown a non-zero exit status (e.g. LeakSanitizer's 23) or a
	sanitizer report in its log fails the case; a test that crashes it on
	purpose sets p.proc.expect_fail = True.
	"""

	def __init__(self, env, redis, name="posternd", redis_via="unix", redis_url=None, extra=None,
	    secret="default", wait_listeners=True, timeout="1s", imap_proxy=False):
		self.env = env
		self.redis = redis
		self.name = name
		self.dir = env.path(name)
		os.makedirs(self.dir, exist_ok=True)
		self.conf_path = os.path.join(self.dir, "postern.conf")
		self.log_path = env.path("%s.log" % name)
		self.admin_sock = os.path.join(self.dir, "admin.sock")
		self.imap_tls = env.port()
		self.imap_starttls = env.port()
		self.smtp_starttls = env.port()
		self.smtp_tls = env.port()
		self.imap_tls_proxy = env.port() if imap_proxy else None
		self.imap_starttls_proxy = env.port() if imap_proxy else None
		if secret == "default":
			secret = "it-secret-" + secrets.token_hex(16)
		self.secret = secret
		if redis_url is None:
			redis_url = redis.url_unix if redis_via == "unix" else redis.url_tcp
		self.redis_url = redis_url
		self.timeout = timeout
		self.extra = extra or {}
		self.wait_listeners = wait_listeners
		self.api = Api(self.admin_sock)
		self.proc = None
		self.ctl_history = []	# (argv, rc, stdout, stderr, stdin)

	def sections(self):
		c = self.env.certs
		s = {
		    "postern": {"log_level": "debug", "workers": "1"},
		    "redis": {"url": self.redis_url, "prefix": "postern:", "timeout": self.timeout},
		    "admin": {"socket": self.admin_sock},
		    "tls": {"cert": c.cert, "key": c.key},
		    "imap": {"listen": "127.0.0.1:%d tls, 127.0.0.1:%d starttls" % (self.imap_tls, self.imap_starttls),
			"login_timeout": "60s", "failure_delay": "0"},
		    "smtp": {"listen": "127.0.0.1:%d starttls, 127.0.0.1:%d tls" % (self.smtp_starttls, self.smtp_tls)},
		}
		if self.imap_tls_proxy is not None:
			s["imap"]["listen"] += ", 127.0.0.1:%d tls proxy, 127.0.0.1:%d starttls proxy" % (
			    self.imap_tls_proxy, self.imap_starttls_proxy)
		for sec, kv in self.extra.items():
			if kv is None:
				s.pop(sec, None)
				continue
			d = s.setdefault(sec, {})
			for k, v in kv.items():
				if v is None:
					d.pop(k, None)
				else:
					d[k] = str(v)
		return s

	def write_conf(self):
		lines = ["# generated by tests/integration/lib/harness.py"]
		for sec, kv in self.sections().items():
			lines.append("")
			lines.append("[%s]" % sec)
			for k, v in kv.items():
				lines.append("%s = %s" % (k, v))
		with open(self.conf_path, "w") as f:
			f.write("\n".join(lines) + "\n")
		return self.conf_path

	def _env(self):
		return ({"POSTERN_SECRET": self.secret} if self.secret is not None else {})

	def start(self, timeout=READY_TIMEOUT):
		binary = self.env.bin("posternd")
		self.write_conf()
		self.proc = self.env.spawn(self.name, [binary, "-f", "-c", self.conf_path], self.log_path,
		    extra_env=self._env(), unset_env=("POSTERN_SECRET",))
		self.proc.check_exit = True
		wait_until(self._ready, timeout, "%s: admin socket GET /health%s" % (
		    self.name, " and IMAP listeners" if self.wait_listeners else ""), interval=0.05)
		return self

	def _ready(self):
		if not self.proc.alive():
			self.proc.expect_fail = True
			raise HarnessError("%s exited (rc %s) during startup:\n%s" % (self.name, self.proc.popen.poll(), _tail(self.log_path)))
		if not os.path.exists(self.admin_sock):
			return False
		try:
			st, _ = self.api.get("/health", timeout=3)
		except OSError:
			return False
		if st not in (200, 503):
			return False
		if self.wait_listeners:
			return tcp_accepts(self.imap_tls) and tcp_accepts(self.imap_starttls)
		return True

	def alive(self):
		return bool(self.proc and self.proc.alive())

	def stop(self, timeout=STOP_TIMEOUT):
		"""SIGTERM and wait; returns the exit status."""
		return self.proc.stop(timeout) if self.proc else None

	def restart(self):
		self.stop()
		return self.start()

	def reload(self):
		self.proc.send_signal(signal.SIGHUP)

	def log_text(self):
		try:
			with open(self.log_path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except OSError:
			return ""

	def health(self):
		return self.api.get("/health")

	def ctl(self, *args, input=None, timeout=30, sock=None):
		"""BUILD/posternctl -s SOCKET args... -> (rc, stdout, stderr)."""
		argv = [self.env.bin("posternctl"), "-s", sock or self.admin_sock] + [str(a) for a in args]
		rc, out, err = self.env.run(argv, input=input, timeout=timeout, unset_env=("POSTERN_SECRET",))
		self.ctl_history.append((argv, rc, out, err, input))
		with open(self.env.path("posternctl.log"), "a") as f:
			f.write("$ %s\nrc=%d\n--- stdout\n%s--- stderr\n%s\n" % (" ".join(argv), rc, out, err))
		return rc, out, err

	def ctl_json(self, *args, input=None, expect_rc=0):
		"""ctl(... '--json'); checks rc and returns the parsed stdout."""
		rc, out, err = self.ctl(*(list(args) + ["--json"]), input=input)
		if rc != expect_rc:
			raise TestFailure("posternctl %s --json: expected exit %d, got %d\nstdout: %s\nstderr: %s" % (
			    " ".join(map(str, args)), expect_rc, rc, out, err))
		try:
			return json.loads(out)
		except ValueError:
			raise TestFailure("posternctl %s --json: stdout is not JSON: %s" % (" ".join(map(str, args)), _short(out)))

	# API helpers used by many cases

	def add_account(self, account, **fields):
		body = {"account": account}
		if not fields:
			fields = {"imap": {"host": "127.0.0.1", "port": 993, "secure": True,
			    "auth": {"user": account, "pass": "pw-" + account}}}
		body.update(fields)
		return expect_status(self.api.post("/v1/account", body), 200, "POST /v1/account %s" % account)

	def create_token(self, account, scopes=("imap-proxy", "smtp"), description="test token", **fields):
		body = {"account": account, "description": description, "scopes": list(scopes)}
		body.update(fields)
		return expect_status(self.api.post("/v1/tokens", body), 200, "POST /v1/tokens for %s" % account)

	def account_path(self, account):
		return "/v1/account/" + _q(account)


# ---------------------------------------------------------------- fixtures

def parse_time(s, what="timestamp"):
	"""ISO 8601 (docs/API.md: '2026-11-22T10:00:00.000Z') -> aware datetime."""
	import datetime
	matches(ISO8601.pattern, s, what)
	return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def full_account(account, imap_pass="imap-pass", smtp_pass="smtp-pass", refresh="refresh-tok", access="access-tok"):
	"""The docs/API.md example account, with the given secrets."""
	return {
	    "account": account, "name": "Example " + account, "email": "user@example.com",
	    "imap": {"host": "imap.example.com", "port": 993, "secure": True, "starttls": "required",
		"auth": {"user": "user@example.com", "pass": imap_pass},
		"tls": {"rejectUnauthorized": True}, "sentMailPath": "Sent", "maxConnections": 10},
	    "smtp": {"host": "smtp.example.com", "port": 465, "secure": True,
		"auth": {"user": "user@example.com", "pass": smtp_pass}},
	    "oauth2": {"provider": "app-id", "auth": {"user": "user@gmail.com"},
		"refreshToken": refresh, "accessToken": access, "expires": "2030-01-01T00:00:00Z"},
	    "proxy": "socks5://127.0.0.1:1080", "imapIndexer": "full", "path": ["*"],
	}


def basic_setup(env, tcp=False, **postern_kw):
	"""Redis (unix socket) + posternd for admin-API cases. Returns a ctx
	with .env .redis .p (Postern) .api. IMAP listeners are not waited for:
	these cases only need the admin socket."""
	import types
	c = types.SimpleNamespace(env=env)
	c.redis = env.redis(tcp=tcp, unix=True)
	postern_kw.setdefault("wait_listeners", False)
	c.p = env.postern(c.redis, **postern_kw)
	c.api = c.p.api
	return c


def uniq(prefix="x"):
	return "%s-%s" % (prefix, secrets.token_hex(4))
