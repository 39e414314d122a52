"""Issue 2, Tests: account CRUD through the admin API and posternctl
(docs/API.md "Accounts"), deleting an account revokes its tokens, and
settings."""

import json
import math

from harness import (basic_setup, check, contains, eq, expect_error, expect_status, full_account,
    is_type, not_contains, parse_time, uniq)

STATES = ("init", "connected", "authenticationError", "connectError")
SECRETS = ("imap-pass-11", "smtp-pass-11", "refresh-tok-11", "access-tok-11")


def setup(env):
	return basic_setup(env)


def _full(acct):
	return full_account(acct, *SECRETS)


def _get(c, acct, status=200):
	r = c.api.get(c.p.account_path(acct))
	d = expect_status(r, status, "GET /v1/account/%s" % acct)
	if status == 200:
		for s in SECRETS:
			not_contains(r.raw.decode(), s, "GET /v1/account body")
	return d


def _no_secrets(obj, what):
	text = json.dumps(obj)
	for s in SECRETS:
		not_contains(text, s, what)
	for sec in ("imap", "smtp"):
		if isinstance(obj.get(sec), dict) and "auth" in obj[sec]:
			check("pass" not in obj[sec]["auth"], "%s: %s.auth.pass returned" % (what, sec))
	if isinstance(obj.get("oauth2"), dict):
		for k in ("refreshToken", "accessToken"):
			check(k not in obj["oauth2"], "%s: oauth2.%s returned" % (what, k))


def _ctl_accounts(out):
	if isinstance(out, dict):
		check("accounts" in out, "account list --json: no 'accounts' key: %s" % out)
		return out["accounts"]
	check(isinstance(out, list), "account list --json: neither object nor array")
	return out


def test_create_full_and_get(c):
	acct = uniq("full")
	eq(tuple(c.api.post("/v1/account", _full(acct))), (200, {"account": acct, "state": "new"}), "POST /v1/account")
	d = _get(c, acct)
	_no_secrets(d, "GET account")
	eq(d["account"], acct, "account")
	eq(d["name"], "Example " + acct, "name")
	eq(d["email"], "user@example.com", "email")
	im = d["imap"]
	eq((im["host"], im["port"], im["secure"]), ("imap.example.com", 993, True), "imap host/port/secure")
	eq(im["auth"], {"user": "user@example.com"}, "imap.auth shows the user only")
	eq(im.get("starttls"), "required", "imap.starttls")
	eq(im.get("tls"), {"rejectUnauthorized": True}, "imap.tls")
	eq(im.get("sentMailPath"), "Sent", "imap.sentMailPath")
	eq(im.get("maxConnections"), 10, "imap.maxConnections")
	sm = d["smtp"]
	eq((sm["host"], sm["port"], sm["secure"]), ("smtp.example.com", 465, True), "smtp host/port/secure")
	eq(sm["auth"], {"user": "user@example.com"}, "smtp.auth shows the user only")
	eq(d["oauth2"].get("provider"), "app-id", "oauth2.provider")
	eq(d["oauth2"].get("auth"), {"user": "user@gmail.com"}, "oauth2.auth")
	eq(d.get("proxy"), "socks5://127.0.0.1:1080", "proxy")
	eq(d.get("imapIndexer"), "full", "imapIndexer")
	eq(d.get("path"), ["*"], "path")
	check(d.get("state") in STATES, "state %r in %s" % (d.get("state"), STATES))
	check("lastError" in d and (d["lastError"] is None or isinstance(d["lastError"], dict)), "lastError null or object: %s" % d)
	created, updated = parse_time(d["created"], "created"), parse_time(d["updated"], "updated")
	check(updated >= created, "updated >= created")


