"""Issue 4 with [smtp] max_connections: SMTP sessions of one account are
counted apart from its IMAP sessions; over the limit AUTH gets a temporary
454, and a slot is free again once a session ends."""

from harness import eq, wait_until
from smtpc import login, plain_b64, smtp_account, smtp_setup, token_for, Smtp, check_reply

ALICE = "alice@example.test"
LIMIT = 2


def setup(env):
	c = smtp_setup(env, postern_extra={"smtp": {"max_connections": str(LIMIT)}})
	c.acct = smtp_account(c, ALICE)
	c.tok = token_for(c, c.acct)
	return c


def _slots(c):
	return c.redis.cmd("ZCARD", "postern:conn:smtp:" + c.acct)


def _auth(c):
	s = Smtp(c.p.smtp_tls, "tls", ctx=c.env.ssl_context())
	check_reply(s.greeting, 220)
	s.ehlo()
	return s, s.cmd("AUTH PLAIN " + plain_b64(c.acct, c.tok))


def test_limit_and_release(c):
	held = [login(c, c.acct, c.tok, mode="tls") for _ in range(LIMIT)]
	try:
		eq(_slots(c), LIMIT, "SMTP slots held")
		s, r = _auth(c)
		check_reply(r, 454, "4.7.0", "Too many connections for this account", "AUTH over the limit")
		s.close()
		held.pop().expect("QUIT", 221)
		wait_until(lambda: _slots(c) == LIMIT - 1, 10, "slot released after QUIT")
		s, r = _auth(c)
		check_reply(r, 235, "2.7.0", what="AUTH after a slot was freed")
		held.append(s)
	finally:
		for s in held:
			s.close()
	wait_until(lambda: _slots(c) == 0, 10, "every slot released")
