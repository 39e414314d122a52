"""Issue 2, Tests: the token lifecycle through posternctl and through the
admin API (docs/API.md "Tokens"), including the legacy /v1/token aliases
and curl over the Unix socket."""

import datetime
import json
import re
import shutil
import secrets

from harness import (HEX64, basic_setup, check, contains, eq, expect_error, expect_status, is_type,
    matches, not_contains, parse_time, token_id, uniq)

ACC = "tok-acct"
ACC2 = "tok-other"


def setup(env):
	c = basic_setup(env)
	c.p.add_account(ACC)
	c.p.add_account(ACC2)
	return c


def _get_token(c, tid, status=200):
	return expect_status(c.api.get("/v1/tokens/" + tid), status, "GET /v1/tokens/%s" % tid[:12])


def _list(c, account, **params):
	params = dict(params, account=account)
	d = expect_status(c.api.get("/v1/tokens", params=params), 200, "GET /v1/tokens?account=%s" % account)
	for k in ("tokens", "total", "page", "pages"):
		check(k in d, "list response lacks %r: %s" % (k, d))
	return d


def _ids(listing):
	return [t["id"] for t in listing["tokens"]]


def _check_token_object(obj, token=None):
	for k in ("id", "account", "description", "scopes", "created"):
		check(k in obj, "token object lacks %r: %s" % (k, obj))
	matches(HEX64.pattern, obj["id"], "token id")
	parse_time(obj["created"], "created")
	check("token" not in obj, "a token object must never contain the token: %s" % obj)
	if token:
		not_contains(json.dumps(obj), token, "token object")


def _ctl_tokens(out):
	"""posternctl token list --json: the API's {"tokens": [...]} or a bare list."""
	if isinstance(out, dict):
		check("tokens" in out, "token list --json: no 'tokens' key: %s" % out)
		return out["tokens"]
	check(isinstance(out, list), "token list --json: neither object nor array: %s" % out)
	return out


def test_health_ok(c):
	st, d = c.api.get("/health")
	eq(st, 200, "GET /health with Redis up")
	eq(d, {"success": True, "redis": "ok"}, "/health body")


# ---------------------------------------------------------------- posternctl

def test_ctl_create_json(c):
	out = c.p.ctl_json("token", "create", ACC, "--scope", "imap-proxy", "--scope", "smtp",
	    "--description", "ctl token")
	matches(HEX64.pattern, out.get("token"), "token")
	matches(HEX64.pattern, out.get("id"), "id")
	eq(out["id"], token_id(out["token"]), "id = sha256 of the 32 raw token bytes")
	obj = _get_token(c, out["id"])
	_check_token_object(obj, out["token"])
	eq(obj["account"], ACC, "account")
	eq(obj["description"], "ctl token", "description")
	eq(sorted(obj["scopes"]), ["imap-proxy", "smtp"], "scopes")
	for k in ("expires", "lastUsed", "ip", "restrictions"):
		check(k not in obj, "%r must be absent when unset: %s" % (k, obj))


def test_ctl_create_address_and_ttl(c):
	out = c.p.ctl_json("token", "create", ACC, "--scope", "imap-proxy", "--description", "restricted",
	    "--address", "127.0.0.0/8", "--address", "2001:db8::/32", "--ttl", "3600")
	obj = _get_token(c, out["id"])
	eq(obj.get("restrictions", {}).get("addresses"), ["127.0.0.0/8", "2001:db8::/32"], "restrictions.addresses")
	eq(obj["scopes"], ["imap-proxy"], "scopes")
	check("expires" in obj, "--ttl sets expires: %s" % obj)
	delta = (parse_time(obj["expires"]) - parse_time(obj["created"])).total_seconds()
	check(3595 <= delta <= 3605, "expires - created = %.1fs, want 3600" % delta)