def test_post_again_replaces(c):
	acct = uniq("repl")
	c.api.post("/v1/account", _full(acct))
	body = {"account": acct, "name": "Replaced", "imap": {"host": "127.0.0.1", "port": 143, "starttls": "never"}}
	eq(tuple(c.api.post("/v1/account", body)), (200, {"account": acct, "state": "existing"}), "POST over an existing account")
	d = _get(c, acct)
	eq(d["name"], "Replaced", "name replaced")
	eq((d["imap"]["host"], d["imap"]["port"], d["imap"].get("starttls")), ("127.0.0.1", 143, "never"), "imap replaced")
	check(d.get("smtp") is None, "the replaced account's smtp is gone: %s" % d.get("smtp"))
	check(d.get("oauth2") is None, "the replaced account's oauth2 is gone")


def test_imap_only_smtp_only_oauth2_only(c):
	for kind, extra in (("imap", {"imap": {"host": "imap.example.net", "port": 993, "secure": True,
	    "auth": {"user": "u", "pass": SECRETS[0]}}}),
	    ("smtp", {"smtp": {"host": "smtp.example.net", "port": 587, "auth": {"user": "u", "pass": SECRETS[1]}}}),
	    ("oauth2", {"oauth2": {"provider": "app", "auth": {"user": "u@gmail.com"}, "refreshToken": SECRETS[2]}})):
		acct = uniq(kind + "-only")
		expect_status(c.api.post("/v1/account", dict(extra, account=acct)), 200, "%s-only account" % kind)
		d = _get(c, acct)
		_no_secrets(d, "%s-only account" % kind)
		check(d.get(kind), "%s present" % kind)
		for other in {"imap", "smtp", "oauth2"} - {kind}:
			check(not d.get(other), "%s-only account has no %s: %s" % (kind, other, d))


def test_defaults(c):
	acct = uniq("defaults")
	c.p.add_account(acct, imap={"host": "imap.example.org", "port": 993})
	im = _get(c, acct)["imap"]
	eq(im.get("secure", False), False, "imap.secure default")
	eq(im.get("starttls", "required"), "required", "imap.starttls default")
	eq(im.get("tls", {}).get("rejectUnauthorized", True), True, "imap.tls.rejectUnauthorized default")


def test_account_id_charset_and_length(c):
	for acct in ("a.b_c@d+e-f", "X" * 256, "0", "user@example.com"):
		expect_status(c.api.post("/v1/account", {"account": acct, "imap": {"host": "h.example", "port": 993}}),
		    200, "account id %r" % acct[:40])
		eq(_get(c, acct)["account"], acct, "GET by id %r" % acct[:40])
		eq(tuple(c.api.delete(c.p.account_path(acct))), (200, {"account": acct, "deleted": True}), "DELETE %r" % acct[:40])
		_get(c, acct, 404)


def test_put_partial_update(c):
	acct = uniq("put")
	c.api.post("/v1/account", _full(acct))
	before = _get(c, acct)
	r = c.api.put(c.p.account_path(acct), {"imap": {"host": "new.example.com", "port": 1993, "secure": False,
	    "auth": {"user": "new-user", "pass": "imap-pass-11"}}})
	eq(tuple(r), (200, {"account": acct}), "PUT /v1/account/{account}")
	d = _get(c, acct)
	eq((d["imap"]["host"], d["imap"]["port"], d["imap"]["secure"]), ("new.example.com", 1993, False), "imap replaced")
	eq(d["imap"]["auth"], {"user": "new-user"}, "imap.auth.user")
	eq(d["smtp"], before["smtp"], "smtp untouched by a PUT without smtp")
	eq(d["oauth2"], before["oauth2"], "oauth2 untouched")
	eq(d["name"], before["name"], "name untouched")
	check(parse_time(d["updated"]) >= parse_time(before["updated"]), "updated moves forward")
	eq(d["created"], before["created"], "created unchanged")
	# That an omitted imap.auth.pass keeps the stored password (same
	# server) is checked by logging in upstream through the proxy (IMAP
	# cases); a moved server needs it again (test_put_moved_server_...).
	r = c.api.put(c.p.account_path(acct), {"name": "Renamed"})
	eq(tuple(r), (200, {"account": acct}), "PUT name only")
	eq(_get(c, acct)["name"], "Renamed", "name updated")


