package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

var secret = []byte("test-secret-that-is-long-enough-123")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Now()
	good, err := Issue(secret, 7, RoleMerchant, time.Hour, now)
	require.NoError(t, err)
	admin, err := Issue(secret, 0, RoleAdmin, time.Hour, now)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	valid := jwt.MapClaims{"merchant_id": 7, "role": "merchant", "exp": now.Add(time.Hour).Unix()}

	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"merchant", good, true},
		{"admin", admin, true},
		{"expired", mustIssue(t, 7, RoleMerchant, -time.Hour), false},
		{"forged signature", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-some-length!!"), valid), false},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), false},
		{"wrong algorithm", sign(t, jwt.SigningMethodES256, ecKey, valid), false},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, secret, valid), false},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"merchant_id": 7, "role": "merchant"}), false},
		{"unknown role", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"merchant_id": 7, "role": "root", "exp": now.Add(time.Hour).Unix()}), false},
		{"merchant without id", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "merchant", "exp": now.Add(time.Hour).Unix()}), false},
		{"merchant_id as string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"merchant_id": "7", "role": "merchant", "exp": now.Add(time.Hour).Unix()}), false},
		{"garbage", "not.a.token", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewHMAC(secret).Verify(tc.token)
			if !tc.ok {
				require.ErrorIs(t, err, ErrInvalidToken)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, c)
		})
	}
}

func TestPublicKey(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	v, err := NewPublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	require.NoError(t, err)

	claims := jwt.MapClaims{"merchant_id": 3, "role": "merchant", "exp": time.Now().Add(time.Hour).Unix()}
	c, err := v.Verify(sign(t, jwt.SigningMethodES256, key, claims))
	require.NoError(t, err)
	require.Equal(t, int64(3), c.MerchantID)

	// An HS256 token "signed" with the public key bytes must not pass (algorithm confusion).
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, der, claims))
	require.ErrorIs(t, err, ErrInvalidToken)

	_, err = NewPublicKey([]byte("nope"))
	require.Error(t, err)
}

func mustIssue(t *testing.T, m int64, r Role, ttl time.Duration) string {
	t.Helper()
	s, err := Issue(secret, m, r, ttl, time.Now())
	require.NoError(t, err)
	return s
}
