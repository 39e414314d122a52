"""Issue 5: OAuth2 upstream logins over SMTP. A password-only client
submits through Postern; Postern logs in to Postfix with AUTH XOAUTH2 or
AUTH OAUTHBEARER, which Postfix checks through Dovecot SASL (oauth2 passdb
introspecting at lib/oauth_fake.py); Postfix delivers into Dovecot. The
Sent copy goes over IMAP with the same access token. Also: a token the
upstream refuses (334 error challenge, 535) is refreshed once and retried
once; invalid_grant and a provider outage give 454 4.7.0 with clear text."""

import imaplib
import re
import smtplib
import time
import types

from harness import check, contains, eq, expect_status, not_contains, uniq, wait_until
from oauth_fake import FakeProvider
from postfix import LmtpDovecot, Postfix

USER = "oauth-smtp@example.test"
BOB = "bob@example.test"
PASSWORDS = {USER: "user-pw-for-reading", BOB: "bob-pw"}


def setup(env):
	c = types.SimpleNamespace(env=env)
	c.fake = FakeProvider(env).start()
	c.redis = env.redis(tcp=False, unix=True)
	c.dovecot = LmtpDovecot(env, oauth2=c.fake.introspect_url)
	c.dovecot.start()
	c.postfix = Postfix(env, c.dovecot, users=PASSWORDS)
	c.postfix.start()
	c.p = env.postern(c.redis, extra={
	    "tls": {"ca_file": env.certs.ca},
	    "smtp": {"failure_delay": "0"},
	    "oauth2": {"refresh_margin": "2s", "token_timeout": "2s", "backoff_min": "2s",
		"backoff_max": "2s"}})
	c.api = c.p.api
	for app, mech in (("fake-xoauth2", "XOAUTH2"), ("fake-oauthbearer", "OAUTHBEARER")):
		expect_status(c.api.post("/v1/oauth2", {"id": app, "provider": "custom", "mechanism": mech,
		    "clientId": c.fake.client_id, "clientSecret": c.fake.client_secret,
		    "tokenUrl": c.fake.token_url}), 200, "POST /v1/oauth2 %s" % app)
	return c


def _account(c, app="fake-xoauth2", rt=None, mode="starttls"):
	acct = uniq("os")
	rt = rt if rt is not None else c.fake.add_refresh_token(USER)
	port = c.postfix.smtps_port if mode == "tls" else c.postfix.submission_port
	c.p.add_account(acct,
	    smtp={"host": "127.0.0.1", "port": port, "secure": mode == "tls"},
	    imap={"host": "127.0.0.1", "port": c.dovecot.imaps_port, "secure": True, "sentMailPath": "Sent"},
	    oauth2={"provider": app, "auth": {"user": USER}, "refreshToken": rt})
	tok = c.p.create_token(acct, scopes=["smtp"])["token"]
	return acct, tok


def _message(subject):
	mid = "<%s@client.example.test>" % uniq("m")
	msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: %s\r\n"
	    "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nHello over OAuth2.\r\n" % (USER, BOB, subject, mid))
	return mid, msg.encode()


def _client(c, acct, tok):
	s = smtplib.SMTP("127.0.0.1", c.p.smtp_starttls, timeout=30)
	s.starttls(context=c.env.ssl_context())
	s.login(acct, tok)
	return s


def _send(c, acct, tok, subject="oauth2"):
	"""Submits one message; returns its Message-ID."""
	mid, msg = _message(subject)
	s = _client(c, acct, tok)
	eq(s.sendmail(USER, [BOB], msg), {}, "refused recipients")
	s.quit()
	return mid


def _in_mailbox(c, user, mailbox, mid):
	m = imaplib.IMAP4_SSL("127.0.0.1", c.dovecot.imaps_port, ssl_context=c.env.ssl_context(ca=False))
	try:
		m.login(user, PASSWORDS[user])
		typ, _ = m.select(mailbox, readonly=True)
		if typ != "OK":
			return False
		typ, data = m.search(None, "HEADER", "Message-ID", '"%s"' % mid)
		return typ == "OK" and bool(data[0].split())
	finally:
		m.logout()


def _auth_error(c, acct, tok):
	"""AUTH through Postern expected to fail: (code, text)."""
	s = smtplib.SMTP("127.0.0.1", c.p.smtp_starttls, timeout=30)
	s.starttls(context=c.env.ssl_context())
	try:
		s.login(acct, tok)
	except smtplib.SMTPAuthenticationError as e:
		return e.smtp_code, e.smtp_error.decode()
	except smtplib.SMTPResponseException as e:
		return e.smtp_code, e.smtp_error.decode()
	finally:
		try:
			s.quit()
		except smtplib.SMTPException:
			pass
	raise AssertionError("AUTH succeeded unexpectedly")


def _sasl_methods(c):
	return re.findall(r"sasl_method=(\w+), sasl_username=%s" % re.escape(USER), c.postfix.log_text())


