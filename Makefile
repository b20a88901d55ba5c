# halton-meter — GNU make build.
#
#   make            build ./halton-meter (-Wall -Wextra -Werror -O2 -g)
#   make test       install deps, build, run unit + e2e tests
#   make run        install deps, build, run the daemon in the foreground
#   make check      unit tests        make e2e    end-to-end tests (pytest)
#   make asan       unit tests under ASan + UBSan
#   make fuzz       libFuzzer targets (clang)   make fuzz-run FUZZ_SECONDS=30
#   make install    PREFIX=/usr/local DESTDIR=

VERSION    := $(shell cat VERSION)
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/halton-meter
UNAME_S    := $(shell uname -s)

CC         ?= cc
BUILD      ?= build
PKGS       := openssl libevent libevent_openssl sqlite3 libcjson zlib \
              libbrotlidec libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN       := -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wno-unused-parameter
OPT        ?= -O2 -g
CPPFLAGS   += -Iinclude -D_POSIX_C_SOURCE=200809L \
              -DHALTON_VERSION='"$(VERSION)"' -DHALTON_DATADIR='"$(DATADIR)"'
CFLAGS     += -std=c11 $(WARN) $(OPT) $(PKG_CFLAGS) -MMD -MP
LDLIBS     += $(PKG_LIBS) -lm -lpthread

# Platform-only files: name-linux.c builds on Linux only, name-macos.c on
# macOS only.  Everything else (the darwin *command* backend included, which
# is tested on Linux through fakes) builds everywhere.
ifeq ($(UNAME_S),Darwin)
PLATFORM_SKIP := %-linux.c
CPPFLAGS += -D_DARWIN_C_SOURCE
else
PLATFORM_SKIP := %-macos.c
endif

SRCS       := $(filter-out $(PLATFORM_SKIP), \
              $(wildcard src/base/*.c src/engine/*.c src/meter/*.c \
                         src/meter/providers/*.c src/store/*.c src/os/*.c \
                         src/cli/*.c))
LIB_SRCS   := $(filter-out src/cli/main.c,$(SRCS))
OBJS       := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB        := $(BUILD)/libhalton.a

TEST_SRCS  := $(wildcard tests/unit/test-*.c)
TEST_BINS  := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HARNESS    := $(BUILD)/tests/harness.o

FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 30

TOOL_SRCS  := $(wildcard tools/*/main.c)
TOOL_BINS  := $(TOOL_SRCS:tools/%/main.c=$(BUILD)/tools/%)

PYTHON     ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
PYTEST_ARGS ?=

.PHONY: all check e2e test asan fuzz fuzz-run install uninstall clean run \
        deps tools bench bench-smoke format

BIN        ?= halton-meter

all: $(BIN)

$(BIN): $(BUILD)/src/cli/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(HARNESS): tests/unit/harness.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(HARNESS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< \
	    $(HARNESS) $(LIB) $(LDLIBS)

$(BUILD)/tools/%: tools/%/main.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

tools: $(TOOL_BINS)

# Unit tests: every test binary prints its own counts; the runner adds them up
# and ends with the line "N passed, N failed".
check: $(TEST_BINS) $(BIN)
	@sh tests/unit/run.sh $(TEST_BINS)

e2e: $(BIN) tools
	@sh scripts/e2e-setup.sh
	cd tests/e2e && HALTON_METER_BIN=$(abspath $(BIN)) \
	    HALTON_METER_TOOLS=$(CURDIR)/$(BUILD)/tools \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

deps:
	@sh scripts/deps.sh

test: deps
	$(MAKE) all
	$(MAKE) check
	$(MAKE) e2e

asan: deps
	$(MAKE) BUILD=build-asan BIN=build-asan/halton-meter CC=clang \
	    OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" check

fuzz: $(FUZZ_BINS)

build-fuzz/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/fuzz-common.h $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(CPPFLAGS) -std=c11 -g -O1 $(PKG_CFLAGS) \
	    -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRCS) $(LDLIBS)

fuzz-run: fuzz
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

run: deps
	$(MAKE) all
	./halton-meter daemon --foreground

bench: deps
	$(MAKE) all tools
	sh scripts/bench.sh $(if $(PEERS),--peers)

bench-smoke: all tools
	sh scripts/bench.sh --smoke

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(DATADIR)/launchd $(DESTDIR)$(DATADIR)/systemd
	install -m 0755 halton-meter $(DESTDIR)$(BINDIR)/halton-meter
	install -m 0644 man/halton-meter.1 $(DESTDIR)$(MANDIR)/man1/halton-meter.1
	for f in launchd/* systemd/* share/*; do \
	    test -f "$$f" || continue; \
	    case $$f in share/*) d=$(DESTDIR)$(DATADIR);; \
	        *) d=$(DESTDIR)$(DATADIR)/$$(dirname $$f);; esac; \
	    install -m 0644 "$$f" "$$d/"; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/halton-meter \
	    $(DESTDIR)$(MANDIR)/man1/halton-meter.1
	rm -rf $(DESTDIR)$(DATADIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-fuzz halton-meter

-include $(OBJS:.o=.d) $(TEST_BINS:=.d) $(HARNESS:.o=.d)
