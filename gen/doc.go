// Package gen is generated from openapi.yaml by oapi-codegen (`make generate`); do not edit
// api.gen.go by hand.
package gen

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../openapi.yaml
