package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"
)

// The P-256 key of firmware/test/pin_vectors.h and the fingerprint openssl
// printed for it: the Go and the firmware side agree with openssl.
const firmwareP256 = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIuVHVpBryyY4JoD4GKOraVBETJs/
JeClfQXIJDGnExGA1E4gEpyJwmoeJxFF1NmEjoIs3Sy7PARrPAIFx2+i+g==
-----END PUBLIC KEY-----
`

func TestPinMatchesTheFirmwareVectors(t *testing.T) {
	pin, err := PinFromPEM([]byte(firmwareP256))
	if err != nil {
		t.Fatal(err)
	}
	if want := "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIuVHVpBryyY4JoD4GKOraVBETJs/JeClfQXIJDGnExGA1E4gEpyJwmoeJxFF1NmEjoIs3Sy7PARrPAIFx2+i+g=="; pin.SPKI != want {
		t.Errorf("SPKI = %s", pin.SPKI)
	}
	if want := "sha256//ZB0eFfjoQUJ0WmaSbd5MjJ/EmBVcs5m5uCTVBisaJwo="; pin.Fingerprint != want {
		t.Errorf("fingerprint = %s, want %s", pin.Fingerprint, want)
	}
	if pin.Kind != "EC P-256" || pin.Subject != "" {
		t.Errorf("kind %q subject %q", pin.Kind, pin.Subject)
	}
}

func TestPinFromCertificateAndKeysOfInit(t *testing.T) {
	dir := t.TempDir()
	f, err := Init(dir, "eventrelay", []string{"relay.lan"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) *KeyPin {
		t.Helper()
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := PinFromPEM(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return p
	}
	leaf, key := read(f.Cert), read(f.Key)
	if leaf.SPKI != key.SPKI || leaf.Fingerprint != key.Fingerprint {
		t.Errorf("certificate and key pins differ: %s / %s", leaf.SPKI, key.SPKI)
	}
	if !strings.Contains(leaf.Subject, "relay.lan") || leaf.NotAfter.IsZero() {
		t.Errorf("subject %q until %v", leaf.Subject, leaf.NotAfter)
	}
	// The chain's first certificate is the leaf, not the CA.
	if ca := read(f.CACert); ca.SPKI == leaf.SPKI {
		t.Error("the pin is the CA's key")
	}
	der, _ := base64.StdEncoding.DecodeString(leaf.SPKI)
	if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		t.Errorf("SPKI does not parse: %v", err)
	}
	// A new init makes a new key: a new pin.
	if _, err := Init(dir, "eventrelay", []string{"relay.lan"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if again := read(f.Cert); again.SPKI == leaf.SPKI {
		t.Error("a re-issued certificate with a new key kept the pin")
	}
}

func TestPinRefusesKeysTheBoardCannotUse(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"P-384":      {pkcs8(p384), "P-256 only"},
		"RSA-1024":   {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa1024)}), "2048 to 3072"},
		"Ed25519":    {pkcs8(ed), "EC P-256 or RSA"},
		"not PEM":    {[]byte("MFkwEwYH"), "no PEM block"},
		"other PEM":  {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}}), "want CERTIFICATE"},
		"bad cert":   {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), "certificate"},
		"bad pubkey": {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}), "public key"},
	} {
		if _, err := PinFromPEM(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	pin, err := PinFromPEM(pkcs8(rsa2048))
	if err != nil || pin.Kind != "RSA-2048" {
		t.Fatalf("RSA-2048: %v %+v", err, pin)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&rsa2048.PublicKey)
	if pin.SPKI != base64.StdEncoding.EncodeToString(pub) {
		t.Error("RSA pin is not the key's SPKI")
	}
}
