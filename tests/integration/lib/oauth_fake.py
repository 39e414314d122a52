"""A fake OAuth2 provider for the OAuth2 cases (python3 stdlib only).

Runs in the test's own process (a thread with http.server) on 127.0.0.1:
  POST /token       RFC 6749 section 6 refresh: form-encoded grant_type,
                    refresh_token, client_id, client_secret [, scope];
                    JSON access_token, token_type, expires_in
                    [, refresh_token when rotating]
  POST /introspect  RFC 7662, form token=...; {"active": true, "username"}
                    (what Dovecot's oauth2 passdb asks on every login)

Counters (token_requests, refreshes, introspections) and switchable
failures (fail = None | "500" | "invalid_grant" | "slow"), short-lived
tokens (expires_in), rotation, and revoke_access() to make the upstream
refuse a token that still looks valid to Postern.
"""

import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import wait_until


class FakeProvider:
	def __init__(self, env, client_id="postern-test-client", client_secret=None, expires_in=3600,
	    rotate=False, name="oauth-fake"):
		self.env = env
		self.name = name
		self.port = env.port()
		self.client_id = client_id
		self.client_secret = client_secret or "cs-" + secrets.token_hex(12)
		self.expires_in = expires_in
		self.rotate = rotate
		self.fail = None		# None, "500", "invalid_grant", "slow"
		self.slow_s = 3.0
		self.lock = threading.Lock()
		self.token_requests = 0		# every POST /token
		self.refreshes = 0		# answered with a token
		self.introspections = 0
		self.forms = []			# parsed /token forms (secrets!)
		self.introspected = []		# tokens asked about, in order
		self.refresh_tokens = {}	# refresh token -> user
		self.access_tokens = {}		# access token -> (user, expiry)
		self.revoked = set()
		self.deny_all = False		# introspection: every token inactive
		self.issued = []		# access tokens, in order
		self.log_path = env.path("%s.log" % name)
		self._log = open(self.log_path, "a")
		self.env.add_log(name, self.log_path)
		self.httpd = None
		self.thread = None

	# -- URLs

	@property
	def base(self):
		return "http://127.0.0.1:%d" % self.port

	@property
	def token_url(self):
		return self.base + "/token"

	@property
	def introspect_url(self):
		return self.base + "/introspect"

	# -- tokens

	def add_refresh_token(self, user):
		rt = "rt-" + secrets.token_hex(16)
		with self.lock:
			self.refresh_tokens[rt] = user
		return rt

	def issue_access(self, user, expires_in=None):
		"""An access token minted outside /token (an app that refreshes by
		itself and pushes accessToken + expires)."""
		at = "at-ext-" + secrets.token_hex(16)
		with self.lock:
			self.access_tokens[at] = (user, time.time() + (expires_in or self.expires_in))
			self.issued.append(at)
		return at

	def revoke_access(self, at):
		with self.lock:
			self.revoked.add(at)

	def revoke_all_access(self):
		with self.lock:
			self.revoked.update(self.access_tokens)

	def counts(self):
		with self.lock:
			return self.token_requests, self.refreshes, self.introspections

	def reset_counts(self):
		with self.lock:
			self.token_requests = self.refreshes = self.introspections = 0
			self.forms = []
			self.introspected = []

	def wait_requests(self, n, timeout=10):
		wait_until(lambda: self.counts()[0] >= n, timeout, "%d token requests at the fake provider" % n)

	def secrets(self):
		"""Every secret this provider knows, for the no-secrets-in-logs
		checks."""
		with self.lock:
			return [self.client_secret] + list(self.refresh_tokens) + list(self.access_tokens)

	def note(self, msg):
		self._log.write("%.3f %s\n" % (time.time(), msg))
		self._log.flush()

	# -- server

	def start(self):
		provider = self

		class Handler(BaseHTTPRequestHandler):
			protocol_version = "HTTP/1.1"

			def log_message(self, fmt, *args):
				provider.note("http " + (fmt % args))

			def _reply(self, status, obj):
				body = json.dumps(obj).encode()
				self.send_response(status)
				self.send_header("Content-Type", "application/json")
				self.send_header("Content-Length", str(len(body)))
				self.send_header("Cache-Control", "no-store")
				self.end_headers()
				try:
					self.wfile.write(body)
				except (BrokenPipeError, ConnectionResetError):
					provider.note("client gone before the answer (timed out)")

			def _form(self):
				n = int(self.headers.get("Content-Length") or 0)
				raw = self.rfile.read(n).decode("ascii", "replace")
				ctype = self.headers.get("Content-Type", "")
				form = {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
				return ctype, form

			def do_POST(self):
				path = self.path.split("?")[0]
				if path.endswith("/token"):	# "/{tenant}/token" too
					provider._token(self, path)
				elif path == "/introspect":
					provider._introspect(self)
				else:
					self._reply(404, {"error": "not_found"})

		self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
		self.httpd.daemon_threads = True
		self.thread = threading.Thread(target=self.httpd.serve_forever, name=self.name, daemon=True)
		self.thread.start()
		self.env._fake_providers = getattr(self.env, "_fake_providers", []) + [self]
		return self

	def stop(self):
		if self.httpd:
			self.httpd.shutdown()
			self.httpd.server_close()
			self.httpd = None

	def _token(self, h, path):
		ctype, form = h._form()
		with self.lock:
			self.token_requests += 1
			self.forms.append(dict(form, _content_type=ctype, _path=path))
			fail = self.fail
			n = self.token_requests
		self.note("token request %d grant=%s fail=%s" % (n, form.get("grant_type"), fail))
		if fail == "slow":
			time.sleep(self.slow_s)
		if fail == "500":
			return h._reply(500, {"error": "server_error", "error_description": "fake outage"})
		if not ctype.startswith("application/x-www-form-urlencoded"):
			return h._reply(400, {"error": "invalid_request", "error_description": "not a form"})
		if form.get("grant_type") != "refresh_token":
			return h._reply(400, {"error": "unsupported_grant_type"})
		if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
			return h._reply(401, {"error": "invalid_client"})
		rt = form.get("refresh_token", "")
		with self.lock:
			user = self.refresh_tokens.get(rt)
		if fail == "invalid_grant" or user is None:
			return h._reply(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
		at = "at-%d-%s" % (n, secrets.token_hex(12))
		out = {"access_token": at, "token_type": "Bearer", "expires_in": self.expires_in,
		    "scope": form.get("scope", "mail")}
		with self.lock:
			self.access_tokens[at] = (user, time.time() + self.expires_in)
			self.issued.append(at)
			self.refreshes += 1
			if self.rotate:
				nrt = "rt-" + secrets.token_hex(16)
				del self.refresh_tokens[rt]
				self.refresh_tokens[nrt] = user
				out["refresh_token"] = nrt
		h._reply(200, out)

	def _introspect(self, h):
		_, form = h._form()
		tok = form.get("token", "")
		with self.lock:
			self.introspections += 1
			self.introspected.append(tok)
			info = self.access_tokens.get(tok)
			ok = (info is not None and tok not in self.revoked and info[1] > time.time() and
			    not self.deny_all)
		self.note("introspect active=%s" % ok)
		if not ok:
			return h._reply(200, {"active": False})
		h._reply(200, {"active": True, "username": info[0], "exp": int(info[1])})
