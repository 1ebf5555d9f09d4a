# recstream image: the Go binary (cgo, for ONNX Runtime) on Debian, with the
# ONNX Runtime CPU library fetched and checksum-checked by the project's script.
FROM golang:1.26-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN ./scripts/fetch-onnxruntime.sh && go build -trimpath -o /out/recstream ./cmd/recstream

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/recstream recstream \
    && mkdir -p /var/lib/recstream/models /var/lib/recstream/checkpoints && chown -R recstream /var/lib/recstream
COPY --from=build /out/recstream /usr/local/bin/recstream
COPY --from=build /src/.deps/onnxruntime/ /opt/onnxruntime/
COPY configs/ /etc/recstream/
ENV ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so
# The operations endpoint (metrics.listen): /metrics, /healthz, /readyz.
EXPOSE 9464
USER recstream
WORKDIR /var/lib/recstream
ENTRYPOINT ["recstream"]
CMD ["run", "--config", "/etc/recstream/production.yaml"]
