"""Issue 4, points 2-4 and 6: the SMTP submission proxy end to end.
Clients (smtplib, swaks, raw sockets) submit through Postern to a real
Postfix (SASL through Dovecot), which delivers over LMTP into Dovecot; the
tests read what arrived over IMAP. Messages must arrive byte-identical and
once; every failure must reach the client as the right SMTP code."""

import base64
import os
import re
import signal
import smtplib
import threading
import time
import types

from harness import check, contains, eq, expect_status, matches, not_contains, token_id, wait_until
from imapc import FakeServer
from smtpc import (REFUSED, UNKNOWN, Smtp, b64, check_identical, check_reply, dot_stuff, find,
    get_account, login, make_message, merge_extra, plain_b64, smtp_account, smtp_setup, swaks, token_for,
    wait_delivered)

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
BAD_CREDS = ("535", "5.7.8", "Authentication credentials invalid")


def setup(env):
	c = smtp_setup(env)
	c.acct = smtp_account(c, ALICE)			# upstream: STARTTLS port
	c.tok = token_for(c, c.acct)
	c.acct_tls = smtp_account(c, ALICE, mode="tls")	# upstream: smtps port
	c.tok_tls = token_for(c, c.acct_tls)
	return c


def _body_tricky():
	"""Dots at line starts (RFC 5321 4.5.2), a lone dot, 8-bit Latin-1
	bytes and UTF-8 text, trailing spaces, an empty last line."""
	return (b"First line.\r\n"
	    b".a line starting with a dot\r\n"
	    b"..two dots\r\n"
	    b".\r\n"
	    b" . not a terminator\r\n"
	    b"Latin-1 bytes: caf\xe9 \xfc\xdf\r\n"
	    b"UTF-8: gr\xc3\xbc\xc3\x9fe, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, \xf0\x9f\x93\xa7\r\n"
	    b"trailing spaces   \r\n"
	    b"\r\n")


def _tricky_message(to):
	return make_message(ALICE, to, subject="=?UTF-8?B?%s?= raw: gr\u00fc\u00dfe" % b64("Gr\u00fc\u00dfe"),
	    body=_body_tricky(), extra_headers=["X-Utf8: \u00e9t\u00e9 \u65e5\u672c"])


def _user_account(c, user):
	"""An account of its own upstream login, so that Postfix's log
	lines of one test can be told from the others'."""
	acct = smtp_account(c, user)
	return acct, token_for(c, acct)


# ---------------------------------------------------------------- delivery

def test_smtplib_byte_identical(c):
	mid, msg = _tricky_message(BOB)
	s = smtplib.SMTP("127.0.0.1", c.p.smtp_starttls, timeout=30)
	s.starttls(context=c.env.ssl_context())
	s.login(c.acct, c.tok)
	refused = s.sendmail(ALICE, [BOB], msg, mail_options=["BODY=8BITMIME"])
	eq(refused, {}, "refused recipients")
	eq(s.quit()[0], 221, "QUIT")
	check_identical(wait_delivered(c, BOB, mid), msg)


