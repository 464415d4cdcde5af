# dfreconcile - plain make; pkg-config finds every library.
#
#   make            build ./dfreconcile
#   make test       unit tests (cmocka) and end-to-end tests (pytest + simulators)
#   make check      the same tests with AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       run the built-in demo against local simulators
#   make soak       soak test (about 1.5 minutes, not in make test): 10 runs,
#                   half killed with SIGKILL, while users edit every system at
#                   150 edits a minute; then every value, duplicates, opt-outs
#                   and integrity_check are checked (tests/soak/soak.py)
#   make bench      N=10000: what a sync of N contacts costs the binary (CPU, RSS,
#                   state size, requests against the minimum), phase by phase,
#                   against local simulators in their lean mode (tests/bench/bench.py)
#   make install    PREFIX=/usr/local SYSCONFDIR=/etc LOCALSTATEDIR=/var DESTDIR= :
#                   binary, man pages, systemd service and timer, the example
#                   config (also as the config where there is none, 0600), the
#                   state directory (0700) and, as root without DESTDIR, the
#                   service user dfreconcile (scripts/install-user.sh)
#   make clean

VERSION  = 0.1.0
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
STATEDIR = $(LOCALSTATEDIR)/lib/dfreconcile
PKGS     = libcurl json-c sqlite3 libconfig
PKG_CONFIG ?= pkg-config
PYTHON  ?= /usr/bin/python3

CC      ?= cc
WERROR  ?=
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes $(WERROR)
CPPFLAGS += -D_GNU_SOURCE -DDF_VERSION='"$(VERSION)"'
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# The Debian package of each library pkg-config cannot find.
DEBPKG_libcurl = libcurl4-openssl-dev
DEBPKG_json-c = libjson-c-dev
DEBPKG_sqlite3 = libsqlite3-dev
DEBPKG_libconfig = libconfig-dev
MISSING := $(foreach p,$(PKGS),$(if $(shell $(PKG_CONFIG) --exists $(p) 2>/dev/null && echo y),,$(DEBPKG_$(p))))
MISSING += $(if $(shell command -v $(PKG_CONFIG)),,pkg-config)
MISSING := $(strip $(MISSING))

# The data flow, stage by stage (see engine/engine.h).
CORE  = core/err.c core/log.c core/logsys.c core/str.c core/record.c core/normalize.c core/rule.c core/config.c core/lock.c core/event.c core/tokenfile.c
HTTP  = http/http.c
CONN  = connectors/jsonmap.c connectors/ghl.c connectors/aloware.c connectors/verity.c connectors/texting.c connectors/oauth.c
STATE = state/open.c state/sql.c state/snapshot.c state/link.c state/journal.c state/outbox.c state/events.c
ENGINE = engine/merge.c engine/poll.c engine/observe.c engine/link.c engine/reconcile.c \
	 engine/plan.c engine/write.c engine/events.c engine/deliver.c engine/lists.c engine/sweep.c engine/progress.c engine/run.c \
	 engine/admin.c
REPORT = report/report.c report/html.c report/explain.c report/queries.c report/status.c report/metrics.c
LIBSRC = $(CORE) $(HTTP) $(CONN) $(STATE) $(ENGINE) $(REPORT)

MAKEFLAGS += --no-print-directory

BUILD ?= build
OBJ    = $(LIBSRC:%.c=$(BUILD)/%.o)
UNIT   = test_normalize test_merge test_state test_config test_flows test_input test_http test_plans
UNITBIN = $(UNIT:%=$(BUILD)/tests/%)

all: dfreconcile

dfreconcile: $(BUILD)/dfreconcile
	cp $< $@

$(BUILD)/dfreconcile: $(OBJ) $(BUILD)/dfreconcile.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/%.o: %.c $(wildcard */*.h) | depcheck
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -o $@ $< $(OBJ) $(PKG_LIBS) -lcmocka

# Checked when something is compiled, not when the Makefile is read: "make
# test" installs the packages first, then builds in a new make.
depcheck:
ifneq ($(MISSING),)
	@echo "dfreconcile: cannot build: missing Debian packages: $(MISSING)" >&2
	@echo "install them as root with:  apt-get install $(MISSING)   (or run: make deps)" >&2
	@exit 1
endif

deps:
	@scripts/install-deps.sh

unit: $(UNITBIN)
	@for t in $(UNITBIN); do $$t || exit 1; done

# The e2e tests put Prism (GHL's official specs) in front of the GHL
# simulator; without node/npm the install says so and the tests skip it.
e2e: dfreconcile
	@scripts/install-prism.sh
	DFRECONCILE_BIN=$(CURDIR)/dfreconcile $(PYTHON) -m pytest -q tests/e2e

test: deps
	$(MAKE) unit
	$(MAKE) e2e

check: deps
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" unit build-san/dfreconcile
	@scripts/install-prism.sh
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		DFRECONCILE_BIN=$(CURDIR)/build-san/dfreconcile $(PYTHON) -m pytest -q tests/e2e

demo: deps
	$(MAKE) dfreconcile
	$(PYTHON) tests/demo.py

N ?= 10000
bench: dfreconcile
	$(PYTHON) tests/bench/bench.py $(N) --bin $(CURDIR)/dfreconcile

soak: deps
	$(MAKE) dfreconcile
	DFRECONCILE_BIN=$(CURDIR)/dfreconcile $(PYTHON) tests/soak/soak.py

UNIT_PATHS = -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@STATEDIR@|$(STATEDIR)|g'

install: dfreconcile
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(PREFIX)/share/doc/dfreconcile $(DESTDIR)$(UNITDIR)
	install -m 0755 dfreconcile $(DESTDIR)$(BINDIR)/dfreconcile
	install -m 0644 man/dfreconcile.1 $(DESTDIR)$(MANDIR)/man1/dfreconcile.1
	install -m 0644 man/dfreconcile.conf.5 $(DESTDIR)$(MANDIR)/man5/dfreconcile.conf.5
	install -m 0644 etc/dfreconcile.conf crontab.example $(DESTDIR)$(PREFIX)/share/doc/dfreconcile/
	sed $(UNIT_PATHS) etc/systemd/dfreconcile.service.in > $(DESTDIR)$(UNITDIR)/dfreconcile.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/dfreconcile.service
	install -m 0644 etc/systemd/dfreconcile.timer $(DESTDIR)$(UNITDIR)/dfreconcile.timer
	@# The example becomes the configuration only where there is none yet;
	@# it will hold tokens or name token files, so only its owner reads it.
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/dfreconcile
	test -e $(DESTDIR)$(SYSCONFDIR)/dfreconcile/dfreconcile.conf || \
		install -m 0600 etc/dfreconcile.conf $(DESTDIR)$(SYSCONFDIR)/dfreconcile/dfreconcile.conf
	install -d -m 0700 $(DESTDIR)$(STATEDIR)
	@scripts/install-user.sh $(SYSCONFDIR) $(STATEDIR) "$(DESTDIR)"

clean:
	rm -rf build build-san dfreconcile tests/e2e/__pycache__ tests/sim/__pycache__ .pytest_cache

.PHONY: all depcheck deps unit e2e test check demo soak bench install clean
