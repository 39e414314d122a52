/*
 * clientConfig parsing with expat. The document type declaration is
 * refused outright, so no entity can be declared (no billion laughs, no
 * external entities); text is collected only inside the few elements we
 * read, and only up to DISC_XML_TEXT_MAX bytes.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc.h"
#include "discover/disc_xml.h"

enum xml_field {
	F_NONE,
	F_HOSTNAME,
	F_PORT,
	F_SOCKET,
};

enum xml_kind {
	K_NONE,
	K_IMAP,		/* incomingServer type="imap" */
	K_SMTP,		/* outgoingServer type="smtp" */
	K_OTHER,	/* a server of another type: skipped */
};

/* Ranks: lower is better; RANK_NONE never chosen. */
#define RANK_SSL	0
#define RANK_STARTTLS	1
#define RANK_NONE	9

struct xml_state {
	XML_Parser		 p;
	const char		*email;
	struct disc_settings	*out;
	int			 imap_rank, smtp_rank;
	int			 depth;
	bool			 root_ok;
	bool			 failed;
	char			 err[128];

	/* The server element being read (depth 3). */
	enum xml_kind		 kind;
	enum xml_field		 field;		/* depth 4 element */
	bool			 text_over;
	char			 text[DISC_XML_TEXT_MAX + 1];
	size_t			 textlen;
	char			 host[DISC_XML_TEXT_MAX + 1];
	char			 port[16];
	char			 sock[16];
	bool			 bad;		/* a field was too long */
};

