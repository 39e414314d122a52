/*
 * Tables, key/value lines and JSON printing for posternctl. Widths count
 * UTF-8 code points, which is right for the ASCII and Latin text that
 * descriptions and names mostly hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "ctl/ctl_out.h"

struct ctl_out_table {
	size_t	  ncols;
	char	**cells;	/* headers first, then rows, row-major */
	size_t	  ncells;
	size_t	  cap;
};

static const char *const secret_keys[] = {
	"pass", "password", "accessToken", "refreshToken", "clientSecret",
	"secret", NULL,
};

char *
ctl_out_clean(const char *s, size_t maxw)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out, *o;
	size_t			 w = 0, total = str_utf8_len(s);

	o = out = xmalloc(strlen(s) + 4);
	for (; *p != '\0'; p++) {
		if ((*p & 0xc0) != 0x80) {
			if (maxw > 3 && total > maxw && w == maxw - 3) {
				memcpy(o, "...", 3);
				o += 3;
				break;
			}
			w++;
		}
		if (*p < 0x20 || *p == 0x7f)
			*o++ = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			*o++ = '?';	/* C1 controls: U+0080..U+009F */
			p++;
		} else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

const char *
ctl_out_str(const cJSON *obj, const char *key)
{
	const cJSON	*j;

	if (obj == NULL)
		return NULL;
	j = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

char *
ctl_out_member(const cJSON *obj, const char *key, const char *none,
    size_t maxw)
{
	const char	*s = ctl_out_str(obj, key);

	return ctl_out_clean(s != NULL ? s : none, maxw);
}

void
ctl_out_time(const cJSON *obj, const char *key, const char *none, char *out,
    size_t outlen)
{
	const char	*s = ctl_out_str(obj, key);
	char		*c;
	long long	 ms;
	time_t		 t;
	struct tm	 tm;

	if (s == NULL || *s == '\0') {
		snprintf(out, outlen, "%s", none);
		return;
	}
	ms = str_iso8601_parse(s);
	t = (time_t)(ms / 1000);
	if (ms == -1 || gmtime_r(&t, &tm) == NULL) {
		c = ctl_out_clean(s, 32);
		snprintf(out, outlen, "%s", c);
		free(c);
		return;
	}
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *
ctl_out_join(const cJSON *obj, const char *key, const char *none)
{
	const cJSON	*arr, *e;
	char		*out = NULL, *c, *n;

	arr = obj != NULL ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
	if (cJSON_IsString(arr))
		return ctl_out_clean(arr->valuestring, 0);
	cJSON_ArrayForEach(e, arr) {
		if (!cJSON_IsString(e))
			continue;
		c = ctl_out_clean(e->valuestring, 0);
		n = out == NULL ? c : xasprintf("%s,%s", out, c);
		if (n != c)
			free(c);
		free(out);
		out = n;
	}
	return out != NULL ? out : xstrdup(none);
}

struct ctl_out_table *
ctl_out_table_new(const char *const *headers)
{
	struct ctl_out_table	*t = xcalloc(1, sizeof(*t));

	while (headers[t->ncols] != NULL)
		ctl_out_table_add(t, headers[t->ncols++]);
	return t;
}

void
ctl_out_table_add(struct ctl_out_table *t, const char *cell)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap == 0 ? 64 : t->cap * 2;
		t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->ncells++] = ctl_out_clean(cell != NULL ? cell : "-", 0);
}

void
ctl_out_table_print(const struct ctl_out_table *t, FILE *fp)
{
	size_t	*w, i, col, pad;

	if (t->ncols == 0)
		return;
	w = xcalloc(t->ncols, sizeof(*w));
	for (i = 0; i < t->ncells; i++)
		if (str_utf8_len(t->cells[i]) > w[i % t->ncols])
			w[i % t->ncols] = str_utf8_len(t->cells[i]);
	for (i = 0; i < t->ncells; i++) {
		col = i % t->ncols;
		fputs(t->cells[i], fp);
		if (col == t->ncols - 1 || i == t->ncells - 1) {
			fputc('\n', fp);
			continue;
		}
		for (pad = str_utf8_len(t->cells[i]); pad < w[col] + 2; pad++)
			fputc(' ', fp);
	}
	free(w);
}

