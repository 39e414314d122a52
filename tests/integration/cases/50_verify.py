"""Issue 6, points 2-4: POST /v1/verifyAccount, `posternctl verify` and
POST /v1/account with "verify": true, against a real Dovecot (IMAP) and
Postfix (SMTP, SASL through that Dovecot), a second Dovecot with a
self-signed certificate, a dnsmasq for host names, and stub servers
(silent; IMAP with a provider's refusal text). Every code must come with
a hint that would fix the problem, and no password may appear in any
answer or log."""

import json
import os
import time
import types

from dnsfake import Dnsmasq, StubServer, closed_port, imap_login_handler, silent_handler
from harness import check, contains, eq, expect_error, expect_status, not_contains, uniq
from oauth_fake import FakeProvider
from postfix import LmtpDovecot, Postfix

TEST_TIMEOUT = 90
VERIFY_S = 3		# [verify] timeout

ALICE = "alice@example.test"
PW = "alice-Secret-pw-7"
BAD_PW = "not-Her-Password-9"


def setup(env):
	c = types.SimpleNamespace(env=env)
	c.redis = env.redis(tcp=False, unix=True)
	c.dovecot = LmtpDovecot(env)
	c.dovecot.start()
	c.postfix = Postfix(env, c.dovecot, users={ALICE: PW})
	c.postfix.start()
	c.selfdc = env.dovecot(cert="self", name="dovecot-self")
	c.selfdc.add_user(ALICE, PW)
	c.silent = StubServer(env, silent_handler)
	# Providers' own refusals (Gmail's words), which Dovecot cannot send:
	# passwd-file extra fields cannot hold a reason with spaces.
	c.app_pw = StubServer(env, imap_login_handler(
	    "[ALERT] Application-specific password required: https://support.google.com/mail/accounts/answer/185833"),
	    tls=(env.certs.cert, env.certs.key))
	c.no_imap = StubServer(env, imap_login_handler(
	    "[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings page and "
	    "enable your account for IMAP access."), tls=(env.certs.cert, env.certs.key))
	c.dns = Dnsmasq(env, [("a", "imap.example.test", "127.0.0.1"), ("a", "smtp.example.test", "127.0.0.1")]).start()
	c.p = env.postern(c.redis, wait_listeners=False, extra={
	    "tls": {"ca_file": env.certs.ca},
	    "upstream": {"dns_server": c.dns.server},
	    "verify": {"timeout": "%ds" % VERIFY_S}})
	c.api = c.p.api
	# OAuth2: a Dovecot taking bearer tokens, checked at the fake provider.
	c.fake = FakeProvider(env).start()
	c.oauthdc = env.dovecot(oauth2=c.fake.introspect_url, name="dovecot-oauth")
	c.oauthdc.add_user(ALICE, "unused-" + PW)
	c.access = c.fake.issue_access(ALICE)
	c.secrets = [PW, BAD_PW, c.access]
	return c


def imap(c, port=None, secure=True, user=ALICE, pw=PW, host="127.0.0.1", **kw):
	d = {"host": host, "port": port or (c.dovecot.imaps_port if secure else c.dovecot.imap_port),
	    "secure": secure, "auth": {"user": user, "pass": pw}}
	d.update(kw)
	return d


def smtp(c, port=None, secure=False, user=ALICE, pw=PW, host="127.0.0.1", **kw):
	d = {"host": host, "port": port or (c.postfix.smtps_port if secure else c.postfix.submission_port),
	    "secure": secure, "auth": {"user": user, "pass": pw}}
	d.update(kw)
	return d


def verify(c, body, status=200):
	r = c.api.post("/v1/verifyAccount", body, timeout=60)
	for s in c.secrets:
		not_contains(r.raw.decode("utf-8", "replace"), s, "verify answer")
	return expect_status(r, status, "POST /v1/verifyAccount")


def failed(res, code, *hint_words, what="check"):
	eq((res.get("success"), res.get("code")), (False, code), "%s: %r" % (what, res))
	check(isinstance(res.get("error"), str) and res["error"], "%s: error text" % what)
	for w in hint_words:
		contains(res.get("hint", ""), w, "%s: hint" % what)