def _sealed(c, acct, sec):
	rec = json.loads(c.redis.cmd("HGET", "postern:acct:" + acct, "json"))
	return rec.get(sec, {}).get("auth", {}).get("pass")


def test_put_moved_server_needs_password(c):
	"""A stored password is never sent to a server the PUT names without
	giving it again: host, port, secure, starttls changed or certificate
	checks turned off -> 400."""
	acct = uniq("moved")
	c.api.post("/v1/account", _full(acct))
	before = _get(c, acct)
	sealed = {s: _sealed(c, acct, s) for s in ("imap", "smtp")}
	check(all(v and v.startswith("$pg1$") for v in sealed.values()), "passwords stored sealed")
	im = {"host": "imap.example.com", "port": 993, "secure": True, "starttls": "required"}
	sm = {"host": "smtp.example.com", "port": 465, "secure": True}
	moves = [
	    ("imap", dict(im, host="attacker.example", port=143, secure=False, starttls="never")),
	    ("imap", dict(im, host="attacker.example")),
	    ("imap", dict(im, port=143)),
	    ("imap", dict(im, secure=False)),
	    ("imap", dict(im, starttls="never")),
	    ("imap", dict(im, tls={"rejectUnauthorized": False})),
	    ("imap", dict(im, host="attacker.example", auth={"user": "user@example.com"})),
	    ("smtp", dict(sm, host="10.6.6.6")),
	    ("smtp", dict(sm, port=25, secure=False, auth={"user": "user@example.com"})),
	]
	for sec, body in moves:
		r = c.api.put(c.p.account_path(acct), {sec: body})
		d = expect_error(r, 400, sec + ".auth.pass", "PUT %s %s without a password" % (sec, body))
		contains(d["message"], "%s.auth.pass is required when %s.host, port, secure, starttls or tls.rejectUnauthorized change" % (
		    sec, sec),
		    "error message")
	eq(_get(c, acct), before, "account unchanged after the refused PUTs")
	eq({s: _sealed(c, acct, s) for s in ("imap", "smtp")}, sealed, "sealed passwords unchanged")
	# Same server: the stored password stays (host compared without case).
	r = c.api.put(c.p.account_path(acct), {"imap": dict(im, host="IMAP.example.com", maxConnections=3,
	    auth={"user": "other-user"}), "smtp": sm})
	eq(tuple(r), (200, {"account": acct}), "PUT with the same servers")
	eq({s: _sealed(c, acct, s) for s in ("imap", "smtp")}, sealed, "stored passwords kept for the same servers")
	eq(_get(c, acct)["imap"]["auth"], {"user": "other-user"}, "imap.auth.user changed")
	# Moved with the password: accepted, sealed anew.
	r = c.api.put(c.p.account_path(acct), {"imap": dict(im, host="new.example.com",
	    auth={"user": "u", "pass": "imap-pass-11"})})
	eq(tuple(r), (200, {"account": acct}), "PUT a new server with its password")
	eq(_get(c, acct)["imap"]["host"], "new.example.com", "imap moved")
	check(_sealed(c, acct, "imap") not in (None, sealed["imap"]), "the new password is sealed anew")


def test_put_bad_field_changes_nothing(c):
	acct = uniq("putbad")
	c.api.post("/v1/account", _full(acct))
	before = _get(c, acct)
	expect_error(c.api.put(c.p.account_path(acct), {"name": "Half", "imap": {"host": "x.example", "port": 0}}),
	    400, "imap.port", "PUT with a bad imap.port")
	after = _get(c, acct)
	eq(after, before, "account unchanged after a rejected PUT")


def test_unknown_account_404(c):
	acct = uniq("missing")
	expect_error(c.api.get(c.p.account_path(acct)), 404, what="GET unknown account")
	expect_error(c.api.put(c.p.account_path(acct), {"name": "x"}), 404, what="PUT unknown account")
	expect_error(c.api.delete(c.p.account_path(acct)), 404, what="DELETE unknown account")


