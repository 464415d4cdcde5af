# dfreconcile - plain make; pkg-config finds every library.
#
#   make            build ./dfreconcile
#   make test       unit tests (cmocka) and end-to-end tests (pytest + simulators)
#   make check      the same tests with AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       run the built-in demo against local simulators
#   make bench      N=10000: what a sync of N contacts costs the binary (CPU, RSS,
#                   state size, requests against the minimum), phase by phase,
#                   against local simulators in their lean mode (tests/bench/bench.py)
#   make install    PREFIX=/usr/local SYSCONFDIR=/etc DESTDIR= : binary, man
#                   pages, example config (also as the config where there is none)
#   make clean

VERSION  = 0.1.0
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
PKGS     = libcurl json-c sqlite3 libconfig
PYTHON  ?= /usr/bin/python3

CC      ?= cc
WERROR  ?=
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes $(WERROR)
CPPFLAGS += -D_GNU_SOURCE -DDF_VERSION='"$(VERSION)"'
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# The data flow, stage by stage (see engine/engine.h).
CORE  = core/err.c core/log.c core/str.c core/record.c core/normalize.c core/config.c core/lock.c core/event.c
HTTP  = http/http.c
CONN  = connectors/jsonmap.c connectors/ghl.c connectors/aloware.c connectors/verity.c connectors/texting.c
STATE = state/state.c
ENGINE = engine/merge.c engine/poll.c engine/observe.c engine/link.c engine/reconcile.c \
	 engine/plan.c engine/write.c engine/events.c engine/deliver.c engine/lists.c engine/sweep.c engine/run.c
REPORT = report/report.c
LIBSRC = $(CORE) $(HTTP) $(CONN) $(STATE) $(ENGINE) $(REPORT)

MAKEFLAGS += --no-print-directory

BUILD ?= build
OBJ    = $(LIBSRC:%.c=$(BUILD)/%.o)
UNIT   = test_normalize test_merge test_state test_config test_flows test_plans
UNITBIN = $(UNIT:%=$(BUILD)/tests/%)

all: dfreconcile

dfreconcile: $(BUILD)/dfreconcile
	cp $< $@

$(BUILD)/dfreconcile: $(OBJ) $(BUILD)/dfreconcile.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -o $@ $< $(OBJ) $(PKG_LIBS) -lcmocka

deps:
	@scripts/install-deps.sh

unit: $(UNITBIN)
	@for t in $(UNITBIN); do $$t || exit 1; done

e2e: dfreconcile
	DFRECONCILE_BIN=$(CURDIR)/dfreconcile $(PYTHON) -m pytest -q tests/e2e

test: deps
	$(MAKE) unit
	$(MAKE) e2e

check: deps
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" unit build-san/dfreconcile
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		DFRECONCILE_BIN=$(CURDIR)/build-san/dfreconcile $(PYTHON) -m pytest -q tests/e2e

demo: deps
	$(MAKE) dfreconcile
	$(PYTHON) tests/demo.py

N ?= 10000
bench: dfreconcile
	$(PYTHON) tests/bench/bench.py $(N) --bin $(CURDIR)/dfreconcile

install: dfreconcile
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/doc/dfreconcile
	install -m 0755 dfreconcile $(DESTDIR)$(PREFIX)/bin/dfreconcile
	install -m 0644 man/dfreconcile.1 $(DESTDIR)$(PREFIX)/share/man/man1/dfreconcile.1
	install -m 0644 man/dfreconcile.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/dfreconcile.conf.5
	install -m 0644 etc/dfreconcile.conf crontab.example $(DESTDIR)$(PREFIX)/share/doc/dfreconcile/
	@# The example becomes the configuration only where there is none yet.
	install -d $(DESTDIR)$(SYSCONFDIR)/dfreconcile
	test -e $(DESTDIR)$(SYSCONFDIR)/dfreconcile/dfreconcile.conf || \
		install -m 0640 etc/dfreconcile.conf $(DESTDIR)$(SYSCONFDIR)/dfreconcile/dfreconcile.conf

clean:
	rm -rf build build-san dfreconcile tests/e2e/__pycache__ tests/sim/__pycache__ .pytest_cache

.PHONY: all deps unit e2e test check demo bench install clean
