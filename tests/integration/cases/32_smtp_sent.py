"""Issue 4, point 5: after the upstream accepted a message, Postern files a
copy with \\Seen in the account's Sent folder over IMAP — exactly once, only
for messages really sent, never turning a delivery into an error."""

import smtplib

from harness import check, contains, eq, expect_status, uniq, wait_until
from smtpc import (Smtp, check_reply, login, make_message, smtp_setup, token_for,
    wait_delivered)

ALICE = "alice@example.test"
BOB = "bob@example.test"


def setup(env):
	return smtp_setup(env)


def _account(c, imap_port=None, **top):
	acct = uniq("sent")
	pw = c.postfix.users[ALICE]
	imap = {"host": "127.0.0.1", "port": imap_port or c.dovecot.imaps_port, "secure": True,
	    "auth": {"user": ALICE, "pass": pw}}
	imap.update(top.pop("imap_extra", {}))
	body = {"smtp": {"host": "127.0.0.1", "port": c.postfix.submission_port, "secure": False,
	    "auth": {"user": ALICE, "pass": pw}}, "imap": imap}
	body.update(top)
	c.p.add_account(acct, **body)
	return acct, token_for(c, acct)


def _copies(c, mailbox, mid):
	"""(flags, raw) of every message in ALICE's mailbox with Message-ID mid."""
	m = c.dovecot.login(ALICE)
	try:
		typ, _ = m.select('"%s"' % mailbox, readonly=True)
		eq(typ, "OK", "SELECT %s" % mailbox)
		typ, data = m.search(None, "HEADER", "Message-ID", '"%s"' % mid)
		out = []
		for num in data[0].split():
			typ, d = m.fetch(num, "(FLAGS BODY.PEEK[])")
			out.append((d[0][0], d[0][1]))
		return out
	finally:
		m.logout()


def _send(c, acct, tok, to=BOB, body=None):
	mid, msg = make_message(ALICE, to, body=body)
	s = smtplib.SMTP("127.0.0.1", c.p.smtp_starttls, timeout=30)
	s.starttls(context=c.env.ssl_context())
	s.login(acct, tok)
	eq(s.sendmail(ALICE, [to], msg), {}, "refused recipients")
	s.quit()
	return mid, msg


def test_copy_in_special_use_sent_once(c):
	acct, tok = _account(c)
	body = b"line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n"
	mid, msg = _send(c, acct, tok, body=body)
	wait_delivered(c, BOB, mid)
	got = wait_until(lambda: _copies(c, "Sent", mid), 30, "copy of %s in Sent" % mid)
	eq(len(got), 1, "copies in Sent")
	flags, raw = got[0]
	contains(flags.decode(), "\\Seen", "flags of the Sent copy")
	eq(raw, msg, "the Sent copy is the message as sent (dot-unstuffed)")
	log = c.p.log_text()
	contains(log, "event=sent_copy result=ok account=%s" % acct, "posternd log")


def test_sent_mail_path_is_used(c):
	acct, tok = _account(c, imap_extra={"sentMailPath": "Drafts"})
	mid, _ = _send(c, acct, tok)
	wait_delivered(c, BOB, mid)
	wait_until(lambda: _copies(c, "Drafts", mid), 30, "copy of %s in Drafts" % mid)
	eq(_copies(c, "Sent", mid), [], "nothing in Sent when sentMailPath names another folder")


def test_copy_sent_false_skips(c):
	acct, tok = _account(c, copySent=False)
	mid, _ = _send(c, acct, tok)
	wait_delivered(c, BOB, mid)
	# The copy would have been made before the next transaction's reply;
	# a second message through the same proxy is our barrier.
	acct2, tok2 = _account(c)
	mid2, _ = _send(c, acct2, tok2)
	wait_until(lambda: _copies(c, "Sent", mid2), 30, "barrier copy")
	eq(_copies(c, "Sent", mid), [], "no Sent copy with copySent false")


def test_failed_copy_keeps_delivery(c):
	dead = c.env.port()			# nothing listens there
	acct, tok = _account(c, imap_port=dead)
	mid, _ = _send(c, acct, tok)		# 250: delivered all the same
	wait_delivered(c, BOB, mid)

	def recorded():
		d = expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")
		le = d.get("lastError") or {}
		return "Copy to Sent failed" in (le.get("response") or "")
	wait_until(recorded, 30, "lastError records the failed copy")
	eq(_copies(c, "Sent", mid), [], "no copy")


def test_no_copy_for_unsent_message(c):
	acct, tok = _account(c)
	mid, msg = make_message(ALICE, BOB)
	s = login(c, acct, tok)
	s.expect("MAIL FROM:<%s>" % ALICE, 250)
	s.expect("RCPT TO:<%s>" % BOB, 250)
	s.expect("DATA", 354)
	s.send(msg[: len(msg) // 2])
	s.close()				# gone mid-DATA
	# Barrier: a complete message from another account goes through after.
	acct2, tok2 = _account(c)
	mid2, _ = _send(c, acct2, tok2)
	wait_until(lambda: _copies(c, "Sent", mid2), 30, "barrier copy")
	eq(_copies(c, "Sent", mid), [], "no Sent copy of an aborted message")
	check("event=message result=aborted" in c.p.log_text(), "abort logged")
