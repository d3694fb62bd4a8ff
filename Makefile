# orderpipe — one Makefile for the services, the shared library, tests and benchmarks.
#
#   make            build everything (release flags, build/rel)
#   make run        install what is missing, build, start the whole stack
#   make test       install what is missing, build under ASan+UBSan, run every test
#   make test-compose  docker-compose.yml on a real Docker engine (tests/compose/run.sh)
#   make bench      every benchmark (make bench BENCH=book for one)
#   make lint       cppcheck + clang-tidy
#   make fmt        clang-format in place (make fmt-check to verify only)
#   make clean

SHELL := /bin/bash

SANITIZER ?=
WERROR ?= 0
ifeq ($(SANITIZER),)
BUILD ?= build/rel
OPT ?= -O2 -g
else
BUILD ?= build/san
OPT ?= -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
endif

CC ?= cc
WARN := -std=c11 -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
        -Wwrite-strings -Wvla -Wno-missing-field-initializers
ifeq ($(WERROR),1)
WARN += -Werror
endif
# shared/banned.h turns calls of strcpy, sprintf, atoi … into compile errors
# in every project file (it includes the system headers it needs first).
CPPFLAGS += -D_GNU_SOURCE -I. -I/usr/include/hiredis -I/usr/include/postgresql \
            -include shared/banned.h -MMD -MP
CFLAGS += $(WARN) $(OPT)
LDFLAGS += $(if $(SANITIZER),-fsanitize=$(SANITIZER))
LDLIBS := -lhiredis -lmsgpackc -lpq -lpthread -lm

