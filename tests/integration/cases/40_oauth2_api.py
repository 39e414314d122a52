"""Issue 5, points 1-2: OAuth2 applications in the admin API and
posternctl (create, show, list, update, delete; the client secret sealed
at rest and never shown), validation, and the gmail/outlook presets: token
endpoints redirected by [oauth2] *_token_url to the fake provider, tenant
and scopes for outlook, and the preset servers for accounts without imap
or smtp settings."""

import imaplib
import json
import os
import types

from harness import check, contains, eq, expect_error, expect_status, not_contains, uniq, wait_until
from oauth_fake import FakeProvider

USER = "preset-user@example.test"


def setup(env):
	c = types.SimpleNamespace(env=env)
	c.fake = FakeProvider(env).start()
	c.redis = env.redis(tcp=False, unix=True)
	c.dovecot = env.dovecot(oauth2=c.fake.introspect_url)
	c.dovecot.add_user(USER, "unused")
	# Nothing may leave the machine: a dead DNS server for the presets.
	c.p = env.postern(c.redis, extra={
	    "tls": {"ca_file": env.certs.ca},
	    "imap": {"failure_delay": "0"},
	    "upstream": {"dns_server": "127.0.0.1:%d" % env.port(), "connect_timeout": "1s",
		"login_timeout": "2s"},
	    "oauth2": {"gmail_token_url": c.fake.token_url,
		"outlook_token_url": c.fake.base + "/{tenant}/token"}})
	c.api = c.p.api
	return c


def _app(c, id_, **kw):
	body = {"id": id_, "provider": "custom", "clientId": c.fake.client_id,
	    "clientSecret": c.fake.client_secret, "tokenUrl": c.fake.token_url}
	body.update(kw)
	return c.api.post("/v1/oauth2", body)


def test_create_show_list_update_delete(c):
	secret = "app-secret-" + uniq("s")
	r = _app(c, "crud", clientSecret=secret, name="CRUD test", scopes=["mail", "offline_access"])
	eq(tuple(r), (200, {"id": "crud", "created": True}), "POST /v1/oauth2")
	d = expect_status(c.api.get("/v1/oauth2/crud"), 200, "GET /v1/oauth2/crud")
	eq((d["id"], d["provider"], d["clientId"], d["name"], d["scopes"], d["clientSecretSet"]),
	    ("crud", "custom", c.fake.client_id, "CRUD test", ["mail", "offline_access"], True), "app as shown")
	check("clientSecret" not in d, "no clientSecret in GET")
	check(d.get("created") and d.get("updated"), "created/updated times")
	raw = c.redis.cmd("HGET", "postern:oauth2:app:crud", "json")
	stored = json.loads(raw)
	check(stored["clientSecret"].startswith("$pg1$"), "clientSecret sealed at rest")
	not_contains(raw.decode(), secret, "Redis record")
	expect_error(_app(c, "crud"), 409, "id", "POST of an existing id")
	lst = expect_status(c.api.get("/v1/oauth2"), 200, "GET /v1/oauth2")
	check(any(a["id"] == "crud" for a in lst["apps"]), "listed")
	check(all("clientSecret" not in a for a in lst["apps"]), "no secret in the list")
	eq((lst["total"] >= 1, lst["page"]), (True, 0), "list paging")
	# PUT: partial, the secret kept unless given.
	eq(tuple(c.api.put("/v1/oauth2/crud", {"name": "renamed", "scopes": None})),
	    (200, {"id": "crud", "updated": True}), "PUT name")
	d = expect_status(c.api.get("/v1/oauth2/crud"), 200, "GET after PUT")
	eq((d["name"], "scopes" in d, d["clientSecretSet"]), ("renamed", False, True), "after PUT")
	eq(json.loads(c.redis.cmd("HGET", "postern:oauth2:app:crud", "json"))["clientSecret"],
	    stored["clientSecret"], "the sealed secret is kept")
	expect_status(c.api.put("/v1/oauth2/crud", {"clientSecret": "other"}), 200, "PUT secret")
	check(json.loads(c.redis.cmd("HGET", "postern:oauth2:app:crud", "json"))["clientSecret"] !=
	    stored["clientSecret"], "a new secret is sealed")
	expect_error(c.api.put("/v1/oauth2/crud", {"id": "other"}), 400, "id", "PUT with another id")
	expect_error(c.api.put("/v1/oauth2/nope", {"name": "x"}), 404, None, "PUT unknown")
	eq(tuple(c.api.delete("/v1/oauth2/crud")), (200, {"id": "crud", "deleted": True}), "DELETE")
	expect_error(c.api.get("/v1/oauth2/crud"), 404, None, "GET after DELETE")
	r = c.api.delete("/v1/oauth2/crud")
	expect_error(r, 404, None, "DELETE again")
	eq(r[1].get("deleted"), False, "deleted false")