def test_smtplib_20mb_attachment(c):
	raw = os.urandom(20 * 1024 * 1024)
	enc = base64.encodebytes(raw).replace(b"\n", b"\r\n")
	body = (b"This is a MIME message.\r\n"
	    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attachment \xe2\x9c\x93\r\n"
	    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
	    b"Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n" + enc +
	    b"--b1--\r\n")
	mid, msg = make_message(ALICE, CAROL, body=body, extra_headers=[
	    "MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""])
	check(len(msg) > 27 * 1024 * 1024, "message size %d" % len(msg))
	s = smtplib.SMTP("127.0.0.1", c.p.smtp_starttls, timeout=60)
	s.starttls(context=c.env.ssl_context())
	s.login(c.acct, c.tok)
	# smtplib adds SIZE= itself (the server advertises SIZE).
	eq(s.sendmail(ALICE, [CAROL], msg, mail_options=["BODY=8BITMIME"]), {}, "refused")
	s.quit()
	got = wait_delivered(c, CAROL, mid, timeout=60)
	check_identical(got, msg, "20 MB message")
	i = got.index(b"\r\n\r\n", got.index(b"Content-Disposition: attachment"))
	j = got.index(b"--b1--")
	eq(base64.b64decode(got[i + 4:j]), raw, "decoded attachment")


test_smtplib_20mb_attachment.timeout = 240


def _swaks_file(c, name, msg):
	"""swaks sends the file, then CRLF "." CRLF: the file holds the
	message without its last CRLF."""
	p = c.env.path(name)
	with open(p, "wb") as f:
		f.write(msg[:-2])
	return p


def test_swaks_starttls_byte_identical(c):
	mid, msg = _tricky_message(CAROL)
	rc, out = swaks(c, "--server", "127.0.0.1", "--port", c.p.smtp_starttls, "--tls",
	    "--auth", "PLAIN", "--auth-user", c.acct, "--auth-password", c.tok,
	    "--from", ALICE, "--to", CAROL, "--data", _swaks_file(c, "swaks1.eml", msg))
	eq(rc, 0, "swaks exit status; transcript:\n%s" % out)
	contains(out, "<~  235 2.7.0 Authentication successful", "swaks transcript")
	contains(out, "<~  250 2.0.0 Ok: queued as", "swaks transcript")
	contains(out, "<~  221 2.0.0 Bye", "swaks transcript")
	check_identical(wait_delivered(c, CAROL, mid), msg)


def test_swaks_implicit_tls_listener(c):
	"""The 2465-style listener, relayed to Postfix's smtps port, AUTH
	LOGIN and PIPELINING this time."""
	mid, msg = _tricky_message(BOB)
	rc, out = swaks(c, "--server", "127.0.0.1", "--port", c.p.smtp_tls, "--tls-on-connect", "--pipeline",
	    "--auth", "LOGIN", "--auth-user", c.acct_tls, "--auth-password", c.tok_tls,
	    "--from", ALICE, "--to", BOB, "--data", _swaks_file(c, "swaks2.eml", msg))
	eq(rc, 0, "swaks exit status; transcript:\n%s" % out)
	contains(out, "<~  235 2.7.0 Authentication successful", "swaks transcript")
	contains(out, "<~  250 2.0.0 Ok: queued as", "swaks transcript")
	contains(out, "<~  354 ", "swaks transcript")
	check_identical(wait_delivered(c, BOB, mid), msg)


def test_implicit_tls_ehlo(c):
	with Smtp(c.p.smtp_tls, "tls", ctx=c.env.ssl_context()) as s:
		check_reply(s.greeting, 220)
		caps = s.ehlo()
		check("AUTH PLAIN LOGIN" in caps, "AUTH offered on the TLS port: %r" % caps)
		check("STARTTLS" not in caps, "no STARTTLS on the TLS port: %r" % caps)
		s.expect("STARTTLS", 503, "5.5.1")
		s.expect("QUIT", 221, "2.0.0")


def test_swaks_wrong_token(c):
	rc, out = swaks(c, "--server", "127.0.0.1", "--port", c.p.smtp_starttls, "--tls",
	    "--auth", "PLAIN", "--auth-user", c.acct, "--auth-password", "0" * 64,
	    "--from", ALICE, "--to", BOB)
	check(rc != 0, "swaks must fail with a wrong token:\n%s" % out)
	contains(out, "<~* 535 5.7.8 Authentication credentials invalid", "swaks transcript")


# ---------------------------------------------------------------- recipients, transactions

def test_recipients_one_refused_upstream(c):
	mid, msg = make_message(ALICE, [BOB, REFUSED, UNKNOWN, CAROL])
	with login(c, c.acct, c.tok) as s:
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		r = s.cmd("RCPT TO:<%s>" % REFUSED)
		eq(r.raw, b"550 5.7.1 <refused@example.test>: Recipient address rejected: "
		    b"Refused by the harness recipient policy\r\n", "refused RCPT: the upstream's reply, as it came")
		r = s.cmd("RCPT TO:<%s>" % UNKNOWN)
		eq(r.raw, b"550 5.1.1 <nobody@example.test>: Recipient address rejected: "
		    b"User unknown in virtual mailbox table\r\n", "unknown RCPT: the upstream's reply")
		s.expect("RCPT TO:<%s>" % CAROL, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg))
		check_reply(s.reply(), 250, "2.0.0", "Ok: queued as", "end of DATA")
		s.expect("QUIT", 221)
	check_identical(wait_delivered(c, BOB, mid), msg)
	check_identical(wait_delivered(c, CAROL, mid), msg)
	qid = c.postfix.queue_ids_for("message-id=%s" % mid)
	eq(len(qid), 1, "Postfix queued it once")
	matches(r"%s: from=<%s>, size=\d+, nrcpt=2 \(queue active\)" % (qid[0], re.escape(ALICE)),
	    c.postfix.log_text(), "Postfix log: two recipients upstream")


def test_two_messages_one_upstream_login_rset_between(c):
	acct, tok = _user_account(c, "erin@example.test")
	mid1, msg1 = make_message(ALICE, BOB, subject="first")
	mid2, msg2 = make_message(ALICE, CAROL, subject="second")
	mid3, _ = make_message(ALICE, BOB, subject="abandoned")
	with login(c, acct, tok) as s:
		s.expect("MAIL FROM:<%s> BODY=8BITMIME" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg1))
		check_reply(s.reply(), 250, "2.0.0", what="end of DATA 1")
		s.expect("RSET", 250, "2.0.0")
		# A transaction given up with RSET: nothing of it survives.
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % CAROL, 250, "2.1.5")
		s.expect("RSET", 250, "2.0.0")
		s.expect("DATA", 503, "5.5.1", what="DATA after RSET")
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % CAROL, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg2))
		check_reply(s.reply(), 250, "2.0.0", what="end of DATA 2")
		s.expect("QUIT", 221)
	check_identical(wait_delivered(c, BOB, mid1), msg1, "first message")
	check_identical(wait_delivered(c, CAROL, mid2), msg2, "second message")
	# Postern closes its upstream after the client's QUIT; Postfix then
	# logs the session's command counts. Three MAILs in all, however many
	# sessions carried them:
	wait_until(lambda: sum(x.counts.get("mail", 0) for x in c.postfix.sessions("erin@example.test")) == 3,
	    20, "Postfix to log the upstream sessions of erin's three MAILs")
	ups = c.postfix.sessions("erin@example.test")
	eq(len(ups), 1, "upstream sessions (%r)" % ups)
	k = ups[0].counts
	eq((k.get("auth"), k.get("mail"), k.get("data"), k.get("rset")), (1, 3, 2, 2),
	    "one upstream login for both messages: auth, mail, data, rset counts %r" % k)
	eq(find(c, BOB, mid3), [], "the abandoned transaction")