def test_all_good(c):
	d = verify(c, {"imap": imap(c), "smtp": smtp(c)})
	eq(d, {"imap": {"success": True}, "smtp": {"success": True}}, "both logins work")
	d = verify(c, {"imap": imap(c, secure=False), "smtp": smtp(c, secure=True), "mailbox": "Sent"})
	eq(d, {"imap": {"success": True}, "smtp": {"success": True}}, "STARTTLS IMAP, TLS SMTP, mailbox Sent")
	d = verify(c, {"smtp": smtp(c)})
	eq(d, {"smtp": {"success": True}}, "only the protocol given is checked")
	# No message is sent: Postfix saw EHLO, STARTTLS, AUTH, no MAIL.
	sess = [s for s in c.postfix.sessions() if s.counts.get("auth")]
	check(sess and all("mail" not in s.counts and "data" not in s.counts for s in sess),
	    "no MAIL/DATA: %r" % sess)


def test_wrong_password(c):
	d = verify(c, {"imap": imap(c, pw=BAD_PW), "smtp": smtp(c, pw=BAD_PW)})
	failed(d["imap"], "EAUTH", "user name or password", what="imap")
	failed(d["smtp"], "EAUTH", "user name or password", what="smtp")
	contains(d["imap"]["error"], "AUTHENTICATIONFAILED", "Dovecot's own words")
	contains(d["smtp"]["error"], "535", "Postfix's reply code")


def test_closed_port(c):
	p = closed_port()
	d = verify(c, {"imap": imap(c, port=p), "smtp": smtp(c, port=p)})
	failed(d["imap"], "ECONNREFUSED", "Nothing accepts connections", "993", what="imap")
	failed(d["smtp"], "ECONNREFUSED", "Nothing accepts connections", "587", what="smtp")


def test_wrong_tls_mode_imap(c):
	# secure: true on the STARTTLS port: TLS fails, STARTTLS works.
	d = verify(c, {"imap": imap(c, port=c.dovecot.imap_port, secure=True)})
	failed(d["imap"], "ETLS", "set secure: false", "the login works", what="secure true on 143-style")
	# secure: false on the TLS port: no greeting, TLS works.
	d = verify(c, {"imap": imap(c, port=c.dovecot.imaps_port, secure=False)})
	failed(d["imap"], "ETLS", "set secure: true", "the login works", what="secure false on 993-style")


def test_wrong_tls_mode_smtp(c):
	d = verify(c, {"smtp": smtp(c, port=c.postfix.submission_port, secure=True)})
	failed(d["smtp"], "ETLS", "set secure: false", "the login works", what="secure true on 587-style")
	d = verify(c, {"smtp": smtp(c, port=c.postfix.smtps_port, secure=False)})
	failed(d["smtp"], "ETLS", "set secure: true", "the login works", what="secure false on 465-style")


def test_wrong_tls_mode_and_password(c):
	d = verify(c, {"imap": imap(c, port=c.dovecot.imaps_port, secure=False, pw=BAD_PW)})
	failed(d["imap"], "ETLS", "set secure: true", "login is refused, too", what="mode and password wrong")


def test_self_signed_certificate(c):
	body = {"imap": imap(c, port=c.selfdc.imaps_port)}
	d = verify(c, body)
	failed(d["imap"], "ECERT", "self-signed", "tls.rejectUnauthorized: false", what="self-signed")
	body["imap"]["tls"] = {"rejectUnauthorized": False}
	eq(verify(c, body), {"imap": {"success": True}}, "accepted with rejectUnauthorized false")
	# The global ignoreMailCertErrors setting counts too.
	expect_status(c.api.post("/v1/settings", {"ignoreMailCertErrors": True}), 200, "settings")
	try:
		eq(verify(c, {"imap": imap(c, port=c.selfdc.imaps_port)}), {"imap": {"success": True}},
		    "accepted with ignoreMailCertErrors")
	finally:
		expect_status(c.api.post("/v1/settings", {"ignoreMailCertErrors": False}), 200, "settings")


def test_certificate_for_another_name(c):
	d = verify(c, {"imap": imap(c, host="imap.example.test")})
	failed(d["imap"], "ECERT", "not issued for imap.example.test", what="hostname mismatch")


def test_missing_mailbox(c):
	d = verify(c, {"imap": imap(c), "smtp": smtp(c), "mailbox": "No/Such/Folder"})
	failed(d["imap"], "EMAILBOX", "The login works", "No/Such/Folder", what="missing mailbox")
	eq(d["smtp"], {"success": True}, "smtp unaffected")
	d = verify(c, {"imap": imap(c), "mailbox": "Entw\u00fcrfe"})
	failed(d["imap"], "EMAILBOX", what="non-ASCII name sent as modified UTF-7")
	contains(d["imap"]["error"], "Entw\u00fcrfe", "the name as given")