def _app_secret(c, app):
	return json.loads(c.redis.cmd("HGET", "postern:oauth2:app:" + app, "json")).get("clientSecret")


def test_put_new_endpoint_needs_secret(c):
	"""The stored client secret never follows a PUT to another token
	endpoint: a changed tokenUrl, provider or tenant needs clientSecret
	again, else 400 and nothing changes."""
	expect_status(_app(c, "mv", clientSecret="mv-secret-" + uniq("s")), 200, "POST mv")
	sealed = _app_secret(c, "mv")
	before = expect_status(c.api.get("/v1/oauth2/mv"), 200, "GET mv")
	for change in ({"tokenUrl": "https://evil.example/token"},
	    {"tokenUrl": "https://evil.example/token", "name": "looks harmless"},
	    {"provider": "gmail", "tokenUrl": None},
	    {"provider": "outlook", "tokenUrl": None, "tenant": "contoso"}):
		d = expect_error(c.api.put("/v1/oauth2/mv", change), 400, "clientSecret", "PUT %s" % change)
		contains(d["message"], "clientSecret is required when provider, tokenUrl or tenant change", "message")
	eq(expect_status(c.api.get("/v1/oauth2/mv"), 200, "GET mv"), before, "app unchanged")
	eq(_app_secret(c, "mv"), sealed, "sealed secret unchanged")
	# The same endpoint keeps it; a new one with its secret is fine.
	expect_status(c.api.put("/v1/oauth2/mv", {"tokenUrl": c.fake.token_url, "name": "same"}), 200, "PUT same URL")
	eq(_app_secret(c, "mv"), sealed, "secret kept for the same endpoint")
	expect_status(c.api.put("/v1/oauth2/mv", {"tokenUrl": "https://new.example/token", "clientSecret": "s2"}),
	    200, "PUT a new URL with its secret")
	check(_app_secret(c, "mv") not in (None, sealed), "the new secret sealed")
	# Outlook: the tenant is part of the URL.
	expect_status(c.api.post("/v1/oauth2", {"id": "mvo", "provider": "outlook", "clientId": "c",
	    "clientSecret": "o-secret", "tenant": "contoso.example"}), 200, "POST mvo")
	expect_error(c.api.put("/v1/oauth2/mvo", {"tenant": "fabrikam.example"}), 400, "clientSecret", "PUT tenant")
	expect_status(c.api.put("/v1/oauth2/mvo", {"tenant": "fabrikam.example", "clientSecret": "o2"}), 200,
	    "PUT tenant with the secret")
	# posternctl update says which field is missing.
	rc, out, err = c.p.ctl("oauth2", "update", "mv", "--token-url", "https://evil.example/token")
	eq(rc, 1, "posternctl oauth2 update to another URL without the secret")
	contains(err, "clientSecret", "error names the field")
	for app in ("mv", "mvo"):
		expect_status(c.api.delete("/v1/oauth2/" + app), 200, "DELETE " + app)


def test_generated_id(c):
	r = c.api.post("/v1/oauth2", {"provider": "gmail", "clientId": "x.apps.googleusercontent.com"})
	expect_status(r, 200, "POST without id")
	app = r[1]["id"]
	check(len(app) == 16, "a random id: %r" % app)
	d = expect_status(c.api.get("/v1/oauth2/" + app), 200, "GET generated")
	eq(d["clientSecretSet"], False, "public client: no secret")


