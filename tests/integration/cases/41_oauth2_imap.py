"""Issue 5: OAuth2 upstream logins over IMAP. A password-only client logs
in through Postern (account id + Postern token) to a Dovecot that accepts
only bearer tokens (oauth2 passdb introspecting at lib/oauth_fake.py);
Postern refreshes access tokens through the fake provider: one refresh
however many clients log in at once, refresh before expiry, rotated
refresh tokens, invalid_grant, provider outage and recovery, an upstream
refusing a token that looked valid, XOAUTH2 and OAUTHBEARER, and no
secret in any log."""

import imaplib
import threading
import time
import types

from harness import check, contains, eq, expect_status, not_contains, uniq, wait_until
from oauth_fake import FakeProvider

USER = "oauth-user@example.test"
MARGIN_S = 2		# [oauth2] refresh_margin
BACKOFF_S = 2		# [oauth2] backoff_min = backoff_max


def setup(env):
	c = types.SimpleNamespace(env=env)
	c.fake = FakeProvider(env).start()
	c.redis = env.redis(tcp=True, unix=True)
	c.dovecot = env.dovecot(oauth2=c.fake.introspect_url)
	c.dovecot.add_user(USER, "unused-password")
	c.p = env.postern(c.redis, extra={
	    "tls": {"ca_file": env.certs.ca},
	    "imap": {"failure_delay": "0"},
	    "oauth2": {"refresh_margin": "%ds" % MARGIN_S, "token_timeout": "2s",
		"backoff_min": "%ds" % BACKOFF_S, "backoff_max": "%ds" % BACKOFF_S}})
	c.api = c.p.api
	for app, mech in (("fake", None), ("fake-xoauth2", "XOAUTH2"), ("fake-oauthbearer", "OAUTHBEARER")):
		body = {"id": app, "provider": "custom", "clientId": c.fake.client_id,
		    "clientSecret": c.fake.client_secret, "tokenUrl": c.fake.token_url}
		if mech:
			body["mechanism"] = mech
		expect_status(c.api.post("/v1/oauth2", body), 200, "POST /v1/oauth2 %s" % app)
	return c


def _account(c, app="fake", rt=None, **oauth2):
	acct = uniq("oa")
	rt = rt if rt is not None else c.fake.add_refresh_token(USER)
	o = {"provider": app, "auth": {"user": USER}}
	if rt:
		o["refreshToken"] = rt
	o.update(oauth2)
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": c.dovecot.imaps_port, "secure": True}, oauth2=o)
	tok = c.p.create_token(acct, scopes=["imap-proxy", "smtp"])["token"]
	return acct, tok


def _imap(c, acct, tok):
	"""LOGIN through Postern; returns (typ, text, imaplib or None)."""
	m = imaplib.IMAP4_SSL("127.0.0.1", c.p.imap_tls, ssl_context=c.env.ssl_context(ca=False), timeout=20)
	try:
		typ, data = m.login(acct, tok)
		return typ, b" ".join(data).decode(), m
	except imaplib.IMAP4.error as e:
		m.shutdown()
		return "NO", str(e), None


def _login_ok(c, acct, tok, what="login"):
	typ, text, m = _imap(c, acct, tok)
	eq(typ, "OK", "%s: %s" % (what, text))
	typ, data = m.select("INBOX")
	eq(typ, "OK", "%s: SELECT INBOX through the upstream" % what)
	m.logout()


def _state(c, acct):
	d = expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")
	return d.get("state"), d.get("lastError")


def test_login_refreshes_once(c):
	acct, tok = _account(c)
	c.fake.reset_counts()
	_login_ok(c, acct, tok, "first login")
	eq(c.fake.counts()[:2], (1, 1), "token requests, refreshes after the first login")
	_login_ok(c, acct, tok, "second login")
	eq(c.fake.counts()[0], 1, "the cached access token serves the second login")
	form = c.fake.forms[0]
	eq((form["grant_type"], form["client_id"], form["client_secret"]),
	    ("refresh_token", c.fake.client_id, c.fake.client_secret), "refresh request form")
	check(form["_content_type"].startswith("application/x-www-form-urlencoded"), "form-encoded request")
	eq(_state(c, acct)[0], "connected", "account state")


def _parallel(c, acct, tok, n, port=None):
	"""n logins at once; returns the list of (typ, text)."""
	barrier = threading.Barrier(n)
	out = [None] * n

	def one(i):
		barrier.wait(10)
		typ, text, m = _imap(c, acct, tok) if port is None else _imap_port(c, port, acct, tok)
		if m is not None:
			m.logout()
		out[i] = (typ, text)

	ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
	for t in ts:
		t.start()
	for t in ts:
		t.join(60)
	return out


