package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// Token format: PREFIX + RANDOM + "." + SIG, where RANDOM is 40 lowercase hex
// digits (160 random bits) and SIG is 32 hex digits: the first 128 bits of
// HMAC-SHA256(key, PREFIX + RANDOM). Only SIG is stored. The prefix is part
// of the MAC input, so a token shown with another prefix than the one it was
// issued with fails verification without a database read; SIG alone (what a
// dump of the database holds) is not a usable token.
//
// fosite's own prefixed strategy hard-codes "ory_"; this one takes the prefix
// per client.
const (
	randomHexLen = 40
	sigHexLen    = 32
	maxPrefixLen = 32
)

// mac holds the server's token and secret key: 32 random bytes kept in the
// meta table so that every instance sharing a database agrees on it.
type mac struct{ key []byte }

func (m mac) sum(s string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil)[:sigHexLen/2])
}

// mint returns a fresh token with the given prefix and its signature.
func (m mac) mint(prefix string) (token, sig string) {
	var b [randomHexLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("oauth: crypto/rand failed: %v", err)) // never happens on Linux
	}
	body := prefix + hex.EncodeToString(b[:])
	sig = m.sum(body)
	return body + "." + sig, sig
}

// verify checks a token's MAC and returns its signature and prefix. It
// fails for anything not minted by this server with this key.
func (m mac) verify(token string) (sig, prefix string, ok bool) {
	i := strings.LastIndexByte(token, '.')
	if i < randomHexLen || len(token)-i-1 != sigHexLen || i-randomHexLen > maxPrefixLen {
		return "", "", false
	}
	body, sig := token[:i], token[i+1:]
	if subtle.ConstantTimeCompare([]byte(m.sum(body)), []byte(sig)) != 1 {
		return "", "", false
	}
	return sig, body[:len(body)-randomHexLen], true
}

// secretHash is the stored form of a client secret: a keyed hash. Secrets
// are 50 random alphanumerics (~297 bits), so a fast hash is as safe as a
// slow one and costs microseconds per token request.
func (m mac) secretHash(secret string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("client-secret:"))
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// signature returns the signature part of a token, or "" if it has none.
func signature(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token)-i-1 != sigHexLen {
		return ""
	}
	return token[i+1:]
}

// validPrefix reports whether p may prefix tokens: up to 32 characters from
// [A-Za-z0-9._-], so that tokens survive URLs and forms unchanged.
func validPrefix(p string) bool {
	if len(p) > maxPrefixLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
