// Package merchantagg holds the API contract, openapi.yaml, for the server to publish as is.
package merchantagg

import _ "embed"

// OpenAPIYAML is openapi.yaml, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