def _imap_port(c, port, acct, tok):
	m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=c.env.ssl_context(ca=False), timeout=20)
	try:
		typ, data = m.login(acct, tok)
		return typ, b" ".join(data).decode(), m
	except imaplib.IMAP4.error as e:
		m.shutdown()
		return "NO", str(e), None


def _all_ok(res, what):
	bad = [r for r in res if r is None or r[0] != "OK"]
	check(not bad, "%s: %d of %d failed: %s" % (what, len(bad), len(res), bad[:3]))


def _big_account(c, **kw):
	"""An account that takes many sessions at once."""
	acct = uniq("oa")
	rt = c.fake.add_refresh_token(USER)
	o = {"provider": kw.pop("app", "fake"), "auth": {"user": USER}, "refreshToken": rt}
	c.p.add_account(acct, imap={"host": "127.0.0.1", "port": c.dovecot.imaps_port, "secure": True,
	    "maxConnections": 100}, oauth2=o)
	tok = c.p.create_token(acct, scopes=["imap-proxy"])["token"]
	return acct, tok, rt


def test_twenty_parallel_logins_one_refresh(c):
	acct, tok, _ = _big_account(c)
	c.fake.reset_counts()
	res = _parallel(c, acct, tok, 20)
	_all_ok(res, "20 parallel logins")
	eq(c.fake.counts()[:2], (1, 1), "token requests and refreshes for 20 parallel logins")
	check(c.fake.counts()[2] >= 20, "Dovecot introspected every login (%d)" % c.fake.counts()[2])
	eq(len(set(c.fake.introspected)), 1, "all 20 logins used the one new access token")


def test_one_refresh_per_expiry(c):
	"""The acceptance check: across token expiry, one refresh per expiry
	however many clients connect (after expiry, and inside the margin)."""
	c.fake.expires_in = MARGIN_S + 2
	try:
		acct, tok, _ = _big_account(c)
		c.fake.reset_counts()
		_all_ok(_parallel(c, acct, tok, 10), "round 1")
		eq(c.fake.counts()[0], 1, "round 1: one refresh")
		for rnd in (2, 3):
			time.sleep(c.fake.expires_in + 0.5)	# expired
			_all_ok(_parallel(c, acct, tok, 10), "round %d (expired token)" % rnd)
			eq(c.fake.counts()[0], rnd, "round %d: exactly one more refresh" % rnd)
		# Inside the margin but still valid: logins go on with it, one
		# refresh runs in the background.
		time.sleep(c.fake.expires_in - MARGIN_S + 0.5)
		_all_ok(_parallel(c, acct, tok, 10), "round 4 (inside the margin)")
		wait_until(lambda: c.fake.counts()[0] >= 4, 5, "the background refresh")
		time.sleep(1)
		eq(c.fake.counts()[0], 4, "round 4: exactly one more refresh")
	finally:
		c.fake.expires_in = 3600
test_one_refresh_per_expiry.timeout = 180


def test_expired_pushed_token_refreshed_before_login(c):
	old = c.fake.issue_access(USER, expires_in=3600)
	acct, tok = _account(c, accessToken=old, expires="2020-01-01T00:00:00Z")
	c.fake.reset_counts()
	_login_ok(c, acct, tok, "login with an expired stored access token")
	eq(c.fake.counts()[0], 1, "one refresh before the login")
	check(old not in c.fake.introspected, "the expired token never reached the upstream")
	eq(c.fake.introspected[-1], c.fake.issued[-1], "the upstream saw the fresh token")


def test_pushed_access_token_without_refresh(c):
	at = c.fake.issue_access(USER, expires_in=3600)
	acct, tok = _account(c, rt="", accessToken=at, expires="2099-01-01T00:00:00Z")
	c.fake.reset_counts()
	_login_ok(c, acct, tok, "login with a pushed access token")
	eq(c.fake.counts()[0], 0, "no refresh for a valid pushed token")
	eq(c.fake.introspected[-1], at, "the pushed token went upstream")
	# Expired and nothing to refresh with: a clear temporary error.
	acct2, tok2 = _account(c, rt="", accessToken=at, expires="2020-01-01T00:00:00Z")
	typ, text, _ = _imap(c, acct2, tok2)
	eq(typ, "NO", "expired pushed token, no refresh token")
	contains(text, "[UNAVAILABLE]", "reply code")
	contains(text, "OAuth2", "reply text")