void
ctl_out_table_free(struct ctl_out_table **tp)
{
	struct ctl_out_table	*t = *tp;
	size_t			 i;

	if (t == NULL)
		return;
	*tp = NULL;
	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

static int
is_secret_key(const char *k)
{
	size_t	i;

	for (i = 0; k != NULL && secret_keys[i] != NULL; i++)
		if (strcmp(k, secret_keys[i]) == 0)
			return 1;
	return 0;
}

struct kv {
	char	**k;
	char	**v;
	size_t	  n;
	size_t	  cap;
};

/* Takes ownership of k and v. */
static void
kv_add(struct kv *kv, char *k, char *v)
{
	if (kv->n == kv->cap) {
		kv->cap = kv->cap == 0 ? 32 : kv->cap * 2;
		kv->k = xrealloc(kv->k, kv->cap * sizeof(*kv->k));
		kv->v = xrealloc(kv->v, kv->cap * sizeof(*kv->v));
	}
	kv->k[kv->n] = k;
	kv->v[kv->n++] = v;
}

static char *
scalar_text(const cJSON *j, const char *nulltext)
{
	char	*p, *s;

	if (cJSON_IsString(j))
		return ctl_out_clean(j->valuestring, 0);
	if (cJSON_IsNull(j))
		return xstrdup(nulltext);
	if ((p = cJSON_PrintUnformatted(j)) == NULL)
		return xstrdup("?");
	s = ctl_out_clean(p, 0);
	cJSON_free(p);
	return s;
}

static int
is_scalar_array(const cJSON *arr)
{
	const cJSON	*e;

	cJSON_ArrayForEach(e, arr)
		if (cJSON_IsObject(e) || cJSON_IsArray(e))
			return 0;
	return 1;
}

static void
kv_flatten(struct kv *kv, const char *prefix, const cJSON *j,
    const char *nulltext, bool redact)
{
	const cJSON	*c;
	char		*key, *v, *s, *n;
	int		 i = 0;

	if (cJSON_IsObject(j) && j->child != NULL) {
		cJSON_ArrayForEach(c, j) {
			key = prefix == NULL ? ctl_out_clean(c->string, 0) :
			    xasprintf("%s.%s", prefix, c->string);
			if (redact && is_secret_key(c->string) &&
			    !cJSON_IsNull(c))
				kv_add(kv, key, xstrdup(CTL_OUT_MASK));
			else {
				kv_flatten(kv, key, c, nulltext, redact);
				free(key);
			}
		}
	} else if (cJSON_IsObject(j)) {
		if (prefix != NULL)
			kv_add(kv, xstrdup(prefix), xstrdup("-"));
	} else if (cJSON_IsArray(j) && j->child != NULL && is_scalar_array(j)) {
		v = NULL;
		cJSON_ArrayForEach(c, j) {
			s = scalar_text(c, nulltext);
			n = v == NULL ? s : xasprintf("%s, %s", v, s);
			if (n != s)
				free(s);
			free(v);
			v = n;
		}
		kv_add(kv, xstrdup(prefix != NULL ? prefix : "value"), v);
	} else if (cJSON_IsArray(j) && j->child != NULL) {
		cJSON_ArrayForEach(c, j) {
			key = xasprintf("%s[%d]", prefix != NULL ? prefix : "",
			    i++);
			kv_flatten(kv, key, c, nulltext, redact);
			free(key);
		}
	} else if (cJSON_IsArray(j)) {
		kv_add(kv, xstrdup(prefix != NULL ? prefix : "value"),
		    xstrdup("-"));
	} else
		kv_add(kv, xstrdup(prefix != NULL ? prefix : "value"),
		    scalar_text(j, nulltext));
}

void
ctl_out_kv(FILE *fp, const cJSON *j, const char *nulltext, bool redact)
{
	struct kv	kv = { 0 };
	size_t		i, w = 0;

	kv_flatten(&kv, NULL, j, nulltext, redact);
	for (i = 0; i < kv.n; i++)
		if (str_utf8_len(kv.k[i]) > w)
			w = str_utf8_len(kv.k[i]);
	for (i = 0; i < kv.n; i++) {
		fprintf(fp, "%s:%*s %s\n", kv.k[i],
		    (int)(w - str_utf8_len(kv.k[i])), "", kv.v[i]);
		free(kv.k[i]);
		free(kv.v[i]);
	}
	free(kv.k);
	free(kv.v);
}

static void
json_redact(cJSON *j)
{
	cJSON	*c, *m;

	for (c = j->child; c != NULL; c = c->next) {
		if (c->string != NULL && is_secret_key(c->string) &&
		    !cJSON_IsNull(c)) {
			if ((m = cJSON_CreateString(CTL_OUT_MASK)) == NULL)
				abort();	/* out of memory */
			/* ViaPointer drops the key; cJSON free()s this one. */
			m->string = xstrdup(c->string);
			cJSON_ReplaceItemViaPointer(j, c, m);
			c = m;		/* took c's place; c is freed */
		} else if (cJSON_IsObject(c) || cJSON_IsArray(c))
			json_redact(c);
	}
}

static void
json_put_string(FILE *fp, const char *s)
{
	const unsigned char	*p;

	fputc('"', fp);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", fp);
		else if (*p == '\t')
			fputs("\\t", fp);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p);
		else
			fputc(*p, fp);
	}
	fputc('"', fp);
}

