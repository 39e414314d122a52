/*
 * discover/: the pure parts of autoconfig and verify. Name checks, the
 * provider table (by domain, MX and server), clientConfig parsing (good,
 * hostile and broken documents), SRV/MX ordering, URL templates, the
 * classification of failed logins into codes and hints, and IMAP mailbox
 * names in modified UTF-7.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discover/disc.h"
#include "discover/disc_autoconfig.h"
#include "discover/disc_dns.h"
#include "discover/disc_provider.h"
#include "discover/disc_verify.h"
#include "discover/disc_xml.h"
#include "tests/unit/test.h"

/* CHECK_STR formats into a fixed buffer, which -Wformat-truncation
 * rejects for the long hint texts compared here. */
#define CHECK_EQS(a, b) do { const char *x_ = (a), *y_ = (b);		\
	if (x_ == NULL || strcmp(x_, y_) != 0)				\
		fprintf(stderr, "  got \"%s\", want \"%s\"\n",		\
		    x_ != NULL ? x_ : "(null)", y_);			\
	CHECK(x_ != NULL && strcmp(x_, y_) == 0); } while (0)

TEST(disc_host_is_valid)
{
	static const char *const good[] = { "a.b", "mail.example.com",
	    "example.com.", "x-y.z_0.test", "localhost", "123.example" };
	static const char *const bad[] = { "", ".", "a..b", "-a.b", "a-.b",
	    "a b.c", "a/b", "ex\xc3\xa4mple.com", ".a.b", "a.b..", "a@b" };
	char long_label[80], long_name[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(disc_host_is_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!disc_host_is_valid(bad[i]));
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	CHECK(!disc_host_is_valid(long_label));	/* a 64-byte label */
	memmove(long_label, long_label + 1, strlen(long_label));
	CHECK(disc_host_is_valid(long_label));	/* 63 */
	for (int i = 0; i < 127; i++)
		memcpy(long_name + 2 * i, "a.", 2);
	strcpy(long_name + 254, "b");	/* 255 characters */
	CHECK(!disc_host_is_valid(long_name));
}

TEST(disc_email_domain)
{
	char d[DISC_HOST_MAX + 1];

	CHECK(disc_email_domain("Jane.Doe+tag@Example.COM", d, sizeof(d)));
	CHECK_EQS(d, "example.com");
	CHECK(disc_email_domain("a@b.example.org.", d, sizeof(d)));
	CHECK_EQS(d, "b.example.org");
	/* The domain is after the last "@". */
	CHECK(disc_email_domain("weird@local@x.test", d, sizeof(d)));
	CHECK_EQS(d, "x.test");
	CHECK(!disc_email_domain("", d, sizeof(d)));
	CHECK(!disc_email_domain("a@", d, sizeof(d)));
	CHECK(!disc_email_domain("@x.test", d, sizeof(d)));
	CHECK(!disc_email_domain("a@localhost", d, sizeof(d)));
	CHECK(!disc_email_domain("a b@x.test", d, sizeof(d)));
	CHECK(!disc_email_domain("a\"b@x.test", d, sizeof(d)));
	CHECK(!disc_email_domain("a@x..test", d, sizeof(d)));
	CHECK(!disc_email_domain("a@[127.0.0.1]", d, sizeof(d)));
	CHECK(!disc_email_domain("a@x.test", d, 4));	/* does not fit */
}

TEST(disc_text_clean)
{
	char out[16];

	CHECK_EQS(disc_text_clean("Entw\xc3\xbcrfe", out, sizeof(out)),
	    "Entw\xc3\xbcrfe");
	CHECK_EQS(disc_text_clean("a\r\nb\x7f", out, sizeof(out)), "a??b?");
	CHECK_EQS(disc_text_clean("bad\xff\xc3", out, sizeof(out)), "bad??");
	/* Cut on a character boundary: no half of "ü" at the end. */
	CHECK_EQS(disc_text_clean("0123456789abcd\xc3\xbc", out, sizeof(out)),
	    "0123456789abcd");
	CHECK_EQS(disc_text_clean("\xed\xa0\x80", out, sizeof(out)), "???");
}

TEST(disc_provider_lookup)
{
	const struct disc_provider *p;

	CHECK((p = disc_provider_by_domain("gmail.com")) != NULL);
	CHECK_EQS(p->imap_host, "imap.gmail.com");
	CHECK_INT(p->smtp_port, ==, 465);
	CHECK(disc_provider_by_domain("GoogleMail.COM.") == p);
	CHECK(disc_provider_by_domain("mail.gmail.com") == NULL);
	CHECK((p = disc_provider_by_domain("hotmail.co.uk")) != NULL);
	CHECK_EQS(p->smtp_host, "smtp-mail.outlook.com");
	CHECK(!p->smtp_secure && p->smtp_port == 587);
	CHECK((p = disc_provider_by_domain("me.com")) != NULL);
	CHECK_EQS(p->id, "icloud");
	CHECK(disc_provider_by_domain("example.com") == NULL);

	CHECK((p = disc_provider_by_mx("aspmx.l.google.com")) != NULL);
	CHECK_EQS(p->id, "gmail");
	CHECK((p = disc_provider_by_mx("ALT2.ASPMX.L.GOOGLE.COM.")) != NULL);
	CHECK_EQS(p->id, "gmail");
	CHECK((p = disc_provider_by_mx("smtp.google.com")) != NULL);
	CHECK((p = disc_provider_by_mx(
	    "contoso-com.mail.protection.outlook.com")) != NULL);
	CHECK_EQS(p->id, "office365");
	CHECK_EQS(p->smtp_host, "smtp.office365.com");
	CHECK((p = disc_provider_by_mx(
	    "hotmail-com.olc.protection.outlook.com")) != NULL);
	CHECK_EQS(p->id, "outlook");
	/* AOL's MX is under Yahoo's DNS: the more specific entry wins. */
	CHECK((p = disc_provider_by_mx("mx-aol.mail.gm0.yahoodns.net")) != NULL);
	CHECK_EQS(p->id, "aol");
	CHECK((p = disc_provider_by_mx("mta5.am0.yahoodns.net")) != NULL);
	CHECK_EQS(p->id, "yahoo");
	CHECK((p = disc_provider_by_mx("in1-smtp.messagingengine.com")) != NULL);
	CHECK_EQS(p->id, "fastmail");
	CHECK((p = disc_provider_by_mx("mx.zoho.eu")) != NULL);
	CHECK_EQS(p->imap_host, "imap.zoho.eu");
	/* Suffixes match on label boundaries only. */
	CHECK(disc_provider_by_mx("notgoogle.com") == NULL);
	CHECK(disc_provider_by_mx("google.com.attacker.test") == NULL);
	CHECK(disc_provider_by_mx("mx.example.com") == NULL);

	CHECK((p = disc_provider_by_server("imap.mail.yahoo.com")) != NULL);
	CHECK_EQS(p->id, "yahoo");
	CHECK(p->auth_hint != NULL);
	CHECK(disc_provider_by_server("imap.example.com") == NULL);
	CHECK(disc_host_has_suffix("a.b.c", "b.c"));
	CHECK(disc_host_has_suffix("b.c.", "b.c"));
	CHECK(!disc_host_has_suffix("ab.c", "b.c"));
	CHECK(!disc_host_has_suffix("c", "b.c"));
}

#define DOC_HEAD "<?xml version=\"1.0\"?><clientConfig version=\"1.1\">" \
	"<emailProvider id=\"x.test\"><domain>x.test</domain>"
#define DOC_TAIL "</emailProvider></clientConfig>"
#define SRV(kind, type, host, port, sock)				\
	"<" kind " type=\"" type "\"><hostname>" host "</hostname><port>" \
	port "</port><socketType>" sock "</socketType>"			\
	"<username>%EMAILADDRESS%</username></" kind ">"

static int
xml(const char *doc, struct disc_settings *s, char *err, size_t errlen)
{
	return disc_xml_parse(doc, strlen(doc), "jane@x.test", s, err, errlen);
}

TEST(disc_xml_good)
{
	struct disc_settings	s;
	char			err[160];
	int			rc;

	rc = (xml(DOC_HEAD
	    SRV("incomingServer", "pop3", "pop.x.test", "995", "SSL")
	    SRV("incomingServer", "imap", "imap.%EMAILDOMAIN%", "143",
	    "STARTTLS")
	    SRV("incomingServer", "imap", " IMAP.X.TEST ", "993", "SSL")
	    SRV("incomingServer", "imap", "other.x.test", "993", "SSL")
	    SRV("outgoingServer", "smtp", "plain.x.test", "25", "plain")
	    SRV("outgoingServer", "smtp", "smtp.x.test", "587", "STARTTLS")
	    DOC_TAIL, &s, err, sizeof(err)));
	CHECK_INT(rc, ==, 0);
	CHECK(s.has_imap && s.has_smtp);
	/* SSL beats STARTTLS; the first SSL one wins; case folded. */
	CHECK_EQS(s.imap.host, "imap.x.test");
	CHECK_INT(s.imap.port, ==, 993);
	CHECK(s.imap.secure);
	/* "plain" is never chosen. */
	CHECK_EQS(s.smtp.host, "smtp.x.test");
	CHECK_INT(s.smtp.port, ==, 587);
	CHECK(!s.smtp.secure);

	/* Placeholders, and only the half present. */
	rc = (xml(DOC_HEAD
	    SRV("incomingServer", "imap", "%EMAILLOCALPART%.mail.%EMAILDOMAIN%",
	    "993", "SSL") DOC_TAIL, &s, err, sizeof(err)));
	CHECK_INT(rc, ==, 0);
	CHECK(s.has_imap && !s.has_smtp);
	CHECK_EQS(s.imap.host, "jane.mail.x.test");

	/* Nothing usable is not an error. */
	rc = (xml(DOC_HEAD
	    SRV("incomingServer", "imap", "i.x.test", "143", "plain")
	    SRV("incomingServer", "imap", "bad host!", "993", "SSL")
	    SRV("incomingServer", "imap", "i.x.test", "99999", "SSL")
	    SRV("incomingServer", "imap", "i.x.test", "-1", "SSL")
	    SRV("incomingServer", "imap", "i.x.test", "", "SSL")
	    SRV("incomingServer", "imap", "%EMAILADDRESS%", "993", "SSL")
	    DOC_TAIL, &s, err, sizeof(err)));
	CHECK_INT(rc, ==, 0);
	CHECK(!s.has_imap && !s.has_smtp);

	/* UTF-16 is fine for expat. */
	{
		const char	*a = DOC_HEAD SRV("incomingServer", "imap",
				    "u.x.test", "993", "SSL") DOC_TAIL;
		size_t		 n = strlen(a);
		char		*u = malloc(2 * n + 2);

		u[0] = (char)0xff;
		u[1] = (char)0xfe;
		for (size_t i = 0; i < n; i++) {
			u[2 + 2 * i] = a[i];
			u[3 + 2 * i] = 0;
		}
		/* The declaration says nothing about encoding: BOM rules. */
		rc = (disc_xml_parse(u, 2 * n + 2, "jane@x.test", &s, err,
		    sizeof(err)));
	CHECK_INT(rc, ==, 0);
		CHECK(s.has_imap);
		free(u);
	}
}

TEST(disc_xml_hostile)
{
	struct disc_settings	s;
	char			err[160], *deep, *big;
	size_t			o = 0;
	int			rc;

	/* Billion laughs: refused at the DOCTYPE, nothing expanded. */
	rc = (xml("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol "
	    "\"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;\">]>"
	    "<clientConfig>&lol2;</clientConfig>", &s, err, sizeof(err)));
	CHECK_INT(rc, ==, -1);
	CHECK(strstr(err, "document type") != NULL);
	/* External entity. */
	rc = (xml("<!DOCTYPE c SYSTEM \"file:///etc/passwd\"><clientConfig/>",
	    &s, err, sizeof(err)));
	CHECK_INT(rc, ==, -1);
	rc = (xml("<html><body>not here</body></html>", &s, err,
	    sizeof(err)));
	CHECK_INT(rc, ==, -1);
	CHECK(strstr(err, "clientConfig") != NULL);
	rc = (xml(DOC_HEAD "<incomingServer type=\"imap\">", &s, err,
	    sizeof(err)));
	CHECK_INT(rc, ==, -1);
	CHECK(strstr(err, "bad XML") != NULL);
	CHECK(!s.has_imap);
	rc = (xml("", &s, err, sizeof(err)));
	CHECK_INT(rc, ==, -1);
	rc = (xml("not xml at all", &s, err, sizeof(err)));
	CHECK_INT(rc, ==, -1);

	deep = malloc(64 * 8 + 64);
	o += (size_t)sprintf(deep, "<clientConfig>");
	for (int i = 0; i < 40; i++)
		o += (size_t)sprintf(deep + o, "<a>");
	rc = (xml(deep, &s, err, sizeof(err)));
	CHECK_INT(rc, ==, -1);
	CHECK(strstr(err, "deeply") != NULL);
	free(deep);

	/* A huge host name is dropped, not truncated into a wrong name. */
	big = malloc(4096);
	strcpy(big, DOC_HEAD "<incomingServer type=\"imap\"><hostname>");
	o = strlen(big);
	memset(big + o, 'a', 2000);
	strcpy(big + o + 2000, ".x.test</hostname><port>993</port><socketType>"
	    "SSL</socketType></incomingServer>" DOC_TAIL);
	rc = (xml(big, &s, err, sizeof(err)));
	CHECK_INT(rc, ==, 0);
	CHECK(!s.has_imap);
	free(big);
}

TEST(disc_dns_rr_sort)
{
	struct disc_dns_rr mx[3] = {
		{ "c.test", 20, 0, 0 }, { "a.test", 10, 0, 0 },
		{ "b.test", 10, 0, 0 },
	};
	struct disc_dns_rr srv[4] = {
		{ "light.test", 10, 1, 587 }, { "backup.test", 20, 9, 587 },
		{ "heavy.test", 10, 9, 587 }, { "zero.test", 10, 0, 587 },
	};

	disc_dns_rr_sort(DISC_DNS_MX, mx, 3);
	CHECK_EQS(mx[0].name, "a.test");
	CHECK_EQS(mx[1].name, "b.test");
	CHECK_EQS(mx[2].name, "c.test");
	disc_dns_rr_sort(DISC_DNS_SRV, srv, 4);
	CHECK_EQS(srv[0].name, "heavy.test");
	CHECK_EQS(srv[1].name, "light.test");
	CHECK_EQS(srv[2].name, "zero.test");
	CHECK_EQS(srv[3].name, "backup.test");
}

TEST(disc_ac_url)
{
	char *u;

	u = disc_ac_url("https://autoconfig.{domain}/mail/config-v1.1.xml"
	    "?emailaddress={email}", "a+b c@x.test", "x.test");
	CHECK_EQS(u, "https://autoconfig.x.test/mail/config-v1.1.xml"
	    "?emailaddress=a%2Bb%20c%40x.test");
	free(u);
	u = disc_ac_url("http://127.0.0.1:8080/{domain}/{domain}", "a@x.test",
	    "x.test");
	CHECK_EQS(u, "http://127.0.0.1:8080/x.test/x.test");
	free(u);
	CHECK(disc_ac_url("ftp://{domain}/", "a@x.test", "x.test") == NULL);
	CHECK(disc_ac_url("{domain}", "a@x.test", "x.test") == NULL);
}

static struct up_target
target(const char *host, int port, enum up_tls tls)
{
	struct up_target t;

	memset(&t, 0, sizeof(t));
	t.host = (char *)(uintptr_t)host;
	t.port = port;
	t.tls = tls;
	t.cred = UP_CRED_PASSWORD;
	t.user = (char *)(uintptr_t)"jane@x.test";
	return t;
}

static const struct {
	bool		 imap;
	enum up_fail	 fail;
	const char	*why;
	bool		 connected;
	const char	*host;
	int		 port;
	enum up_tls	 tls;
	const char	*code;
	bool		 try_other;
	const char	*hint;		/* a substring of the hint */
} classify_cases[] = {
	{ true, UP_FAIL_AUTH, "[AUTHENTICATIONFAILED] Authentication failed.",
	  false, "imap.x.test", 993, UP_TLS_IMPLICIT, DISC_E_AUTH, false,
	  "user name or password" },
	{ true, UP_FAIL_AUTH, "[ALERT] Application-specific password required",
	  false, "imap.gmail.com", 993, UP_TLS_IMPLICIT, DISC_E_AUTH, false,
	  "myaccount.google.com/apppasswords" },
	{ true, UP_FAIL_AUTH, "[ALERT] Your account is not enabled for IMAP "
	  "use.", false, "imap.gmail.com", 993, UP_TLS_IMPLICIT, DISC_E_AUTH,
	  false, "Forwarding and POP/IMAP" },
	{ true, UP_FAIL_AUTH, "[AUTHENTICATIONFAILED] Invalid credentials",
	  false, "imap.mail.yahoo.com", 993, UP_TLS_IMPLICIT, DISC_E_AUTH,
	  false, "Yahoo refuses the normal password" },
	{ false, UP_FAIL_AUTH, "AUTH PLAIN refused: 535 5.7.139 basic auth "
	  "disabled", false, "smtp.office365.com", 587, UP_TLS_STARTTLS,
	  DISC_E_AUTH, false, "OAuth2" },
	{ true, UP_FAIL_CONNECT, "connect to 127.0.0.1:993: Connection refused",
	  false, "127.0.0.1", 993, UP_TLS_IMPLICIT, DISC_E_CONNREFUSED, false,
	  "Nothing accepts connections" },
	{ true, UP_FAIL_CONNECT, "connect to 127.0.0.1:587: Connection refused",
	  false, "127.0.0.1", 587, UP_TLS_IMPLICIT, DISC_E_CONNREFUSED, false,
	  "swapped" },
	{ true, UP_FAIL_CONNECT, "resolve nohost.x.test: nodename nor servname "
	  "provided, or not known", false, "nohost.x.test", 993,
	  UP_TLS_IMPLICIT, DISC_E_DNS, false, "does not resolve" },
	{ true, UP_FAIL_CONNECT, "connect to 192.0.2.1:993: timed out", false,
	  "192.0.2.1", 993, UP_TLS_IMPLICIT, DISC_E_TIMEDOUT, false,
	  "firewall" },
	{ true, UP_FAIL_CONNECT, "upstream login timed out (waiting for "
	  "greeting)", false, "imap.x.test", 993, UP_TLS_STARTTLS,
	  DISC_E_TIMEDOUT, true, "set secure: true" },
	{ true, UP_FAIL_CONNECT, "TLS handshake with 127.0.0.1:143: timed out",
	  false, "imap.x.test", 143, UP_TLS_IMPLICIT, DISC_E_TIMEDOUT, true,
	  "set secure: false" },
	{ false, UP_FAIL_CONNECT, "login to 127.0.0.1:465 timed out", false,
	  "smtp.x.test", 465, UP_TLS_STARTTLS, DISC_E_TIMEDOUT, true,
	  "sent no greeting" },
	{ true, UP_FAIL_TLS, "TLS handshake with 127.0.0.1:143: wrong version "
	  "number", false, "imap.x.test", 143, UP_TLS_IMPLICIT, DISC_E_TLS,
	  true, "set secure: false" },
	{ true, UP_FAIL_TLS, "certificate verify failed: self-signed "
	  "certificate", false, "imap.x.test", 993, UP_TLS_IMPLICIT,
	  DISC_E_CERT, false, "tls.rejectUnauthorized: false" },
	{ true, UP_FAIL_TLS, "certificate verify failed: hostname mismatch",
	  false, "imap.x.test", 993, UP_TLS_IMPLICIT, DISC_E_CERT, false,
	  "not issued for imap.x.test" },
	{ true, UP_FAIL_TLS, "certificate verify failed: certificate has "
	  "expired", false, "imap.x.test", 993, UP_TLS_IMPLICIT, DISC_E_CERT,
	  false, "expired" },
	{ true, UP_FAIL_CONFIG, "upstream does not offer STARTTLS", false,
	  "imap.x.test", 143, UP_TLS_STARTTLS, DISC_E_TLS, false,
	  "does not offer STARTTLS" },
	{ false, UP_FAIL_CONFIG, "upstream 127.0.0.1:25 offers no AUTH", false,
	  "smtp.x.test", 25, UP_TLS_STARTTLS, DISC_E_CONFIG, false,
	  "no login method" },
	{ true, UP_FAIL_PROTOCOL, "bad greeting from upstream", false,
	  "smtp.x.test", 465, UP_TLS_IMPLICIT, DISC_E_PROTOCOL, false,
	  "swapped" },
	{ true, UP_FAIL_PROTOCOL, "bad greeting from upstream", false,
	  "x.test", 10993, UP_TLS_IMPLICIT, DISC_E_PROTOCOL, false,
	  "does not speak IMAP" },
	{ true, UP_FAIL_CONNECT, "upstream closed the connection during login",
	  false, "x.test", 993, UP_TLS_STARTTLS, DISC_E_CONNECTION, true,
	  "closed the connection" },
};

TEST(disc_verify_classify)
{
	struct disc_verdict	v;
	struct up_target	t;
	char			msg[160];

	for (size_t i = 0; i < sizeof(classify_cases) /
	    sizeof(classify_cases[0]); i++) {
		t = target(classify_cases[i].host, classify_cases[i].port,
		    classify_cases[i].tls);
		disc_verify_classify(classify_cases[i].imap,
		    classify_cases[i].fail, classify_cases[i].why,
		    classify_cases[i].connected, &t, 3000, &v);
		snprintf(msg, sizeof(msg), "case %zu", i);
		if (v.code == NULL || strcmp(v.code, classify_cases[i].code) != 0 ||
		    v.try_other != classify_cases[i].try_other ||
		    strstr(v.hint, classify_cases[i].hint) == NULL)
			fprintf(stderr, "  %s: code %s try_other %d hint \"%s\"\n",
			    msg, v.code, v.try_other, v.hint);
		CHECK_EQS(v.code, classify_cases[i].code);
		CHECK(v.try_other == classify_cases[i].try_other);
		CHECK(strstr(v.hint, classify_cases[i].hint) != NULL);
		CHECK(strstr(v.error, classify_cases[i].why) != NULL);
	}
	/* OAuth2 refusals talk about tokens, not passwords. */
	t = target("imap.x.test", 993, UP_TLS_IMPLICIT);
	t.cred = UP_CRED_OAUTH2;
	disc_verify_classify(true, UP_FAIL_AUTH, "[AUTHENTICATIONFAILED] x",
	    false, &t, 3000, &v);
	CHECK(strstr(v.hint, "access token") != NULL);
}

TEST(disc_verify_other_mode)
{
	struct disc_verdict	first, v;
	struct up_target	t = target("imap.x.test", 10143,
				    UP_TLS_IMPLICIT), o;

	disc_verify_classify(true, UP_FAIL_TLS, "TLS handshake with x: wrong "
	    "version number", false, &t, 3000, &first);
	o = t;
	o.tls = UP_TLS_STARTTLS;
	disc_verify_other_mode(true, &first, &o, UP_OK, NULL, &v);
	CHECK_EQS(v.code, DISC_E_TLS);
	CHECK(strstr(v.hint, "set secure: false") != NULL);
	CHECK(strstr(v.hint, "the login works") != NULL);
	CHECK_EQS(v.error, first.error);
	disc_verify_other_mode(true, &first, &o, UP_FAIL_AUTH,
	    "[AUTHENTICATIONFAILED] no", &v);
	CHECK(strstr(v.hint, "refused, too") != NULL);
	/* The other mode failing as well: the first verdict stands. */
	disc_verify_other_mode(true, &first, &o, UP_FAIL_CONNECT,
	    "upstream login timed out (waiting for greeting)", &v);
	CHECK_EQS(v.code, first.code);
	CHECK_EQS(v.hint, first.hint);
}

TEST(disc_verify_mailbox_arg)
{
	char	out[64];
	int	rc;

	rc = (disc_verify_mailbox_arg("INBOX", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"INBOX\"");
	rc = (disc_verify_mailbox_arg("a\"b\\c", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"a\\\"b\\\\c\"");
	/* RFC 3501 5.1.3 examples and friends. */
	rc = (disc_verify_mailbox_arg("Entw\xc3\xbcrfe", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"Entw&APw-rfe\"");
	rc = (disc_verify_mailbox_arg("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"");
	rc = (disc_verify_mailbox_arg("A&B", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"A&-B\"");
	rc = (disc_verify_mailbox_arg("\xf0\x9f\x98\x80", out, sizeof(out)));
	CHECK_INT(rc, ==, 0);
	CHECK_EQS(out, "\"&2D3eAA-\"");
	rc = (disc_verify_mailbox_arg("", out, sizeof(out)));
	CHECK_INT(rc, ==, -1);
	rc = (disc_verify_mailbox_arg("a\nb", out, sizeof(out)));
	CHECK_INT(rc, ==, -1);
	rc = (disc_verify_mailbox_arg("a\x7f", out, sizeof(out)));
	CHECK_INT(rc, ==, -1);
	rc = (disc_verify_mailbox_arg("\xc3", out, sizeof(out)));
	CHECK_INT(rc, ==, -1);
	rc = (disc_verify_mailbox_arg("\xc0\xaf", out, sizeof(out)));
	CHECK_INT(rc, ==, -1);
	rc = (disc_verify_mailbox_arg("0123456789", out, 8));
	CHECK_INT(rc, ==, -1);
}
