# cbrec — build, test, install. Plain GNU make; see README.md.
#   make                 libcbrec.a, libcbrec.so, ./cbrec
#   make test            unit + integration tests (last line: "N passed, N failed")
#   make test SANITIZE=1 the same tests under AddressSanitizer + UBSan
#   make test VALGRIND=1 the command-line tests with cbrec under valgrind (memcheck)
#   make test-tsan       the tests that run threads under ThreadSanitizer (build-tsan/; TSAN=1)
#   make bench           benchmarks (ratios against peers measured in the same run)
#   make python          the Python binding, importable from build/python/lib (python/)
#   make examples        examples/*.c built against include/ alone + the static library
#   make demo [DATA=PATH] the main job: train on MovieLens (or synthetic) and recommend
#   make install PREFIX=/usr/local

PREFIX    ?= /usr/local
CC        ?= cc
PKGS      := openblas jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
OPT       ?= -O2 -march=x86-64-v2
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -ffp-contract=off -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
              -Iinclude -Isrc $(PKG_CFLAGS)
LDLIBS    := $(PKG_LIBS) -lm -lpthread
# cbrec serve (src/serve): linked into the cbrec binary only, never into libcbrec
SERVE_PKGS   := libmicrohttpd sqlite3
SERVE_CFLAGS := $(shell pkg-config --cflags $(SERVE_PKGS))
SERVE_LIBS   := $(shell pkg-config --libs $(SERVE_PKGS))

# MPI (`mpirun -np K cbrec train`): compiled into the cbrec binary's driver
# (src/cli/mpi.c) when Open MPI's mpicc is there; libcbrec never links it.
# Without it cbrec builds and works, and says so when started by mpirun.
MPICC     := $(shell command -v mpicc 2>/dev/null)
ifneq ($(MPICC),)
  MPI_CFLAGS := -DCBREC_MPI $(shell $(MPICC) --showme:compile 2>/dev/null)
  MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
endif

ifeq ($(SANITIZE),1)
  BUILD   := build-san
  ALL_CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(TSAN),1)
  # ThreadSanitizer (make TSAN=1 build-tsan/tests/test_X, make test-tsan): its
  # own build directory, as it cannot be linked with ASan.
  BUILD   := build-tsan
  ALL_CFLAGS += -O1 -fsanitize=thread -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=thread
else
  BUILD   := build
endif