def test_client_disconnects_mid_data(c):
	acct, tok = _user_account(c, "frank@example.test")
	mid, msg = make_message(ALICE, BOB, body=b"x" * 200000 + b"\r\n")
	s = login(c, acct, tok)
	s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
	s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
	s.expect("DATA", 354)
	s.send(dot_stuff(msg)[:150000])
	s.close()
	# Postern drops the upstream connection without the terminator:
	# Postfix logs the lost DATA, and queues nothing.
	ups = wait_until(lambda: c.postfix.sessions("frank@example.test"), 20, "the upstream session to end")
	eq(ups[0].counts.get("data"), "0/1", "Postfix's DATA count (%r)" % ups)
	contains(c.postfix.log_text(), "lost connection after DATA", "Postfix log")
	qids = c.postfix.queue_ids_for("message-id=%s" % mid)
	eq(len(qids), 1, "Postfix's cleanup saw the headers")
	not_contains(c.postfix.log_text(), "%s: from=<" % qids[0], "Postfix log: the cut-off message queued")
	wait_until(lambda: "event=message result=aborted" in c.p.log_text(), 10, "Postern logs the aborted message")
	# A later message to the same mailbox arrives; the aborted one never.
	mid2, msg2 = make_message(ALICE, BOB)
	with login(c, c.acct, c.tok) as s:
		s.expect("MAIL FROM:<%s>" % ALICE, 250)
		s.expect("RCPT TO:<%s>" % BOB, 250)
		s.expect("DATA", 354)
		s.send(dot_stuff(msg2))
		check_reply(s.reply(), 250, "2.0.0")
	wait_delivered(c, BOB, mid2)
	eq(find(c, BOB, mid), [], "the message cut off in DATA")


