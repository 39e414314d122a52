"""Issue 4, points 1-2: the client-facing SMTP dialogue with exact reply
codes. EHLO before and after STARTTLS, AUTH before STARTTLS, the
pipelined-STARTTLS injection (CVE-2011-0411 class), message size limits
(a small [smtp] message_max), VRFY/NOOP/HELP/QUIT, unknown commands and
the bad-command limit, the login timeout, DATA out of sequence. Postfix
and Dovecot stand behind it as in 30_smtp_relay."""

import time

from harness import check, contains, eq, not_contains, wait_until
from smtpc import (REFUSED, Smtp, check_reply, dot_stuff, find, login, make_message,
    merge_extra, plain_b64, smtp_account, smtp_setup, token_for, wait_delivered)

ALICE = "alice@example.test"
BOB = "bob@example.test"
MESSAGE_MAX = 65536
LOGIN_TIMEOUT = 2.0
BAD_COMMANDS_MAX = 5


def setup(env):
	c = smtp_setup(env, postern_extra={"smtp": {
	    "message_max": str(MESSAGE_MAX), "login_timeout": "2s", "bad_commands_max": str(BAD_COMMANDS_MAX)}})
	c.acct = smtp_account(c, ALICE)
	c.tok = token_for(c, c.acct)
	return c


def _plain(c):
	s = Smtp(c.p.smtp_starttls, "plain", ctx=c.env.ssl_context())
	check_reply(s.greeting, 220, what="greeting")
	contains(s.greeting.text, "ESMTP", "greeting")
	return s


def test_ehlo_before_and_after_starttls(c):
	with _plain(c) as s:
		caps = s.ehlo()
		check("STARTTLS" in caps, "STARTTLS offered in clear: %r" % caps)
		check(not any(x.startswith("AUTH") for x in caps), "no AUTH before TLS: %r" % caps)
		for ext in ("SIZE %d" % MESSAGE_MAX, "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
			check(ext in caps, "%s advertised: %r" % (ext, caps))
		s.starttls()
		caps = s.ehlo()
		check("AUTH PLAIN LOGIN" in caps, "AUTH after TLS: %r" % caps)
		check("STARTTLS" not in caps, "no STARTTLS inside TLS: %r" % caps)
		check("SIZE %d" % MESSAGE_MAX in caps, "SIZE after TLS: %r" % caps)
		s.expect("STARTTLS", 503, "5.5.1", what="second STARTTLS")
		s.expect("QUIT", 221, "2.0.0")


def test_auth_before_starttls(c):
	with _plain(c) as s:
		s.ehlo()
		for line in ("AUTH PLAIN " + plain_b64(c.acct, c.tok), "AUTH PLAIN", "AUTH LOGIN"):
			r = s.cmd(line)
			eq(r.raw, b"530 5.7.0 Must issue a STARTTLS command first\r\n", "%s in clear" % line.split(" ")[:2])
		s.expect("MAIL FROM:<%s>" % ALICE, 530, "5.7.0", "Must issue a STARTTLS command first")
		s.expect("QUIT", 221)
	not_contains(c.p.log_text(), "result=ok account=%s" % c.acct, "no login happened in clear")


def test_pipelined_starttls_injection(c):
	"""RFC 3207 4.2 / CVE-2011-0411: commands pipelined after STARTTLS in
	clear must be discarded, never answered (in clear or inside TLS)."""
	with _plain(c) as s:
		s.ehlo()
		s.send(b"STARTTLS\r\nRSET\r\n")
		check_reply(s.reply(), 220, "2.0.0", what="STARTTLS")
		# Any byte after the 220 in clear (the RSET's answer) would break
		# the handshake or be left in the buffer; starttls-free wrap:
		s.sock = c.env.ssl_context().wrap_socket(s.raw, server_hostname="localhost")
		eq(bytes(s.buf), b"", "bytes after 220 in clear")
		check(s.nothing_pending(0.5), "nothing may arrive inside TLS before a command: %r" % bytes(s.buf))
		r = s.cmd("EHLO client.example.test")
		check_reply(r, 250, what="EHLO inside TLS")
		check(b"AUTH PLAIN LOGIN" in r.raw, "the EHLO reply came first: %r" % r.raw)
		s.expect("NOOP", 250, "2.0.0")
	# Same with the injected command in the same write as an AUTH
	# attempt: the injected MAIL must not be answered either.
	with _plain(c) as s:
		s.ehlo()
		s.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<bob@example.test>\r\n")
		check_reply(s.reply(), 220, "2.0.0", what="STARTTLS")
		s.sock = c.env.ssl_context().wrap_socket(s.raw, server_hostname="localhost")
		eq(bytes(s.buf), b"", "bytes after 220 in clear")
		check(s.nothing_pending(0.3), "an injected command was answered: %r" % bytes(s.buf))
		s.ehlo()
		s.expect("AUTH PLAIN " + plain_b64(c.acct, c.tok), 235, "2.7.0")
		s.expect("RCPT TO:<%s>" % BOB, 503, "5.5.1", what="RCPT: the injected MAIL never counted")


def test_oversize_message(c):
	mid, msg = make_message(ALICE, BOB, body=(b"y" * 998 + b"\r\n") * 70)
	check(len(msg) > MESSAGE_MAX, "test message over the max")
	acct = smtp_account(c, "grace@example.test")	# its own upstream login
	tok = token_for(c, acct)
	with login(c, acct, tok) as s:
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg))
		r = s.reply()
		eq(r.raw, b"552 5.3.4 Message size exceeds fixed maximum message size\r\n", "end of an oversize DATA")
		# The session goes on: the next transaction works.
		s.expect("NOOP", 250)
		mid2, msg2 = make_message(ALICE, BOB)
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg2))
		check_reply(s.reply(), 250, "2.0.0", what="the message after the oversize one")
		s.expect("QUIT", 221)
	wait_delivered(c, BOB, mid2)
	eq(find(c, BOB, mid), [], "the oversize message upstream")
	# Its upstream transaction was dropped without the terminator.
	wait_until(lambda: any(x.counts.get("data") == "0/1" for x in c.postfix.sessions("grace@example.test")), 20,
	    "Postfix to log the abandoned DATA")
	# A message exactly at the limit passes (RFC 1870 counting: CRLFs
	# in, dot-stuffing and terminator out).
	head = make_message(ALICE, BOB, mid="<exact@client.example.test>", body=b"")[1]
	pad = MESSAGE_MAX - len(head) - 2
	mid3, msg3 = make_message(ALICE, BOB, mid="<exact@client.example.test>", body=b"." * pad + b"\r\n")
	eq(len(msg3), MESSAGE_MAX, "message at the limit")
	with login(c, c.acct, c.tok) as s:
		s.expect("MAIL FROM:<%s> SIZE=%d" % (ALICE, len(msg3)), 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg3))
		check_reply(s.reply(), 250, "2.0.0", what="a message of exactly message_max")


