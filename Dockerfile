# fleetreset: one static binary on a distroless base, run as non-root.
#   docker build -t fleetreset .
#   docker run --rm fleetreset --help
# The toolchain go.mod names (a test keeps them equal).
FROM golang:1.26.8 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/fleetreset ./cmd/fleetreset

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/fleetreset /usr/local/bin/fleetreset
# The example plans, so that the compose demo can apply plans/demo.yaml.
COPY plans/ /app/plans/
USER nonroot:nonroot
# ui, sim, worker --metrics-addr
EXPOSE 8090 8080 9464
ENTRYPOINT ["/usr/local/bin/fleetreset"]
CMD ["--help"]
