"""Issue 3, point 8: unmodified real clients. offlineimap (offlineimap3)
and mbsync (isync) each sync a mailbox with several folders through
Postern into a Maildir that must equal the same client's direct sync from
Dovecot: same folders, same message bodies, same flags (file names differ
and are not compared). They connect to `localhost`, verifying the harness
CA, as users would."""

import hashlib
import os
import re

from harness import check, eq
from imapc import dovecot_account, imap_setup, make_message, seed_maildir, token_for

TEST_TIMEOUT = 180
USER = "sync@example.test"
PASSWORD = "sync-pw"


def setup(env):
	c = imap_setup(env, users={USER: PASSWORD})
	seed_maildir(c.dovecot, USER, [make_message(i, size=1000 * i) for i in range(1, 13)])
	seed_maildir(c.dovecot, USER, [make_message(100 + i, size=50000, subject="archived %d" % i) for i in range(5)],
	    folder="Archive")
	seed_maildir(c.dovecot, USER, [make_message(200 + i, subject="nested %d" % i) for i in range(3)],
	    folder="Archive.2022")
	# Some flags, set the normal way.
	m = c.dovecot.login(USER)
	m.select("INBOX")
	m.store("1:4", "+FLAGS", r"(\Seen)")
	m.store("3", "+FLAGS", r"(\Flagged \Answered)")
	m.select("Archive")
	m.store("2", "+FLAGS", r"(\Seen \Flagged)")
	m.logout()
	c.acct = dovecot_account(c.p, c.dovecot, USER)
	c.tok = token_for(c.p, c.acct)
	c.home = env.path("home")
	os.makedirs(c.home, exist_ok=True)
	return c


def _snapshot(root):
	"""{folder: sorted [(sha256 of the body, flags)]} for every Maildir
	under root (files in cur/ and new/)."""
	out = {}
	for dirpath, dirnames, filenames in os.walk(root):
		if os.path.basename(dirpath) not in ("cur", "new"):
			continue
		folder = os.path.relpath(os.path.dirname(dirpath), root)
		items = out.setdefault(folder, [])
		for f in filenames:
			with open(os.path.join(dirpath, f), "rb") as fh:
				data = fh.read()
			# mbsync adds a random X-TUID header of its own.
			data = re.sub(rb"(?m)^X-TUID: \S+\r?\n", b"", data, count=1)
			h = hashlib.sha256(data).hexdigest()
			m = re.search(r":2,([A-Za-z]*)$", f)
			items.append((h, "".join(sorted(m.group(1))) if m else ""))
	return {k: sorted(v) for k, v in out.items()}


def _run(c, argv, what):
	rc, out, err = c.env.run(argv, timeout=150, extra_env={"HOME": c.home})
	log = c.env.path("%s.log" % what)
	with open(log, "w") as f:
		f.write("$ %s\nrc=%d\n--- stdout\n%s\n--- stderr\n%s\n" % (" ".join(argv), rc, out, err))
	c.env.add_log(what, log)
	eq(rc, 0, "%s exit status (see %s)" % (what, log))


def _offlineimap(c, name, port, user, password):
	root = c.env.path(name, "mail")
	meta = c.env.path(name, "meta")
	os.makedirs(root)
	os.makedirs(meta)
	conf = c.env.path(name, "offlineimaprc")
	with open(conf, "w") as f:
		f.write("""[general]
accounts = A
metadata = %(meta)s
ui = basic

[Account A]
localrepository = L
remoterepository = R

[Repository L]
type = Maildir
localfolders = %(root)s

[Repository R]
type = IMAP
remotehost = localhost
remoteport = %(port)d
ssl = yes
sslcacertfile = %(ca)s
remoteuser = %(user)s
remotepass = %(password)s
maxconnections = 1
""" % {"meta": meta, "root": root, "port": port, "ca": c.env.certs.ca, "user": user, "password": password})
	_run(c, ["offlineimap", "-c", conf, "-o", "-u", "basic"], name)
	return _snapshot(root)


def _mbsync(c, name, port, user, password):
	root = c.env.path(name, "mail") + "/"
	os.makedirs(root)
	conf = c.env.path(name, "mbsyncrc")
	with open(conf, "w") as f:
		f.write("""IMAPAccount a
Host localhost
Port %(port)d
User %(user)s
Pass %(password)s
SSLType IMAPS
CertificateFile %(ca)s

IMAPStore remote
Account a

MaildirStore local
Path %(root)s
Inbox %(root)sINBOX
SubFolders Verbatim

Channel c
Far :remote:
Near :local:
Patterns *
Create Near
SyncState *
""" % {"port": port, "user": user, "password": password, "ca": c.env.certs.ca, "root": root})
	_run(c, ["mbsync", "-c", conf, "-a"], name)
	return _snapshot(root)


def _check_same(direct, proxied, client):
	check(len(direct) >= 3, "%s direct sync found the folders: %r" % (client, sorted(direct)))
	eq(sorted(proxied), sorted(direct), "%s: folders through Postern vs direct" % client)
	for folder in direct:
		eq(proxied[folder], direct[folder], "%s: messages and flags of %s" % (client, folder))
	n = sum(len(v) for v in direct.values())
	check(n >= 20, "%s synced all messages (%d)" % (client, n))


def test_offlineimap(c):
	direct = _offlineimap(c, "offlineimap-direct", c.dovecot.imaps_port, USER, PASSWORD)
	proxied = _offlineimap(c, "offlineimap-postern", c.p.imap_tls, c.acct, c.tok)
	_check_same(direct, proxied, "offlineimap")
	flags = sorted(f for _, f in direct.get("INBOX", []))
	check("FRS" in flags, "flags synced (\\Flagged \\Answered \\Seen -> FRS): %r" % flags)


def test_mbsync(c):
	direct = _mbsync(c, "mbsync-direct", c.dovecot.imaps_port, USER, PASSWORD)
	proxied = _mbsync(c, "mbsync-postern", c.p.imap_tls, c.acct, c.tok)
	_check_same(direct, proxied, "mbsync")