def test_bare_lf_in_data(c):
	"""SMTP smuggling (RFC 5321 2.3.8): a bare LF or CR in DATA ends the
	session with 521, the upstream never gets the message nor what hides
	behind "\\n.\\r\\n", and nothing of it is delivered."""
	cases = [
	    (b"\n.\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nsmuggled\r\n" % (ALICE.encode(), BOB.encode()), "LF"),
	    (b"\r\n.\nRSET\r\n", "LF after the dot"),
	    (b"\r\n.\rX\r\n", "CR"),
	]
	for i, (evil, what) in enumerate(cases):
		acct = smtp_account(c, "smuggle%d@example.test" % i)
		tok = token_for(c, acct)
		mid, msg = make_message(ALICE, BOB, body=b"first line\r\n")
		with login(c, acct, tok) as s:
			s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
			s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
			s.expect("DATA", 354)
			s.send(msg + evil + b"tail\r\n.\r\n")
			r = s.reply()
			eq(r.raw, b"521 5.5.2 Bare CR or LF in message data (RFC 5321 section 2.3.8); closing connection\r\n",
			    "bare %s in DATA" % what)
			eq(s.expect_eof(), b"", "closed after the 521 (%s)" % what)
		wait_until(lambda: any(x.counts.get("data") == "0/1" for x in c.postfix.sessions("smuggle%d@example.test" % i)), 20,
		    "Postfix to log the abandoned DATA (%s)" % what)
		eq(find(c, BOB, mid), [], "the message with a bare %s upstream" % what)
	contains(c.p.log_text(), "event=message result=bare_newline", "posternd log")


def test_size_parameter_over_max(c):
	with login(c, c.acct, c.tok) as s:
		r = s.cmd("MAIL FROM:<%s> SIZE=%d" % (ALICE, MESSAGE_MAX + 1))
		eq(r.raw, b"552 5.3.4 Message size exceeds fixed maximum message size\r\n", "MAIL with SIZE over the max")
		s.expect("RCPT TO:<%s>" % BOB, 503, "5.5.1", what="RCPT after the refused MAIL")
		s.expect("MAIL FROM:<%s> SIZE=%d" % (ALICE, MESSAGE_MAX), 250, "2.1.0")
		s.expect("RSET", 250)


def test_vrfy_noop_help_quit(c):
	with _plain(c) as s:
		s.expect("NOOP", 250, "2.0.0", what="NOOP before EHLO")
		s.ehlo()
		s.expect("VRFY <%s>" % BOB, 252, "2.5.2")
		s.expect("NOOP", 250, "2.0.0")
		r = s.expect("HELP", 214)
		contains(r.text, "EHLO", "HELP text")
		eq(s.cmd("QUIT").raw, b"221 2.0.0 Bye\r\n", "QUIT")
		eq(s.expect_eof(5), b"", "after QUIT")