/* jq-style layout: two-space indent, one member or element per line. */
static void
json_put(FILE *fp, const cJSON *j, int depth)
{
	const cJSON	*c;
	char		*s;
	int		 obj = cJSON_IsObject(j);

	if (!obj && !cJSON_IsArray(j)) {
		if (cJSON_IsString(j))
			json_put_string(fp, j->valuestring);
		else if ((s = cJSON_PrintUnformatted(j)) != NULL) {
			fputs(s, fp);
			cJSON_free(s);
		}
		return;
	}
	if (j->child == NULL) {
		fputs(obj ? "{}" : "[]", fp);
		return;
	}
	fputs(obj ? "{\n" : "[\n", fp);
	cJSON_ArrayForEach(c, j) {
		fprintf(fp, "%*s", (depth + 1) * 2, "");
		if (obj) {
			json_put_string(fp, c->string != NULL ? c->string : "");
			fputs(": ", fp);
		}
		json_put(fp, c, depth + 1);
		fputs(c->next != NULL ? ",\n" : "\n", fp);
	}
	fprintf(fp, "%*s%c", depth * 2, "", obj ? '}' : ']');
}

void
ctl_out_json(FILE *fp, const cJSON *j, bool redact)
{
	cJSON	*copy = NULL;

	if (redact) {
		if ((copy = cJSON_Duplicate(j, 1)) == NULL)
			abort();	/* out of memory */
		json_redact(copy);
		j = copy;
	}
	json_put(fp, j, 0);
	fputc('\n', fp);
	cJSON_Delete(copy);
}

static long long
num_member(const cJSON *obj, const char *key)
{
	const cJSON	*j = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(j) ? (long long)j->valuedouble : -1;
}

void
ctl_out_page_footer(FILE *fp, const cJSON *res, const char *one,
    const char *many)
{
	long long	total = num_member(res, "total");
	long long	page = num_member(res, "page");
	long long	pages = num_member(res, "pages");

	if (total < 0)
		return;
	if (pages > 1 && page >= 0 && page + 1 < pages)
		fprintf(fp, "%lld %s in total; page %lld of 0..%lld shown, "
		    "next: --page %lld\n", total, total == 1 ? one : many,
		    page, pages - 1, page + 1);
	else if (pages > 1 && page >= 0)
		fprintf(fp, "%lld %s in total; page %lld of 0..%lld shown\n",
		    total, total == 1 ? one : many, page, pages - 1);
	else
		fprintf(fp, "%lld %s\n", total, total == 1 ? one : many);
}
