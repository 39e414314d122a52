#!/usr/bin/env python3
"""make bench: Postern against a direct connection to Dovecot/Postfix and
against nginx's mail proxy, on loopback, in one run (issue 7).

bench/run.sh builds the load generator (bench/pbench.c) and runs this file.
Servers come from the integration harness (tests/integration/lib/harness.py:
Env, Redis, Dovecot, Postern, certificates); nginx, its auth_http responder,
a stub IMAP upstream and Postfix are started here. Every figure is taken
for all contenders in the same run, interleaved A B C A B C ..., and
reported as median [min-max]. Output: a table on stdout and
bench/results.json. BENCH_QUICK=1: a smaller mailbox and shorter runs.
Everything listens on 127.0.0.1 and is stopped by PID at the end.
"""

import base64
import datetime
import json
import os
import platform
import random
import select
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "lib"))

import harness  # noqa: E402
from harness import Env, HarnessError, Postern, pids_in_group, tcp_accepts, wait_until  # noqa: E402
from postfix import LmtpDovecot, Postfix  # noqa: E402

try:
	from oauth_fake import FakeProvider  # noqa: E402
except ImportError:	# the OAuth2 harness is not in this tree yet
	FakeProvider = None

QUICK = os.environ.get("BENCH_QUICK") == "1"
BUILD = os.environ.get("BENCH_BUILD", os.path.join(REPO, "build"))
PBENCH = os.path.join(BUILD, "bench", "pbench")
RESULTS = os.path.join(HERE, "results.json")

if QUICK:
	P = dict(rounds=3, msgs=400, mbytes=60, login_secs=2.0, idle=(500, 1000, 2000), smtp_secs=3.0)
else:
	P = dict(rounds=3, msgs=2000, mbytes=300, login_secs=5.0, idle=(1000, 5000, 10000), smtp_secs=8.0)
P.update(login_clients=(1, 32), smtp_sessions=8, smtp_size=10 * 1024, idle_threads=8, idle_accounts=16)
for k in list(P):
	v = os.environ.get("BENCH_" + k.upper())
	if v:
		P[k] = type(P[k])(v) if not isinstance(P[k], tuple) else tuple(int(x) for x in v.split(","))

