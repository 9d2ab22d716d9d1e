// Package doctor is the check list behind `authprovider doctor` and
// `eventrelay doctor`: each check prints one line, "ok" or "FAIL" with what
// is wrong and what to do, and the command exits non-zero when any failed.
package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"
)

// Report collects check results and prints them as they come.
type Report struct {
	w      io.Writer
	failed int
}

// New returns a Report printing to w.
func New(w io.Writer) *Report { return &Report{w: w} }

// OK records a passed check.
func (r *Report) OK(format string, a ...any) {
	fmt.Fprintf(r.w, "ok    %s\n", fmt.Sprintf(format, a...))
}

// Fail records a problem: one line saying what is wrong and what to do.
func (r *Report) Fail(format string, a ...any) {
	r.failed++
	fmt.Fprintf(r.w, "FAIL  %s\n", fmt.Sprintf(format, a...))
}

// Err is the command's result: nil when every check passed.
func (r *Report) Err() error {
	if r.failed == 0 {
		return nil
	}
	return fmt.Errorf("%d problem(s) found", r.failed)
}

// DataDir checks that dir exists and is a directory; doctor creates
// nothing.
func (r *Report) DataDir(dir string) bool {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Fail("data dir %s does not exist: give the server's --data-dir or --config (a first start creates it)", dir)
		return false
	case err != nil:
		r.Fail("data dir %s: %v", dir, err)
		return false
	case !st.IsDir():
		r.Fail("data dir %s is not a directory", dir)
		return false
	}
	r.OK("data dir %s", dir)
	return true
}

// KeyFile checks that a key file exists and that no other user can read
// or write it (group read is allowed: packages share service.key with the
// service group).
func (r *Report) KeyFile(what, path string, required bool) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !required:
		r.OK("%s %s: not created yet (the service creates it on start)", what, path)
	case err != nil:
		r.Fail("%s %s: %v", what, path, err)
	case st.Mode().Perm()&0o037 != 0:
		r.Fail("%s %s has mode %04o: others can read or change it; run chmod 600 %s (640 with the service group)", what, path, st.Mode().Perm(), path)
	default:
		r.OK("%s %s (mode %04o)", what, path, st.Mode().Perm())
	}
}

// Certificate checks the expiry of the first certificate in a PEM file.
func (r *Report) Certificate(path string, now time.Time) {
	b, err := os.ReadFile(path)
	if err != nil {
		r.Fail("TLS certificate %s: %v", path, err)
		return
	}
	block, _ := pem.Decode(b)
	if block == nil {
		r.Fail("TLS certificate %s holds no PEM certificate", path)
		return
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		r.Fail("TLS certificate %s: %v", path, err)
		return
	}
	left := c.NotAfter.Sub(now)
	switch {
	case left <= 0:
		r.Fail("TLS certificate %s expired on %s: renew it (authprovider tls init --keep-key with the same --hosts, --dir and --name keeps the key relay boards pin) and the service reloads it", path, c.NotAfter.UTC().Format(time.RFC3339))
	case left < 14*24*time.Hour:
		r.Fail("TLS certificate %s expires on %s (in %s): renew it soon (authprovider tls init --keep-key keeps the key relay boards pin)", path, c.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour))
	default:
		r.OK("TLS certificate %s valid until %s", path, c.NotAfter.UTC().Format(time.RFC3339))
	}
}

// Reachable checks that a TCP address accepts connections.
func (r *Report) Reachable(ctx context.Context, what, addr, hint string) bool {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.Fail("%s at %s is not reachable (%v): %s", what, addr, err, hint)
		return false
	}
	c.Close()
	r.OK("%s at %s reachable", what, addr)
	return true
}

// Ready checks a service's /readyz and, from the answer's Date header,
// that this machine's clock agrees with the service's.
func (r *Report) Ready(ctx context.Context, what, url string, client *http.Client, now func() time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		r.Fail("%s: %s not reachable (%v): is it running? check its --admin-addr", what, url, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode != http.StatusOK {
		r.Fail("%s: %s answered %d: %s", what, url, resp.StatusCode, oneLine(body))
	} else {
		r.OK("%s ready (%s)", what, url)
	}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		if skew := now().Sub(d); skew > 5*time.Second || skew < -5*time.Second {
			r.Fail("clock: this machine and %s differ by %s: tokens and signatures depend on time; sync both with NTP (chrony)", what, skew.Round(time.Second))
		} else {
			r.OK("clock agrees with %s (within 5s)", what)
		}
	}
}

func oneLine(b []byte) string {
	s := []rune(string(b))
	for i, c := range s {
		if c == '\n' || c == '\r' {
			s[i] = ' '
		}
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return string(s)
}
