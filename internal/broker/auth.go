package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/isobox/isobox/internal/secret"
)

// Files the embedded server keeps in the data directory, each 0600.
const (
	// ClientSeedFile holds the nkey seed of the one client the embedded
	// server admits. Operators' tools connect with it
	// (nats --nkey <data-dir>/nats-client.nk).
	ClientSeedFile = "nats-client.nk"
	// StoreKeyFile holds the key the embedded JetStream store is encrypted
	// with. Losing it loses the store.
	StoreKeyFile = "nats-store.key"
)

// ClientAuth is how eventrelay authenticates to an external NATS cluster
// and verifies it. The zero value connects without credentials and uses
// TLS only if the server asks for it (verified against the system roots).
// At most one of CredsFile, NkeySeedFile and User may be set.
type ClientAuth struct {
	// CredsFile is a NATS credentials file (user JWT and nkey seed), as
	// written by nsc.
	CredsFile string
	// User and Password authenticate with a user name and password.
	User, Password string
	// NkeySeedFile is a file holding a user nkey seed ("SU...").
	NkeySeedFile string
	// TLSCAFile verifies the server's certificate instead of the system
	// roots; setting it requires TLS. Verification is never skipped.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a client certificate, for servers
	// that verify clients (tls { verify: true }).
	TLSCertFile, TLSKeyFile string
}

func (a ClientAuth) set() []string {
	var out []string
	for _, f := range []struct {
		name, v string
	}{{"--nats-creds", a.CredsFile}, {"--nats-user", a.User}, {"--nats-password", a.Password}, {"--nats-nkey-seed", a.NkeySeedFile},
		{"--nats-tls-ca-file", a.TLSCAFile}, {"--nats-tls-cert-file", a.TLSCertFile}, {"--nats-tls-key-file", a.TLSKeyFile}} {
		if f.v != "" {
			out = append(out, f.name)
		}
	}
	return out
}

// embeddedConflict refuses external-cluster settings when the embedded
// server is used: they would be silently ignored otherwise.
func (a ClientAuth) embeddedConflict() error {
	if set := a.set(); len(set) > 0 {
		return fmt.Errorf("broker: %s set without --nats-url: these configure the connection to an external NATS cluster; "+
			"the embedded server's credentials are generated in the data directory (%s)", strings.Join(set, ", "), ClientSeedFile)
	}
	return nil
}

// options checks the settings and turns them into connection options.
func (a ClientAuth) options() ([]nats.Option, error) {
	methods := 0
	for _, v := range []string{a.CredsFile, a.User, a.NkeySeedFile} {
		if v != "" {
			methods++
		}
	}
	if methods > 1 {
		return nil, errors.New("broker: use one of --nats-creds, --nats-user/--nats-password, --nats-nkey-seed")
	}
	if a.Password != "" && a.User == "" {
		return nil, errors.New("broker: --nats-password needs --nats-user")
	}
	if a.User != "" && a.Password == "" {
		return nil, errors.New("broker: --nats-user needs a password (--nats-password, --nats-password-file or EVENTRELAY_NATS_PASSWORD)")
	}
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		return nil, errors.New("broker: --nats-tls-cert-file and --nats-tls-key-file go together")
	}
	for _, f := range []struct{ flag, path string }{{"--nats-creds", a.CredsFile}, {"--nats-nkey-seed", a.NkeySeedFile},
		{"--nats-tls-ca-file", a.TLSCAFile}, {"--nats-tls-cert-file", a.TLSCertFile}, {"--nats-tls-key-file", a.TLSKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("broker: %s: %w", f.flag, err)
		}
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NkeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("broker: --nats-nkey-seed: %w", err)
		}
		opts = append(opts, o)
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(a.TLSCAFile))
	}
	if a.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(a.TLSCertFile, a.TLSKeyFile))
	}
	if a.TLSCAFile != "" || a.TLSCertFile != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

// explain returns a fatal error for connection failures that retrying
// cannot fix (refused credentials, an untrusted certificate), saying which
// setting to change, or nil for failures worth retrying.
func (a ClientAuth) explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		strings.Contains(msg, "authorization violation"), strings.Contains(msg, "authentication"):
		return fmt.Errorf("NATS refused the credentials: check --nats-creds, --nats-user and --nats-password (or --nats-password-file), --nats-nkey-seed: %w", err)
	case errors.As(err, &unknown), errors.As(err, &verify), strings.Contains(msg, "x509:"):
		return fmt.Errorf("the NATS server's TLS certificate is not trusted: give the CA that signed it with --nats-tls-ca-file: %w", err)
	case errors.As(err, &host):
		return fmt.Errorf("the NATS server's TLS certificate does not name the host in --nats-url: %w", err)
	case errors.Is(err, nats.ErrSecureConnWanted), errors.Is(err, nats.ErrSecureConnRequired):
		return fmt.Errorf("client and NATS server disagree about TLS: set --nats-tls-ca-file for a TLS server, or enable TLS on the server: %w", err)
	}
	return nil
}

// redact drops passwords from a comma-separated URL list, for messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// loadOrCreateClientKey reads the client nkey seed at path, creating a
// fresh user nkey (0600) if the file does not exist, and returns its
// public key and the option that authenticates with it.
func loadOrCreateClientKey(path string) (string, nats.Option, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", nil, fmt.Errorf("broker: create client nkey: %w", err)
		}
		if seed, err = kp.Seed(); err != nil {
			return "", nil, fmt.Errorf("broker: create client nkey: %w", err)
		}
		if err := writeNew(path, append(seed, '\n')); err != nil {
			return "", nil, err
		}
	} else if err != nil {
		return "", nil, fmt.Errorf("broker: client nkey: %w", err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return "", nil, fmt.Errorf("broker: client nkey %s: %w (delete the file to generate a new one)", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", nil, fmt.Errorf("broker: client nkey %s: %w", path, err)
	}
	return pub, nats.Nkey(pub, kp.Sign), nil
}

func writeNew(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("broker: create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("broker: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("broker: sync %s: %w", path, err)
	}
	return f.Close()
}

// loadOrCreateStoreKey reads the JetStream store key, creating it on the
// first start.
func loadOrCreateStoreKey(path string) (string, error) {
	key, _, err := secret.LoadOrCreate(path, 64)
	if err != nil {
		return "", fmt.Errorf("broker: store key: %w", err)
	}
	return key, nil
}
