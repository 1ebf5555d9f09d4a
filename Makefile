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

## bench: Go benchmarks of the hot paths
bench: setup
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./schemas/ ./consumers/ ./scorers/ ./sinks/

clean:
	rm -rf bin .run
