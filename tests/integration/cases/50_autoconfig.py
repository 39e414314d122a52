"""Issue 6, points 1 and 4: GET /v1/autoconfig and `posternctl autoconfig`,
with no network at all. A dnsmasq on loopback serves MX, SRV and A records
for *.test domains; an HTTPS server (certificate from the harness CA)
serves autoconfig documents, good, broken, oversized and slow; stub TLS
servers on their own 127.x.y.z addresses answer the last-guess probes on
the real ports 993 and 587. Each source must win in its turn and name the
right host, port and TLS mode."""

import json
import threading
import time

from dnsfake import (AutoconfigWeb, Dnsmasq, StubServer, client_config, imap_greeting_handler,
    loopback_addr, smtp_greeting_handler)
from harness import basic_setup, check, contains, eq, expect_error, expect_status, not_contains
from imapc import make_leaf_cert

TEST_TIMEOUT = 60
XML_MAX = 16 * 1024

WEB_NAMES = ["xmlgood.test", "wk.test", "broken.test", "big.test", "slow.test", "partial.test",
    "nothing.test", "ispdb.test", "plain.test"]


def setup(env):
	import ssl
	import types
	c = types.SimpleNamespace(env=env)
	san = ",".join(["IP:127.0.0.1", "DNS:localhost"] + ["DNS:%s,DNS:autoconfig.%s" % (d, d) for d in WEB_NAMES])
	c.web_cert = make_leaf_cert(env, "autoconfig-web", san)
	c.web = AutoconfigWeb(env, tls=c.web_cert)
	c.guess_imap = loopback_addr()
	c.guess_smtp = loopback_addr()
	while c.guess_smtp == c.guess_imap:
		c.guess_smtp = loopback_addr()
	# Probe targets: implicit TLS IMAP on 993, STARTTLS SMTP on 587; the
	# probe does not check the certificate (verify does).
	stls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	stls.load_cert_chain(env.certs.cert, env.certs.key)
	c.imap_stub = StubServer(env, imap_greeting_handler(), addr=c.guess_imap, port=993,
	    tls=(env.certs.cert, env.certs.key))
	c.smtp_stub = StubServer(env, smtp_greeting_handler(stls), addr=c.guess_smtp, port=587)
	records = [
	    ("mx", "hosted.test", "alt1.aspmx.l.google.com", 20),
	    ("mx", "hosted.test", "aspmx.l.google.com", 10),
	    ("mx", "m365.test", "m365-test.mail.protection.outlook.com", 0),
	    ("mx", "nothing.test", "mx.nothing.test", 10),
	    ("srv", "_imaps._tcp.broken.test", "imap.broken.test", 993, 0, 1),
	    ("srv", "_submissions._tcp.broken.test", "smtp.broken.test", 465, 0, 1),
	    # Both IMAP records: implicit TLS must win (RFC 8314).
	    ("srv", "_imap._tcp.srv.test", "imap.srv.test", 143, 0, 1),
	    ("srv", "_imaps._tcp.srv.test", "imaps.srv.test", 993, 0, 1),
	    ("srv", "_submissions._tcp.srv.test", ".", 0, 0, 0),
	    ("srv", "_submission._tcp.srv.test", "backup.srv.test", 2587, 20, 1),
	    ("srv", "_submission._tcp.srv.test", "smtp-light.srv.test", 587, 10, 1),
	    ("srv", "_submission._tcp.srv.test", "smtp.srv.test", 587, 10, 9),
	    ("srv", "_submission._tcp.partial.test", "smtp.partial.test", 587, 0, 1),
	    ("a", "imap.guess.test", c.guess_imap),
	    ("a", "smtp.guess.test", c.guess_smtp),
	]
	for d in WEB_NAMES:
		records += [("a", d, "127.0.0.1"), ("a", "autoconfig." + d, "127.0.0.1")]
	c.dns = Dnsmasq(env, records).start()
	port = c.web.port
	extra = {
	    "tls": {"ca_file": env.certs.ca},
	    "upstream": {"dns_server": c.dns.server},
	    "autoconfig": {
		"dns_server": c.dns.server,
		"autoconfig_url": "https://autoconfig.{domain}:%d/mail/config-v1.1.xml?emailaddress={email}" % port,
		"wellknown_url": "https://{domain}:%d/.well-known/autoconfig/mail/config-v1.1.xml" % port,
		"ispdb_url": "https://127.0.0.1:%d/v1.1/{domain}" % port,
		"timeout": "20s", "dns_timeout": "2s", "http_timeout": "1s", "probe_timeout": "2s",
		"xml_max": "16k"},
	}
	b = basic_setup(env, extra=extra)
	c.redis, c.p, c.api = b.redis, b.p, b.api
	ac = "/mail/config-v1.1.xml"
	wk = "/.well-known/autoconfig/mail/config-v1.1.xml"
	c.web.add("autoconfig.xmlgood.test", ac, client_config(
	    imap=[("imap.%EMAILDOMAIN%", 143, "STARTTLS"), ("imap.%EMAILDOMAIN%", 993, "SSL"),
		("pop.xmlgood.test", 995, "SSL")],
	    smtp=[("plain.xmlgood.test", 25, "plain"), ("smtp.xmlgood.test", 587, "STARTTLS")],
	    domain="xmlgood.test"))
	c.web.add("wk.test", wk, client_config(imap=[("mail.wk.test", 993, "SSL")],
	    smtp=[("mail.wk.test", 465, "SSL")], domain="wk.test"))
	c.web.add("*", "/v1.1/ispdb.test", client_config(imap=[("imap.ispdb.test", 993, "SSL")],
	    smtp=[("smtp.ispdb.test", 465, "SSL")], domain="ispdb.test"))
	c.web.add("autoconfig.broken.test", ac, b"<?xml version='1.0'?><clientConfig><emailProvider>"
	    b"<incomingServer type='imap'><hostname>x.broken.test</hostname></emailProvider>")
	c.web.add("autoconfig.big.test", ac, client_config(imap=[("imap.big.test", 993, "SSL")],
	    extra="<!-- %s -->" % ("x" * (XML_MAX * 4)), domain="big.test"))
	c.web.add("autoconfig.slow.test", ac, client_config(imap=[("imap.slow.test", 993, "SSL")],
	    domain="slow.test"), delay=3)
	c.web.add("autoconfig.partial.test", ac, client_config(imap=[("imap.partial.test", 993, "SSL")],
	    domain="partial.test"))
	c.web.add("autoconfig.plain.test", ac, client_config(imap=[("imap.plain.test", 143, "plain")],
	    domain="plain.test"))
	return c


