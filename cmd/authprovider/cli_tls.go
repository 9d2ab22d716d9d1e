package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/cmdline"
)

// addTLSCommands adds `tls init`: a local CA and leaf certificates for a
// LAN with no public CA, and `tls pin`: the public key pin relay boards
// (firmware/) take for wss://.
func addTLSCommands(cmds map[string]command) {
	cmds["tls"] = command{Summary: "TLS certificates: init (a local CA and a certificate for --hosts), pin (the key pin for relay boards)", Run: subcommands("tls", map[string]command{
		"init": {Summary: "create a local CA (once) and a certificate for --hosts in --dir (--keep-key: renew it with its existing key, so relay boards' pin stays); print what goes where", Run: tlsInit},
		"pin":  {Summary: "print the public key pin of --cert FILE (certificate, public or private key, PEM) for a relay board's setup page", Run: tlsPin},
	})}
}

// tlsPin prints, on its first line, the base64 SubjectPublicKeyInfo the
// relay board's setup page takes, then its fingerprint.
func tlsPin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var file string
	fs := flag.NewFlagSet("authprovider tls pin", flag.ContinueOnError)
	fs.StringVar(&file, "cert", "", "PEM file: eventrelay's certificate (--tls-cert-file; a chain's first certificate is used), its key, or a public key")
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "authprovider", Stdout: stdout, Stderr: stderr})
	if err != nil {
		return err
	}
	if len(p.Args) > 0 {
		return cmdline.Usagef("tls pin: unexpected argument %q", p.Args[0])
	}
	if file == "" {
		return cmdline.Usagef("tls pin: --cert FILE is required, e.g. --cert /etc/isobox/tls/eventrelay.crt")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("tls pin: %w", err)
	}
	pin, err := certs.PinFromPEM(data)
	if err != nil {
		return fmt.Errorf("tls pin: %s: %w", file, err)
	}
	from := "key"
	if pin.Subject != "" {
		from = fmt.Sprintf("certificate %s, valid until %s; a renewal with the same key keeps this pin", pin.Subject, pin.NotAfter.Format("2006-01-02"))
	}
	fmt.Fprintf(stdout, "%s\nfingerprint %s (%s, %s)\n", pin.SPKI, pin.Fingerprint, pin.Kind, from)
	return nil
}

// pinNote tells, after a renewal with the same key, that relay boards keep
// working: the pin is the one they have.
func pinNote(f *certs.Files) string {
	switch {
	case !f.KeyKept:
		return ""
	case f.Pin == nil:
		return "\nThe key is the same as before (a kind relay boards cannot pin).\n"
	}
	return fmt.Sprintf("\nThe key is the same as before, so relay boards' pin is unchanged (tls pin prints the same):\n  %s\n  fingerprint %s (%s)\n", f.Pin.SPKI, f.Pin.Fingerprint, f.Pin.Kind)
}

func tlsInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var hosts, dir, name string
	var keepKey bool
	c, pos, err := parseCLI("tls init", args, stdout, stderr, viaDataDir, func(fs *flag.FlagSet) {
		fs.StringVar(&hosts, "hosts", "", "comma-separated DNS names and IP addresses the certificate is for, e.g. isobox.lan,oauth.bitrix.info,10.0.0.5 (localhost and the loopback addresses are always added)")
		fs.StringVar(&dir, "dir", "", "directory for the CA and the certificates; empty = <data-dir>/tls")
		fs.StringVar(&name, "name", "isobox", "file name of the certificate: NAME.crt and NAME.key (run again with another --name and --hosts for another service; the CA is reused)")
		fs.BoolVar(&keepKey, "keep-key", false, "renew NAME.crt with the existing NAME.key instead of a new key: the public key, and so relay boards' pin (tls pin), stay the same; fails if NAME.key is missing, unreadable, readable by others, or not the key of NAME.crt")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cmdline.Usagef("tls init: unexpected argument %q", pos[0])
	}
	if dir == "" {
		dir = filepath.Join(c.DataDir, "tls")
	}
	var list []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			list = append(list, h)
		}
	}
	if len(list) == 0 {
		return cmdline.Usagef("tls init: --hosts is required, e.g. --hosts isobox.lan,oauth.bitrix.info")
	}
	initFn := certs.Init
	if keepKey {
		initFn = certs.InitKeepKey
	}
	f, err := initFn(dir, name, list, time.Now())
	if err != nil {
		return fmt.Errorf("tls init: %w", err)
	}
	keyState := "(0600)"
	if f.KeyKept {
		keyState = "(kept: not rewritten, its mode and owner unchanged)"
	}
	caState := "reused"
	if f.CACreated {
		caState = "created"
	}
	fmt.Fprintf(stdout, `CA %s: %s (valid until %s)
  key: %s (0600) - keep it offline; it signs new certificates (tls init --name ...)
certificate for %s:
  %s
  key: %s %s, valid until %s

Where each file goes:
  authprovider and eventrelay (each with its own certificate, or both with this one):
    --tls-cert-file %s --tls-key-file %s --tls-ca-file %s
  the portal host, app hosts, LAN devices and browsers: trust %s
    Debian/Ubuntu: cp %s /usr/local/share/ca-certificates/isobox-ca.crt && update-ca-certificates
    PHP (curl and streams) without the system store: curl.cainfo and openssl.cafile = %s
  relay boards (firmware/, wss://): the pin of eventrelay's key, from
    authprovider tls pin --cert <eventrelay's certificate>
  Nothing else leaves this machine; ca.key never does.
%s`, caState, f.CACert, f.CAUntil.Format("2006-01-02"), f.CAKey,
		strings.Join(f.Hosts, ", "), f.Cert, f.Key, keyState, f.NotAfter.Format("2006-01-02"),
		f.Cert, f.Key, f.CACert, f.CACert, f.CACert, f.CACert, pinNote(f))
	return nil
}