def test_ctl_create_human_output_shows_token_once(c):
	rc, out, err = c.p.ctl("token", "create", ACC2, "--scope", "smtp", "--description", "human")
	eq(rc, 0, "token create exit status (stderr: %s)" % err)
	hexes = set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", out))
	ids = set(_ids(_list(c, ACC2, pageSize=1000)))
	tokens = [h for h in hexes if token_id(h) in ids]
	eq(len(tokens), 1, "the new token (64 hex) printed on stdout, once per distinct value: %r" % out)


def test_ctl_list(c):
	desc = uniq("list-me")
	out = c.p.ctl_json("token", "create", ACC, "--scope", "smtp", "--description", desc)
	tok, tid = out["token"], out["id"]
	rc, text, err = c.p.ctl("token", "list", ACC)
	eq(rc, 0, "token list exit status (%s)" % err)
	contains(text, desc, "token list table")
	not_contains(text, tok, "token list table")
	lst = _ctl_tokens(c.p.ctl_json("token", "list", ACC))
	mine = [t for t in lst if t.get("id") == tid]
	eq(len(mine), 1, "token list --json contains the new id once")
	_check_token_object(mine[0], tok)
	eq(mine[0]["description"], desc, "description in list")
	check(all(t.get("account", ACC) == ACC for t in lst), "only %s's tokens listed" % ACC)


def test_ctl_revoke_by_id_and_by_token(c):
	a = c.p.ctl_json("token", "create", ACC, "--scope", "imap-proxy", "--description", "revoke-id")
	b = c.p.ctl_json("token", "create", ACC, "--scope", "imap-proxy", "--description", "revoke-token")
	rc, out, err = c.p.ctl("token", "revoke", a["id"])
	eq(rc, 0, "revoke by id (%s)" % err)
	_get_token(c, a["id"], 404)
	rc, out, err = c.p.ctl("token", "revoke", a["id"])
	eq(rc, 1, "revoking it again is an API error (404)")
	check(err.strip() or out.strip(), "a message on a failed revoke")
	rc, out, err = c.p.ctl("token", "revoke", b["token"])
	eq(rc, 0, "revoke by token (%s)" % err)
	_get_token(c, b["id"], 404)
	check(b["id"] not in _ids(_list(c, ACC, pageSize=1000)), "revoked token no longer listed")
	rc, out, err = c.p.ctl("token", "revoke", secrets.token_hex(32))
	eq(rc, 1, "revoking an unknown token")


def test_ctl_usage_errors_exit_2(c):
	for args in ([], ["token"], ["token", "frobnicate"], ["token", "create"], ["token", "list"],
	    ["token", "revoke"], ["token", "create", ACC, "--scope", "smtp", "--description", "x", "--bogus-option"],
	    ["token", "create", ACC, "--scope"], ["nosuchcommand"], ["account", "show"], ["account", "delete"]):
		rc, out, err = c.p.ctl(*args)
		eq(rc, 2, "posternctl %s: usage error exit status (stdout %r, stderr %r)" % (" ".join(args), out[:200], err[:200]))
		check((err + out).strip(), "posternctl %s: a usage message" % " ".join(args))


def test_ctl_help(c):
	rc, out, err = c.p.ctl("--help")
	eq(rc, 0, "posternctl --help")
	contains(out + err, "token", "posternctl --help")
	rc, out, err = c.p.ctl("token", "create", "--help")
	eq(rc, 0, "posternctl token create --help")
	contains(out + err, "--scope", "token create --help")
	contains(out + err, "--description", "token create --help")


def test_ctl_api_errors_exit_1(c):
	rc, out, err = c.p.ctl("token", "create", "no-such-account", "--scope", "smtp", "--description", "x")
	eq(rc, 1, "token create for a missing account (stderr %r)" % err)
	check(err.strip(), "an error message on stderr")
	rc, out, err = c.p.ctl("token", "list", ACC, sock=c.env.path("nonexistent.sock"))
	eq(rc, 1, "admin socket missing (stderr %r)" % err)
	check(err.strip(), "an error message when the socket is missing")


