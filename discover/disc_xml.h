/*
 * Parser for Mozilla autoconfig documents (clientConfig version 1.1, as
 * served by autoconfig.DOMAIN, /.well-known/autoconfig and Thunderbird's
 * ISPDB), with expat. Pure: bytes in, settings out, no I/O.
 */
#ifndef DISCOVER_DISC_XML_H
#define DISCOVER_DISC_XML_H

#include <stddef.h>

#include "discover/disc.h"

#define DISC_XML_DEPTH_MAX	16	/* the format nests 4 deep */
#define DISC_XML_TEXT_MAX	512	/* one element's text */

/*
 * Parses xml (len bytes, any encoding expat knows; no DTD allowed) for
 * address email (its local part and domain fill the %EMAILLOCALPART%,
 * %EMAILDOMAIN% and %EMAILADDRESS% placeholders of host names). Picks the
 * best IMAP incomingServer and SMTP outgoingServer: socketType SSL before
 * STARTTLS, then document order; "plain" servers are never chosen. Returns
 * 0 with what was found in *out (possibly neither half), or -1 with a
 * short reason in err (not XML, not a clientConfig, DTD, too deep).
 */
int	 disc_xml_parse(const char *xml, size_t len, const char *email,
	    struct disc_settings *out, char *err, size_t errlen);

#endif