def test_list_sorted_and_paginated(c):
	for i in range(5):
		c.p.add_account("list-%d-%s" % (i, uniq("l")))
	d = expect_status(c.api.get("/v1/accounts", params={"pageSize": 1000}), 200, "GET /v1/accounts")
	for k in ("total", "page", "pages", "accounts"):
		check(k in d, "accounts list lacks %r" % k)
	ids = [a["account"] for a in d["accounts"]]
	eq(d["total"], len(ids), "total = number listed")
	check(d["total"] >= 5, "at least the 5 new accounts")
	eq(ids, sorted(ids), "accounts sorted by id")
	for a in d["accounts"]:
		for k in ("account", "name", "email", "state", "lastError"):
			check(k in a, "account entry lacks %r: %s" % (k, a))
		_no_secrets(a, "accounts list entry")
	d0 = expect_status(c.api.get("/v1/accounts"), 200, "GET /v1/accounts (defaults)")
	eq((d0["page"], d0["total"]), (0, len(ids)), "default page 0")
	eq(len(d0["accounts"]), min(20, len(ids)), "default pageSize 20")
	pages = math.ceil(len(ids) / 3)
	seen = []
	for page in range(pages):
		p = expect_status(c.api.get("/v1/accounts", params={"page": page, "pageSize": 3}), 200, "page %d" % page)
		eq((p["page"], p["pages"], p["total"]), (page, pages, len(ids)), "page %d header" % page)
		seen += [a["account"] for a in p["accounts"]]
	eq(seen, ids, "pages of 3 concatenate to the full sorted list")


def test_delete_revokes_tokens(c):
	acct = uniq("del")
	c.p.add_account(acct)
	t1 = c.p.create_token(acct, description="one")
	t2 = c.p.ctl_json("token", "create", acct, "--scope", "imap-proxy", "--description", "two")
	eq(tuple(c.api.delete(c.p.account_path(acct))), (200, {"account": acct, "deleted": True}), "DELETE account")
	_get(c, acct, 404)
	for t in (t1, t2):
		expect_error(c.api.get("/v1/tokens/" + t["id"]), 404, what="token of a deleted account")
	r = c.api.get("/v1/tokens", params={"account": acct})
	check(r.status == 404 or (r.status == 200 and r.json["total"] == 0), "token list of a deleted account: %s %s" % (r.status, r.raw[:200]))
	c.p.add_account(acct)
	eq(expect_status(c.api.get("/v1/tokens", params={"account": acct}), 200, "list")["total"], 0,
	    "a re-created account does not get the old tokens back")
	for t in (t1, t2):
		expect_error(c.api.get("/v1/tokens/" + t["id"]), 404, what="old token after re-creating the account")
	expect_error(c.api.delete("/v1/token/" + t1["token"]), 404, what="revoking a token revoked with its account")


def test_ctl_account_add_file_and_stdin(c):
	acct = uniq("ctlfile")
	path = c.env.path(acct + ".json")
	with open(path, "w") as f:
		json.dump(_full(acct), f)
	eq(c.p.ctl_json("account", "add", "--file", path), {"account": acct, "state": "new"}, "account add --file")
	eq(c.p.ctl_json("account", "add", "--file", path), {"account": acct, "state": "existing"}, "account add again")
	acct2 = uniq("ctlstdin")
	rc, out, err = c.p.ctl("account", "add", "--file", "-", input=json.dumps(_full(acct2)))
	eq(rc, 0, "account add --file - (%s)" % err)
	contains(out, acct2, "account add output names the account")
	eq(_get(c, acct2)["imap"]["host"], "imap.example.com", "account added from stdin")
	for s in SECRETS:
		not_contains(out + err, s, "account add output")


