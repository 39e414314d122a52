# Postern: one non-recursive GNU Makefile. Objects go to build/ (build-san/
# for the sanitizer build). Sources are picked up by directory, so a new
# module needs no edit here.

PREFIX	?= /usr/local
DESTDIR	?=
SAN	?= 0

WARN	= -Wall -Wextra -Wshadow -Wpointer-arith -Wwrite-strings \
	  -Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations \
	  -Wformat=2 -Wimplicit-fallthrough -Wundef -Wvla
WERROR	?= -Werror
OPT	?= -O2 -g
PKGS	= libevent libevent_openssl openssl hiredis libcurl libcjson inih libsasl2 \
	  libcares expat

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null | sed 's/-I/-isystem /g')
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS	+= -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) $(OPT) -MMD -MP -I. \
	   -fstack-protector-strong $(PKG_CFLAGS)
LDLIBS	+= $(PKG_LIBS)

ifeq ($(SAN),1)
B	= build-san
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
	   -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
else
B	= build
CFLAGS	+= -D_FORTIFY_SOURCE=2
endif

LIB_SRC	= $(wildcard common/*.c tokenstore/*.c auth/*.c upstream/*.c admin/*.c \
	  discover/*.c) \
	  $(filter-out proxy/main.c,$(wildcard proxy/*.c))
LIB_OBJ	= $(LIB_SRC:%.c=$(B)/%.o)
D_OBJ	= $(B)/proxy/main.o
CTL_SRC	= $(wildcard ctl/*.c)
CTL_OBJ	= $(CTL_SRC:%.c=$(B)/%.o)
UT_SRC	= $(wildcard tests/unit/*.c)
UT_OBJ	= $(UT_SRC:%.c=$(B)/%.o)

.PHONY: all deps run test check unit integration fuzz fuzz-replay bench \
	install clean
.DEFAULT_GOAL := all

all: $(B)/posternd $(B)/posternctl
ifeq ($(SAN),0)
	@ln -sf $(B)/posternd posternd
	@ln -sf $(B)/posternctl posternctl
endif

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libpostern.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/posternd: $(D_OBJ) $(B)/libpostern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/posternctl: $(CTL_OBJ) $(B)/libpostern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests self-register (tests/unit/test.h), so every t_*.c is linked
# whole; the library archive supplies what they use.
$(B)/unit: $(UT_OBJ) $(B)/libpostern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@scripts/deps.sh

run: deps all
	@scripts/run.sh

unit: $(B)/unit
	$(B)/unit

integration: all
	tests/integration/run.sh $(B)

test:
	@scripts/deps.sh test
	$(MAKE) all $(B)/unit
	$(B)/unit
	tests/integration/run.sh $(B)

check:
	@scripts/deps.sh test
	$(MAKE) SAN=1 all build-san/unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 build-san/unit
	# A smaller quarantine than ASan's 256 MB: the tests that bound
	# posternd's RSS under load must not measure freed memory ASan keeps.
	ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=8 \
	    tests/integration/run.sh build-san

fuzz:
	@scripts/deps.sh test
	tests/fuzz/run.sh run

fuzz-replay:
	tests/fuzz/run.sh replay

bench: deps all
	@scripts/deps.sh bench
	bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)/etc/postern \
	    $(DESTDIR)/lib/systemd/system
	install -m 0755 $(B)/posternd $(DESTDIR)$(PREFIX)/sbin/posternd
	install -m 0755 $(B)/posternctl $(DESTDIR)$(PREFIX)/bin/posternctl
	install -m 0644 man/posternctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 man/postern.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 man/posternd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 etc/postern.conf.example $(DESTDIR)/etc/postern/
	install -m 0644 etc/postern.service $(DESTDIR)/lib/systemd/system/

clean:
	rm -rf build build-san build-fuzz posternd posternctl

-include $(LIB_OBJ:.o=.d) $(D_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(UT_OBJ:.o=.d)