def test_unknown_command_and_bad_command_limit(c):
	with _plain(c) as s:
		s.ehlo()
		for i in range(BAD_COMMANDS_MAX - 1):
			s.expect("FROBNICATE %d" % i, 500, "5.5.2")
		s.expect("NOOP", 250, what="good commands do not reset nor count")
		r = s.cmd("XYZZY")
		check_reply(r, 500, "5.5.2", what="the last bad command")
		r = s.reply()
		check_reply(r, 421, "4.7.0", what="bad-command limit")
		eq(s.expect_eof(5), b"", "after 421")


def test_login_timeout(c):
	# An authenticated session, opened first, is no longer under the
	# login timer: it must outlive the idle one opened after it.
	authed = login(c, c.acct, c.tok)
	t0 = time.monotonic()
	with _plain(c) as s, authed:
		s.ehlo()
		r = s.reply(timeout=LOGIN_TIMEOUT + 10)
		took = time.monotonic() - t0
		check_reply(r, 421, "4.4.2", what="login timeout")
		eq(s.expect_eof(5), b"", "after 421")
		authed.expect("NOOP", 250, what="the authenticated session after the login timeout")
	check(LOGIN_TIMEOUT - 0.2 <= took <= LOGIN_TIMEOUT + 3, "closed after %.2fs (login_timeout %.1fs)" % (took, LOGIN_TIMEOUT))


test_login_timeout.timeout = 30


def test_data_out_of_sequence(c):
	with login(c, c.acct, c.tok) as s:
		eq(s.cmd("DATA").raw, b"503 5.5.1 Error: need MAIL command\r\n", "DATA before MAIL")
		s.expect("RCPT TO:<%s>" % BOB, 503, "5.5.1", what="RCPT before MAIL")
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		r = s.cmd("DATA")
		check_reply(r, 503, "5.5.1", what="DATA before RCPT")
		s.expect("MAIL FROM:<%s>" % ALICE, 503, "5.5.1", what="nested MAIL")
		s.expect("RSET", 250)
		s.expect("QUIT", 221)
	with login(c, c.acct, c.tok) as s:
		# Every RCPT refused upstream: "no valid recipients".
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<%s>" % REFUSED, 550, "5.7.1")
		eq(s.cmd("DATA").raw, b"554 5.5.1 Error: no valid recipients\r\n", "DATA after only refused RCPTs")
		s.expect("QUIT", 221)


def test_ehlo_resets_transaction(c):
	"""RFC 5321 4.1.4: EHLO/HELO in a transaction resets it as RSET does;
	the recipients given before must not receive the next message."""
	mid, msg = make_message(ALICE, BOB)
	with login(c, c.acct, c.tok) as s:
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("RCPT TO:<carol@example.test>", 250, "2.1.5")
		caps = s.ehlo()
		check("ENHANCEDSTATUSCODES" in caps, "EHLO reply: %r" % caps)
		s.expect("DATA", 503, "5.5.1", what="DATA after EHLO")
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0", what="MAIL after EHLO")
		s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg))
		check_reply(s.reply(), 250, "2.0.0")
		s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
		s.expect("HELO client.example.test", 250)
		s.expect("RCPT TO:<%s>" % BOB, 503, "5.5.1", what="RCPT after HELO")
	wait_delivered(c, BOB, mid)
	eq(find(c, "carol@example.test", mid), [], "the recipient given before EHLO")


def test_overlong_command_line(c):
	with _plain(c) as s:
		s.ehlo()
		s.expect("NOOP " + "x" * 5000, 500, "5.5.2", what="a 5000-byte command line")
		s.expect("NOOP", 250, "2.0.0", what="the line after it")


def test_pipelining(c):
	"""RFC 2920: a whole transaction in one write; the replies come in
	order, each the upstream's own."""
	mid, msg = make_message(ALICE, [BOB, "carol@example.test"])
	with login(c, c.acct, c.tok) as s:
		s.send("MAIL FROM:<%s> BODY=8BITMIME\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\n"
		    "RCPT TO:<carol@example.test>\r\nDATA\r\n" % (ALICE, BOB, REFUSED))
		for code, enh in ((250, "2.1.0"), (250, "2.1.5"), (550, "5.7.1"), (250, "2.1.5"), (354, None)):
			check_reply(s.reply(), code, enh, what="pipelined reply %d" % code)
		s.send(dot_stuff(msg) + b"RSET\r\nNOOP\r\nQUIT\r\n")
		check_reply(s.reply(), 250, "2.0.0", "Ok: queued as", "end of DATA")
		for code in (250, 250, 221):
			check_reply(s.reply(), code, what="pipelined after DATA")
		eq(s.expect_eof(5), b"", "after QUIT")
	wait_delivered(c, BOB, mid)
	wait_delivered(c, "carol@example.test", mid)