def test_unresolvable_host(c):
	d = verify(c, {"imap": imap(c, host="nohost.example.test"), "smtp": smtp(c, host="nohost.example.test")})
	failed(d["imap"], "EDNS", "does not resolve", "autoconfig", what="imap")
	failed(d["smtp"], "EDNS", "does not resolve", what="smtp")


def test_silent_server(c):
	t0 = time.monotonic()
	d = verify(c, {"imap": imap(c, port=c.silent.port, secure=True),
	    "smtp": smtp(c, port=c.silent.port, secure=False)})
	failed(d["imap"], "ETIMEDOUT", "never completed TLS", what="imap TLS to a silent server")
	failed(d["smtp"], "ETIMEDOUT", "sent no greeting", what="smtp to a silent server")
	el = time.monotonic() - t0
	check(el < VERIFY_S * 3, "bounded by the timeouts (both modes tried): %.1fs" % el)
	d = verify(c, {"imap": imap(c, port=c.silent.port, secure=False)})
	failed(d["imap"], "ETIMEDOUT", "sent no greeting", what="imap plain to a silent server")


def test_hosts_swapped(c):
	d = verify(c, {"imap": imap(c, port=c.postfix.smtps_port, secure=True),
	    "smtp": smtp(c, port=c.dovecot.imaps_port, secure=True)})
	failed(d["imap"], "EPROTOCOL", "swapped", what="IMAP settings pointing at Postfix")
	failed(d["smtp"], "EPROTOCOL", "swapped", what="SMTP settings pointing at Dovecot")


def test_provider_refusal_hints(c):
	d = verify(c, {"imap": imap(c, port=c.app_pw.port)})
	failed(d["imap"], "EAUTH", "app password", what="Gmail-style app password ALERT")
	contains(d["imap"]["error"], "Application-specific password required", "the provider's words")
	d = verify(c, {"imap": imap(c, port=c.no_imap.port)})
	failed(d["imap"], "EAUTH", "IMAP access is turned off", what="IMAP disabled at the provider")


def test_oauth2_access_token(c):
	"""An OAuth2 body (no imap password): the access token is used with
	XOAUTH2/OAUTHBEARER, as the proxy would."""
	def body(at):
		return {"imap": {"host": "127.0.0.1", "port": c.oauthdc.imaps_port, "secure": True,
		    "auth": {"user": ALICE}},
		    "oauth2": {"provider": "some-app", "auth": {"user": ALICE}, "accessToken": at}}
	n = c.fake.introspections if hasattr(c.fake, "introspections") else None
	eq(verify(c, body(c.access)), {"imap": {"success": True}}, "a valid access token")
	if n is not None:
		check(c.fake.introspections > n, "Dovecot asked the provider about the token")
	bad = "at-not-issued-" + uniq("x")
	c.secrets.append(bad)
	d = verify(c, body(bad))
	failed(d["imap"], "EAUTH", "access token", what="a token the provider does not know")
	# Only a refresh token: verify cannot log in with it (yet).
	b = body(c.access)
	del b["oauth2"]["accessToken"]
	b["oauth2"]["refreshToken"] = "rt-whatever"
	expect_error(c.api.post("/v1/verifyAccount", b), 400, "imap")


def test_validation(c):
	expect_error(c.api.post("/v1/verifyAccount", {"imap": imap(c, port=70000)}), 400, "imap.port")
	expect_error(c.api.post("/v1/verifyAccount", {"imap": imap(c), "mailbox": ""}), 400, "mailbox")
	expect_error(c.api.post("/v1/verifyAccount", {"imap": imap(c), "mailbox": "a\nb"}), 400, "mailbox")
	expect_error(c.api.post("/v1/verifyAccount", {"name": "x", "email": "a@b.test"}), 400)
	no_pass = imap(c)
	del no_pass["auth"]["pass"]
	expect_error(c.api.post("/v1/verifyAccount", {"imap": no_pass}), 400, "imap")
	expect_error(c.api.post("/v1/verifyAccount", "[1, 2]"), 400)
	expect_error(c.api.get("/v1/verifyAccount"), 405)
	# The account id is optional here, and checked when given.
	expect_error(c.api.post("/v1/verifyAccount", {"account": "bad id!", "imap": imap(c)}), 400, "account")