def ac(c, email, status=200):
	r = c.api.get("/v1/autoconfig", params={"email": email}, timeout=40)
	return expect_status(r, status, "GET /v1/autoconfig?email=%s" % email), r


def server(host, port, secure):
	return {"host": host, "port": port, "secure": secure}


def tried_of(data):
	check(isinstance(data.get("tried"), list), "404 lists what was tried: %r" % data)
	return data["tried"]


def tried_result(data, source):
	return [t for t in tried_of(data) if t.get("source") == source]


def test_provider_by_domain(c):
	before = len(c.dns.queries())
	d, _ = ac(c, "someone@gmail.com")
	eq(d, {"imap": server("imap.gmail.com", 993, True), "smtp": server("smtp.gmail.com", 465, True),
	    "source": "provider"}, "gmail.com")
	d, _ = ac(c, "someone@Hotmail.COM")
	eq(d, {"imap": server("outlook.office365.com", 993, True),
	    "smtp": server("smtp-mail.outlook.com", 587, False), "source": "provider"}, "hotmail.com (STARTTLS only)")
	d, _ = ac(c, "x@icloud.com")
	eq((d["imap"], d["smtp"]["port"], d["smtp"]["secure"]), (server("imap.mail.me.com", 993, True), 587, False),
	    "icloud.com")
	for dom, imap_host in (("yahoo.com", "imap.mail.yahoo.com"), ("aol.com", "imap.aol.com"),
	    ("fastmail.com", "imap.fastmail.com"), ("zoho.com", "imap.zoho.com"), ("gmx.net", "imap.gmx.net"),
	    ("yandex.ru", "imap.yandex.com"), ("mail.ru", "imap.mail.ru")):
		d, _ = ac(c, "u@" + dom)
		eq((d["imap"]["host"], d["imap"]["port"], d["imap"]["secure"], d["source"]), (imap_host, 993, True, "provider"), dom)
	# The table answers without asking DNS.
	eq([q for q in c.dns.queries()[before:] if "gmail" in q[1] or "hotmail" in q[1]], [], "no DNS for table domains")