# ---------------------------------------------------------------- client authentication

def _auth_fail(c, user, secret, code, enhanced, text):
	with Smtp(c.p.smtp_tls, "tls", ctx=c.env.ssl_context()) as s:
		s.ehlo()
		s.expect("AUTH PLAIN " + plain_b64(user, secret), code, enhanced, text)
		# The session survives a failed AUTH.
		s.expect("NOOP", 250, "2.0.0")
		s.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0", what="MAIL without AUTH")


def test_wrong_token(c):
	_auth_fail(c, c.acct, "f" * 64, 535, "5.7.8", "Authentication credentials invalid")
	_auth_fail(c, c.acct, "not-a-token", 535, "5.7.8", "Authentication credentials invalid")
	# Another account's valid token.
	_auth_fail(c, c.acct, c.tok_tls, 535, "5.7.8", "Authentication credentials invalid")


def test_token_without_smtp_scope(c):
	tok = token_for(c, c.acct, scopes=("imap-proxy",))
	_auth_fail(c, c.acct, tok, 535, "5.7.8", "Authentication credentials invalid")
	tok = token_for(c, c.acct, scopes=("api",))
	_auth_fail(c, c.acct, tok, 535, "5.7.8", "Authentication credentials invalid")
	tok = token_for(c, c.acct, scopes=("*",))
	with login(c, c.acct, tok, mode="tls") as s:
		s.expect("QUIT", 221)


def test_ip_outside_token_cidr(c):
	tok = token_for(c, c.acct, restrictions={"addresses": ["10.0.0.0/8", "2001:db8::/32"]})
	_auth_fail(c, c.acct, tok, 550, "5.7.1", "Access denied, traffic not accepted from this IP")
	tok = token_for(c, c.acct, restrictions={"addresses": ["127.0.0.0/8"]})
	with login(c, c.acct, tok, mode="tls") as s:
		s.expect("QUIT", 221)


def test_auth_plain_and_login_forms(c):
	ctx = c.env.ssl_context()
	# PLAIN without initial response.
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		eq(s.cmd("AUTH PLAIN").raw, b"334 \r\n", "AUTH PLAIN challenge")
		s.expect(plain_b64(c.acct, c.tok), 235, "2.7.0", "Authentication successful")
		s.expect("AUTH PLAIN " + plain_b64(c.acct, c.tok), 503, "5.5.1", what="second AUTH")
	# PLAIN with an authzid equal to the user.
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		s.expect("AUTH PLAIN " + plain_b64(c.acct, c.tok, authzid=c.acct), 235, "2.7.0")
	# LOGIN without and with initial response.
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		eq(s.cmd("AUTH LOGIN").raw, b"334 VXNlcm5hbWU6\r\n", "AUTH LOGIN: Username:")
		eq(s.cmd(b64(c.acct)).raw, b"334 UGFzc3dvcmQ6\r\n", "AUTH LOGIN: Password:")
		s.expect(b64(c.tok), 235, "2.7.0")
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		eq(s.cmd("AUTH LOGIN " + b64(c.acct)).raw, b"334 UGFzc3dvcmQ6\r\n", "AUTH LOGIN with IR: Password:")
		s.expect(b64(c.tok), 235, "2.7.0")
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RSET", 250)
	# "*" cancels at every step (RFC 4954 4: 501); AUTH works afterwards.
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		s.expect("AUTH PLAIN", 334)
		s.expect("*", 501, "5.7.0")
		s.expect("AUTH LOGIN", 334)
		s.expect("*", 501, "5.7.0")
		s.expect("AUTH LOGIN", 334)
		s.expect(b64(c.acct), 334)
		s.expect("*", 501, "5.7.0")
		s.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0", what="MAIL after cancelled AUTH")
		s.expect("AUTH LOGIN", 334)
		s.expect(b64(c.acct), 334)
		s.expect(b64(c.tok), 235, "2.7.0")
	# A wrong token over AUTH LOGIN.
	with Smtp(c.p.smtp_tls, "tls", ctx=ctx) as s:
		s.ehlo()
		s.expect("AUTH LOGIN " + b64(c.acct), 334)
		s.expect(b64("e" * 64), 535, "5.7.8")
	not_contains(c.p.log_text(), c.tok, "posternd log")


