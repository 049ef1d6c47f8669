# Build the manager binary.
# TODO(release): pin by digest (golang:1.26@sha256:<digest>, the multi-platform index's:
# `crane digest golang:1.26`). None could be looked up where this was written (no registry
# access), and one is not to be guessed.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY cmd/main.go cmd/main.go
COPY api/ api/
COPY internal/ internal/

# A static binary: no libc in the runtime image.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags "-s -w -X github.com/segment-operator/segment-operator/internal/version.Version=${VERSION}" \
    -o manager cmd/main.go

# distroless static, nonroot user: no shell, no package manager. The same base as .ko.yaml's.
# TODO(release): pin by digest (gcr.io/distroless/static:nonroot@sha256:<digest>, as in
# .ko.yaml), for the same reason as above.
FROM gcr.io/distroless/static:nonroot
# An ARG ends with its stage: declared again for the labels.
ARG VERSION=dev
LABEL org.opencontainers.image.title="segment-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages ChatBot.com user segments declaratively" \
      org.opencontainers.image.source="https://github.com/segment-operator/segment-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