def test_xoauth2_and_oauthbearer_submission(c):
	for app, mech in (("fake-xoauth2", "XOAUTH2"), ("fake-oauthbearer", "OAUTHBEARER")):
		acct, tok = _account(c, app=app)
		before = len(_sasl_methods(c))
		mid = _send(c, acct, tok, "via %s" % mech)
		wait_until(lambda: _in_mailbox(c, BOB, "INBOX", mid), 20, "delivery of the %s message" % mech)
		wait_until(lambda: len(_sasl_methods(c)) > before, 10, "Postfix's log line")
		eq(_sasl_methods(c)[-1], mech, "Postfix saw AUTH %s" % mech)
		line = [l for l in c.p.log_text().splitlines() if "proto=smtp" in l and
		    "event=upstream_login result=ok account=%s" % acct in l]
		check(line and "mech=%s" % mech in line[-1], "Postern logged mech=%s: %s" % (mech, line[-1:]))
		# The Sent copy: IMAP with the same access token.
		wait_until(lambda: _in_mailbox(c, USER, "Sent", mid), 20, "the Sent copy of the %s message" % mech)


def test_implicit_tls_upstream(c):
	acct, tok = _account(c, mode="tls")
	mid = _send(c, acct, tok, "smtps")
	wait_until(lambda: _in_mailbox(c, BOB, "INBOX", mid), 20, "delivery over the smtps upstream")


def test_refused_token_refreshed_and_retried_once(c):
	for app in ("fake-xoauth2", "fake-oauthbearer"):
		acct, tok = _account(c, app=app)
		mid = _send(c, acct, tok, "first")
		wait_until(lambda: _in_mailbox(c, USER, "Sent", mid), 20, "the first Sent copy")
		t1 = c.fake.issued[-1]
		c.fake.revoke_access(t1)
		c.fake.reset_counts()
		mid = _send(c, acct, tok, "after revocation (%s)" % app)
		wait_until(lambda: _in_mailbox(c, BOB, "INBOX", mid), 20, "delivery after the retry")
		# The Sent copy logs in over IMAP with the token taken at AUTH
		# (t1): refused too, it picks up the new token without another
		# refresh.
		wait_until(lambda: _in_mailbox(c, USER, "Sent", mid), 20, "the Sent copy after the retry")
		eq(c.fake.counts()[0], 1, "%s: one refresh after the upstream refused the token" % app)
		t2 = c.fake.issued[-1]
		eq(c.fake.introspected[:2], [t1, t2], "%s: refused token, then the new one" % app)
	# Every token refused: one refresh, one retry, then 454 (Postern
	# logs in upstream at MAIL, so that is where the client hears it).
	acct, tok = _account(c)
	mid = _send(c, acct, tok, "warm up")
	wait_until(lambda: _in_mailbox(c, USER, "Sent", mid), 20, "the warm-up Sent copy")
	c.fake.reset_counts()
	c.fake.deny_all = True
	try:
		s = _client(c, acct, tok)
		code, text = s.mail(USER)
		s.quit()
	finally:
		c.fake.deny_all = False
	eq(code, 454, "MAIL when the upstream refuses every token")
	contains(text.decode(), "Upstream server rejected the login", "reply text")
	eq(c.fake.counts()[0], 1, "exactly one refresh")
	wait_until(lambda: c.fake.counts()[2] >= 2, 5, "two upstream attempts")
	eq(c.fake.counts()[2], 2, "exactly one retry")


def test_invalid_grant_454(c):
	acct, tok = _account(c, rt="rt-revoked-at-the-provider")
	c.fake.reset_counts()
	code, text = _auth_error(c, acct, tok)
	eq(code, 454, "AUTH with a revoked refresh token")
	contains(text, "4.7.0", "enhanced code")
	contains(text, "invalid_grant", "reply text")
	code, _ = _auth_error(c, acct, tok)
	eq(code, 454, "again")
	eq(c.fake.counts()[0], 1, "no second token request")
	d = expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")
	eq(d.get("state"), "authenticationError", "account state")


def test_provider_down_454_then_recovery(c):
	acct, tok = _account(c)
	c.fake.reset_counts()
	c.fake.fail = "500"
	try:
		code, text = _auth_error(c, acct, tok)
	finally:
		c.fake.fail = None
	eq(code, 454, "AUTH while the provider is down")
	contains(text, "Temporary failure getting an OAuth2 access token", "reply text")
	time.sleep(2.3)
	mid = _send(c, acct, tok, "after recovery")
	wait_until(lambda: _in_mailbox(c, BOB, "INBOX", mid), 20, "delivery after recovery")


def test_no_secrets_in_logs(c):
	logs = c.p.log_text()
	with open(c.env.path("posternctl.log"), "a+") as f:
		f.seek(0)
		logs += f.read()
	for s in c.fake.secrets():
		not_contains(logs, s, "a secret of the fake provider in Postern's logs")
