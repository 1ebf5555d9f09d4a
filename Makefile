# recstream — the two commands a new user needs: `make demo` and `make test`.
# Both fetch what they need (ONNX Runtime from npm with a checksum check,
# ClickHouse from apt, Apache Kafka's jars from Maven Central) through
# `make setup`.

GO        ?= go
BIN       := bin/recstream
ORT_LIB   := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so
export ONNXRUNTIME_LIB ?= $(ORT_LIB)
ARGS      ?=
FUZZTIME  ?= 20s

.PHONY: all setup build demo test test-unit fuzz lint bench clean

all: build

## setup: fetch the ONNX Runtime library, install the ClickHouse server and
## fetch the Apache Kafka broker's jars (tests run a real KRaft cluster)
setup: .deps/onnxruntime/libonnxruntime.so .deps/clickhouse.stamp .deps/kafka/libs.stamp

.deps/onnxruntime/libonnxruntime.so: scripts/fetch-onnxruntime.sh
	./scripts/fetch-onnxruntime.sh
	@touch $@

.deps/clickhouse.stamp: scripts/clickhouse.sh
	./scripts/clickhouse.sh install
	@mkdir -p .deps && touch $@

# kafka.sh writes the stamp (the pom's sha256) itself, once the jars are in place.
.deps/kafka/libs.stamp: scripts/kafka.sh scripts/kafka/pom.xml
	./scripts/kafka.sh fetch

## build: the recstream binary in bin/
build:
	$(GO) build -o $(BIN) ./cmd/recstream

## demo: the whole pipeline on its embedded default; ARGS="..." passes flags
demo: setup build
	./$(BIN) demo $(ARGS)

## test: vet, formatting, unit and integration tests (real Kafka over TCP,
## a real ClickHouse server, the real ONNX Runtime), and a short fuzz run
test: setup lint
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run '^$$' -fuzz FuzzDecodeEvent -fuzztime $(FUZZTIME) ./schemas/

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: Go benchmarks of the per-event hot functions (decode, Arrow
## append, state gather/scatter, top-K records, output encoding; each with
## its allocations), then `recstream bench`: every stage against its
## ceiling in one run, report in .run/bench/ (bench.md, bench.json,
## bench.png). BENCH_ARGS="..." passes flags to it, for example
## BENCH_ARGS="--events 50000 --repeats 1" for a quick run.
BENCH_DIR  := .run/bench
BENCH_HOT  := ^Benchmark(DecodeEvent|EventBuilderAppend|DecodeAndAppend|StateGatherScatter|TopKRecords|AppendRecommendationRowJSON|RetrievalScore)$$
BENCH_ARGS ?=
bench: setup build
	@mkdir -p $(BENCH_DIR)
	$(GO) test -run '^$$' -bench '$(BENCH_HOT)' -benchmem -count 1 ./schemas/ ./consumers/ ./scorers/ > $(BENCH_DIR)/hot-functions.txt 2>&1; \
		status=$$?; cat $(BENCH_DIR)/hot-functions.txt; exit $$status
	./$(BIN) bench --data-dir $(BENCH_DIR)/data --markdown $(BENCH_DIR)/bench.md \
		--json $(BENCH_DIR)/bench.json --plot $(BENCH_DIR)/bench.png $(BENCH_ARGS)

## drill: every disaster-recovery scenario on a real 3-broker Apache Kafka
## cluster, ClickHouse and the recstream binary, then kill -9 over
## DRILL_SEEDS seeds with one core kept busy beside the pipeline (a
## guarantee holds only if it holds in every run: about 2 minutes a seed);
## reports, JSON and timelines in .run/drill/ (see docs/runbook.md).
## DRILL_ARGS="..." adds flags to both; DRILL_SEEDS=1-5 for a shorter sweep.
DRILL_ARGS  ?=
DRILL_SEEDS ?= 1-20
.PHONY: drill
drill: setup build
	@mkdir -p .run/drill
	./$(BIN) drill --scenarios all --seed 1 --events 20000 --kills 10 \
		--work-dir .run/drill/work --report .run/drill/report.md \
		--json .run/drill/drill.json --timeline .run/drill/timeline.png $(DRILL_ARGS)
	./$(BIN) drill --scenarios kill9 --seeds $(DRILL_SEEDS) --contention 1 --events 20000 --kills 10 \
		--work-dir .run/drill/work --report .run/drill/kill9-seeds.md \
		--json .run/drill/kill9-seeds.json --timeline .run/drill/kill9-worst.png $(DRILL_ARGS)

clean:
	rm -rf bin .run
