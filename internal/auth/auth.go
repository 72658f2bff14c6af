// Package auth issues and verifies the API's JWTs: HS256 with JWT_SECRET, or RS256/ES256 with
// a public key file. Claims: merchant_id, role (merchant | admin), exp (required).
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token may do.
type Role string

// The roles.
const (
	RoleMerchant Role = "merchant"
	RoleAdmin    Role = "admin"
)

// Claims are the token's claims.
type Claims struct {
	MerchantID int64 `json:"merchant_id"`
	Role       Role  `json:"role"`
	jwt.RegisteredClaims
}

// ErrInvalidToken covers every reason a token is refused; the reason is not told to clients.
var ErrInvalidToken = errors.New("invalid token")

// Verifier checks tokens with one key and the algorithms that key allows.
type Verifier struct {
	key     any
	methods []string
}

// NewHMAC verifies HS256 tokens signed with secret.
func NewHMAC(secret []byte) *Verifier {
	return &Verifier{key: secret, methods: []string{jwt.SigningMethodHS256.Alg()}}
}

// NewPublicKey verifies RS256 or ES256 tokens with a PEM public key.
func NewPublicKey(pem []byte) (*Verifier, error) {
	if k, err := jwt.ParseRSAPublicKeyFromPEM(pem); err == nil {
		return &Verifier{key: k, methods: []string{jwt.SigningMethodRS256.Alg()}}, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(pem); err == nil {
		return &Verifier{key: k, methods: []string{jwt.SigningMethodES256.Alg()}}, nil
	}
	return nil, errors.New("JWT public key: not an RSA or EC public key in PEM")
}

// Verify parses and checks a token: signature with the configured algorithm only (so `none`
// and algorithm confusion fail), exp present and in the future, and well-formed claims.
func (v *Verifier) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil },
		jwt.WithValidMethods(v.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case c.Role != RoleMerchant && c.Role != RoleAdmin:
		return nil, fmt.Errorf("%w: role %q", ErrInvalidToken, c.Role)
	case c.Role == RoleMerchant && c.MerchantID <= 0:
		return nil, fmt.Errorf("%w: merchant token without merchant_id", ErrInvalidToken)
	}
	return &c, nil
}

// Issue signs an HS256 token (for `merchantagg token`, demos and tests).
func Issue(secret []byte, merchantID int64, role Role, ttl time.Duration, now time.Time) (string, error) {
	c := Claims{MerchantID: merchantID, Role: role, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

type ctxKey struct{}

// WithClaims stores verified claims in a request context.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the verified claims of the request, if any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}