def test_provider_by_mx(c):
	d, _ = ac(c, "boss@hosted.test")
	eq(d, {"imap": server("imap.gmail.com", 993, True), "smtp": server("smtp.gmail.com", 465, True),
	    "source": "mx"}, "Google Workspace domain found by its MX")
	contains(c.dns.queries(), ("MX", "hosted.test"), "MX asked")
	d, _ = ac(c, "boss@m365.test")
	eq(d, {"imap": server("outlook.office365.com", 993, True), "smtp": server("smtp.office365.com", 587, False),
	    "source": "mx"}, "Microsoft 365 domain found by its MX")


def test_autoconfig_document(c):
	n = len(c.web.requests)
	d, _ = ac(c, "jane.doe+tag@xmlgood.test")
	eq(d, {"imap": server("imap.xmlgood.test", 993, True), "smtp": server("smtp.xmlgood.test", 587, False),
	    "source": "autoconfig"}, "autoconfig.DOMAIN document: SSL preferred, plain never, placeholders filled")
	reqs = c.web.requests[n:]
	check(any(h == "autoconfig.xmlgood.test" and "emailaddress=jane.doe%2Btag%40xmlgood.test" in p for h, p in reqs),
	    "fetched over HTTPS from autoconfig.xmlgood.test with the address: %r" % reqs)
	contains([q[1] for q in c.dns.queries()], "autoconfig.xmlgood.test", "host resolved by our DNS server")


def test_well_known_then_ispdb(c):
	d, _ = ac(c, "a@wk.test")
	eq(d, {"imap": server("mail.wk.test", 993, True), "smtp": server("mail.wk.test", 465, True),
	    "source": "well-known"}, "/.well-known document after autoconfig.DOMAIN answered 404")
	d, _ = ac(c, "a@ispdb.test")
	eq(d, {"imap": server("imap.ispdb.test", 993, True), "smtp": server("smtp.ispdb.test", 465, True),
	    "source": "ispdb"}, "ISPDB after both domain documents failed")


def test_srv_records(c):
	d, _ = ac(c, "a@srv.test")
	eq(d, {"imap": server("imaps.srv.test", 993, True), "smtp": server("smtp.srv.test", 587, False),
	    "source": "srv"}, "SRV: _imaps over _imap; submissions '.' skipped; lowest priority, then weight")


def test_broken_xml_falls_through(c):
	n = len(c.web.requests)
	d, _ = ac(c, "a@broken.test")
	eq(d, {"imap": server("imap.broken.test", 993, True), "smtp": server("smtp.broken.test", 465, True),
	    "source": "srv"}, "broken XML ignored, SRV used")
	check(any(h == "autoconfig.broken.test" for h, _ in c.web.requests[n:]), "the broken document was fetched")


def test_partial_sources_combine(c):
	d, _ = ac(c, "a@partial.test")
	eq(d, {"imap": server("imap.partial.test", 993, True), "smtp": server("smtp.partial.test", 587, False),
	    "source": "autoconfig+srv"}, "IMAP from the document, SMTP from SRV")


def test_last_guess_probe(c):
	n0, n1 = c.imap_stub.accepted, c.smtp_stub.accepted
	d, _ = ac(c, "a@guess.test")
	eq(d, {"imap": server("imap.guess.test", 993, True), "smtp": server("smtp.guess.test", 587, False),
	    "source": "guess"}, "guessed hosts confirmed by TCP+TLS probes (993 TLS, 587 STARTTLS)")
	check(c.imap_stub.accepted > n0 and c.smtp_stub.accepted > n1, "both stubs were probed")


def test_nothing_found_404(c):
	d, r = ac(c, "a@nothing.test", 404)
	expect_error(r, 404)
	srcs = [t["source"] for t in tried_of(d)]
	for s in ("provider", "mx", "autoconfig", "well-known", "ispdb", "srv", "guess"):
		contains(srcs, s, "tried lists %s" % s)
	mx = tried_result(d, "mx")[0]
	contains(mx["result"], "mx.nothing.test", "the unknown MX host is named")
	g = {t["target"]: t["result"] for t in tried_result(d, "guess")}
	contains(g, "imap.nothing.test:993", "guess targets listed")
	contains(g["imap.nothing.test:993"], "resolve", "why the guess failed")