def test_validation(c):
	base = {"id": "v", "provider": "custom", "clientId": "cid", "tokenUrl": "https://idp.example/token"}
	cases = [
	    ({"provider": None}, "provider"),
	    ({"provider": "yahoo"}, "provider"),
	    ({"clientId": None}, "clientId"),
	    ({"clientId": "has space"}, "clientId"),
	    ({"clientSecret": ""}, "clientSecret"),
	    ({"tokenUrl": None}, "tokenUrl"),
	    ({"tokenUrl": "http://idp.example/token"}, "tokenUrl"),
	    ({"tokenUrl": "ftp://idp.example/token"}, "tokenUrl"),
	    ({"provider": "gmail"}, "tokenUrl"),
	    ({"tenant": "contoso"}, "tenant"),
	    ({"scopes": "mail"}, "scopes"),
	    ({"scopes": []}, "scopes"),
	    ({"scopes": ["ok", "not ok"]}, "scopes.1"),
	    ({"mechanism": "PLAIN"}, "mechanism"),
	    ({"name": 5}, "name"),
	    ({"foo": 1}, "foo"),
	    ({"id": "bad id"}, "id"),
	    ({"id": "a:b"}, "id"),
	]
	for change, field in cases:
		body = dict(base)
		for k, v in change.items():
			if v is None:
				body.pop(k, None)
			else:
				body[k] = v
		expect_error(c.api.post("/v1/oauth2", body), 400, field, "POST %s" % change)
	expect_error(c.api.post("/v1/oauth2", {"id": "o", "provider": "outlook", "clientId": "c",
	    "tenant": "bad/tenant"}), 400, "tenant", "outlook tenant with a slash")
	expect_status(c.api.post("/v1/oauth2", {"id": "o2", "provider": "outlook", "clientId": "c",
	    "tenant": "contoso.onmicrosoft.com", "mechanism": "oauthbearer"}), 200, "outlook with tenant")
	eq(expect_status(c.api.get("/v1/oauth2/o2"), 200, "GET o2")["mechanism"], "OAUTHBEARER",
	    "mechanism normalised")
	expect_status(c.api.post("/v1/oauth2", dict(base, id="loop", tokenUrl="http://127.0.0.1:9/token")), 200,
	    "http:// to loopback is fine")
	expect_error(c.api.put("/v1/oauth2/loop", {"provider": None}), 400, "provider", "PUT provider null")
	expect_error(c.api.put("/v1/oauth2/loop", {"provider": "gmail"}), 400, "tokenUrl",
	    "PUT to gmail keeping a tokenUrl")
	expect_status(c.api.put("/v1/oauth2/loop", {"provider": "gmail", "tokenUrl": None}), 200,
	    "PUT to gmail dropping the tokenUrl")


def test_posternctl(c):
	secret = "ctl-secret-" + uniq("s")
	sf = c.env.path("client-secret")
	with open(sf, "w") as f:
		f.write(secret + "\n")
	rc, out, err = c.p.ctl("oauth2", "add", "--id", "ctl1", "--provider", "custom", "--client-id", "cid-1",
	    "--client-secret-file", sf, "--token-url", c.fake.token_url, "--scope", "a", "--scope", "b",
	    "--mechanism", "XOAUTH2", "--name", "From the CLI")
	eq(rc, 0, "oauth2 add (%s)" % err)
	contains(out, "oauth2 application ctl1 added", "add output")
	d = expect_status(c.api.get("/v1/oauth2/ctl1"), 200, "GET ctl1")
	eq((d["clientId"], d["scopes"], d["mechanism"], d["name"], d["clientSecretSet"]),
	    ("cid-1", ["a", "b"], "XOAUTH2", "From the CLI", True), "created by the CLI")
	rc, out, err = c.p.ctl("oauth2", "list")
	eq(rc, 0, "oauth2 list")
	contains(out, "ctl1", "list")
	contains(out, "cid-1", "list")
	rc, out, err = c.p.ctl("oauth2", "show", "ctl1")
	eq(rc, 0, "oauth2 show")
	contains(out, "clientId", "show")
	j = c.p.ctl_json("oauth2", "show", "ctl1")
	eq(j["id"], "ctl1", "show --json")
	rc, out, err = c.p.ctl("oauth2", "update", "ctl1", "--name", "Renamed", "--client-secret-file", "-",
	    input=secret + "-2\n")
	eq(rc, 0, "oauth2 update (%s)" % err)
	eq(expect_status(c.api.get("/v1/oauth2/ctl1"), 200, "GET")["name"], "Renamed", "updated name")
	rc, out, err = c.p.ctl("oauth2", "update", "ctl1")
	eq(rc, 2, "update with nothing to change is a usage error")
	path = c.env.path("app.json")
	with open(path, "w") as f:
		json.dump({"id": "ctl2", "provider": "outlook", "clientId": "cid-2", "clientSecret": secret,
		    "tenant": "organizations"}, f)
	rc, out, err = c.p.ctl("oauth2", "add", "--file", path)
	eq(rc, 0, "oauth2 add --file (%s)" % err)
	rc, out, err = c.p.ctl("oauth2", "add", "--file", path, "--provider", "gmail")
	eq(rc, 2, "--file with options")
	rc, out, err = c.p.ctl("oauth2", "add", "--id", "bad", "--provider", "yahoo", "--client-id", "x")
	eq(rc, 1, "API error exit status")
	contains(err, "provider", "error names the field")
	rc, out, err = c.p.ctl("oauth2", "delete", "ctl2")
	eq((rc, out.strip()), (0, "oauth2 application ctl2 deleted"), "oauth2 delete")
	rc, out, err = c.p.ctl("oauth2", "--help")
	eq(rc, 0, "oauth2 --help")
	for sub in ("add", "update", "list", "show", "delete"):
		contains(out, sub, "oauth2 --help")
	for argv, rc_, out_, err_, input_ in c.p.ctl_history:
		for s in (secret, secret + "-2"):
			not_contains(out_ + err_, s, "posternctl output")
			check(s not in " ".join(argv), "secret on a command line")