def test_account_with_verify(c):
	acct = uniq("v")
	r = c.api.post("/v1/account", {"account": acct, "verify": True, "imap": imap(c, pw=BAD_PW),
	    "smtp": smtp(c)}, timeout=60)
	d = expect_error(r, 400)
	failed(d["imap"], "EAUTH", what="account add with verify: imap")
	eq(d["smtp"], {"success": True}, "account add with verify: smtp")
	not_contains(r.raw.decode(), BAD_PW, "answer")
	expect_error(c.api.get(c.p.account_path(acct)), 404)
	r = c.api.post("/v1/account", {"account": acct, "verify": True, "imap": imap(c), "smtp": smtp(c)},
	    timeout=60)
	eq(expect_status(r, 200, "verified account saved"), {"account": acct, "state": "new"}, "saved")
	d = expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")
	check("verify" not in d, "verify is not stored")
	# verify false (or absent) saves without checking.
	acct2 = uniq("v")
	expect_status(c.api.post("/v1/account", {"account": acct2, "verify": False, "imap": imap(c, pw=BAD_PW)}),
	    200, "no verification asked")


def test_posternctl_verify(c):
	f = c.env.path("verify-good.json")
	with open(f, "w") as fp:
		json.dump({"imap": imap(c), "smtp": smtp(c)}, fp)
	rc, out, err = c.p.ctl("verify", "--file", f)
	eq((rc, out), (0, "imap: ok\nsmtp: ok\n"), "posternctl verify, all good (stderr %r)" % err)
	rc, out, err = c.p.ctl("verify", "--file", f, "--mailbox", "Nope")
	eq(rc, 1, "a failed check: exit 1")
	contains(out, "imap: FAILED (EMAILBOX)", "text output")
	contains(out, "smtp: ok", "text output")
	bad = c.env.path("verify-bad.json")
	with open(bad, "w") as fp:
		json.dump({"imap": imap(c, pw=BAD_PW), "smtp": smtp(c, port=c.postfix.smtps_port, secure=False)}, fp)
	d = c.p.ctl_json("verify", "--file", bad, expect_rc=1)
	eq((d["imap"]["code"], d["smtp"]["code"]), ("EAUTH", "ETLS"), "--json")
	rc, out, err = c.p.ctl("verify", "--file", "-", input=json.dumps({"imap": imap(c)}))
	eq((rc, out), (0, "imap: ok\n"), "body from stdin")
	rc, out, err = c.p.ctl("verify")
	eq(rc, 2, "--file is required")
	for s in c.secrets:
		not_contains(out + err, s, "posternctl output")


def test_no_secret_in_logs(c):
	for name, path in c.env.logs.items():
		if not name.startswith("posternd"):
			continue
		with open(path, "rb") as f:
			text = f.read().decode("utf-8", "replace")
		for s in c.secrets:
			not_contains(text, s, "%s log" % name)
	contains(c.p.log_text(), "event=verify proto=imap", "one log line per check")


def test_shutdown_midway(c):
	"""A second posternd whose DNS server never answers: a verify waiting
	for evdns and an autoconfig waiting for c-ares are in flight when the
	client leaves and when the daemon is stopped. It must exit 0 with no
	sanitizer report (checked at teardown)."""
	import socket
	deaf = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	deaf.bind(("127.0.0.1", 0))
	dns = "127.0.0.1:%d" % deaf.getsockname()[1]
	p2 = c.env.postern(c.redis, name="posternd-deafdns", wait_listeners=False, extra={
	    "redis": {"prefix": "deaf:"}, "upstream": {"dns_server": dns},
	    "autoconfig": {"dns_server": dns, "dns_timeout": "10s"}, "verify": {"timeout": "10s"}})
	socks = []
	for req in (b"GET /v1/autoconfig?email=a%40far.test HTTP/1.1\r\nHost: x\r\n\r\n",
	    b"POST /v1/verifyAccount HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	    b"Content-Length: %d\r\n\r\n"):
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.connect(p2.admin_sock)
		if req.startswith(b"POST"):
			body = json.dumps({"imap": imap(c, host="imap.far.test"), "smtp": smtp(c, host="smtp.far.test")}).encode()
			req = req % len(body) + body
		s.sendall(req)
		socks.append(s)
	time.sleep(0.5)
	socks[0].close()	# one client leaves, the other stays until the end
	time.sleep(0.3)
	eq(p2.stop(), 0, "posternd exit status with lookups in flight")
	for s in socks[1:]:
		s.close()
	deaf.close()