def test_oversized_and_slow_documents(c):
	d, r = ac(c, "a@big.test", 404)
	res = [t["result"] for t in tried_result(d, "autoconfig")]
	check(any("larger than %d" % XML_MAX in x for x in res), "oversized document refused: %r" % res)
	t0 = time.monotonic()
	d, r = ac(c, "a@slow.test", 404)
	res = [t["result"] for t in tried_result(d, "autoconfig")]
	check(any("timed out" in x for x in res), "slow document timed out: %r" % res)
	check(time.monotonic() - t0 < 10, "the slow server cost about http_timeout, not its delay")
	d, r = ac(c, "a@plain.test", 404)
	res = [t["result"] for t in tried_result(d, "autoconfig")]
	check(any("no IMAP or SMTP server with TLS" in x for x in res), "plain-only document not used: %r" % res)
	d, r = ac(c, "a@broken.test")
	eq(d["source"], "srv", "broken.test still srv")


def test_bad_addresses(c):
	for bad in ("", "no-at-sign", "a@", "@x.test", "a b@x.test", "a@localhost", "a@-x.test", "a@x..test"):
		r = c.api.get("/v1/autoconfig", params={"email": bad} if bad else None)
		expect_error(r, 400, "email", "autoconfig email=%r" % bad)
	expect_error(c.api.post("/v1/autoconfig", {"email": "a@gmail.com"}), 405)


def test_parallel_requests(c):
	"""Many lookups at once share one resolver and curl handle: each gets
	its own answer."""
	want = {"a@gmail.com": "provider", "a@hosted.test": "mx", "a@xmlgood.test": "autoconfig",
	    "a@srv.test": "srv", "a@guess.test": "guess", "a@wk.test": "well-known"}
	got = {}

	def one(email):
		st, d = c.api.get("/v1/autoconfig", params={"email": email}, timeout=40)
		got[email] = (st, d.get("source") if isinstance(d, dict) else None)
	ts = [threading.Thread(target=one, args=(e,)) for e in list(want) * 2]
	for t in ts:
		t.start()
	for t in ts:
		t.join(60)
	eq(got, {e: (200, s) for e, s in want.items()}, "parallel autoconfig answers")


def test_client_gone_midway(c):
	"""A client that hangs up while the slow document is being fetched:
	the job is cancelled, the daemon stays healthy (and ASan quiet)."""
	import socket
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.connect(c.p.admin_sock)
	s.sendall(b"GET /v1/autoconfig?email=a%40slow.test HTTP/1.1\r\nHost: x\r\n\r\n")
	time.sleep(0.3)
	s.close()
	time.sleep(1.5)
	expect_status(c.api.get("/health"), 200, "health after a client left midway")
	d, _ = ac(c, "a@gmail.com")
	eq(d["source"], "provider", "still answering")


def test_posternctl_autoconfig(c):
	rc, out, err = c.p.ctl("autoconfig", "someone@gmail.com")
	eq(rc, 0, "posternctl autoconfig exit status (stderr %r)" % err)
	contains(out, "imap.gmail.com:993 secure: true", "imap line")
	contains(out, "smtp.gmail.com:465 secure: true", "smtp line")
	contains(out, "source: provider", "source line")
	d = c.p.ctl_json("autoconfig", "a@srv.test")
	eq(d["smtp"], server("smtp.srv.test", 587, False), "--json shape")
	rc, out, err = c.p.ctl("autoconfig", "a@nothing.test")
	eq(rc, 1, "nothing found: exit 1")
	contains(err, "no IMAP or SMTP settings found", "message")
	for s in ("provider", "mx", "autoconfig", "srv", "guess"):
		contains(err, s, "tried table on stderr")
	rc, out, err = c.p.ctl("autoconfig", "not-an-address")
	eq(rc, 2, "usage error for a non-address")
	rc, out, err = c.p.ctl("autoconfig", "a+b@gmail.com")
	eq(rc, 0, "'+' in the address is escaped on the way: %r" % err)


def test_log_lines(c):
	log = c.p.log_text()
	contains(log, "event=autoconfig domain=srv.test source=srv", "one log line per lookup")
	not_contains(log, "jane.doe", "addresses are not logged, only domains")
