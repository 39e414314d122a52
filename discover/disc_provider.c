/*
 * Built-in provider table. Settings are the providers' published ones
 * (implicit TLS preferred where offered, RFC 8314 section 3.3); MX
 * suffixes are what their hosted-domain customers point MX records at.
 * More specific MX suffixes come first: the first match wins.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "discover/disc_provider.h"

#define APP_PW(who)							\
	who " refuses the normal password for IMAP and SMTP when two-step " \
	"verification is on: create an app password in the account's "	\
	"security settings and use it as auth.pass"

static const char *const d_gmail[] = { "gmail.com", "googlemail.com", NULL };
static const char *const mx_google[] = { "google.com", "googlemail.com",
	NULL };
static const char *const d_outlook[] = { "outlook.com", "hotmail.com",
	"live.com", "msn.com", "passport.com", "outlook.de", "outlook.fr",
	"outlook.es", "outlook.it", "hotmail.co.uk", "hotmail.fr",
	"hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr",
	"live.de", "live.it", "live.nl", "live.ca", "windowslive.com", NULL };
static const char *const mx_outlook[] = { "olc.protection.outlook.com",
	NULL };
static const char *const d_none[] = { NULL };
static const char *const mx_m365[] = { "mail.protection.outlook.com",
	"protection.outlook.com", NULL };
static const char *const d_aol[] = { "aol.com", "aim.com", "aol.co.uk",
	"aol.de", "aol.fr", "love.com", "ygm.com", "games.com", "wow.com",
	"verizon.net", NULL };
static const char *const mx_aol[] = { "mx-aol.mail.gm0.yahoodns.net", NULL };
static const char *const d_yahoo[] = { "yahoo.com", "ymail.com",
	"rocketmail.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.it",
	"yahoo.es", "yahoo.ca", "yahoo.com.au", "yahoo.com.br", "yahoo.in",
	"yahoo.co.in", "yahoo.com.mx", "yahoo.com.ar", "yahoo.ie", NULL };
static const char *const mx_yahoo[] = { "yahoodns.net", NULL };
static const char *const d_att[] = { "att.net", "sbcglobal.net",
	"bellsouth.net", "pacbell.net", "swbell.net", "flash.net",
	"prodigy.net", "ameritech.net", "wans.net", "snet.net", NULL };
static const char *const d_icloud[] = { "icloud.com", "me.com", "mac.com",
	NULL };
static const char *const mx_icloud[] = { "mail.icloud.com", NULL };
static const char *const d_fastmail[] = { "fastmail.com", "fastmail.fm",
	"fastmail.net", "fastmail.org", "fastmail.cn", "fastmail.co.uk",
	"fastmail.de", "fastmail.es", "fastmail.in", "fastmail.jp",
	"fastmail.nl", "fastmail.se", "fastmail.to", "fastmail.uk",
	"fastmail.us", "messagingengine.com", "sent.com", "fastem.com",
	"mailbolt.com", "imap.cc", NULL };
static const char *const mx_fastmail[] = { "messagingengine.com", NULL };
static const char *const d_zoho[] = { "zoho.com", "zohomail.com", NULL };
static const char *const mx_zoho[] = { "zoho.com", "zohomail.com", NULL };
static const char *const d_zoho_eu[] = { "zoho.eu", "zohomail.eu", NULL };
static const char *const mx_zoho_eu[] = { "zoho.eu", "zohomail.eu", NULL };
static const char *const d_zoho_in[] = { "zoho.in", "zohomail.in", NULL };
static const char *const mx_zoho_in[] = { "zoho.in", "zohomail.in", NULL };
static const char *const d_gmx_com[] = { "gmx.com", "gmx.us", "gmx.co.uk",
	"gmx.fr", "gmx.es", "gmx.it", NULL };
static const char *const mx_gmx_com[] = { "gmx.com", NULL };
static const char *const d_gmx_net[] = { "gmx.net", "gmx.de", "gmx.at",
	"gmx.ch", NULL };
static const char *const mx_gmx_net[] = { "gmx.net", NULL };
static const char *const d_webde[] = { "web.de", NULL };
static const char *const mx_webde[] = { "web.de", NULL };
static const char *const d_yandex[] = { "yandex.ru", "yandex.com", "ya.ru",
	"yandex.by", "yandex.kz", "yandex.ua", "narod.ru", NULL };
static const char *const mx_yandex[] = { "yandex.net", "yandex.ru", NULL };
static const char *const d_mailru[] = { "mail.ru", "inbox.ru", "list.ru",
	"bk.ru", "internet.ru", "mail.ua", NULL };
static const char *const mx_mailru[] = { "mail.ru", NULL };
static const char *const d_qq[] = { "qq.com", "foxmail.com", "vip.qq.com",
	NULL };
static const char *const mx_qq[] = { "qq.com", NULL };
static const char *const d_163[] = { "163.com", NULL };
static const char *const d_126[] = { "126.com", NULL };
static const char *const d_tonline[] = { "t-online.de", "magenta.de",
	NULL };
static const char *const d_comcast[] = { "comcast.net", "xfinity.com",
	NULL };
static const char *const d_cox[] = { "cox.net", NULL };
static const char *const d_orange[] = { "orange.fr", "wanadoo.fr", NULL };
static const char *const d_free[] = { "free.fr", NULL };
static const char *const d_libero[] = { "libero.it", "iol.it", "inwind.it",
	"blu.it", NULL };
static const char *const d_seznam[] = { "seznam.cz", "email.cz", "post.cz",
	"spoluzaci.cz", NULL };
static const char *const d_mailboxorg[] = { "mailbox.org", NULL };
static const char *const mx_mailboxorg[] = { "mailbox.org", NULL };
static const char *const d_posteo[] = { "posteo.de", "posteo.net",
	"posteo.org", "posteo.eu", "posteo.at", "posteo.ch", NULL };
static const char *const mx_posteo[] = { "posteo.de", NULL };
static const char *const mx_rackspace[] = { "emailsrvr.com", NULL };
static const char *const mx_ionos[] = { "ionos.com", "ionos.de",
	"kundenserver.de", "1and1.com", NULL };

static const struct disc_provider providers[] = {
	{ "gmail", "Gmail / Google Workspace", d_gmail, mx_google,
	  "imap.gmail.com", 993, true, "smtp.gmail.com", 465, true,
	  APP_PW("Google") " (myaccount.google.com/apppasswords), or "
	  "register the account with OAuth2",
	  "Turn IMAP on in Gmail: Settings, See all settings, Forwarding and "
	  "POP/IMAP, Enable IMAP (Google Workspace admins may also have to "
	  "allow it in the Admin console)" },
	{ "outlook", "Outlook.com / Hotmail", d_outlook, mx_outlook,
	  "outlook.office365.com", 993, true, "smtp-mail.outlook.com", 587,
	  false,
	  "Microsoft has turned off password (basic) authentication for IMAP "
	  "and SMTP on Outlook.com: register the account with OAuth2",
	  "Turn IMAP on in Outlook.com: Settings, Mail, Forwarding and IMAP, "
	  "Let devices and apps use IMAP" },
	{ "office365", "Microsoft 365", d_none, mx_m365,
	  "outlook.office365.com", 993, true, "smtp.office365.com", 587, false,
	  "Microsoft 365 normally refuses password (basic) authentication for "
	  "IMAP and SMTP: register the account with OAuth2; for SMTP the admin "
	  "must also enable authenticated SMTP for the mailbox",
	  "The Microsoft 365 admin must enable IMAP (and authenticated SMTP) "
	  "for this mailbox in the admin center" },
	{ "aol", "AOL", d_aol, mx_aol,
	  "imap.aol.com", 993, true, "smtp.aol.com", 465, true,
	  APP_PW("AOL") " (Account Security, Generate app password)", NULL },
	{ "yahoo", "Yahoo Mail", d_yahoo, mx_yahoo,
	  "imap.mail.yahoo.com", 993, true, "smtp.mail.yahoo.com", 465, true,
	  APP_PW("Yahoo") " (Account Security, Generate app password)", NULL },
	{ "att", "AT&T Mail", d_att, NULL,
	  "imap.mail.att.net", 993, true, "smtp.mail.att.net", 465, true,
	  "AT&T needs a secure mail key instead of the normal password: "
	  "create one in the AT&T profile's sign-in settings", NULL },
	{ "icloud", "iCloud Mail", d_icloud, mx_icloud,
	  "imap.mail.me.com", 993, true, "smtp.mail.me.com", 587, false,
	  "iCloud always needs an app-specific password for other mail "
	  "programs: create one at appleid.apple.com, Sign-In and Security, "
	  "App-Specific Passwords; the user name is the address without "
	  "@icloud.com on older accounts", NULL },
	{ "fastmail", "Fastmail", d_fastmail, mx_fastmail,
	  "imap.fastmail.com", 993, true, "smtp.fastmail.com", 465, true,
	  "Fastmail needs an app password for IMAP and SMTP: Settings, "
	  "Privacy & Security, Manage app passwords (access: IMAP, SMTP)",
	  NULL },
	{ "zoho", "Zoho Mail", d_zoho, mx_zoho,
	  "imap.zoho.com", 993, true, "smtp.zoho.com", 465, true,
	  APP_PW("Zoho"),
	  "Turn IMAP access on in Zoho Mail: Settings, Mail Accounts, IMAP" },
	{ "zoho-eu", "Zoho Mail (EU)", d_zoho_eu, mx_zoho_eu,
	  "imap.zoho.eu", 993, true, "smtp.zoho.eu", 465, true,
	  APP_PW("Zoho"),
	  "Turn IMAP access on in Zoho Mail: Settings, Mail Accounts, IMAP" },
	{ "zoho-in", "Zoho Mail (India)", d_zoho_in, mx_zoho_in,
	  "imap.zoho.in", 993, true, "smtp.zoho.in", 465, true,
	  APP_PW("Zoho"),
	  "Turn IMAP access on in Zoho Mail: Settings, Mail Accounts, IMAP" },
	{ "gmx-com", "GMX (gmx.com)", d_gmx_com, mx_gmx_com,
	  "imap.gmx.com", 993, true, "mail.gmx.com", 465, true,
	  APP_PW("GMX"),
	  "Turn POP3/IMAP access on in GMX: Settings, POP3 & IMAP" },
	{ "gmx-net", "GMX (gmx.net)", d_gmx_net, mx_gmx_net,
	  "imap.gmx.net", 993, true, "mail.gmx.net", 465, true,
	  APP_PW("GMX"),
	  "Turn POP3/IMAP access on in GMX: Settings, POP3 & IMAP" },
	{ "webde", "WEB.DE", d_webde, mx_webde,
	  "imap.web.de", 993, true, "smtp.web.de", 587, false,
	  APP_PW("WEB.DE"),
	  "Turn POP3/IMAP access on in WEB.DE: Settings, POP3/IMAP" },
	{ "yandex", "Yandex Mail", d_yandex, mx_yandex,
	  "imap.yandex.com", 993, true, "smtp.yandex.com", 465, true,
	  "Yandex needs an app password for mail programs: Yandex ID, "
	  "Security, App passwords, Mail",
	  "Allow mail programs in Yandex Mail: Settings, Email clients, "
	  "From the imap.yandex.ru server via IMAP" },
	{ "mailru", "Mail.ru", d_mailru, mx_mailru,
	  "imap.mail.ru", 993, true, "smtp.mail.ru", 465, true,
	  "Mail.ru needs a password for external applications: Settings, "
	  "Security, Passwords for external applications", NULL },
	{ "qq", "QQ Mail", d_qq, mx_qq,
	  "imap.qq.com", 993, true, "smtp.qq.com", 465, true,
	  "QQ Mail needs an authorization code instead of the QQ password: "
	  "Settings, Account, generate it under POP3/IMAP/SMTP",
	  "Turn IMAP/SMTP on in QQ Mail: Settings, Account, POP3/IMAP/SMTP" },
	{ "163", "NetEase 163", d_163, NULL,
	  "imap.163.com", 993, true, "smtp.163.com", 465, true,
	  "NetEase needs an authorization code instead of the password: "
	  "Settings, POP3/SMTP/IMAP",
	  "Turn IMAP/SMTP on in NetEase Mail: Settings, POP3/SMTP/IMAP" },
	{ "126", "NetEase 126", d_126, NULL,
	  "imap.126.com", 993, true, "smtp.126.com", 465, true,
	  "NetEase needs an authorization code instead of the password: "
	  "Settings, POP3/SMTP/IMAP",
	  "Turn IMAP/SMTP on in NetEase Mail: Settings, POP3/SMTP/IMAP" },
	{ "t-online", "Telekom Mail", d_tonline, NULL,
	  "secureimap.t-online.de", 993, true, "securesmtp.t-online.de", 465,
	  true,
	  "Telekom Mail needs a separate email password for mail programs: "
	  "set it in the Telekom Mail security settings", NULL },
	{ "comcast", "Xfinity / Comcast", d_comcast, NULL,
	  "imap.comcast.net", 993, true, "smtp.comcast.net", 465, true, NULL,
	  "Turn third-party access on in Xfinity Connect: Settings, Security, "
	  "Third Party Access Security" },
	{ "cox", "Cox", d_cox, NULL,
	  "imap.cox.net", 993, true, "smtp.cox.net", 465, true, NULL, NULL },
	{ "orange", "Orange", d_orange, NULL,
	  "imap.orange.fr", 993, true, "smtp.orange.fr", 465, true, NULL,
	  NULL },
	{ "free", "Free", d_free, NULL,
	  "imap.free.fr", 993, true, "smtp.free.fr", 465, true, NULL, NULL },
	{ "libero", "Libero Mail", d_libero, NULL,
	  "imapmail.libero.it", 993, true, "smtpmail.libero.it", 465, true,
	  NULL, NULL },
	{ "seznam", "Seznam.cz", d_seznam, NULL,
	  "imap.seznam.cz", 993, true, "smtp.seznam.cz", 465, true, NULL,
	  "Turn IMAP access on in Seznam Mail settings" },
	{ "mailbox-org", "mailbox.org", d_mailboxorg, mx_mailboxorg,
	  "imap.mailbox.org", 993, true, "smtp.mailbox.org", 465, true, NULL,
	  NULL },
	{ "posteo", "Posteo", d_posteo, mx_posteo,
	  "posteo.de", 993, true, "posteo.de", 465, true, NULL, NULL },
	{ "rackspace", "Rackspace Email", d_none, mx_rackspace,
	  "secure.emailsrvr.com", 993, true, "secure.emailsrvr.com", 465, true,
	  NULL, NULL },
	{ "ionos", "IONOS", d_none, mx_ionos,
	  "imap.ionos.com", 993, true, "smtp.ionos.com", 465, true, NULL,
	  NULL },
	{ NULL, NULL, d_none, NULL, NULL, 0, false, NULL, 0, false, NULL,
	  NULL },
};

/* Length of s without one trailing dot. */
static size_t
name_len(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

static bool
name_eq(const char *a, const char *b)
{
	size_t n = name_len(a);

	return n == name_len(b) && strncasecmp(a, b, n) == 0;
}

bool
disc_host_has_suffix(const char *host, const char *suffix)
{
	size_t hl = name_len(host), sl = name_len(suffix);

	if (sl == 0 || hl < sl)
		return false;
	if (strncasecmp(host + hl - sl, suffix, sl) != 0)
		return false;
	return hl == sl || host[hl - sl - 1] == '.';
}

const struct disc_provider *
disc_provider_by_domain(const char *domain)
{
	for (const struct disc_provider *p = providers; p->id != NULL; p++)
		for (const char *const *d = p->domains; *d != NULL; d++)
			if (name_eq(domain, *d))
				return p;
	return NULL;
}

const struct disc_provider *
disc_provider_by_mx(const char *host)
{
	for (const struct disc_provider *p = providers; p->id != NULL; p++) {
		if (p->mx == NULL)
			continue;
		for (const char *const *m = p->mx; *m != NULL; m++)
			if (disc_host_has_suffix(host, *m))
				return p;
	}
	return NULL;
}

const struct disc_provider *
disc_provider_by_server(const char *host)
{
	for (const struct disc_provider *p = providers; p->id != NULL; p++)
		if (name_eq(host, p->imap_host) || name_eq(host, p->smtp_host))
			return p;
	return NULL;
}