# ---------------------------------------------------------------- upstream failures

def test_upstream_refuses_password(c):
	acct = smtp_account(c, ALICE, password="wrong-password")
	tok = token_for(c, acct)
	with login(c, acct, tok) as s:
		r = s.cmd("MAIL FROM:<%s>" % ALICE)
		check_reply(r, 454, "4.7.0", "Upstream server rejected the login", "MAIL with the upstream refusing the password")
		contains(r.text, "5.7.8", "the upstream's reason in the reply")
		# The session stays; the next MAIL tries again, same answer.
		s.expect("MAIL FROM:<%s>" % ALICE, 454, "4.7.0")
		s.expect("QUIT", 221)
	# Recorded in Redis asynchronously: poll.
	a = wait_until(lambda: (lambda a: a if a.get("state") == "authenticationError" else None)(get_account(c, acct)),
	    10, "account state authenticationError")
	le = a.get("lastError") or {}
	contains(le.get("response", ""), "authentication failed", "lastError.response")
	check(le.get("time"), "lastError.time: %r" % le)
	not_contains(c.p.log_text(), "wrong-password", "posternd log")


def test_upstream_down(c):
	# A port nobody listens on (allocated, never bound).
	acct = smtp_account(c, ALICE, port=c.env.port())
	tok = token_for(c, acct)
	with login(c, acct, tok) as s:
		r = s.cmd("MAIL FROM:<%s>" % ALICE)
		check_reply(r, 454, "4.7.0", "Upstream server unavailable", "MAIL with the upstream down")
		s.expect("RCPT TO:<%s>" % BOB, 503, "5.5.1", what="RCPT after the failed MAIL")
		s.expect("NOOP", 250)
	a = wait_until(lambda: (lambda a: a if a.get("state") == "connectError" else None)(get_account(c, acct)),
	    10, "account state connectError")
	check((a.get("lastError") or {}).get("response"), "lastError: %r" % a.get("lastError"))


def _smtpd_pid(c, user, nth):
	"""The PID of the Postfix smtpd that accepted the nth MAIL (1-based)
	of the upstream login `user` (from its "client=... sasl_username="
	log line)."""
	pat = re.compile(r"postfix/submission/smtpd\[(\d+)\]: \w+: client=\S+, sasl_method=PLAIN, sasl_username=%s$" % re.escape(user), re.M)
	pids = wait_until(lambda: (lambda f: f if len(f) >= nth else None)(pat.findall(c.postfix.log_text())),
	    10, "Postfix to log MAIL number %d of %s" % (nth, user))
	return int(pids[nth - 1])


def _send_ok(c, s, to=BOB):
	mid, msg = make_message(ALICE, to)
	s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
	s.expect("RCPT TO:<%s>" % to, 250, "2.1.5")
	s.expect("DATA", 354)
	s.send(dot_stuff(msg))
	check_reply(s.reply(), 250, "2.0.0", what="end of DATA")
	return mid