USER, PASS = "bench@example.test", "bench-pw"
SINK = "sink@example.test"	# SMTP recipient (pbench smtp), discarded
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
	print("bench: %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def proc_cpu(pid, children=False):
	"""utime+stime (and cutime+cstime: reaped children) in seconds."""
	try:
		with open("/proc/%d/stat" % pid) as f:
			st = f.read()
	except OSError:
		return 0.0
	fl = st[st.rindex(")") + 2:].split()
	t = int(fl[11]) + int(fl[12])
	if children:
		t += int(fl[13]) + int(fl[14])
	return t / CLK


def group_cpu(pgid):
	"""CPU seconds of every live process in a process group, plus what
	the leader collected from children it reaped (Dovecot's imap
	processes come and go)."""
	return sum(proc_cpu(p) for p in pids_in_group(pgid)) + (proc_cpu(pgid, True) - proc_cpu(pgid))


def rss_bytes(pid):
	try:
		with open("/proc/%d/status" % pid) as f:
			for ln in f:
				if ln.startswith("VmRSS:"):
					return int(ln.split()[1]) * 1024
	except OSError:
		pass
	return 0


def group_rss(pgid):
	return sum(rss_bytes(p) for p in pids_in_group(pgid))


def pbench(*args, timeout=600):
	argv = [PBENCH] + [str(a) for a in args]
	p = subprocess.run(argv, capture_output=True, timeout=timeout)
	if p.returncode != 0:
		raise HarnessError("%s failed (rc %d): %s" % (" ".join(argv[:2]), p.returncode, p.stderr.decode(errors="replace")))
	return json.loads(p.stdout.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------- servers

# Dovecot as a fast upstream, so that the proxies' own costs show: imap
# processes are reused for later logins (service_count = 0, Dovecot's
# documented performance setting) instead of one fork+exec per login, which
# costs ~20 ms of CPU and would cap every contender at the same rate.
BENCH_DOVECOT_CONF = """
# bench/bench.py
protocol imap {
  mail_max_userip_connections = 2000
}
service imap {
  service_count = 0
  process_min_avail = 4
}
"""


class BenchDovecot(LmtpDovecot):
	"""The harness Dovecot (with the auth and LMTP sockets the harness
	Postfix uses), with settings for many clients appended."""

	def write_conf(self):
		super().write_conf()
		with open(self.conf, "a") as f:
			f.write(BENCH_DOVECOT_CONF)


def seed_mailbox(dovecot, user, count, total_mb, seed=7):
	"""~count messages of 2 KB..5 MB, ~total_mb MB in all, written straight
	into the Maildir's cur/ (seen, CRLF line ends as stored on the wire)."""
	rnd = random.Random(seed)
	sizes = []
	for _ in range(count):
		r = rnd.random()
		lo, hi = (2e3, 30e3) if r < 0.78 else (30e3, 500e3) if r < 0.95 else (500e3, 5e6)
		sizes.append(lo * (hi / lo) ** rnd.random())
	scale = total_mb * 1e6 / sum(sizes)
	sizes = [int(min(5e6, max(2e3, s * scale))) for s in sizes]
	pool = base64.b64encode(rnd.randbytes(6 * 1024 * 1024))
	lines = b"".join(pool[i:i + 76] + b"\r\n" for i in range(0, len(pool) - 76, 76))
	root = dovecot.maildir(user)
	for sub in ("cur", "new", "tmp"):
		os.makedirs(os.path.join(root, sub), exist_ok=True)
	d = root
	while True:
		os.chown(d, 8, 8)
		for sub in ("cur", "new", "tmp"):
			if os.path.isdir(os.path.join(d, sub)):
				os.chown(os.path.join(d, sub), 8, 8)
		if os.path.dirname(d) == os.path.join(dovecot.dir, "mail") or d == "/":
			break
		d = os.path.dirname(d)
	total = 0
	t0 = int(time.time()) - count
	for i, size in enumerate(sizes):
		head = ("From: Sender %d <sender%d@example.test>\r\nTo: %s\r\nSubject: bench message %d\r\n"
		    "Message-ID: <bench-%d@example.test>\r\nDate: Mon, 02 Jan 2023 10:%02d:%02d +0000\r\n"
		    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
		    % (i % 97, i % 97, user, i, i, (i // 60) % 60, i % 60)).encode()
		need = max(0, size - len(head))
		off = rnd.randrange(0, len(lines) - need - 1) if need < len(lines) - 1 else 0
		off -= off % 78
		body = lines[off:off + need]
		while len(body) < need:
			body += lines[:need - len(body)]
		msg = head + body
		name = "%d.M%dP%d.bench,S=%d:2,S" % (t0 + i, i, os.getpid(), len(msg))
		path = os.path.join(root, "cur", name)
		with open(path, "wb") as f:
			f.write(msg)
		os.chown(path, 8, 8)
		total += len(msg)
	return total


class Pbench:
	"""A long-running pbench server (stub IMAP upstream or auth_http)."""

	def __init__(self, env, mode, port):
		self.port = port
		self.proc = env.spawn("pbench-%s" % mode, [PBENCH, mode, str(port)])
		wait_until(lambda: tcp_accepts(port), 10, "pbench %s on %d" % (mode, port))


class Nginx:
	"""nginx 1.22 with the mail module: implicit-TLS IMAP listeners in
	front of Dovecot's plaintext port and of the stub upstream, an
	auth_http responder naming the backend port in its URL path."""

	def __init__(self, env, authd_port, backends, name="nginx"):
		self.env = env
		self.name = name
		self.dir = env.path(name)
		os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
		self.conf = os.path.join(self.dir, "nginx.conf")
		self.err = os.path.join(self.dir, "logs", "error.log")
		self.ports = {b: env.port() for b in backends}
		c = env.certs
		servers = "".join("""
    server {
        listen 127.0.0.1:%d ssl;
        protocol imap;
        auth_http 127.0.0.1:%d/%d;
    }""" % (self.ports[b], authd_port, b) for b in backends)
		with open(self.conf, "w") as f:
			f.write("""# bench/bench.py: nginx mail proxy peer
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid %(dir)s/nginx.pid;
error_log %(err)s error;
events {
    worker_connections 20000;
}
mail {
    server_name localhost;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    ssl_session_cache shared:MAIL:10m;
    imap_capabilities IMAP4rev1 LITERAL+ SASL-IR IDLE;
    imap_auth login plain;
    proxy_pass_error_message on;
%(servers)s
}
""" % dict(dir=self.dir, err=self.err, cert=c.cert, key=c.key, servers=servers))
		self.proc = None

	def start(self):
		self.proc = self.env.spawn(self.name, ["nginx", "-e", self.err, "-c", self.conf, "-p", self.dir + "/"])
		wait_until(lambda: self._ready(), 20, "nginx listeners")
		return self

	def _ready(self):
		if not self.proc.alive():
			raise HarnessError("nginx exited: %s" % harness._tail(self.err))
		return all(tcp_accepts(p) for p in self.ports.values())

	def stop(self):
		if self.proc:
			self.proc.stop()


class BenchPostfix(Postfix):
	"""The harness Postfix (tests/integration/lib/postfix.py), with the
	bench's sink domain going to discard(8) instead of LMTP: the figure
	is the submission path, and no delivery backlog runs into the next
	contender's turn. The later main.cf entry wins."""

	def write_conf(self):
		super().write_conf()
		with open(os.path.join(self.conf, "main.cf"), "a") as f:
			f.write("\n# bench/bench.py\nvirtual_transport = discard:bench\n")


def postern_extra(env, name_workers="auto"):
	return {
	    "postern": {"log_level": "info", "workers": name_workers, "drain_timeout": "1s"},
	    "tls": {"ca_file": env.certs.ca},
	    "imap": {"failure_delay": "0", "max_connections": "1000"},
	    "smtp": {"sent_copy": "no", "failure_delay": "0"},
	}


def make_account(p, account, imap=None, smtp=None):
	body = {}
	if imap:
		body["imap"] = imap
	if smtp:
		body["smtp"] = smtp
		body["copySent"] = False
	p.add_account(account, **body)
	return p.create_token(account, scopes=("imap-proxy", "smtp"), description="bench")["token"]


def oauth_setup(env, p, stub_port):
	"""f: two accounts on the stub upstream through the same posternd, one
	with a password, one with an OAuth2 access token already cached
	(pushed with its expiry, as an app that refreshes tokens itself does;
	the refresh token points at the harness's fake provider, which counts
	every token request). Returns (fake, [(key, account, token)]) or
	raises with the reason it cannot be measured."""
	if FakeProvider is None:
		raise HarnessError("tests/integration/lib/oauth_fake.py is missing")
	fake = FakeProvider(env).start()
	st, body = p.api.post("/v1/oauth2", {"id": "bench-oauth", "provider": "custom", "clientId": fake.client_id,
	    "clientSecret": fake.client_secret, "tokenUrl": fake.token_url, "mechanism": "XOAUTH2"})
	if st != 200:
		raise HarnessError("POST /v1/oauth2 answered %s: %s" % (st, body))
	user = "oauth@example.test"
	expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
	imap = {"host": "127.0.0.1", "port": stub_port, "secure": False, "starttls": "never"}
	p.add_account("bench-oauth2", imap=imap, oauth2={"provider": "bench-oauth", "auth": {"user": user},
	    "refreshToken": fake.add_refresh_token(user), "accessToken": fake.issue_access(user, 86400),
	    "expires": expires})
	tok_o = p.create_token("bench-oauth2", scopes=("imap-proxy",), description="bench")["token"]
	tok_p = make_account(p, "bench-stubpw", imap=dict(imap, auth={"user": user, "pass": "x"}))
	res = pbench("login", "127.0.0.1", p.imap_tls, "bench-oauth2", tok_o, 1, 0.3)
	if res["logins"] == 0:
		raise HarnessError("OAuth2 login through Postern failed (see %s)" % p.log_path)
	return fake, [("password", "bench-stubpw", tok_p), ("oauth2_cached", "bench-oauth2", tok_o)]


# ---------------------------------------------------------------- statistics

def summary(values):
	v = [x for x in values if x is not None]
	if not v:
		return None
	return {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}


def login_summary(runs):
	out = {k: summary([x[k] for x in runs]) for k in ("rate", "p50_ms", "p99_ms", "tls_p50_ms", "greeting_p50_ms", "login_p50_ms")}
	out["errors"] = sum(x["errors"] for x in runs)
	return out


def med(s):
	return s["median"] if s else None


def ratio(a, b):
	return None if not a or not b else med(a) / med(b)


# ---------------------------------------------------------------- figures

def fig_fetch(ctx, contenders, rounds):
	"""a and d: UID FETCH 1:* BODY.PEEK[] of the whole mailbox."""
	runs = {k: [] for k, *_ in contenders}
	for r in range(rounds):
		for key, port, mode, user, pw, pgid in contenders:
			c0 = group_cpu(pgid) if pgid else None
			res = pbench("fetch", "127.0.0.1", port, mode, user, pw, timeout=300)
			c1 = group_cpu(pgid) if pgid else None
			res["mbps"] = res["bytes"] / res["secs"] / 1e6
			res["proxy_cpu"] = (c1 - c0) if pgid else None
			res["cpu_per_gb"] = (c1 - c0) / (res["bytes"] / 1e9) if pgid else None
			res["client_cores"] = res["client_cpu"] / res["secs"]
			runs[key].append(res)
			log("fetch round %d %-14s %7.1f MB/s  %d bytes  client %.2f core%s" % (
			    r + 1, key, res["mbps"], res["bytes"], res["client_cores"],
			    "  proxy %.2f CPU-s/GB" % res["cpu_per_gb"] if pgid else ""))
	return runs


def fig_login(ctx, contenders, clients, rounds, secs):
	runs = {(k, n): [] for k, *_ in contenders for n in clients}
	for n in clients:
		for r in range(rounds):
			for key, port, user, pw in contenders:
				res = pbench("login", "127.0.0.1", port, user, pw, n, secs, timeout=secs + 120)
				res["client_cores"] = res["client_cpu"] / res["secs"]
				runs[(key, n)].append(res)
				log("login c=%-2d round %d %-14s %7.1f/s p50 %.1f ms (TLS %.1f greeting %.1f LOGIN %.1f) p99 %.1f ms errors %d client %.2f core" % (
				    n, r + 1, key, res["rate"], res["p50_ms"], res["tls_p50_ms"], res["greeting_p50_ms"], res["login_p50_ms"],
				    res["p99_ms"], res["errors"], res["client_cores"]))
	return runs


class IdleClient:
	def __init__(self, port, accounts_file, threads):
		self.p = subprocess.Popen([PBENCH, "idle", "127.0.0.1", str(port), accounts_file, str(threads)],
		    stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)

	def cmd(self, line, timeout=300):
		self.p.stdin.write((line + "\n").encode())
		self.p.stdin.flush()
		r, _, _ = select.select([self.p.stdout], [], [], timeout)
		if not r:
			raise HarnessError("pbench idle: no answer to %r within %ds" % (line, timeout))
		out = self.p.stdout.readline()
		if not out:
			raise HarnessError("pbench idle exited (rc %s)" % self.p.wait(5))
		return json.loads(out)

	def close(self):
		try:
			if self.p.poll() is None:
				self.cmd("close", 60)
			self.p.wait(30)
		except (HarnessError, OSError, subprocess.TimeoutExpired, ValueError):
			if self.p.poll() is None:
				self.p.kill()
				self.p.wait(5)


def fig_idle(ctx, rounds, counts):
	"""c: RSS of the whole proxy (all its processes) with N sessions in
	IDLE against the stub upstream, fresh proxy per round."""
	runs = {k: {n: [] for n in counts} for k in ("postern", "nginx")}
	errors = {k: 0 for k in runs}
	for r in range(rounds):
		for key in ("postern", "nginx"):
			if key == "postern":
				srv = ctx.p_idle
				srv.start()
				port, acc = srv.imap_tls, ctx.idle_accts_postern
			else:
				srv = ctx.nginx_idle
				srv.start()
				port, acc = srv.ports[ctx.stub.port], ctx.idle_accts_nginx
			pgid = srv.proc.pid
			time.sleep(0.5)
			base = group_rss(pgid)
			cl = IdleClient(port, acc, P["idle_threads"])
			try:
				for n in counts:
					res = cl.cmd("open %d" % n)
					time.sleep(1.0)
					rss = group_rss(pgid)
					per = (rss - base) / n
					runs[key][n].append(per)
					errors[key] += res["errors"]
					log("idle round %d %-8s %5d sessions: RSS %.1f MB, %.1f KB/session, errors %d, open %.1fs" % (
					    r + 1, key, n, rss / 1e6, per / 1024, res["errors"], res["secs"]))
			finally:
				cl.close()
				srv.stop()
	return runs, errors


def fig_smtp(ctx, contenders, rounds, secs):
	runs = {k: [] for k, *_ in contenders}
	for r in range(rounds):
		for key, port, user, pw in contenders:
			res = pbench("smtp", "127.0.0.1", port, user, pw, P["smtp_sessions"], secs, P["smtp_size"], timeout=secs + 120)
			res["client_cores"] = res["client_cpu"] / res["secs"]
			runs[key].append(res)
			log("smtp round %d %-8s %7.1f msg/s errors %d %s" % (r + 1, key, res["rate"], res["errors"], res["last_error"]))
	return runs


# ---------------------------------------------------------------- report

def fmt(s, unit="", prec=1):
	if s is None:
		return "n/a"
	f = "%%.%df" % prec
	return (f + " [" + f + "-" + f + "]%s") % (s["median"], s["min"], s["max"], unit)


def fmtr(x):
	return "n/a" if x is None else "%.2fx" % x


def report(res):
	m = res["machine"]
	out = []
	out.append("Postern bench: %s, %d cores, %s, %d rounds interleaved; median [min-max]%s" % (
	    m["date"], m["cores"], m["kernel"], res["config"]["rounds"], " (BENCH_QUICK)" if QUICK else ""))
	a = res["figures"]["a_fetch_MBps"]
	d = res["figures"]["d_cpu_s_per_GB"]
	mb = res["config"]["mailbox_bytes"] / 1e6
	out.append("")
	out.append("a. UID FETCH 1:* BODY.PEEK[] of %d messages, %.0f MB, TLS client leg (MB/s)" % (res["config"]["messages"], mb))
	rows = [("direct Dovecot, plaintext (no TLS)", "direct_plain"), ("direct Dovecot, TLS", "direct_tls"),
	    ("Postern, plaintext upstream", "postern_plain"), ("Postern, TLS upstream", "postern_tls"),
	    ("nginx, plaintext upstream", "nginx")]
	for label, k in rows:
		out.append("   %-36s %-28s d. CPU-s/GB: %s" % (label, fmt(a.get(k)), fmt(d.get(k), prec=2) if d.get(k) else "-"))
	rt = res["ratios"]
	out.append("   Postern(plain up)/nginx %s, /direct plaintext %s, /direct TLS %s; Postern(TLS up)/direct TLS %s" % (
	    fmtr(rt["a_postern_plain_vs_nginx"]), fmtr(rt["a_postern_plain_vs_direct_plain"]),
	    fmtr(rt["a_postern_plain_vs_direct_tls"]), fmtr(rt["a_postern_tls_vs_direct_tls"])))
	out.append("   client CPU: %.2f core at most" % res["client"]["fetch_max_cores"])
	b = res["figures"]["b_login"]
	out.append("")
	out.append("b. TLS logins/s (connect, TLS, greeting, LOGIN, LOGOUT), login latency p50 / p99 (ms) and the p50 of each phase")
	for n in res["config"]["login_clients"]:
		out.append("   %d client%s" % (n, "s" if n > 1 else ""))
		for label, k in (("direct Dovecot (TLS)", "direct_tls"), ("Postern, plaintext upstream", "postern_plain"),
		    ("Postern, TLS upstream", "postern_tls"), ("nginx, plaintext upstream", "nginx")):
			e = b.get("%s_c%d" % (k, n))
			if not e:
				continue
			out.append("     %-34s %-28s p50 %-22s p99 %-22s phases: TLS %.1f, greeting %.1f, LOGIN %.1f%s" % (
			    label, fmt(e["rate"], "/s"), fmt(e["p50_ms"], prec=1), fmt(e["p99_ms"], prec=1),
			    med(e["tls_p50_ms"]), med(e["greeting_p50_ms"]), med(e["login_p50_ms"]),
			    "  errors %d" % e["errors"] if e["errors"] else ""))
		out.append("     Postern(plain up)/nginx %s, /direct %s; Postern(TLS up)/direct %s; p99 Postern/direct %s" % (
		    fmtr(rt["b_postern_plain_vs_nginx_c%d" % n]), fmtr(rt["b_postern_plain_vs_direct_c%d" % n]),
		    fmtr(rt["b_postern_tls_vs_direct_c%d" % n]), fmtr(rt["b_p99_postern_plain_vs_direct_c%d" % n])))
	out.append("   client CPU: %.2f core at most" % res["client"]["login_max_cores"])
	c = res["figures"]["c_idle_bytes_per_session"]
	out.append("")
	out.append("c. Memory per idle (IDLE) session, whole proxy RSS growth / sessions (KB), stub upstream")
	for n in res["config"]["idle_sessions"]:
		out.append("   %6d sessions   Postern %-26s nginx %-26s" % (n, fmt(_kb(c["postern"].get(str(n)))), fmt(_kb(c["nginx"].get(str(n))))))
	out.append("   errors: Postern %d, nginx %d" % (c["errors"]["postern"], c["errors"]["nginx"]))
	e = res["figures"]["e_smtp_msgs_per_s"]
	out.append("")
	out.append("e. SMTP, %d KB messages, %d sessions (messages/s)" % (res["config"]["smtp_size"] // 1024, res["config"]["smtp_sessions"]))
	out.append("   direct Postfix (TLS)                %s" % fmt(e.get("direct")))
	out.append("   Postern (TLS both legs)             %s   Postern/direct %s" % (fmt(e.get("postern")), fmtr(rt["e_postern_vs_direct"])))
	f = res["figures"]["f_oauth2_login"]
	out.append("")
	if "status" in f:
		out.append("f. OAuth2 logins, cached access token vs password: %s (%s)" % (f["status"], f["reason"]))
	else:
		out.append("f. Logins/s through Postern to a stub upstream: OAuth2 (XOAUTH2, cached access token) vs password")
		for n in res["config"]["login_clients"]:
			out.append("   %2d client%s  password %-26s OAuth2 %-26s OAuth2/password %s" % (n, "s" if n > 1 else " ",
			    fmt(f["password_c%d" % n]["rate"], "/s"), fmt(f["oauth2_cached_c%d" % n]["rate"], "/s"),
			    fmtr(rt.get("f_oauth2_vs_password_c%d" % n))))
		out.append("   token endpoint requests during the run: %d" % f["token_requests_during_run"])
	out.append("")
	out.append("Targets (issue 7, point 3):")
	for t in res["targets"]:
		out.append("   [%s] %s: %s" % ("met" if t["met"] else "MISSED" if t["met"] is False else "n/a", t["target"], t["value"]))
	return "\n".join(out)


def _kb(s):
	if s is None:
		return None
	return {k: (v / 1024 if not isinstance(v, list) else [x / 1024 for x in v]) for k, v in s.items()}


def targets(res):
	rt = res["ratios"]
	fg = res["figures"]
	out = []

	def add(name, value, ok, shown):
		out.append({"target": name, "met": None if value is None else bool(ok), "value": shown})
	x = rt["a_postern_plain_vs_nginx"]
	add("throughput, plaintext upstream >= 1.0 x nginx", x, x is not None and x >= 1.0, fmtr(x))
	x = rt["a_postern_plain_vs_direct_plain"]
	add("throughput, plaintext upstream >= 0.8 x plaintext direct", x, x is not None and x >= 0.8, fmtr(x))
	x = rt["a_postern_tls_vs_direct_tls"]
	add("throughput, TLS upstream >= 1.0 x direct TLS", x, x is not None and x >= 1.0, fmtr(x))
	pc, nc = med(fg["d_cpu_s_per_GB"].get("postern_plain")), med(fg["d_cpu_s_per_GB"].get("nginx"))
	x = None if pc is None or nc is None else pc / nc
	add("CPU per GB relayed <= nginx's (plaintext upstream)", x, x is not None and x <= 1.0,
	    "%.2f vs %.2f CPU-s/GB (%s)" % (pc, nc, fmtr(x)) if x is not None else "n/a")
	for n in res["config"]["login_clients"]:
		x = rt.get("b_postern_plain_vs_nginx_c%d" % n)
		add("logins/s >= 2 x nginx at %d client%s" % (n, "s" if n > 1 else ""), x, x is not None and x >= 2.0, fmtr(x))
		x = rt.get("b_postern_plain_vs_direct_c%d" % n)
		add("logins/s >= 0.75 x direct TLS at %d client%s" % (n, "s" if n > 1 else ""), x, x is not None and x >= 0.75, fmtr(x))
	n = max(res["config"]["login_clients"])
	x = rt.get("b_p99_postern_plain_vs_direct_c%d" % n)
	add("p99 login latency at %d clients <= 2 x direct" % n, x, x is not None and x <= 2.0, fmtr(x))
	c = fg["c_idle_bytes_per_session"]
	nmax = str(max(res["config"]["idle_sessions"]))
	pm, nm = med(c["postern"].get(nmax)), med(c["nginx"].get(nmax))
	x = None if pm is None or nm is None else pm / nm
	add("idle memory per session <= nginx's (at %s sessions)" % nmax, x, x is not None and x <= 1.0,
	    "%.1f KB vs %.1f KB" % (pm / 1024, nm / 1024) if x is not None else "n/a")
	add("%s concurrent sessions with no error" % nmax, True, c["errors"]["postern"] == 0,
	    "%d errors" % c["errors"]["postern"])
	x = rt["e_postern_vs_direct"]
	add("SMTP rate >= 0.9 x direct", x, x is not None and x >= 0.9, fmtr(x))
	for n in res["config"]["login_clients"]:
		x = rt.get("f_oauth2_vs_password_c%d" % n)
		add("OAuth2 (cached token) logins as cheap as password logins, %d client%s (>= 0.9x)" % (n, "s" if n > 1 else ""),
		    x, x is not None and x >= 0.9, fmtr(x))
	return out


def markdown(res):
	"""The README table from a results.json (bench.py --markdown FILE)."""
	fg, rt = res["figures"], res["ratios"]
	a, d, b, c, e, f = (fg["a_fetch_MBps"], fg["d_cpu_s_per_GB"], fg["b_login"], fg["c_idle_bytes_per_session"],
	    fg["e_smtp_msgs_per_s"], fg["f_oauth2_login"])

	def m(x, p=0, scale=1.0):
		if not x:
			return "n/a"
		f_ = "%%.%df" % p
		return (f_ + " (" + f_ + "–" + f_ + ")") % (x["median"] / scale, x["min"] / scale, x["max"] / scale)
	n1, n32 = res["config"]["login_clients"][0], res["config"]["login_clients"][-1]
	rows = [
	    ("a. FETCH, MB/s", m(a.get("direct_plain")) + " plaintext; " + m(a.get("direct_tls")) + " TLS",
		m(a.get("postern_plain")), m(a.get("postern_tls")), m(a.get("nginx"))),
	    ("d. CPU-s per GB relayed", "–", m(d.get("postern_plain"), 2), m(d.get("postern_tls"), 2), m(d.get("nginx"), 2))]
	for n in (n1, n32):
		rows.append(("b. logins/s, %d client%s" % (n, "s" if n > 1 else ""), m(b["direct_tls_c%d" % n]["rate"]),
		    m(b["postern_plain_c%d" % n]["rate"]), m(b["postern_tls_c%d" % n]["rate"]), m(b["nginx_c%d" % n]["rate"])))
		rows.append(("b. login p50 / p99 ms, %d client%s" % (n, "s" if n > 1 else ""),
		    "%.1f / %.1f" % (med(b["direct_tls_c%d" % n]["p50_ms"]), med(b["direct_tls_c%d" % n]["p99_ms"])),
		    "%.1f / %.1f" % (med(b["postern_plain_c%d" % n]["p50_ms"]), med(b["postern_plain_c%d" % n]["p99_ms"])),
		    "%.1f / %.1f" % (med(b["postern_tls_c%d" % n]["p50_ms"]), med(b["postern_tls_c%d" % n]["p99_ms"])),
		    "%.1f / %.1f" % (med(b["nginx_c%d" % n]["p50_ms"]), med(b["nginx_c%d" % n]["p99_ms"]))))
	for n in res["config"]["idle_sessions"]:
		rows.append(("c. KB per idle session, %d" % n, "–", m(c["postern"].get(str(n)), 1, 1024), "–",
		    m(c["nginx"].get(str(n)), 1, 1024)))
	rows.append(("e. SMTP msg/s (10 KB, 8 sessions)", m(e.get("direct")), "–", m(e.get("postern")), "–"))
	out = ["| Figure | direct | Postern, plaintext upstream | Postern, TLS upstream | nginx (plaintext upstream) |",
	    "|---|---|---|---|---|"]
	out += ["| %s |" % " | ".join(r) for r in rows]
	if "status" not in f:
		out.append("")
		out.append("| f. Postern → stub upstream, logins/s | password | OAuth2, cached token | OAuth2 / password |")
		out.append("|---|---|---|---|")
		for n in (n1, n32):
			out.append("| %d client%s | %s | %s | %.2f× |" % (n, "s" if n > 1 else "", m(f["password_c%d" % n]["rate"]),
			    m(f["oauth2_cached_c%d" % n]["rate"]), rt["f_oauth2_vs_password_c%d" % n]))
	out.append("")
	out.append("| Target (issue 7) | measured | |")
	out.append("|---|---|---|")
	for t in res["targets"]:
		out.append("| %s | %s | %s |" % (t["target"], t["value"], "met" if t["met"] else "**missed**"))
	return "\n".join(out)


# ---------------------------------------------------------------- main

def hold(env, info):
	"""BENCH_HOLD=1: keep every server up for measuring by hand (perf,
	strace, pbench with other arguments) until SIGTERM or SIGINT."""
	path = env.path("hold.json")
	with open(path, "w") as f:
		json.dump(info, f, indent=1)
	log("holding; servers described in %s; SIGTERM to stop" % path)
	try:
		while True:
			time.sleep(3600)
	except (KeyboardInterrupt, HarnessError):
		pass
	return 0


def main():
	harness.install_signal_handlers()
	harness.become_subreaper()
	if not os.access(PBENCH, os.X_OK):
		raise HarnessError("%s missing: run bench/run.sh" % PBENCH)
	t_start = time.monotonic()
	env = Env(BUILD, name="bench")
	ctx = type("Ctx", (), {})()
	try:
		log("setting up in %s" % env.dir)
		redis = env.redis(tcp=False, unix=True)
		dov = BenchDovecot(env, users={USER: PASS})
		dov.start()
		t0 = time.monotonic()
		mbox_bytes = seed_mailbox(dov, USER, P["msgs"], P["mbytes"])
		log("seeded %d messages, %.1f MB in %.1fs" % (P["msgs"], mbox_bytes / 1e6, time.monotonic() - t0))
		stub = Pbench(env, "stub", env.port())
		ctx.stub = stub
		authd = Pbench(env, "authd", env.port())
		p = Postern(env, redis, extra=postern_extra(env))
		p.start()
		nginx = Nginx(env, authd.port, [dov.imap_port]).start()
		pf = BenchPostfix(env, dov, users={SINK: "sink-pw"}).start()

		tok_plain = make_account(p, "bench-plain", imap={"host": "127.0.0.1", "port": dov.imap_port, "secure": False,
		    "starttls": "never", "auth": {"user": USER, "pass": PASS}},
		    smtp={"host": "127.0.0.1", "port": pf.smtps_port, "secure": True, "auth": {"user": USER, "pass": PASS}})
		tok_tls = make_account(p, "bench-tls", imap={"host": "127.0.0.1", "port": dov.imaps_port, "secure": True,
		    "auth": {"user": USER, "pass": PASS}})

		# Idle-session proxies: their own posternd (fresh per round) and nginx.
		ctx.p_idle = Postern(env, redis, name="posternd-idle", extra=postern_extra(env))
		ctx.p_idle.start()
		lines = []
		for i in range(P["idle_accounts"]):
			t = make_account(ctx.p_idle, "idle-%02d" % i, imap={"host": "127.0.0.1", "port": stub.port,
			    "secure": False, "starttls": "never", "auth": {"user": "idle%d" % i, "pass": "x"}})
			lines.append("idle-%02d %s" % (i, t))
		ctx.p_idle.stop()
		ctx.idle_accts_postern = env.path("idle-postern.txt")
		with open(ctx.idle_accts_postern, "w") as f:
			f.write("\n".join(lines) + "\n")
		ctx.idle_accts_nginx = env.path("idle-nginx.txt")
		with open(ctx.idle_accts_nginx, "w") as f:
			f.write("".join("idle%d x\n" % i for i in range(P["idle_accounts"])))
		ctx.nginx_idle = Nginx(env, authd.port, [stub.port], name="nginx-idle")

		# Warm-up: Dovecot indexes the Maildir, the page cache fills.
		w = pbench("fetch", "127.0.0.1", dov.imap_port, "plain", USER, PASS, timeout=600)
		log("warm-up fetch: %d bytes, %d messages, %.1f MB/s" % (w["bytes"], w["messages"], w["bytes"] / w["secs"] / 1e6))
		for port, u, pw in ((p.imap_tls, "bench-plain", tok_plain), (p.imap_tls, "bench-tls", tok_tls),
		    (nginx.ports[dov.imap_port], USER, PASS)):
			pbench("login", "127.0.0.1", port, u, pw, 1, 0.3)

		if os.environ.get("BENCH_HOLD"):
			return hold(env, dict(dovecot_imap=dov.imap_port, dovecot_imaps=dov.imaps_port,
			    postern_imaps=p.imap_tls, postern_smtps=p.smtp_tls, postern_pid=p.proc.pid,
			    nginx_imaps=nginx.ports[dov.imap_port], nginx_pid=nginx.proc.pid, postfix_smtps=pf.smtps_port,
			    user=USER, password=PASS, tok_plain=tok_plain, tok_tls=tok_tls, pbench=PBENCH))
		rounds = P["rounds"]
		fetch = fig_fetch(ctx, [
		    ("direct_plain", dov.imap_port, "plain", USER, PASS, None),
		    ("direct_tls", dov.imaps_port, "tls", USER, PASS, None),
		    ("postern_plain", p.imap_tls, "tls", "bench-plain", tok_plain, p.proc.pid),
		    ("postern_tls", p.imap_tls, "tls", "bench-tls", tok_tls, p.proc.pid),
		    ("nginx", nginx.ports[dov.imap_port], "tls", USER, PASS, nginx.proc.pid),
		], rounds)
		login = fig_login(ctx, [
		    ("direct_tls", dov.imaps_port, USER, PASS),
		    ("postern_plain", p.imap_tls, "bench-plain", tok_plain),
		    ("postern_tls", p.imap_tls, "bench-tls", tok_tls),
		    ("nginx", nginx.ports[dov.imap_port], USER, PASS),
		], P["login_clients"], rounds, P["login_secs"])
		try:
			fake, oc = oauth_setup(env, p, stub.port)
			n0 = fake.counts()[0]
			fl = fig_login(ctx, [(k, p.imap_tls, a, t) for k, a, t in oc], P["login_clients"], rounds, P["login_secs"])
			f_fig = {"%s_c%d" % k: login_summary(v) for k, v in fl.items()}
			f_fig["token_requests_during_run"] = fake.counts()[0] - n0
			fake.stop()
		except (HarnessError, harness.TestFailure, OSError, ValueError) as e:
			log("f not measured: %s" % e)
			f_fig = {"status": "not measured yet", "reason": str(e)}
		smtp = fig_smtp(ctx, [
		    ("direct", pf.smtps_port, USER, PASS),
		    ("postern", p.smtp_tls, "bench-plain", tok_plain),
		], rounds, P["smtp_secs"])
		nginx.stop()
		idle, idle_err = fig_idle(ctx, rounds, P["idle"])

		res = {
		    "machine": {"cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
			"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
		    "config": {"quick": QUICK, "rounds": rounds, "messages": P["msgs"], "mailbox_bytes": mbox_bytes,
			"login_clients": list(P["login_clients"]), "login_secs": P["login_secs"], "idle_sessions": list(P["idle"]),
			"smtp_sessions": P["smtp_sessions"], "smtp_size": P["smtp_size"], "smtp_secs": P["smtp_secs"],
			"postern_workers": "auto", "nginx_worker_processes": "auto"},
		    "figures": {
			"a_fetch_MBps": {k: summary([x["mbps"] for x in v]) for k, v in fetch.items()},
			"d_cpu_s_per_GB": {k: summary([x["cpu_per_gb"] for x in v]) for k, v in fetch.items() if v[0]["cpu_per_gb"] is not None},
			"b_login": {"%s_c%d" % k: login_summary(v) for k, v in login.items()},
			"c_idle_bytes_per_session": {"postern": {str(n): summary(v) for n, v in idle["postern"].items()},
			    "nginx": {str(n): summary(v) for n, v in idle["nginx"].items()}, "errors": idle_err},
			"e_smtp_msgs_per_s": {k: summary([x["rate"] for x in v]) for k, v in smtp.items()},
			"f_oauth2_login": f_fig,
		    },
		    "client": {
			"fetch_max_cores": max(x["client_cores"] for v in fetch.values() for x in v),
			"login_max_cores": max(x["client_cores"] for v in login.values() for x in v),
			"smtp_max_cores": max(x["client_cores"] for v in smtp.values() for x in v),
		    },
		    "raw": {"fetch": fetch, "login": {"%s_c%d" % k: v for k, v in login.items()}, "smtp": smtp},
		}
		fa, fb, fe = res["figures"]["a_fetch_MBps"], res["figures"]["b_login"], res["figures"]["e_smtp_msgs_per_s"]
		rt = {
		    "a_postern_plain_vs_nginx": ratio(fa["postern_plain"], fa["nginx"]),
		    "a_postern_plain_vs_direct_plain": ratio(fa["postern_plain"], fa["direct_plain"]),
		    "a_postern_plain_vs_direct_tls": ratio(fa["postern_plain"], fa["direct_tls"]),
		    "a_postern_tls_vs_direct_tls": ratio(fa["postern_tls"], fa["direct_tls"]),
		    "a_postern_tls_vs_nginx": ratio(fa["postern_tls"], fa["nginx"]),
		    "e_postern_vs_direct": ratio(fe["postern"], fe["direct"]),
		}
		for n in P["login_clients"]:
			if "status" not in f_fig:
				rt["f_oauth2_vs_password_c%d" % n] = ratio(f_fig["oauth2_cached_c%d" % n]["rate"], f_fig["password_c%d" % n]["rate"])
		for n in P["login_clients"]:
			for k in ("postern_plain", "postern_tls"):
				rt["b_%s_vs_direct_c%d" % (k, n)] = ratio(fb["%s_c%d" % (k, n)]["rate"], fb["direct_tls_c%d" % n]["rate"])
				rt["b_%s_vs_nginx_c%d" % (k, n)] = ratio(fb["%s_c%d" % (k, n)]["rate"], fb["nginx_c%d" % n]["rate"])
			rt["b_p99_postern_plain_vs_direct_c%d" % n] = ratio(fb["postern_plain_c%d" % n]["p99_ms"], fb["direct_tls_c%d" % n]["p99_ms"])
			rt["b_p99_postern_tls_vs_direct_c%d" % n] = ratio(fb["postern_tls_c%d" % n]["p99_ms"], fb["direct_tls_c%d" % n]["p99_ms"])
		res["ratios"] = rt
		res["targets"] = targets(res)
		res["elapsed_s"] = round(time.monotonic() - t_start, 1)
		with open(RESULTS, "w") as f:
			json.dump(res, f, indent=1, sort_keys=True)
		print(report(res))
		print("\n(%s written; %.0f s)" % (os.path.relpath(RESULTS, REPO), res["elapsed_s"]))
		return 0
	except BaseException:
		env.failed = True
		raise
	finally:
		env.cleanup()


if __name__ == "__main__":
	if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
		with open(sys.argv[2]) as f:
			print(markdown(json.load(f)))
		sys.exit(0)
	sys.exit(main())