def test_log_lines_not_injectable(c):
	"""The account name a client sends in AUTH is logged sanitized: a CRLF
	in it cannot start a forged log line."""
	import base64
	s = _plain(c)
	s.ehlo()
	s.starttls()
	s.ehlo()
	weird = b"evil\r\nlevel=info event=forged"
	ir = base64.b64encode(b"\0" + weird + b"\0" + c.tok.encode()).decode()
	s.expect("AUTH PLAIN " + ir, 535, "5.7.8", what="AUTH with CRLF in the user")
	s.close()
	bad = [l for l in c.p.log_text().splitlines() if not l.startswith("ts=")]
	eq(bad, [], "log lines not starting with ts=")


def test_long_mail_rcpt_lines(c):
	"""MAIL and RCPT lines within [smtp] line_max (4k here) but longer
	than an upstream command line may be (RFC 5321: 512): a long AUTH=
	value, runs of spaces. Postern relays them rebuilt from what it
	parsed (AUTH= left out), so the upstream accepts them, never
	"451 Internal error" after an upstream login for nothing."""
	mid, msg = make_message(ALICE, [BOB, "carol@example.test"])
	with login(c, c.acct, c.tok) as s:
		# The session's first MAIL: the upstream login happens here.
		s.expect("MAIL FROM:<%s> AUTH=%s" % (ALICE, "x" * 1100), 250, "2.1.0", what="MAIL with a 1100-byte AUTH=")
		s.expect("RCPT TO:" + " " * 1100 + "<%s>" % BOB, 250, "2.1.5", what="RCPT with 1100 spaces before the path")
		s.expect("RCPT TO:<carol@example.test>" + " " * 1100, 250, "2.1.5", what="RCPT with 1100 trailing spaces")
		s.expect("DATA", 354)
		s.send(dot_stuff(msg))
		check_reply(s.reply(), 250, "2.0.0", what="end of DATA")
		s.expect("MAIL FROM:" + " " * 1100 + "<%s>" % ALICE + " " * 1100 + "SIZE=%d AUTH=<>" % len(msg), 250, "2.1.0",
		    what="MAIL with runs of spaces")
		s.expect("RSET", 250, "2.0.0")
		s.expect("QUIT", 221)
	wait_delivered(c, BOB, mid)
	wait_delivered(c, "carol@example.test", mid)
	not_contains(c.p.log_text(), "cmd refused", "posternd log")


def test_starttls_after_auth_or_mail(c):
	"""RFC 3207 4.2: STARTTLS must make the server forget everything
	before it, the login and the transaction included. Only possible
	with allow_plaintext_auth = yes; Postern refuses such a STARTTLS
	(503 5.5.1) and the session goes on in clear."""
	p2 = c.env.postern(c.redis, name="posternd_plain", secret=c.p.secret,
	    extra=merge_extra(c.env, {"smtp": {"allow_plaintext_auth": "yes"}}))
	try:
		with Smtp(p2.smtp_starttls, "plain", ctx=c.env.ssl_context()) as s:
			check_reply(s.greeting, 220)
			caps = s.ehlo()
			check("STARTTLS" in caps and "AUTH PLAIN LOGIN" in caps, "STARTTLS and AUTH in clear: %r" % caps)
			s.expect("AUTH PLAIN " + plain_b64(c.acct, c.tok), 235, "2.7.0", what="AUTH in clear")
			eq(s.cmd("STARTTLS").raw, b"503 5.5.1 Error: STARTTLS not allowed after AUTH\r\n", "STARTTLS after AUTH")
			s.expect("MAIL FROM:<%s>" % ALICE, 250, "2.1.0")
			eq(s.cmd("STARTTLS").raw, b"503 5.5.1 Error: STARTTLS not allowed during a mail transaction\r\n",
			    "STARTTLS in a transaction")
			s.expect("RCPT TO:<%s>" % BOB, 250, "2.1.5", what="RCPT: the transaction survives")
			s.expect("RSET", 250, "2.0.0")
			s.expect("QUIT", 221)
		# Before AUTH, STARTTLS works as ever on that listener.
		with Smtp(p2.smtp_starttls, "plain", ctx=c.env.ssl_context()) as s:
			s.ehlo()
			s.starttls()
			s.ehlo()
			s.expect("AUTH PLAIN " + plain_b64(c.acct, c.tok), 235, "2.7.0", what="AUTH after STARTTLS")
			s.expect("QUIT", 221)
	finally:
		p2.stop()