def test_upstream_dies_mid_data(c):
	"""Point 4: the upstream gone during DATA -> 451 4.4.2, the message
	counts as not sent; the next transaction logs in again."""
	acct = smtp_account(c, "dave@example.test")
	tok = token_for(c, acct)
	mid, msg = make_message(ALICE, BOB, body=b"z" * 100000 + b"\r\n")
	data = dot_stuff(msg)
	with login(c, acct, tok) as s:
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(data[:50000])
		os.kill(_smtpd_pid(c, "dave@example.test", 1), signal.SIGKILL)
		s.send(data[50000:])
		check_reply(s.reply(), 451, "4.4.2", what="end of DATA with the upstream gone")
		# The session goes on with a new upstream login.
		mid2 = _send_ok(c, s)
		# The upstream dies while idle: RSET still succeeds for the
		# client, and the next MAIL logs in again.
		os.kill(_smtpd_pid(c, "dave@example.test", 2), signal.SIGKILL)
		s.expect("RSET", 250, "2.0.0", what="RSET with the upstream gone")
		mid3 = _send_ok(c, s)
		# Dead while idle, and the client's next command is MAIL: nothing
		# of a transaction is lost yet, so Postern logs in again rather
		# than failing the MAIL (a server's idle timeout, a restart).
		os.kill(_smtpd_pid(c, "dave@example.test", 3), signal.SIGKILL)
		mid4 = _send_ok(c, s)
		s.expect("QUIT", 221)
	contains(c.p.log_text(), "event=upstream_reconnect", "posternd log")
	for m in (mid2, mid3, mid4):
		wait_delivered(c, BOB, m)
	eq(find(c, BOB, mid), [], "the message cut off by the upstream's death")
	contains(c.p.log_text(), "event=upstream_rset_fail", "posternd log")


# ---------------------------------------------------------------- scripted upstream

