package e2e_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// TestModuleOverTLS runs the PHP module's token phases against an
// authprovider that speaks only TLS, with the validation API on its own
// listener (--validation-addr): the module's HTTP client follows https
// URLs and trusts the local CA through PHP's own settings
// (curl.cainfo/openssl.cafile, as an administrator installs it), with no
// change to the module.
func TestModuleOverTLS(t *testing.T) {
	root := moduleRoot(t)
	moduleTools(t)
	dir := t.TempDir()
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	tdir := tlsInit(t, bin, dir, "authprovider", "isobox.lan")
	ca := filepath.Join(tdir, "ca.crt")
	tlsArgs := []string{"--tls-cert-file", filepath.Join(tdir, "authprovider.crt"), "--tls-key-file", filepath.Join(tdir, "authprovider.key"), "--tls-ca-file", ca}
	ap := testkit.Start(t, dir, bin, append(freeArgs("http-addr", "grpc-addr", "admin-addr", "validation-addr"), tlsArgs...),
		"http", "grpc", "admin", "validation")

	var portal, app moduleCreds
	moduleCLI(t, dir, bin, &portal, "portal", "add", "--host", "portal.test", "--json")
	moduleCLI(t, dir, bin, &app, append([]string{"client", "add", "--grpc-addr", ap.Addr("grpc"),
		"--name", "e2e app", "--redirect-uri", "https://app.test/install", "--scope", "crm,user", "--json"}, tlsArgs...)...)

	// PHP trusts the CA the way a portal host would be set up.
	ini := filepath.Join(dir, "php.d")
	os.MkdirAll(ini, 0o700)
	os.WriteFile(filepath.Join(ini, "isobox-ca.ini"), []byte("curl.cainfo="+ca+"\nopenssl.cafile="+ca+"\n"), 0o600)
	tmp := filepath.Join(dir, "php")
	os.MkdirAll(tmp, 0o700)
	env := map[string]string{
		"PHP_INI_SCAN_DIR":         ":" + ini,
		"TMPDIR":                   tmp,
		"ISOBOX_E2E_PORTAL_DB":     filepath.Join(dir, "portal.sqlite"),
		"ISOBOX_E2E_OUT":           filepath.Join(dir, "phpout.json"),
		"ISOBOX_E2E_AUTH_URL":      "https://" + ap.Addr("validation"),
		"ISOBOX_E2E_OAUTH_URL":     "https://" + ap.Addr("http"),
		"ISOBOX_E2E_RELAY_URL":     "http://127.0.0.1:1",
		"ISOBOX_E2E_HANDLER":       "http://127.0.0.1:1",
		"ISOBOX_E2E_PORTAL_ID":     portal.ClientID,
		"ISOBOX_E2E_PORTAL_SECRET": portal.ClientSecret,
		"ISOBOX_E2E_APP":           app.ClientID,
		"ISOBOX_E2E_APP_SECRET":    app.ClientSecret,
	}
	modulePHP(t, root, "testPhaseAuth", env)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, err := os.ReadFile(env["ISOBOX_E2E_OUT"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
		t.Fatalf("phase output %s: %v", b, err)
	}
	// The token the module minted over https is live for its app.
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testkit.CAPool(t, ca)}}}
	req, _ := http.NewRequest("POST", "https://"+ap.Addr("validation")+"/v1/token/validate", strings.NewReader(`{"access_token":"`+out.AccessToken+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+portal.ClientID+":"+portal.ClientSecret)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	if v["client_id"] != app.ClientID || v["user_id"] != "5" {
		t.Errorf("validate over https = %v, want client %s user 5", v, app.ClientID)
	}
	// The revocation phase too: refresh over https, then the module refuses
	// the old token.
	modulePHP(t, root, "testPhaseRevocation", env)
}