# --- sources --------------------------------------------------------------
LIB_SRCS    := $(wildcard shared/*.c)
# The matching engine core: pure code, no I/O, in its own folder.
ENGINE_SRCS := $(wildcard matcher/engine/*.c)
INGEST_SRCS := $(wildcard ingest/*.c)
MATCHER_SRCS := $(wildcard matcher/*.c)
RECORDER_SRCS := $(wildcard recorder/*.c)
FEED_SRCS   := $(wildcard feed/*.c)
TOOL_SRCS   := $(wildcard ops/tools/*.c)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
INTEG_SRCS  := $(wildcard tests/integration/test_*.c)
BENCH_SRCS  := $(wildcard bench/bench_*.c)
BENCH_TOOL_SRCS := $(wildcard bench/tools/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBOP     := $(BUILD)/libop.a
LIBENGINE := $(BUILD)/libengine.a
# ingest's pure parts (JSON, validation, the rate limiter, CORS origins), for unit tests
INGEST_CORE_SRCS := ingest/json.c ingest/order.c ingest/ratelimit.c ingest/cors.c
LIBINGEST := $(BUILD)/libingest.a
# the recorder's pure part (decode, merge, binary COPY rows), for unit tests
RECORDER_CORE_SRCS := recorder/batch.c recorder/copybin.c
LIBRECORDER := $(BUILD)/librecorder.a
# its PostgreSQL side, for integration tests that commit batches themselves
RECORDER_STORE_SRCS := recorder/store.c recorder/stats.c
LIBRECSTORE := $(BUILD)/librecstore.a
# the feed's pure parts (book JSON in and out, report JSON), for unit tests
FEED_CORE_SRCS := feed/book.c feed/format.c
LIBFEED := $(BUILD)/libfeed.a
BINS := $(if $(INGEST_SRCS),$(BUILD)/bin/orderpipe-ingest) \
        $(if $(MATCHER_SRCS),$(BUILD)/bin/orderpipe-matcher) \
        $(if $(RECORDER_SRCS),$(BUILD)/bin/orderpipe-recorder) \
        $(if $(FEED_SRCS),$(BUILD)/bin/orderpipe-feed) \
        $(patsubst ops/tools/%.c,$(BUILD)/bin/%,$(TOOL_SRCS))
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS)) \
              $(patsubst bench/tools/%.c,$(BUILD)/bench/tools/%,$(BENCH_TOOL_SRCS))

ALL_OBJS := $(call obj,$(LIB_SRCS) $(ENGINE_SRCS) $(INGEST_SRCS) $(MATCHER_SRCS) \
              $(RECORDER_SRCS) $(FEED_SRCS) $(TOOL_SRCS) $(UNIT_SRCS) $(INTEG_SRCS) $(BENCH_SRCS) $(BENCH_TOOL_SRCS))

.PHONY: all run test test-unit test-integration test-compose bench lint fmt fmt-check clean deps \
        check-build stack-start stack-stop
.DEFAULT_GOAL := all
# Keep object files of pattern-built binaries (make would delete them as intermediates).
.SECONDARY:

all: $(LIBOP) $(LIBENGINE) $(LIBINGEST) $(LIBRECORDER) $(LIBRECSTORE) $(LIBFEED) $(BINS) $(UNIT_BINS) $(INTEG_BINS) $(BENCH_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIBOP): $(call obj,$(LIB_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIBENGINE): $(call obj,$(ENGINE_SRCS)) $(LIBOP)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $(call obj,$(ENGINE_SRCS))

$(LIBINGEST): $(call obj,$(INGEST_CORE_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIBRECORDER): $(call obj,$(RECORDER_CORE_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIBRECSTORE): $(call obj,$(RECORDER_STORE_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIBFEED): $(call obj,$(FEED_CORE_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/orderpipe-ingest: $(call obj,$(INGEST_SRCS)) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lmicrohttpd $(LDLIBS)

$(BUILD)/bin/orderpipe-matcher: $(call obj,$(MATCHER_SRCS)) $(LIBENGINE) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lmicrohttpd $(LDLIBS)

$(BUILD)/bin/orderpipe-recorder: $(call obj,$(RECORDER_SRCS)) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lmicrohttpd $(LDLIBS)

# The feed parses its clients' JSON with ingest's strict parser (libingest).
$(BUILD)/bin/orderpipe-feed: $(call obj,$(FEED_SRCS)) $(LIBINGEST) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lwebsockets $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/ops/tools/%.o $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIBFEED) $(LIBINGEST) $(LIBRECORDER) $(LIBENGINE) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(LIBRECSTORE) $(LIBRECORDER) $(LIBENGINE) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(BUILD)/bench/tools/%: $(BUILD)/obj/bench/tools/%.o $(LIBINGEST) $(LIBENGINE) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lmicrohttpd $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBENGINE) $(LIBOP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

-include $(ALL_OBJS:.o=.d)

# --- the README's commands -------------------------------------------------

# Installs the Debian packages only when something is missing (fast no-op otherwise).
deps:
	@ops/install-deps.sh --if-missing

run: deps
	@$(MAKE) --no-print-directory all
	@OP_BUILD=$(BUILD) ops/run.sh

# The tests always run under ASan+UBSan: a memory error fails the suite.
test: deps
	@$(MAKE) --no-print-directory SANITIZER=address,undefined test-unit test-integration

# docker-compose.yml on a real Docker engine: starts dockerd when none answers
# (installing it), builds stand-in images when no registry can be reached.
test-compose: deps
	@tests/compose/run.sh

test-unit: all
	@tests/run-unit.sh $(BUILD)

test-integration: all
	@tests/run-integration.sh $(BUILD)

BENCH ?=
bench: deps
	@$(MAKE) --no-print-directory all
	@OP_BUILD=$(BUILD) bench/run.sh $(BUILD) $(BENCH)

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem --std=c11 -I. \
	  shared ingest matcher recorder feed ops/tools
	clang-tidy --quiet $(filter %.c,$(C_FILES)) -- $(filter-out -MMD -MP,$(CPPFLAGS)) -std=c11

fmt:
	clang-format -i $(C_FILES)

fmt-check:
	clang-format --dry-run --Werror $(C_FILES)

clean:
	rm -rf build