def test_ctl_and_api_agree(c):
	api_tok = c.p.create_token(ACC2, description="from-api")
	lst = _ctl_tokens(c.p.ctl_json("token", "list", ACC2))
	check(api_tok["id"] in [t["id"] for t in lst], "a token made over the API shows in posternctl token list")
	ctl_tok = c.p.ctl_json("token", "create", ACC2, "--scope", "smtp", "--description", "from-ctl")
	check(ctl_tok["id"] in _ids(_list(c, ACC2, pageSize=1000)), "a token made by posternctl shows in the API list")


# ---------------------------------------------------------------- HTTP API

def test_api_create_both_paths(c):
	for path in ("/v1/tokens", "/v1/token"):
		d = expect_status(c.api.post(path, {"account": ACC, "description": "via " + path, "scopes": ["imap-proxy"]}),
		    200, "POST " + path)
		matches(HEX64.pattern, d.get("token"), "%s token" % path)
		eq(d.get("id"), token_id(d["token"]), "%s id" % path)
		eq(_get_token(c, d["id"])["description"], "via " + path, "stored description")


def test_api_token_object_shape(c):
	exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).replace(microsecond=0)
	body = {"account": ACC, "description": "shape", "scopes": ["imap-proxy", "smtp"],
	    "restrictions": {"addresses": ["10.0.0.0/8", "::1/128"]}, "metadata": {"k": "v", "n": 1},
	    "expires": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}
	d = expect_status(c.api.post("/v1/tokens", body), 200, "POST /v1/tokens")
	r = c.api.get("/v1/tokens/" + d["id"])
	obj = expect_status(r, 200, "GET token")
	not_contains(r.raw.decode(), d["token"], "GET /v1/tokens/{id} body")
	_check_token_object(obj, d["token"])
	eq(obj["id"], d["id"], "id")
	eq(obj["account"], ACC, "account")
	eq(obj["restrictions"], {"addresses": ["10.0.0.0/8", "::1/128"]}, "restrictions")
	eq(obj.get("metadata"), {"k": "v", "n": 1}, "metadata")
	eq(parse_time(obj["expires"], "expires"), exp, "expires")
	for k in ("lastUsed", "ip"):
		check(k not in obj, "%r absent before first use: %s" % (k, obj))


def test_api_ttl_sets_expires(c):
	d = c.p.create_token(ACC, description="ttl", ttl=120)
	obj = _get_token(c, d["id"])
	delta = (parse_time(obj["expires"]) - parse_time(obj["created"])).total_seconds()
	check(115 <= delta <= 125, "ttl 120: expires - created = %.1fs" % delta)


def test_api_scope_variants(c):
	for scopes in (["*"], ["api"], ["imap-proxy"], ["smtp"], ["imap-proxy", "smtp", "api", "*"]):
		d = c.p.create_token(ACC, scopes=scopes, description="scopes %s" % scopes)
		eq(sorted(_get_token(c, d["id"])["scopes"]), sorted(scopes), "stored scopes")


def test_api_unknown_id_404(c):
	expect_error(c.api.get("/v1/tokens/" + secrets.token_hex(32)), 404, what="GET unknown token id")


def test_api_list_pagination(c):
	acct = uniq("page")
	c.p.add_account(acct)
	made = [c.p.create_token(acct, description="p%d" % i)["id"] for i in range(5)]
	for path, params in (("/v1/tokens", {"account": acct}), ("/v1/tokens/account/" + acct, None)):
		d = expect_status(c.api.get(path, params=params), 200, "GET " + path)
		eq(d.get("total"), 5, "%s total" % path)
		eq(d.get("page"), 0, "%s page" % path)
		eq(d.get("pages"), 1, "%s pages (default pageSize 20)" % path)
		eq(sorted(_ids(d)), sorted(made), "%s ids" % path)
		created = [parse_time(t["created"]) for t in d["tokens"]]
		eq(created, sorted(created), "%s tokens sorted by created" % path)
		for t in d["tokens"]:
			_check_token_object(t)
	seen = []
	for page, n in ((0, 2), (1, 2), (2, 1)):
		d = _list(c, acct, page=page, pageSize=2)
		eq((d["total"], d["page"], d["pages"]), (5, page, 3), "page %d of pageSize 2" % page)
		eq(len(d["tokens"]), n, "tokens on page %d" % page)
		seen += _ids(d)
	eq(sorted(seen), sorted(made), "pages cover every token exactly once")