def _preset_account(c, app, rt, imap=True):
	acct = uniq("pa")
	body = {"oauth2": {"provider": app, "auth": {"user": USER}, "refreshToken": rt}}
	if imap:
		body["imap"] = {"host": "127.0.0.1", "port": c.dovecot.imaps_port, "secure": True}
	c.p.add_account(acct, **body)
	tok = c.p.create_token(acct, scopes=["imap-proxy", "smtp"])["token"]
	return acct, tok


def _login(c, acct, tok):
	m = imaplib.IMAP4_SSL("127.0.0.1", c.p.imap_tls, ssl_context=c.env.ssl_context(ca=False), timeout=20)
	try:
		typ, data = m.login(acct, tok)
		m.logout()
		return typ, b" ".join(data).decode()
	except imaplib.IMAP4.error as e:
		m.shutdown()
		return "NO", str(e)


def test_gmail_preset_token_url(c):
	expect_status(c.api.post("/v1/oauth2", {"id": "gm", "provider": "gmail", "clientId": c.fake.client_id,
	    "clientSecret": c.fake.client_secret}), 200, "gmail app")
	acct, tok = _preset_account(c, "gm", c.fake.add_refresh_token(USER))
	c.fake.reset_counts()
	typ, text = _login(c, acct, tok)
	eq(typ, "OK", "login with the gmail preset (%s)" % text)
	f = c.fake.forms[0]
	eq((f["_path"], "scope" in f), ("/token", False), "Google's endpoint, no scope parameter")
	contains(c.p.log_text(), "event=login result=ok account=%s" % acct, "login line")
	line = [l for l in c.p.log_text().splitlines() if "event=login result=ok account=%s" % acct in l][-1]
	contains(line, "mech=XOAUTH2", "the gmail preset uses XOAUTH2")


def test_outlook_preset_tenant_and_scopes(c):
	expect_status(c.api.post("/v1/oauth2", {"id": "ms", "provider": "outlook", "clientId": c.fake.client_id,
	    "clientSecret": c.fake.client_secret, "tenant": "contoso.example"}), 200, "outlook app")
	acct, tok = _preset_account(c, "ms", c.fake.add_refresh_token(USER))
	c.fake.reset_counts()
	typ, text = _login(c, acct, tok)
	eq(typ, "OK", "login with the outlook preset (%s)" % text)
	f = c.fake.forms[0]
	eq(f["_path"], "/contoso.example/token", "the tenant's v2.0 endpoint")
	eq(f.get("scope"), "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send "
	    "offline_access", "the preset's scopes")


def test_preset_servers_without_imap_settings(c):
	"""An account with only oauth2 gets the preset's server; nothing may
	leave the machine, so the (dead) DNS server makes it fail, and the
	log names the preset host."""
	acct, tok = _preset_account(c, "gm", c.fake.add_refresh_token(USER), imap=False)
	typ, text = _login(c, acct, tok)
	eq(typ, "NO", "no network here")
	contains(text, "[UNAVAILABLE]", "reply")
	wait_until(lambda: "upstream=imap.gmail.com:993" in c.p.log_text(), 10, "the gmail IMAP preset in the log")
	d = expect_status(c.api.get(c.p.account_path(acct)), 200, "GET account")
	check("imap" not in d, "the preset is not written into the account")


def test_account_delete_drops_token_cache(c):
	acct, tok = _preset_account(c, "gm", c.fake.add_refresh_token(USER))
	eq(_login(c, acct, tok)[0], "OK", "login")
	key = "postern:oauth2:token:" + acct
	check(c.redis.cmd("EXISTS", key) == 1, "token cached")
	access = c.redis.cmd("HGET", key, "access")
	check(access.startswith(b"$pg1$"), "access token sealed at rest")
	expect_status(c.api.delete(c.p.account_path(acct)), 200, "DELETE account")
	eq(c.redis.cmd("EXISTS", key), 0, "the token cache went with the account")


def test_no_secrets_in_logs(c):
	logs = c.p.log_text()
	with open(c.env.path("posternctl.log"), "a+") as f:
		f.seek(0)
		logs += f.read()
	for s in c.fake.secrets():
		not_contains(logs, s, "a secret in Postern's logs")