def test_ctl_account_list_show_delete(c):
	acct = uniq("ctlshow")
	c.api.post("/v1/account", _full(acct))
	rc, out, err = c.p.ctl("account", "list")
	eq(rc, 0, "account list (%s)" % err)
	contains(out, acct, "account list table")
	lst = _ctl_accounts(c.p.ctl_json("account", "list"))
	check(acct in [a["account"] for a in lst], "account list --json has the account")
	rc, out, err = c.p.ctl("account", "show", acct)
	eq(rc, 0, "account show (%s)" % err)
	contains(out, "imap.example.com", "account show")
	for s in SECRETS:
		not_contains(out, s, "account show")
	d = c.p.ctl_json("account", "show", acct)
	eq(d["account"], acct, "account show --json")
	_no_secrets(d, "account show --json")
	rc, out, err = c.p.ctl("account", "delete", acct)
	eq(rc, 0, "account delete (%s)" % err)
	rc, out, err = c.p.ctl("account", "show", acct)
	eq(rc, 1, "account show after delete")
	rc, out, err = c.p.ctl("account", "delete", acct)
	eq(rc, 1, "account delete again")


def test_ctl_account_add_errors(c):
	rc, out, err = c.p.ctl("account", "add", "--file", c.env.path("no-such.json"))
	check(rc in (1, 2), "account add with a missing file: exit %d" % rc)
	check(err.strip(), "a message for a missing file")
	rc, out, err = c.p.ctl("account", "add", "--file", "-", input='{"account": "x", "imap": {"host": "h", "port": 99999}}')
	eq(rc, 1, "account add with a bad port is an API error")
	contains(err + out, "imap.port", "the error names the field")
	rc, out, err = c.p.ctl("account", "add", "--file", "-", input="{not json")
	check(rc in (1, 2), "account add with malformed JSON: exit %d" % rc)


def test_settings_api(c):
	d = expect_status(c.api.get("/v1/settings"), 200, "GET /v1/settings")
	for k in ("ignoreMailCertErrors", "proxyUrl"):
		check(k in d, "settings lack %r: %s" % (k, d))
	is_type(d["ignoreMailCertErrors"], bool, "ignoreMailCertErrors")
	eq(tuple(c.api.post("/v1/settings", {"ignoreMailCertErrors": True})), (200, {"updated": ["ignoreMailCertErrors"]}),
	    "POST /v1/settings")
	eq(tuple(c.api.get("/v1/settings", params={"ignoreMailCertErrors": "true"})), (200, {"ignoreMailCertErrors": True}),
	    "GET /v1/settings?ignoreMailCertErrors=true returns just that key")
	r = c.api.post("/v1/settings", {"proxyUrl": "socks5://127.0.0.1:1080", "revokeClosesSessions": False})
	eq(r.status, 200, "POST two settings")
	eq(sorted(r.json["updated"]), ["proxyUrl", "revokeClosesSessions"], "updated lists both")
	d = expect_status(c.api.get("/v1/settings"), 200, "GET /v1/settings")
	eq((d["ignoreMailCertErrors"], d["proxyUrl"], d.get("revokeClosesSessions")), (True, "socks5://127.0.0.1:1080", False), "settings stored")
	expect_status(c.api.post("/v1/settings", {"ignoreMailCertErrors": False, "proxyUrl": None}), 200, "reset")
	d = expect_status(c.api.get("/v1/settings"), 200, "GET /v1/settings")
	eq((d["ignoreMailCertErrors"], d["proxyUrl"]), (False, None), "settings reset")


def test_settings_ctl(c):
	rc, out, err = c.p.ctl("settings", "set", "ignoreMailCertErrors", "true")
	eq(rc, 0, "settings set (%s)" % err)
	eq(c.api.get("/v1/settings").json["ignoreMailCertErrors"], True, "set through posternctl")
	d = c.p.ctl_json("settings", "get")
	eq(d.get("ignoreMailCertErrors"), True, "settings get --json")
	rc, out, err = c.p.ctl("settings", "set", "ignoreMailCertErrors", "false")
	eq(rc, 0, "settings set false")
	eq(c.api.get("/v1/settings").json["ignoreMailCertErrors"], False, "reset through posternctl")
	rc, out, err = c.p.ctl("settings", "set", "noSuchSetting", "1")
	eq(rc, 1, "settings set of an unknown key is an API error (400)")
	contains(err + out, "noSuchSetting", "the error names the key")