static void
xml_fail(struct xml_state *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
xml_fail(struct xml_state *x, const char *fmt, ...)
{
	va_list ap;

	if (x->failed)
		return;
	x->failed = true;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	XML_StopParser(x->p, XML_FALSE);
}

static const char *
attr(const XML_Char **atts, const char *name)
{
	for (int i = 0; atts[i] != NULL; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

static void XMLCALL
start_cb(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct xml_state	*x = arg;
	const char		*type;

	if (++x->depth > DISC_XML_DEPTH_MAX) {
		xml_fail(x, "XML nested too deeply");
		return;
	}
	switch (x->depth) {
	case 1:
		if (strcmp(name, "clientConfig") != 0)
			xml_fail(x, "not a clientConfig document");
		x->root_ok = true;
		break;
	case 3:
		x->kind = K_NONE;
		type = attr(atts, "type");
		if (strcmp(name, "incomingServer") == 0)
			x->kind = type != NULL && strcasecmp(type, "imap") == 0 ?
			    K_IMAP : K_OTHER;
		else if (strcmp(name, "outgoingServer") == 0)
			x->kind = type != NULL && strcasecmp(type, "smtp") == 0 ?
			    K_SMTP : K_OTHER;
		x->host[0] = x->port[0] = x->sock[0] = '\0';
		x->bad = false;
		break;
	case 4:
		x->field = F_NONE;
		if (x->kind != K_IMAP && x->kind != K_SMTP)
			break;
		if (strcmp(name, "hostname") == 0)
			x->field = F_HOSTNAME;
		else if (strcmp(name, "port") == 0)
			x->field = F_PORT;
		else if (strcmp(name, "socketType") == 0)
			x->field = F_SOCKET;
		x->textlen = 0;
		x->text_over = false;
		break;
	default:
		break;
	}
}

static void XMLCALL
text_cb(void *arg, const XML_Char *s, int len)
{
	struct xml_state *x = arg;

	if (x->depth != 4 || x->field == F_NONE || len <= 0)
		return;
	if (x->textlen + (size_t)len > DISC_XML_TEXT_MAX) {
		x->text_over = true;
		return;
	}
	memcpy(x->text + x->textlen, s, (size_t)len);
	x->textlen += (size_t)len;
}

/* Copies text without surrounding white space into dst (dstlen > 0);
 * false if it does not fit. */
static bool
trim_copy(char *dst, size_t dstlen, const char *src, size_t len)
{
	while (len > 0 && strchr(" \t\r\n", src[0]) != NULL) {
		src++;
		len--;
	}
	while (len > 0 && strchr(" \t\r\n", src[len - 1]) != NULL)
		len--;
	if (len >= dstlen)
		return false;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

static void
field_end(struct xml_state *x)
{
	bool ok = !x->text_over;

	switch (x->field) {
	case F_HOSTNAME:
		ok = ok && trim_copy(x->host, sizeof(x->host), x->text,
		    x->textlen);
		break;
	case F_PORT:
		ok = ok && trim_copy(x->port, sizeof(x->port), x->text,
		    x->textlen);
		break;
	case F_SOCKET:
		ok = ok && trim_copy(x->sock, sizeof(x->sock), x->text,
		    x->textlen);
		break;
	case F_NONE:
		break;
	}
	if (!ok)
		x->bad = true;
	x->field = F_NONE;
}

/* Replaces the placeholders of a hostname; false if the result does not
 * fit. */
static bool
expand(const char *in, const char *email, char *out, size_t outlen)
{
	const char	*at = strrchr(email, '@');
	size_t		 o = 0, llen = at != NULL ? (size_t)(at - email) : 0;
	static const char *const names[] = { "%EMAILADDRESS%",
	    "%EMAILLOCALPART%", "%EMAILDOMAIN%" };

	while (*in != '\0') {
		const char	*val = NULL;
		size_t		 vlen = 0, nlen = 0;

		for (int i = 0; i < 3; i++)
			if (strncmp(in, names[i], strlen(names[i])) == 0) {
				nlen = strlen(names[i]);
				if (i == 0) {
					val = email;
					vlen = strlen(email);
				} else if (i == 1) {
					val = email;
					vlen = llen;
				} else {
					val = at != NULL ? at + 1 : "";
					vlen = strlen(val);
				}
				break;
			}
		if (val == NULL) {
			val = in;
			vlen = nlen = 1;
		}
		if (o + vlen >= outlen)
			return false;
		memcpy(out + o, val, vlen);
		o += vlen;
		in += nlen;
	}
	out[o] = '\0';
	return true;
}

static void
server_end(struct xml_state *x)
{
	struct disc_server	 s;
	char			 host[DISC_HOST_MAX + 2], *end;
	long			 port;
	int			 rank, *best;

	if (x->kind != K_IMAP && x->kind != K_SMTP)
		return;
	if (x->bad || x->host[0] == '\0' || x->port[0] == '\0')
		return;
	if (strcasecmp(x->sock, "SSL") == 0 || strcasecmp(x->sock, "TLS") == 0)
		rank = RANK_SSL;
	else if (strcasecmp(x->sock, "STARTTLS") == 0)
		rank = RANK_STARTTLS;
	else
		return;		/* "plain" or unknown: never suggested */
	port = strtol(x->port, &end, 10);
	if (*end != '\0' || x->port[0] < '0' || x->port[0] > '9')
		return;
	if (!expand(x->host, x->email, host, sizeof(host)) ||
	    !disc_server_set(&s, host, (int)(port > 65535 ? 0 : port),
	    rank == RANK_SSL))
		return;
	best = x->kind == K_IMAP ? &x->imap_rank : &x->smtp_rank;
	if (rank >= *best)
		return;
	*best = rank;
	if (x->kind == K_IMAP) {
		x->out->imap = s;
		x->out->has_imap = true;
	} else {
		x->out->smtp = s;
		x->out->has_smtp = true;
	}
}

static void XMLCALL
end_cb(void *arg, const XML_Char *name)
{
	struct xml_state *x = arg;

	(void)name;
	if (x->depth == 4)
		field_end(x);
	else if (x->depth == 3) {
		server_end(x);
		x->kind = K_NONE;
	}
	x->depth--;
}

static void XMLCALL
doctype_cb(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	xml_fail(arg, "document type declarations are not allowed");
}

int
disc_xml_parse(const char *xml, size_t len, const char *email,
    struct disc_settings *out, char *err, size_t errlen)
{
	struct xml_state	*x;
	enum XML_Status		 st;
	int			 rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > (size_t)0x7fffffff) {
		snprintf(err, errlen, "document too large");
		return -1;
	}
	/* Heap: the state holds a few KiB of buffers. */
	x = xcalloc(1, sizeof(*x));
	x->email = email;
	x->out = out;
	x->imap_rank = x->smtp_rank = RANK_NONE;
	if ((x->p = XML_ParserCreate(NULL)) == NULL)
		fatalx("disc_xml_parse: XML_ParserCreate failed");
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, start_cb, end_cb);
	XML_SetCharacterDataHandler(x->p, text_cb);
	XML_SetStartDoctypeDeclHandler(x->p, doctype_cb);
	st = XML_Parse(x->p, xml, (int)len, XML_TRUE);
	if (x->failed)
		snprintf(err, errlen, "%s", x->err);
	else if (st != XML_STATUS_OK)
		snprintf(err, errlen, "bad XML at line %lu: %s",
		    (unsigned long)XML_GetCurrentLineNumber(x->p),
		    XML_ErrorString(XML_GetErrorCode(x->p)));
	else if (!x->root_ok)
		snprintf(err, errlen, "not a clientConfig document");
	else
		rc = 0;
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	XML_ParserFree(x->p);
	free(x);
	return rc;
}
