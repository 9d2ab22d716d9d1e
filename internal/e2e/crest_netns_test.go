package e2e_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// lanHost is a network namespace joined to the host by a veth pair on a
// private /30: the namespace is a LAN machine, the host side is where
// isobox listens. Its /etc/hosts is the namespace's own
// (/etc/netns/NAME/hosts), which is how the LAN's DNS is played.
type lanHost struct {
	name               string
	hostIP, peerIP     string // host side (isobox), namespace side (the app)
	hostVeth, peerVeth string
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newLANHost creates the namespace and its link; names resolve to the host
// side's address in the namespace's hosts file. Everything is removed at
// cleanup.
func newLANHost(t *testing.T, names ...string) *lanHost {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	// 10.213.N.M/30 with N, M random: parallel runs do not collide.
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	m, _ := rand.Int(rand.Reader, big.NewInt(60))
	base := 4 * int(m.Int64())
	h := &lanHost{
		name:     "isobox-lan-" + id,
		hostIP:   fmt.Sprintf("10.213.%d.%d", n.Int64(), base+1),
		peerIP:   fmt.Sprintf("10.213.%d.%d", n.Int64(), base+2),
		hostVeth: "ibx" + id + "h",
		peerVeth: "ibx" + id + "n",
	}
	etc := filepath.Join("/etc/netns", h.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", h.name).Run()
		exec.Command("ip", "link", "del", h.hostVeth).Run()
		os.RemoveAll(etc)
	})
	sh(t, "ip", "netns", "add", h.name)
	sh(t, "ip", "link", "add", h.hostVeth, "type", "veth", "peer", "name", h.peerVeth)
	sh(t, "ip", "link", "set", h.peerVeth, "netns", h.name)
	sh(t, "ip", "addr", "add", h.hostIP+"/30", "dev", h.hostVeth)
	sh(t, "ip", "link", "set", h.hostVeth, "up")
	sh(t, "ip", "netns", "exec", h.name, "ip", "addr", "add", h.peerIP+"/30", "dev", h.peerVeth)
	sh(t, "ip", "netns", "exec", h.name, "ip", "link", "set", h.peerVeth, "up")
	sh(t, "ip", "netns", "exec", h.name, "ip", "link", "set", "lo", "up")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := "127.0.0.1 localhost\n"
	for _, name := range names {
		lines += h.hostIP + " " + name + "\n"
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHardCodedOAuthBitrixInfoRefreshesAgainstIsobox is the proof issue 11
// asks for: with the LAN's DNS pointing oauth.bitrix.info at authprovider
// and the CA from `tls init` trusted, an app whose code hard-codes
// https://oauth.bitrix.info/oauth/token/ (as CRest does) refreshes its
// token unchanged. The app runs on another "machine" (a network namespace)
// with only the CA and its own credentials.
func TestHardCodedOAuthBitrixInfoRefreshesAgainstIsobox(t *testing.T) {
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	lan := newLANHost(t, "oauth.bitrix.info")
	tdir := tlsInit(t, apBin, dir, "authprovider", "oauth.bitrix.info,isobox.lan,"+lan.hostIP)
	ca := filepath.Join(tdir, "ca.crt")

	tlsArgs := []string{"--tls-cert-file", filepath.Join(tdir, "authprovider.crt"), "--tls-key-file", filepath.Join(tdir, "authprovider.key"), "--tls-ca-file", ca}
	ap := testkit.Start(t, dir, apBin, append([]string{"--http-addr", lan.hostIP + ":443", "--grpc-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", data}, tlsArgs...), "http", "grpc", "admin")

	cliJSON := func(v any, args ...string) {
		t.Helper()
		cmd := exec.Command(apBin, append(append(args, "--json", "--data-dir", data, "--grpc-addr", ap.Addr("grpc")), tlsArgs...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("authprovider %s: %v", strings.Join(args, " "), err)
		}
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("authprovider %s: %q: %v", strings.Join(args, " "), out, err)
		}
	}
	var app map[string]string
	cliJSON(&app, "client", "add", "--name", "CRest app", "--scope", "crm", "--redirect-uri", "https://app.lan/")
	var tok map[string]any
	cliJSON(&tok, "token", "issue", "--client", app["client_id"], "--user", "1")
	refresh, _ := tok["refresh_token"].(string)
	if refresh == "" {
		t.Fatalf("token issue: %v", tok)
	}

	script, _ := filepath.Abs(filepath.Join("testdata", "crest_refresh.php"))
	refreshOnLAN := func(refreshToken string) map[string]any {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", lan.name,
			"php", "-d", "curl.cainfo="+ca, "-d", "openssl.cafile="+ca, script)
		cmd.Env = append(os.Environ(), "CLIENT_ID="+app["client_id"], "CLIENT_SECRET="+app["client_secret"], "REFRESH_TOKEN="+refreshToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("app in the namespace: %v\n%s\n%s", err, out, ap.Logs())
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("app output %q: %v", out, err)
		}
		return m
	}
	got := refreshOnLAN(refresh)
	access, _ := got["access_token"].(string)
	next, _ := got["refresh_token"].(string)
	if access == "" || next == "" || next == refresh || got["error"] != nil {
		t.Fatalf("refresh through https://oauth.bitrix.info/oauth/token/ = %v", got)
	}

	// The new access token is live: introspection on the admin API says so.
	var info map[string]any
	cliJSON(&info, "token", "introspect", access)
	if info["active"] != true || info["client_id"] != app["client_id"] {
		t.Errorf("introspect the refreshed token: %v", info)
	}
	// And the chain moves on: the next refresh works from the LAN too.
	if again := refreshOnLAN(next); again["access_token"] == nil {
		t.Errorf("second refresh: %v", again)
	}
}