LAYERS    := base data features model index rec eval
LIB_SRC   := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.c))
CLI_SRC   := $(wildcard src/cli/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)
LIB_OBJ   := $(LIB_SRC:src/%.c=$(BUILD)/lib/%.o)
CLI_OBJ   := $(CLI_SRC:src/cli/%.c=$(BUILD)/cli/%.o)
SERVE_SRC := $(wildcard src/serve/*.c)
SERVE_OBJ := $(SERVE_SRC:src/serve/%.c=$(BUILD)/serve/%.o) $(BUILD)/serve/assets.o
# the page (web/*) and the OpenAPI document, embedded into the binary
WEB_ASSETS := $(wildcard web/*.html web/*.js web/*.css web/*.svg web/*.png web/*.ico)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

ifneq ($(filter 1,$(SANITIZE) $(TSAN)),)
all: $(BUILD)/libcbrec.a $(BUILD)/cbrec
CBREC := $(BUILD)/cbrec
else
all: libcbrec.a libcbrec.so cbrec
CBREC := ./cbrec
endif

LIB_HDR   := $(foreach d,$(LAYERS),$(wildcard src/$(d)/*.h))

$(BUILD)/lib/%.o: src/%.c $(LIB_HDR) include/cbrec.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/cli/%.o: src/cli/%.c $(LIB_HDR) $(wildcard src/cli/*.h) include/cbrec.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/cli/mpi.o: src/cli/mpi.c src/cli/cli.h include/cbrec.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c $< -o $@

# cbrec built without MPI, as on a machine without mpicc: test_mpi runs it
# as mpirun's ranks would (it must say so once and exit non-zero)
$(BUILD)/cli/mpi-none.o: src/cli/mpi.c src/cli/cli.h include/cbrec.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/serve/%.o: src/serve/%.c src/serve/serve.h src/cli/cli.h include/cbrec.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SERVE_CFLAGS) -c $< -o $@

$(BUILD)/serve/assets.c: scripts/embed-assets.sh $(WEB_ASSETS) src/serve/openapi.json
	@mkdir -p $(dir $@)
	scripts/embed-assets.sh $@ $(foreach f,$(WEB_ASSETS),$(f)=/$(notdir $(f))) src/serve/openapi.json=/openapi.json

$(BUILD)/serve/assets.o: $(BUILD)/serve/assets.c src/serve/serve.h include/cbrec.h
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libcbrec.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

libcbrec.a: $(BUILD)/libcbrec.a
	cp -f $< $@

# libcbrec.so.1 (the soname programs ask for) beside it, so a program linked
# here with -L. -lcbrec -Wl,-rpath,<this folder> runs without `make install`.
libcbrec.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libcbrec.so.1 -o $@ $^ $(LDFLAGS) $(LDLIBS)
	ln -sf libcbrec.so libcbrec.so.1

$(BUILD)/cbrec: $(CLI_OBJ) $(SERVE_OBJ) $(BUILD)/libcbrec.a
	$(CC) -o $@ $(CLI_OBJ) $(SERVE_OBJ) $(BUILD)/libcbrec.a $(LDFLAGS) $(LDLIBS) $(SERVE_LIBS) $(MPI_LIBS)

cbrec: $(BUILD)/cbrec
	cp -f $< $@

$(BUILD)/cbrec-nompi: $(filter-out $(BUILD)/cli/mpi.o,$(CLI_OBJ)) $(BUILD)/cli/mpi-none.o $(SERVE_OBJ) $(BUILD)/libcbrec.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(SERVE_LIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h tests/cliutil.h $(BUILD)/libcbrec.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcbrec.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/tests/test_mpi: $(BUILD)/cbrec-nompi

# Examples see the public header only (no -Isrc) and link the static library,
# so they run from the build tree without `make install`.
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
EXAMPLE_CFLAGS := $(filter-out -Isrc,$(ALL_CFLAGS))

$(BUILD)/examples/%: examples/%.c include/cbrec.h $(BUILD)/libcbrec.a
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) -o $@ $< $(BUILD)/libcbrec.a $(LDFLAGS) $(LDLIBS)

examples: $(EXAMPLE_BIN)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcbrec.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibench -o $@ $< $(BUILD)/libcbrec.a $(LDFLAGS) $(LDLIBS)

# make test VALGRIND=1: the command-line tests (the ones that run `cbrec`) with
# every cbrec process under valgrind's memcheck; any error or definite leak
# makes that command exit 99, which fails its test. The MovieLens-sized tests
# skip (CBREC_NO_SHARED_DATA): under memcheck they take tens of minutes.
VALGRIND_CMD := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
# make test-tsan: the tests that run threads (the training pool and its
# barriers, the index and table builds, batch recommend, one handle shared by
# threads, the ratings reader's hand-offs, cbrec serve's workers, events and
# reloads) under ThreadSanitizer, built in build-tsan/ with the cbrec they
# run, and test_cli (cbrec train, recommend, index... with threads; the
# MovieLens-sized runs skip: a default training on ml-latest-small takes more
# than 15 minutes under TSan). A race reported makes that binary (or the
# cbrec it ran, or the server its test stops and checks) exit 66: the test
# fails. OpenBLAS is not instrumented and has given no report, so there is
# no suppressions file. About 6 minutes on 2 cores: not part of make test
# (docs: README.md, "Tests, sanitizers").
TSAN_TESTS := test_parallel test_train_api test_model test_bundle test_recommend test_nn_sparse test_content \
              test_dataset_arrays test_ratings_fast test_knn test_hnsw test_neighbours test_evalrun test_serve_api test_serve \
              test_cli
ifeq ($(TSAN),1)
test test-tsan: all $(TSAN_TESTS:%=$(BUILD)/tests/%)
	@TSAN=1 CBREC_NO_SHARED_DATA=1 CBREC=$(CBREC) BUILD=$(BUILD) TSAN_OPTIONS="second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	  scripts/run-tests.sh $(TSAN_TESTS:%=$(BUILD)/tests/%)
else ifeq ($(VALGRIND),1)
test: all $(BUILD)/tests/test_cli $(BUILD)/tests/test_harden
	@VALGRIND=1 CBREC_NO_SHARED_DATA=1 CBREC="$(VALGRIND_CMD) $(CBREC)" BUILD=$(BUILD) scripts/run-tests.sh $(BUILD)/tests/test_cli $(BUILD)/tests/test_harden
else
test: all $(TEST_BIN) $(EXAMPLE_BIN) python
	@CBREC=$(CBREC) BUILD=$(BUILD) PYTHON=$(PYTHON) PY_BUILD_LIB=$(PY_BUILD_LIB) SANITIZE=$(SANITIZE) \
	  scripts/run-tests.sh $(TEST_BIN)
endif
ifneq ($(TSAN),1)
test-tsan: # BUILD and the flags are chosen when the Makefile is read: run it again with TSAN=1
	@$(MAKE) --no-print-directory TSAN=1 test-tsan
endif

bench: all $(BENCH_BIN) $(BUILD)/bench/serve_loop python
	@CBREC=$(CBREC) BUILD=$(BUILD) PYTHON=$(PYTHON) PYTHONPATH=$(PY_BUILD_LIB) scripts/run-bench.sh

# The Python binding (python/): `import cbrec` from $(PY_BUILD_LIB) for the
# tests and benchmarks, built by python/setup.py against this tree's static
# library. PYTHON is the first interpreter that has numpy (Debian's
# /usr/bin/python3 when another python3 comes first on PATH); `make python`
# says why and builds nothing when there is none or it lacks Python.h.
PYTHON ?= $(shell for p in python3 /usr/bin/python3; do $$p -c 'import numpy' 2>/dev/null && { command -v $$p; break; }; done)
PY_BUILD_LIB := $(BUILD)/python/lib
PY_ENV := $(if $(filter 1,$(SANITIZE)),CBREC_SANITIZE=1,)
python: $(BUILD)/libcbrec.a
	@if [ -z "$(PYTHON)" ]; then echo "make python: skipped: no python3 with numpy (install python3-numpy)"; \
	elif ! $(PYTHON) -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
	  echo "make python: skipped: no Python.h for $(PYTHON) (install python3-dev)"; \
	else cd python && CBREC_LIB=../$(BUILD)/libcbrec.a $(PY_ENV) $(PYTHON) setup.py -q build \
	  --build-base ../$(BUILD)/python/build --build-lib ../$(PY_BUILD_LIB); fi

# make demo DATA=PATH: MovieLens latest-small from PATH (else scripts/demo.sh looks for it)
demo: all
	@scripts/demo.sh $(if $(DATA),--data "$(DATA)")

# One Markdown page with the evaluation table, the retrieval experiment and the
# learning curves (about 9 minutes for five folds on 2 cores).
REPORT_DATA ?= ../shared/data/ml-100k
report: all
	$(CBREC) report --data $(REPORT_DATA) --folds u1,u2,u3,u4,u5 --seed 1 --out report/report.md

fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)
	@scripts/fuzz-model.sh $(FUZZ_SECONDS)
	@scripts/fuzz-targets.sh $(FUZZ_SECONDS)

# the version string alone (the header's line also carries a comment)
CB_VERSION := $(shell sed -n 's/^\#define CB_VERSION_STRING "\([^"]*\)".*/\1/p' include/cbrec.h)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 libcbrec.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 libcbrec.so $(DESTDIR)$(PREFIX)/lib/libcbrec.so.1
	ln -sf libcbrec.so.1 $(DESTDIR)$(PREFIX)/lib/libcbrec.so
	install -m 644 include/cbrec.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 cbrec $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@VERSION@|$(CB_VERSION)|' man/cbrec.1 > $(DESTDIR)$(PREFIX)/share/man/man1/cbrec.1
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(CB_VERSION)|' \
	    cbrec.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cbrec.pc

clean:
	rm -rf build build-san build-tsan libcbrec.a libcbrec.so libcbrec.so.* cbrec

.PHONY: all examples test test-tsan bench demo report fuzz install clean python