def _fake_smtp(c, rset=b"250 2.0.0 Ok", dot_delay=0.0):
	"""A plain-text submission server (AUTH PLAIN, any credentials) that
	answers RSET with `rset` and the end of DATA after dot_delay
	seconds. .lines: (connection number, line) as received."""
	lines = []
	lock = threading.Lock()
	count = [0]

	def handler(conn, record):
		with lock:
			count[0] += 1
			k = count[0]
		conn.sendall(b"220 fake.example ESMTP\r\n")
		data = False
		for line in conn.makefile("rb"):
			lines.append((k, line))
			if data:
				if line == b".\r\n":
					data = False
					time.sleep(dot_delay)
					conn.sendall(b"250 2.0.0 Ok: queued as FAKE\r\n")
				continue
			verb = line[:4].upper()
			if verb == b"EHLO":
				conn.sendall(b"250-fake.example\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
			elif verb == b"AUTH":
				conn.sendall(b"235 2.7.0 Authentication successful\r\n")
			elif verb == b"MAIL":
				conn.sendall(b"250 2.1.0 Ok\r\n")
			elif verb == b"RCPT":
				conn.sendall(b"250 2.1.5 Ok\r\n")
			elif verb == b"DATA":
				data = True
				conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
			elif verb == b"RSET":
				conn.sendall(rset + b"\r\n")
			elif verb == b"QUIT":
				conn.sendall(b"221 2.0.0 Bye\r\n")
				return
			else:
				conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")

	srv = FakeServer(c.env, handler)
	srv.lines = lines
	return srv


def _fake_account(c, srv):
	acct = smtp_account(c, ALICE, password="fake-pw", port=srv.port, starttls="never")
	return acct, token_for(c, acct)


def test_upstream_refuses_rset(c):
	"""The client's 250 to RSET must be true: an upstream that answers
	RSET with anything but 2xx may still hold the transaction, so Postern
	drops that connection and the next MAIL logs in on a new one."""
	srv = _fake_smtp(c, rset=b"451 4.3.0 Cannot reset now")
	try:
		acct, tok = _fake_account(c, srv)
		with login(c, acct, tok) as s:
			s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
			s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
			eq(s.cmd("RSET").raw, b"250 2.0.0 Ok\r\n", "RSET refused upstream")
			s.expect("DATA", 503, "5.5.1", what="DATA after RSET")
			s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0", what="MAIL after RSET")
			s.expect("RCPT TO:<%s>" % CAROL, 250, "2.1.5")
			s.expect("QUIT", 221)
		wait_until(lambda: any(k == 2 and l.startswith(b"MAIL") for k, l in srv.lines), 10,
		    "the MAIL after RSET on a new upstream connection (got %r)" % srv.lines)
		first = [l for k, l in srv.lines if k == 1]
		after = first[[l[:4] for l in first].index(b"RSET") + 1:]
		check(all(not l.startswith((b"MAIL", b"RCPT", b"DATA")) for l in after),
		    "the first upstream connection got more after its failed RSET: %r" % after)
		contains(c.p.log_text(), "event=upstream_rset_fail", "posternd log")
		contains(c.p.log_text(), "RSET refused: 451 4.3.0 Cannot reset now", "posternd log")
	finally:
		srv.stop()


def _send_until_dot_upstream(c, srv, p, acct, tok):
	"""A session on posternd p that has sent one message, its final "."
	received by the scripted upstream (which holds its reply)."""
	mid, msg = make_message(ALICE, BOB)
	s = login(types.SimpleNamespace(p=p, env=c.env), acct, tok)
	s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
	s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
	s.expect("DATA", 354)
	s.send(dot_stuff(msg))
	wait_until(lambda: (1, b".\r\n") in srv.lines, 10, "the end of DATA upstream")
	return s


def test_shutdown_with_end_of_data_in_flight(c):
	"""A session closed while the upstream's reply to the end of DATA is
	pending (here: the drain timeout of a shutdown): the "." went out and
	the upstream may accept the message, so the log says result=unknown,
	not aborted."""
	srv = _fake_smtp(c, dot_delay=5.0)
	p2 = None
	try:
		acct, tok = _fake_account(c, srv)
		p2 = c.env.postern(c.redis, name="posternd_drain", secret=c.p.secret,
		    extra=merge_extra(c.env, {"postern": {"drain_timeout": "1s"}}))
		s = _send_until_dot_upstream(c, srv, p2, acct, tok)
		p2.stop()
		s.close()
		log = p2.log_text()
		contains(log, "event=message result=unknown account=%s" % acct, "posternd log")
		not_contains(log, "event=message result=aborted", "posternd log")
	finally:
		srv.stop()
		if p2 is not None:
			p2.stop()


def test_revoke_with_end_of_data_in_flight(c):
	"""The token is revoked while the upstream's reply to the final "." is
	pending: the client gets that reply first (the upstream accepted the
	message: a 421 in its place would make the client send it again),
	then 421 and the close."""
	srv = _fake_smtp(c, dot_delay=1.5)
	p2 = None
	try:
		acct, tok = _fake_account(c, srv)
		p2 = c.env.postern(c.redis, name="posternd_revoke", secret=c.p.secret,
		    extra=merge_extra(c.env, {"postern": {"revoke_closes_sessions": "yes"}}))
		s = _send_until_dot_upstream(c, srv, p2, acct, tok)
		expect_status(c.api.delete("/v1/tokens/" + token_id(tok)), 200, "DELETE token")
		eq(s.reply(timeout=10).raw, b"250 2.0.0 Ok: queued as FAKE\r\n", "the upstream's answer to the message first")
		eq(s.reply(timeout=10).raw, b"421 4.7.0 Access token revoked\r\n", "then the revocation")
		eq(s.expect_eof(), b"", "closed")
		contains(p2.log_text(), "event=message result=sent", "posternd log")
	finally:
		srv.stop()
		if p2 is not None:
			p2.stop()