def test_api_list_isolated_and_empty(c):
	acct = uniq("empty")
	c.p.add_account(acct)
	d = _list(c, acct)
	eq((d["total"], d["tokens"], d["page"]), (0, [], 0), "an account without tokens")
	mine = set(_ids(_list(c, ACC, pageSize=1000)))
	other = set(_ids(_list(c, ACC2, pageSize=1000)))
	check(mine and other and not (mine & other), "accounts' token lists are disjoint")


def test_api_delete_all_four_ways(c):
	t = [c.p.create_token(ACC, description="del%d" % i) for i in range(4)]
	for path in ("/v1/tokens/" + t[0]["id"], "/v1/tokens/" + t[1]["token"],
	    "/v1/token/" + t[2]["id"], "/v1/token/" + t[3]["token"]):
		eq(tuple(c.api.delete(path)), (200, {"deleted": True}), "DELETE %s..." % path[:24])
	for x in t:
		_get_token(c, x["id"], 404)
	left = set(_ids(_list(c, ACC, pageSize=1000)))
	check(not left & {x["id"] for x in t}, "deleted tokens not listed")
	d = expect_error(c.api.delete("/v1/tokens/" + t[0]["id"]), 404, what="DELETE an already deleted id")
	eq(d.get("deleted"), False, "deleted: false on 404")
	expect_error(c.api.delete("/v1/token/" + t[1]["token"]), 404, what="DELETE an already deleted token")


def test_api_delete_all_of_account(c):
	acct = uniq("bulk")
	c.p.add_account(acct)
	for i in range(3):
		c.p.create_token(acct, description="b%d" % i)
	keep = set(_ids(_list(c, ACC, pageSize=1000)))
	eq(tuple(c.api.delete("/v1/tokens/account/" + acct)), (200, {"deleted": True, "count": 3}),
	    "DELETE /v1/tokens/account/{account}")
	eq(_list(c, acct)["total"], 0, "no tokens left")
	eq(set(_ids(_list(c, ACC, pageSize=1000))), keep, "other accounts' tokens untouched")


def test_api_tokens_unique(c):
	made = [c.p.create_token(ACC2, description="u%d" % i) for i in range(20)]
	eq(len({m["token"] for m in made}), 20, "20 distinct tokens")
	for m in made:
		eq(m["id"], token_id(m["token"]), "id = sha256(raw token)")


def test_curl_lifecycle(c):
	"""The issue: 'the token lifecycle ... through curl'."""
	check(shutil.which("curl"), "curl not installed (scripts/deps.sh test installs it)")

	def curl(*args):
		rc, out, err = c.env.run(["curl", "-sS", "--unix-socket", c.p.admin_sock, "-w", "\n%{http_code}"] + list(args))
		eq(rc, 0, "curl %s (%s)" % (" ".join(args), err))
		body, _, code = out.rpartition("\n")
		return int(code), (json.loads(body) if body.strip() else None)

	st, d = curl("-X", "POST", "-H", "Content-Type: application/json", "--data",
	    json.dumps({"account": ACC, "description": "curl", "scopes": ["smtp"]}), "http://localhost/v1/token")
	eq(st, 200, "curl POST /v1/token")
	eq(d["id"], token_id(d["token"]), "curl: id")
	st, lst = curl("http://localhost/v1/tokens/account/" + ACC + "?pageSize=1000")
	eq(st, 200, "curl GET /v1/tokens/account")
	check(d["id"] in _ids(lst), "curl: listed")
	st, r = curl("-X", "DELETE", "http://localhost/v1/token/" + d["token"])
	eq((st, r), (200, {"deleted": True}), "curl DELETE /v1/token/{token}")
	st, r = curl("http://localhost/v1/tokens/" + d["id"])
	eq(st, 404, "curl GET after delete")
