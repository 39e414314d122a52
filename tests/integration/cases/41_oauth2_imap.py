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
