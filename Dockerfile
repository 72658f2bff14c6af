# merchantagg: one static binary in a small image (see docker-compose.yml).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /merchantagg ./cmd/merchantagg

FROM gcr.io/distroless/static-debian12
COPY --from=build /merchantagg /merchantagg
USER nonroot
ENTRYPOINT ["/merchantagg"]