def test_rotated_refresh_token_stored_and_used(c):
	c.fake.rotate = True
	c.fake.expires_in = MARGIN_S + 1
	try:
		acct, tok = _account(c)
		c.fake.reset_counts()
		_login_ok(c, acct, tok, "first login")
		rt1 = c.fake.forms[0]["refresh_token"]
		with c.fake.lock:
			check(rt1 not in c.fake.refresh_tokens, "the provider rotated the refresh token")
			rt2 = [k for k, v in c.fake.refresh_tokens.items() if k not in c.fake.forms[0].values()][-1]
		stored = c.redis.cmd("HGET", "postern:oauth2:token:" + acct, "refresh")
		check(stored is not None and stored.startswith(b"$pg1$"), "rotated refresh token stored sealed: %r" % (stored,))
		time.sleep(c.fake.expires_in + 0.3)
		_login_ok(c, acct, tok, "login after expiry")
		eq(c.fake.counts()[:2], (2, 2), "second refresh succeeded")
		eq(c.fake.forms[1]["refresh_token"], rt2, "the second refresh used the rotated token")
	finally:
		c.fake.rotate = False
		c.fake.expires_in = 3600


def test_invalid_grant_marks_account_no_storm(c):
	acct, tok = _account(c, rt="rt-unknown-to-the-provider")
	c.fake.reset_counts()
	typ, text, _ = _imap(c, acct, tok)
	eq(typ, "NO", "login with a revoked refresh token")
	contains(text, "[UNAVAILABLE]", "reply code")
	contains(text, "invalid_grant", "reply text")
	eq(c.fake.counts()[0], 1, "one token request")
	state, err = _state(c, acct)
	eq(state, "authenticationError", "account state after invalid_grant")
	contains((err or {}).get("response", ""), "invalid_grant", "lastError")
	rc, out, _ = c.p.ctl("account", "show", acct)
	eq(rc, 0, "posternctl account show")
	contains(out, "authenticationError", "posternctl account show")
	for i in range(5):
		typ, text, _ = _imap(c, acct, tok)
		eq(typ, "NO", "login %d after invalid_grant" % i)
		contains(text, "invalid_grant", "reply text")
	eq(c.fake.counts()[0], 1, "no more token requests after invalid_grant")
	# The admin renews the authorization: logins work again.
	rt = c.fake.add_refresh_token(USER)
	expect_status(c.api.put(c.p.account_path(acct), {"oauth2": {"provider": "fake", "auth": {"user": USER},
	    "refreshToken": rt}}), 200, "PUT a new refresh token")
	_login_ok(c, acct, tok, "login after the account was updated")
	eq(c.fake.counts()[0], 2, "one refresh with the new refresh token")
	eq(_state(c, acct)[0], "connected", "account state")


def test_provider_down_then_recovery(c):
	acct, tok = _account(c)
	c.fake.reset_counts()
	c.fake.fail = "500"
	try:
		t0 = time.monotonic()
		typ, text, _ = _imap(c, acct, tok)
		eq(typ, "NO", "login while the token endpoint fails")
		contains(text, "[UNAVAILABLE]", "reply code")
		contains(text, "Temporary failure getting an OAuth2 access token", "reply text")
		check(time.monotonic() - t0 < 5, "answered quickly")
		typ, text, _ = _imap(c, acct, tok)
		eq(typ, "NO", "second login inside the backoff")
		eq(c.fake.counts()[0], 1, "no refresh during the backoff")
	finally:
		c.fake.fail = None
	time.sleep(BACKOFF_S + 0.3)
	_login_ok(c, acct, tok, "login after the provider recovered")
	eq(c.fake.counts()[0], 2, "one refresh after the backoff")
	contains(c.p.log_text(), "event=oauth2_refresh result=tempfail account=%s" % acct, "log line")


def test_slow_provider_times_out(c):
	acct, tok = _account(c)
	c.fake.reset_counts()
	c.fake.fail = "slow"
	c.fake.slow_s = 4
	try:
		t0 = time.monotonic()
		typ, text, _ = _imap(c, acct, tok)
		dt = time.monotonic() - t0
		eq(typ, "NO", "login while the token endpoint hangs")
		contains(text, "[UNAVAILABLE]", "reply code")
		check(1.5 < dt < 5, "answered after token_timeout (2 s): %.1f s" % dt)
	finally:
		c.fake.fail = None
	time.sleep(BACKOFF_S + 0.3)
	_login_ok(c, acct, tok, "login after the provider is fast again")


