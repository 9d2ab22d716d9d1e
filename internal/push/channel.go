package push

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Errors of ParseChannels. Their texts are the push server's own answers
// (sent as text/plain with HTTP 400) and must not change.
var (
	// ErrNoChannel is returned when CHANNEL_ID is missing or empty.
	ErrNoChannel = errors.New("No channel id provided.")
	// ErrBadChannel is returned when an element of CHANNEL_ID is malformed,
	// carries a wrong signature, or lacks a required one.
	ErrBadChannel = errors.New("Channel id is not correct.")
)

// MaxChannels bounds the channels of one CHANNEL_ID: the portal's own
// limit_max_channels_per_request default.
const MaxChannels = 100

// idLen is the byte length of a channel id (32 hex digits).
const idLen = 16

// chanKey identifies a channel inside the server: a kind byte (kindPrivate
// or kindPublic) and the 16 raw bytes of the id. It is comparable and small,
// so it keys maps without allocating.
type chanKey [1 + idLen]byte

const (
	kindPrivate byte = 'p'
	kindPublic  byte = 'u'
)

func makeKey(kind byte, id []byte) chanKey {
	var k chanKey
	k[0] = kind
	copy(k[1:], id)
	return k
}

// hex returns the channel id as 32 lowercase hex digits.
func (k chanKey) hex() string { return hex.EncodeToString(k[1:]) }

// Signer computes and checks channel signatures: lowercase hex of HMAC(algo)
// keyed by the portal's pull signature_key, as CPullChannel::GetSignature
// does. It is safe for concurrent use.
type Signer struct {
	key  []byte
	newH func() hash.Hash
	size int // hex length of a signature
}

// NewSigner returns a Signer for key and algo ("sha1", "sha256", "sha224",
// "sha384", "sha512" or "md5"; "" means "sha1", the portal's default
// signature_algo). The key must not be empty: unsigned channels would let
// anyone read anyone's messages.
func NewSigner(key, algo string) (*Signer, error) {
	if key == "" {
		return nil, errors.New("push: empty signature key")
	}
	var h func() hash.Hash
	switch strings.ToLower(algo) {
	case "", "sha1":
		h = sha1.New
	case "sha224":
		h = sha256.New224
	case "sha256":
		h = sha256.New
	case "sha384":
		h = sha512.New384
	case "sha512":
		h = sha512.New
	case "md5":
		h = md5.New
	default:
		return nil, fmt.Errorf("push: unsupported signature algorithm %q", algo)
	}
	return &Signer{key: []byte(key), newH: h, size: 2 * h().Size()}, nil
}

// Sign returns the signature of value.
func (s *Signer) Sign(value string) string {
	m := hmac.New(s.newH, s.key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// SignChannel returns a private channel id as the portal hands it to
// clients: "id.sig".
func (s *Signer) SignChannel(id string) string { return id + "." + s.Sign(id) }

// SignComposite returns a version-4 private channel: "priv:pub.sig" with the
// signature over "priv:pub".
func (s *Signer) SignComposite(priv, pub string) string {
	v := priv + ":" + pub
	return v + "." + s.Sign(v)
}

// SignPublic returns the public form "public:pub.sig", the signature being
// over "public:pub" as CPullChannel::SignPublicChannel computes it.
func (s *Signer) SignPublic(pub string) string {
	v := "public:" + pub
	return v + "." + s.Sign(v)
}

// valid reports, in constant time, whether sig is value's signature.
func (s *Signer) valid(value, sig string) bool {
	if len(sig) != s.size || !isLowerHex(sig) {
		return false
	}
	return hmac.Equal([]byte(s.Sign(value)), []byte(sig))
}

// ParseChannels parses a CHANNEL_ID query value: elements separated by "/",
// each one of
//
//	<id>              private channel, unsigned (only when requireSig is false)
//	<id>.<sig>        private channel, sig = HMAC(id)
//	<priv>:<pub>.<sig> a private and a public channel, sig = HMAC("priv:pub")
//	public:<pub>.<sig> a public channel, sig = HMAC("public:pub")
//
// where ids are 32 lowercase hex digits. Subscribers must sign (requireSig);
// the portal publishes raw ids. A signature that is present is always
// checked. Duplicate channels are kept once. It returns ErrNoChannel or
// ErrBadChannel.
func ParseChannels(value string, s *Signer, requireSig bool) ([]chanKey, error) {
	if value == "" {
		return nil, ErrNoChannel
	}
	if strings.Count(value, "/") >= MaxChannels {
		return nil, ErrBadChannel
	}
	var keys []chanKey
	add := func(k chanKey) {
		for _, o := range keys {
			if o == k {
				return
			}
		}
		keys = append(keys, k)
	}
	for elem := range strings.SplitSeq(value, "/") {
		body, sig, signed := strings.Cut(elem, ".")
		if signed {
			if !s.valid(body, sig) {
				return nil, ErrBadChannel
			}
		}
		if pub, ok := strings.CutPrefix(body, "public:"); ok {
			id, ok := decodeID(pub)
			if !ok || !signed {
				return nil, ErrBadChannel
			}
			add(makeKey(kindPublic, id))
			continue
		}
		privHex, pubHex, composite := strings.Cut(body, ":")
		priv, ok := decodeID(privHex)
		if !ok {
			return nil, ErrBadChannel
		}
		if composite {
			pub, ok := decodeID(pubHex)
			// The composite form is only ever signed: it names the public
			// channel other users may write to.
			if !ok || !signed {
				return nil, ErrBadChannel
			}
			add(makeKey(kindPrivate, priv))
			add(makeKey(kindPublic, pub))
			continue
		}
		if requireSig && !signed {
			return nil, ErrBadChannel
		}
		add(makeKey(kindPrivate, priv))
	}
	return keys, nil
}

// decodeID decodes 32 lowercase hex digits.
func decodeID(s string) ([]byte, bool) {
	if len(s) != 2*idLen || !isLowerHex(s) {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
