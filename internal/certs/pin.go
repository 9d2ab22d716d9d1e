package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// KeyPin is what the relay firmware (firmware/core/pin.h) pins: a
// service's public key, not its certificate, so a certificate renewed
// with the same key keeps the boards connected.
type KeyPin struct {
	// SPKI is the base64 of the DER SubjectPublicKeyInfo: the text the
	// board's setup page takes.
	SPKI string
	// Fingerprint is "sha256//" + base64(SHA-256(SPKI DER)), the form the
	// board's status page shows and curl's --pinnedpubkey takes.
	Fingerprint string
	// Kind is "EC P-256" or "RSA-<bits>".
	Kind string
	// Subject and NotAfter describe the certificate the key came from
	// (empty when the file held a key).
	Subject  string
	NotAfter time.Time
}

// Limits of the board: the key must fit its settings sector and its
// BearSSL build (firmware/core/config.h ISOBOX_FW_PIN_MAX).
const (
	pinRSAMinBits = 2048
	pinRSAMaxBits = 3072
)

// PinFromPEM reads the first PEM block of data — a certificate (a chain's
// first is the leaf), a public key, or a private key (PKCS#8, EC or
// PKCS#1 RSA) — and returns the pin of its public key. Keys the board
// cannot use (EC on another curve, RSA outside 2048–3072 bits, other
// algorithms) are refused, so what is printed always works on the board.
func PinFromPEM(data []byte) (*KeyPin, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block: give a certificate (.crt), a public key or a private key (.key) in PEM")
	}
	pin := &KeyPin{}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		pub, pin.Subject, pin.NotAfter = cert.PublicKey, cert.Subject.String(), cert.NotAfter
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub = k
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
		k, err := parsePrivateKey(block)
		if err != nil {
			return nil, err
		}
		pub = k
	default:
		return nil, fmt.Errorf("PEM block %q: want CERTIFICATE, PUBLIC KEY or a PRIVATE KEY", block.Type)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s: the relay board takes P-256 only (authprovider tls init makes P-256 keys)", k.Curve.Params().Name)
		}
		pin.Kind = "EC P-256"
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < pinRSAMinBits || bits > pinRSAMaxBits {
			return nil, fmt.Errorf("RSA-%d key: the relay board takes RSA of %d to %d bits, or EC P-256 (authprovider tls init makes P-256 keys)", bits, pinRSAMinBits, pinRSAMaxBits)
		}
		pin.Kind = fmt.Sprintf("RSA-%d", bits)
	default:
		return nil, fmt.Errorf("%T key: the relay board takes EC P-256 or RSA keys", pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	pin.SPKI = base64.StdEncoding.EncodeToString(der)
	pin.Fingerprint = "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
	return pin, nil
}

func parsePrivateKey(block *pem.Block) (any, error) {
	s, err := parseSigner(block)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

// parseSigner parses a PKCS#8, EC or PKCS#1 RSA private key.
func parseSigner(block *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T private key: the relay board takes EC P-256 or RSA keys", k)
	}
	return s, nil
}