def test_upstream_rejects_token_refresh_and_retry_once(c):
	acct, tok = _account(c)
	_login_ok(c, acct, tok, "first login")
	t1 = c.fake.issued[-1]
	c.fake.revoke_access(t1)	# the upstream now refuses it; Postern still thinks it valid
	c.fake.reset_counts()
	_login_ok(c, acct, tok, "login after the upstream revoked the token")
	eq(c.fake.counts()[0], 1, "one refresh")
	eq(c.fake.introspected, [t1, c.fake.issued[-1]], "refused token, then the new one")
	contains(c.p.log_text(), "event=oauth2_renew account=%s" % acct, "log line")
	# An upstream that refuses every token: one refresh, one retry, NO.
	c.fake.reset_counts()
	c.fake.deny_all = True
	try:
		typ, text, _ = _imap(c, acct, tok)
	finally:
		c.fake.deny_all = False
	eq(typ, "NO", "login when the upstream refuses every token")
	contains(text, "[UNAVAILABLE]", "reply code")
	eq(c.fake.counts()[0], 1, "exactly one refresh")
	eq(c.fake.counts()[2], 2, "exactly one retry (two upstream attempts)")
	eq(_state(c, acct)[0], "authenticationError", "account state")


def _dovecot_methods(c):
	with open(c.dovecot.log, "rb") as f:
		text = f.read().decode("utf-8", "replace")
	return text


def test_xoauth2_and_oauthbearer(c):
	for app, mech in (("fake-xoauth2", "XOAUTH2"), ("fake-oauthbearer", "OAUTHBEARER")):
		acct, tok = _account(c, app=app)
		_login_ok(c, acct, tok, "login with %s" % mech)
		line = [l for l in c.p.log_text().splitlines() if "event=login result=ok account=%s" % acct in l]
		check(line and "mech=%s" % mech in line[-1], "Postern logged mech=%s: %s" % (mech, line[-1:]))
		wait_until(lambda: "method=%s" % mech in _dovecot_methods(c), 5, "Dovecot login with %s" % mech)


def test_two_instances_one_refresh(c):
	"""Single flight across processes and hosts: a second posternd with
	two workers on the same Redis."""
	if not hasattr(c, "p2"):
		c.p2 = c.env.postern(c.redis, name="posternd2", secret=c.p.secret, extra={
		    "postern": {"workers": "2"},
		    "tls": {"ca_file": c.env.certs.ca}, "imap": {"failure_delay": "0"},
		    "oauth2": {"refresh_margin": "%ds" % MARGIN_S, "token_timeout": "2s",
			"backoff_min": "%ds" % BACKOFF_S, "backoff_max": "%ds" % BACKOFF_S}})
	acct, tok, _ = _big_account(c)
	c.fake.reset_counts()
	c.fake.fail = "slow"	# the holder takes a while: the others must wait
	c.fake.slow_s = 0.8
	out = []
	try:
		ts = [threading.Thread(target=lambda p=p: out.extend(_parallel(c, acct, tok, 8, port=p)))
		    for p in (c.p.imap_tls, c.p2.imap_tls)]
		for t in ts:
			t.start()
		for t in ts:
			t.join(60)
	finally:
		c.fake.fail = None
	eq(len(out), 16, "logins done")
	_all_ok(out, "16 logins over two instances")
	eq(c.fake.counts()[0], 1, "one refresh for both instances")


def test_no_secrets_in_logs(c):
	secrets_ = [s for s in c.fake.secrets() if len(s) >= 8]
	check(len(secrets_) > 5, "collected secrets")
	logs = c.p.log_text() + (c.p2.log_text() if hasattr(c, "p2") else "")
	with open(c.env.path("posternctl.log"), "a+") as f:
		f.seek(0)
		logs += f.read()
	for s in secrets_:
		not_contains(logs, s, "a secret of the fake provider in Postern's logs")
	contains(logs, "event=oauth2_refresh result=ok", "refresh log lines exist")


def test_shutdown_during_refresh(c):
	"""SIGTERM while a refresh is in flight: a clean exit (no leak for
	LeakSanitizer, no crash), and the lock expires for the next one."""
	acct, tok = _account(c)
	c.fake.reset_counts()
	c.fake.fail = "slow"
	c.fake.slow_s = 1.5
	res = []
	t = threading.Thread(target=lambda: res.append(_imap(c, acct, tok)[:2]))
	try:
		t.start()
		c.fake.wait_requests(1)
		rc = c.p.stop()
	finally:
		c.fake.fail = None
		t.join(30)
	eq(rc, 0, "posternd exit status with a refresh in flight")
	c.p.start()
	time.sleep(2.2 + 5)	# the dead holder's lock: token_timeout + 5 s
	_login_ok(c, acct, tok, "login after the restart")
test_shutdown_during_refresh.timeout = 120
