package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// The isobox.connector PHP module (bitrix-module/) on a stand-in portal,
// run by the real PHP interpreter against the real services: the PHPUnit
// suite bitrix-module/tests/e2e does the portal's side one phase at a time,
// this test starts and stops the services between phases and checks what
// arrived on the Go side.

// moduleCreds is what `authprovider portal add --json` and the portal
// protocol's application.add answer.
type moduleCreds struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// moduleRoot is the repository root (tests run in internal/e2e).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bitrix-module", "tests", "phpunit.xml")); err != nil {
		t.Fatalf("bitrix-module tests not found from %s: %v", root, err)
	}
	return root
}

// moduleTools fails the test if the PHP tools are missing (scripts/deps.sh
// installs them); it never skips.
func moduleTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"php", "phpunit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (scripts/deps.sh installs it): %v", tool, err)
		}
	}
}

// moduleCLI runs an authprovider CLI command in the server's working
// directory (same data dir) and decodes its --json output.
func moduleCLI(t *testing.T, dir, bin string, out any, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("authprovider %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("authprovider %s: output %q: %v", strings.Join(args, " "), b, err)
	}
}

// moduleAppAdd creates a local app the way the portal does when its
// administrator adds one: application.add over the portal protocol.
func moduleAppAdd(t *testing.T, httpAddr string, portal moduleCreds, scope string) moduleCreds {
	t.Helper()
	resp, err := http.PostForm("http://"+httpAddr+"/rest/application.add", url.Values{
		"client_id": {portal.ClientID}, "client_secret": {portal.ClientSecret},
		"TITLE": {"e2e app"}, "REDIRECT_URI": {"https://app.test/install"}, "SCOPE": {scope},
	})
	if err != nil {
		t.Fatalf("application.add: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Result moduleCreds `json:"result"`
		Error  string      `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Result.ClientID == "" {
		t.Fatalf("application.add: status %d, error %q, decode %v", resp.StatusCode, body.Error, err)
	}
	return body.Result
}

// modulePHP runs one phase (a test method) of the module's e2e suite.
func modulePHP(t *testing.T, root, phase string, env map[string]string) {
	t.Helper()
	cmd := exec.Command("phpunit", "-c", filepath.Join(root, "bitrix-module", "tests", "phpunit.xml"),
		"--testsuite", "e2e", "--filter", "/::"+phase+"$/")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("OK (1 test")) {
		t.Fatalf("phpunit %s: %v\n%s", phase, err, out)
	}
}

// moduleValidate asks authprovider's validation API about a token, with
// the portal's credentials, as the module does.
func moduleValidate(t *testing.T, adminAddr string, portal moduleCreds, token string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"access_token": token, "scope": ""})
	req, _ := http.NewRequest("POST", "http://"+adminAddr+"/v1/token/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+portal.ClientID+":"+portal.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("validate: status %d: %v", resp.StatusCode, err)
	}
	return out
}

// moduleEnv starts authprovider, creates a portal and an app, and returns
// the environment of the PHP suite.
func moduleEnv(t *testing.T) (dir string, ap *testkit.Proc, portal, app moduleCreds, env map[string]string) {
	t.Helper()
	moduleTools(t)
	dir = t.TempDir()
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	ap = testkit.Start(t, dir, bin, freeArgs("http-addr", "grpc-addr", "admin-addr"), "http", "grpc", "admin")
	moduleCLI(t, dir, bin, &portal, "portal", "add", "--host", "portal.test", "--json")
	app = moduleAppAdd(t, ap.Addr("http"), portal, "crm,user")
	tmp := filepath.Join(dir, "php")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{
		"TMPDIR":                   tmp,
		"ISOBOX_E2E_PORTAL_DB":     filepath.Join(dir, "portal.sqlite"),
		"ISOBOX_E2E_OUT":           filepath.Join(dir, "phpout.json"),
		"ISOBOX_E2E_AUTH_URL":      "http://" + ap.Addr("admin"),
		"ISOBOX_E2E_OAUTH_URL":     "http://" + ap.Addr("http"),
		"ISOBOX_E2E_RELAY_URL":     "http://127.0.0.1:1", // replaced once a relay runs
		"ISOBOX_E2E_HANDLER":       "http://127.0.0.1:1",
		"ISOBOX_E2E_PORTAL_ID":     portal.ClientID,
		"ISOBOX_E2E_PORTAL_SECRET": portal.ClientSecret,
		"ISOBOX_E2E_APP":           app.ClientID,
		"ISOBOX_E2E_APP_SECRET":    app.ClientSecret,
	}
	return dir, ap, portal, app, env
}

func TestModuleTokensEndToEnd(t *testing.T) {
	root := moduleRoot(t)
	_, ap, portal, app, env := moduleEnv(t)

	// AuthProvider::get() and authorizeClient() mint through isobox; a REST
	// call with the token passes CRestUtil::checkAuth with the right $res.
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
	// The token the module minted is isobox's: the validation API knows it,
	// for this app and user.
	t.Logf("minted %s…", out.AccessToken[:12])
	v := moduleValidate(t, ap.Addr("admin"), portal, out.AccessToken)
	if v["error"] != nil && v["error"] != "" {
		t.Fatalf("minted token invalid: %v", v)
	}
	if v["client_id"] != app.ClientID || v["user_id"] != "5" {
		t.Errorf("validate = %v, want client_id %s user_id \"5\"", v, app.ClientID)
	}

	// A token revoked at isobox (the app refreshed its pair) is refused once
	// the module's cache time has passed (the phase drives the clock).
	modulePHP(t, root, "testPhaseRevocation", env)
}

// A short wait for deliveries; the relay delivers within milliseconds.
const moduleDeliveryWait = 20 * time.Second

var _ = context.Background