PROXY_PW = "proxy-pw-11:x@y"
PROXY_URL = "socks5://puser:%s@proxy.example.com:1080" % PROXY_PW
PROXY_MASKED = "socks5://puser:****@proxy.example.com:1080"


def test_proxy_password_masked_and_kept(c):
	"""An account's proxy URL shows its password as ****, in the API and in
	posternctl; a PUT of the masked form keeps the stored URL, another
	value replaces it."""
	acct = uniq("proxy")
	body = _full(acct)
	body["proxy"] = PROXY_URL
	expect_status(c.api.post("/v1/account", body), 200, "POST account with a proxy password")
	r = c.api.get(c.p.account_path(acct))
	not_contains(r.raw, PROXY_PW.encode(), "GET /v1/account raw body")
	eq(expect_status(r, 200, "GET account")["proxy"], PROXY_MASKED, "proxy masked")
	for argv in (("account", "show", acct), ("account", "show", acct, "--json")):
		rc, out, err = c.p.ctl(*argv)
		eq(rc, 0, "posternctl %s (%s)" % (" ".join(argv), err))
		not_contains(out + err, PROXY_PW, "posternctl %s output" % " ".join(argv))
	# GET-modify-PUT: the masked URL sent back keeps the password.
	d = _get(c, acct)
	expect_status(c.api.put(c.p.account_path(acct), {"name": "renamed", "proxy": d["proxy"]}), 200, "PUT masked proxy")
	rec = json.loads(c.redis.cmd("HGET", "postern:acct:" + acct, "json"))
	eq((rec["proxy"], rec["name"]), (PROXY_URL, "renamed"), "stored proxy kept")
	new = "socks5://puser:****@other.example.com:1080"
	expect_status(c.api.put(c.p.account_path(acct), {"proxy": new}), 200, "PUT another proxy")
	rec = json.loads(c.redis.cmd("HGET", "postern:acct:" + acct, "json"))
	eq(rec["proxy"], new, "another value replaces the proxy")
	eq(_get(c, acct)["proxy"], new, "no password: shown as stored")


def test_settings_proxy_password_masked_and_kept(c):
	expect_status(c.api.post("/v1/settings", {"proxyUrl": PROXY_URL}), 200, "POST proxyUrl with a password")
	r = c.api.get("/v1/settings")
	not_contains(r.raw, PROXY_PW.encode(), "GET /v1/settings raw body")
	eq(expect_status(r, 200, "GET settings")["proxyUrl"], PROXY_MASKED, "proxyUrl masked")
	for argv in (("settings", "get"), ("settings", "get", "--json")):
		rc, out, err = c.p.ctl(*argv)
		eq(rc, 0, "posternctl %s (%s)" % (" ".join(argv), err))
		not_contains(out + err, PROXY_PW, "posternctl %s output" % " ".join(argv))
	eq(tuple(c.api.post("/v1/settings", {"proxyUrl": PROXY_MASKED, "ignoreMailCertErrors": False})),
	    (200, {"updated": ["proxyUrl", "ignoreMailCertErrors"]}), "POST masked proxyUrl back")
	eq(json.loads(c.redis.cmd("HGET", "postern:settings", "proxyUrl")), PROXY_URL, "stored proxyUrl kept")
	new = "http://puser:****@other.example.com:3128"
	expect_status(c.api.post("/v1/settings", {"proxyUrl": new}), 200, "POST another proxyUrl")
	eq(json.loads(c.redis.cmd("HGET", "postern:settings", "proxyUrl")), new, "another value replaces it")
	expect_status(c.api.post("/v1/settings", {"proxyUrl": None}), 200, "reset proxyUrl")
