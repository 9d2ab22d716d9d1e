package portal_test

import (
	"bufio"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/testkit"
)

// The attacks of issue 11 ("the LAN is hostile") on the portal protocol,
// tried against the real authprovider binary as someone on the LAN would:
// with nothing but what the wire shows (host names, member_id, a
// registration body seen once).

// server is a running authprovider and its CLI on the same data dir.
type server struct {
	t      *testing.T
	dir    string
	bin    string
	common []string
	proc   *testkit.Proc
	base   string
}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	dir := t.TempDir()
	s := &server{t: t, dir: dir, bin: bin, common: []string{"--data-dir", filepath.Join(dir, "data")}}
	relay := newRelayStub(t)
	args := append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--relay-url", relay.srv.URL}, append(extra, s.common...)...)
	s.proc = testkit.Start(t, dir, bin, args, "http", "grpc", "admin")
	s.base = "http://" + s.proc.Addr("http")
	return s
}

// cli runs `authprovider ARGS...` on the server's database and returns
// its combined output; it fails the test if the command fails.
func (s *server) cli(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, append(args, s.common...)...)
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("authprovider %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// post sends a form body and decodes the JSON answer; it also returns the
// answer's headers.
func (s *server) post(path, body string) (int, map[string]any, http.Header) {
	s.t.Helper()
	resp, err := http.Post(s.base+path, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatalf("POST %s: not JSON (%d): %q", path, resp.StatusCode, b)
	}
	return resp.StatusCode, m, resp.Header
}

// register posts a registration and returns the new credentials (status
// 200 required).
func (s *server) register(what, body string) creds {
	s.t.Helper()
	code, m, _ := s.post("/oauth/register/", body)
	if code != 200 {
		s.t.Fatalf("%s: %d %v", what, code, m)
	}
	return creds{m["client_id"].(string), m["client_secret"].(string), m["host"].(string)}
}

// refused asserts that a registration is refused with ACCESS_DENIED.
func (s *server) refused(what, body string) {
	s.t.Helper()
	code, m, _ := s.post("/oauth/register/", body)
	if code != 403 || m["error"] != "ACCESS_DENIED" {
		s.t.Fatalf("%s: %d %v, want 403 ACCESS_DENIED", what, code, m)
	}
}

// call is a portal call as \Bitrix\Rest\OAuth\Client makes it.
func (s *server) call(c creds, method string, params url.Values) (int, map[string]any) {
	s.t.Helper()
	if params == nil {
		params = url.Values{}
	}
	params.Set("client_id", c.id)
	params.Set("client_secret", c.secret)
	params.Set("client_redirect_uri", "http://"+c.host)
	params.Set("member_id", oauth.MemberID(c.id))
	code, m, _ := s.post("/rest/"+method, params.Encode())
	return code, m
}

// addApp creates a local app on portal c (application.add).
func (s *server) addApp(c creds) string {
	s.t.Helper()
	id, _ := s.addAppSecret(c)
	return id
}

// addAppSecret is addApp that also returns the app's secret.
func (s *server) addAppSecret(c creds) (id, secret string) {
	s.t.Helper()
	code, m := s.call(c, "application.add", url.Values{"TITLE": {"Deal sync"}, "REDIRECT_URI": {"https://app.box.local/"}, "SCOPE": {"crm"}})
	if code != 200 {
		s.t.Fatalf("application.add: %d %v", code, m)
	}
	r := m["result"].(map[string]any)
	return r["client_id"].(string), r["client_secret"].(string)
}

// authorize is rest.authorize for user 1 of app on portal c.
func (s *server) authorize(c creds, app string) (int, map[string]any) {
	s.t.Helper()
	return s.call(c, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}})
}

func md5hex(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

const victim = "portal.box.local"

func plainRegistration(extra ...[2]string) string {
	v := url.Values{"redirect_uri": {"http://" + victim}, "type": {"B"}}
	for _, e := range extra {
		v.Set(e[0], e[1])
	}
	return v.Encode()
}

// TestAttackPortalTakeoverWithMemberID is finding 1: with the approval
// the README showed (`portal allow --host H`, no --once), anyone could
// register again for H and, naming member_id (md5 of the portal's
// client_id, in every event and token reply), take the real portal's apps
// and deactivate it. Now approvals are one-time by default, and a host
// already registered is registered again only with proof: the current
// portal secret, or an administrator's `portal rebind`. member_id is
// never proof, not even under a standing (--permanent) approval.
func TestAttackPortalTakeoverWithMemberID(t *testing.T) {
	s := startServer(t)
	s.cli("portal", "allow", "--host", victim)
	real := s.register("the real portal's first registration", plainRegistration())
	app := s.addApp(real)

	takeover := plainRegistration([2]string{"member_id", oauth.MemberID(real.id)})
	s.refused("newcomer naming member_id after a default approval", takeover)
	s.refused("newcomer without member_id after a default approval", plainRegistration())

	out := s.cli("portal", "allow", "--host", victim, "--permanent")
	if !strings.Contains(strings.ToLower(out), "warning") {
		t.Errorf("portal allow --permanent printed no warning:\n%s", out)
	}
	s.refused("newcomer naming member_id under a permanent approval", takeover)
	s.refused("newcomer with a wrong portal secret", plainRegistration(
		[2]string{"member_id", oauth.MemberID(real.id)}, [2]string{"client_id", real.id}, [2]string{"client_secret", "wrong"}))

	// The real portal and its app are untouched.
	if code, m := s.authorize(real, app); code != 200 {
		t.Fatalf("the real portal lost its app: %d %v", code, m)
	}

	// The real portal proves itself with its current secret: its apps follow
	// it to the new identity and the old one stops working.
	next := s.register("re-registration with the current secret", plainRegistration(
		[2]string{"member_id", oauth.MemberID(real.id)}, [2]string{"client_id", real.id}, [2]string{"client_secret", real.secret}))
	if next.id == real.id {
		t.Fatal("re-registration returned the old identity")
	}
	if code, m := s.authorize(next, app); code != 200 {
		t.Fatalf("the app did not follow the portal: %d %v", code, m)
	}
	if code, m := s.authorize(real, app); code != 401 || m["error"] != "invalid_client" {
		t.Fatalf("the old identity still works: %d %v", code, m)
	}

	// An administrator's rebind lets an unmodified portal that lost its
	// credentials register again and keep its apps, once.
	out = s.cli("portal", "rebind", "--host", victim)
	if !strings.Contains(out, victim) {
		t.Errorf("portal rebind: %s", out)
	}
	third := s.register("registration after portal rebind", plainRegistration())
	if code, m := s.authorize(third, app); code != 200 {
		t.Fatalf("the app did not follow the rebound portal: %d %v", code, m)
	}
	s.refused("a second registration on one rebind", plainRegistration())
	if code, m := s.authorize(third, app); code != 200 {
		t.Fatalf("a refused registration touched the portal: %d %v", code, m)
	}
}

// licenceSigned is a registration signed as CRestUtil::signLicenseRequest
// signs it: BX_TYPE, BX_LICENCE, then BX_HASH over the imploded values.
func licenceSigned(key string, fields ...[2]string) string {
	return signLicence(append([][2]string{{"redirect_uri", "http://" + victim}, {"type", "B"}}, fields...), key)
}

// TestAttackLicenceRegistrationReplay is finding 1's last part: a
// licence-bound approval accepted a replayed registration body (the
// portal's signature covers only fixed fields). Now a body is good for one
// registration: after that the host is registered, and registering it
// again needs a licence signature over a fresh, single-use challenge from
// the server.
func TestAttackLicenceRegistrationReplay(t *testing.T) {
	const key = "NFR-TEST-KEY-1"
	s := startServer(t)
	s.cli("portal", "allow", "--host", victim, "--licence-key", key, "--permanent")
	body := licenceSigned(key)
	real := s.register("signed first registration", body)
	app := s.addApp(real)
	s.refused("the same signed body replayed", body)
	s.refused("the body replayed with member_id", licenceSigned(key, [2]string{"member_id", oauth.MemberID(real.id)}))

	// A fresh challenge, signed with the licence key, proves the portal.
	challenge := func() string {
		code, m, _ := s.post("/oauth/register/challenge/", url.Values{"redirect_uri": {"http://" + victim}}.Encode())
		c, _ := m["challenge"].(string)
		if code != 200 || len(c) < 32 {
			t.Fatalf("challenge: %d %v", code, m)
		}
		return c
	}
	c := challenge()
	s.refused("challenge signed with another key", licenceSigned("OTHER-KEY", [2]string{"challenge", c}))
	s.refused("challenge not covered by the signature", licenceSigned(key)+"&challenge="+c)
	s.refused("a made-up challenge", licenceSigned(key, [2]string{"challenge", strings.Repeat("ab", 20)}))
	signed := licenceSigned(key, [2]string{"challenge", c})
	next := s.register("re-registration over a fresh challenge", signed)
	if code, m := s.authorize(next, app); code != 200 {
		t.Fatalf("the app did not follow the portal: %d %v", code, m)
	}
	s.refused("the challenge body replayed", signed)

	// A challenge is for the host it was asked for.
	if code, m, _ := s.post("/oauth/register/challenge/", url.Values{"redirect_uri": {"http://unknown.box.local"}}.Encode()); code != 403 {
		t.Fatalf("challenge for an unregistered host: %d %v", code, m)
	}
}

// TestAttackHostMovedByRequestData is finding 2: any authenticated /rest/
// call with client_redirect_uri=http://other.host moved the portal, and
// token replies then sent apps to other.host. Now the stored address
// changes only by `portal update --host`.
func TestAttackHostMovedByRequestData(t *testing.T) {
	s := startServer(t, "--portal-auth-cache-ttl", "1ms") // `portal update` is seen on the next call
	s.cli("portal", "allow", "--host", victim)
	real := s.register("registration", plainRegistration())
	app, appSecret := s.addAppSecret(real)

	moved := url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}, "client_id": {real.id}, "client_secret": {real.secret},
		"client_redirect_uri": {"http://other.host"}, "member_id": {oauth.MemberID(real.id)}}
	code, m, _ := s.post("/rest/rest.authorize", moved.Encode())
	if code != 200 {
		t.Fatalf("rest.authorize: %d %v", code, m)
	}
	r := m["result"].(map[string]any)
	if r["client_endpoint"] != "http://"+victim+"/rest/" || r["domain"] != victim {
		t.Fatalf("rest.authorize after client_redirect_uri=other.host: %v", r)
	}
	// The next call (as the portal makes it) and a refresh still say the portal's own address.
	code, m, _ = s.post("/rest/rest.authorize", moved.Encode())
	if code != 200 || m["result"].(map[string]any)["client_endpoint"] != "http://"+victim+"/rest/" {
		t.Fatalf("second rest.authorize: %d %v", code, m)
	}
	refresh := m["result"].(map[string]any)["refresh_token"].(string)
	resp, err := http.Get(s.base + "/oauth/token/?" + url.Values{"grant_type": {"refresh_token"}, "client_id": {app},
		"client_secret": {appSecret}, "refresh_token": {refresh}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok["client_endpoint"] != "http://"+victim+"/rest/" {
		t.Fatalf("refresh after the attempted move: %d %v", resp.StatusCode, tok)
	}
	// A delivery token built for the portal's next event (eventrelay's
	// EventAuth call, here through its REST face with the service key).
	key, err := os.ReadFile(filepath.Join(s.dir, "data", "service.key"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.proc.Addr("admin")+"/v1/token/event-auth",
		strings.NewReader(`{"client_id":"`+app+`","user_id":1,"send_auth":true,"domain":"other.host","portal_client_id":"`+real.id+`","event":"ONCRMDEALADD"}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ea, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(ea), `"http://`+victim+`/rest/"`) || strings.Contains(string(ea), "other.host/rest/") {
		t.Fatalf("delivery token after the attempted move: %d %s", resp.StatusCode, ea)
	}
	if list := s.cli("portal", "list", "--json"); strings.Contains(list, "other.host") {
		t.Fatalf("stored portal moved: %s", list)
	}
	metrics := get(t, "http://"+s.proc.Addr("admin")+"/metrics")
	if !strings.Contains(metrics, "isobox_portal_address_mismatch_total 2") {
		t.Errorf("mismatches not counted:\n%s", grepLines(metrics, "isobox_portal"))
	}
	if logs := s.proc.Logs(); !strings.Contains(logs, "other.host") || strings.Contains(logs, real.secret) {
		t.Errorf("mismatch not logged, or logged with the secret")
	}

	// Only the administrator moves a portal.
	s.cli("portal", "update", "--id", real.id, "--host", "new.box.local", "--scheme", "https")
	moved.Set("client_redirect_uri", "https://new.box.local")
	code, m, _ = s.post("/rest/rest.authorize", moved.Encode())
	if code != 200 || m["result"].(map[string]any)["client_endpoint"] != "https://new.box.local/rest/" {
		t.Fatalf("after portal update: %d %v", code, m)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// eventBody is a rest.event.call body of about size bytes, as the portal
// sends it: QUERY[...] items first, the portal's credentials last.
func eventBody(size int, id, secret string) string {
	var b strings.Builder
	value := strings.Repeat("v", 1000)
	for i := 0; b.Len() < size-1100; i++ {
		fmt.Fprintf(&b, "QUERY%%5B%d%%5D%%5Bquery%%5D%%5BQUERY_DATA%%5D%%5Bdata%%5D=%s&", i, value)
	}
	b.WriteString(url.Values{"client_id": {id}, "client_secret": {secret}, "client_redirect_uri": {"http://" + victim},
		"member_id": {oauth.MemberID(id)}}.Encode())
	return b.String()
}

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestAttackLargeUnauthenticatedEventBodies is finding 6 (authprovider):
// rest.event.call read up to 8 MiB before authenticating, so 30 such
// bodies took the server from 35 to 515 MB. Now credentials near the start
// are checked before the rest is read, and bodies whose credentials come
// last (as the portal sends them) are held only within a process-wide
// budget until authenticated.
func TestAttackLargeUnauthenticatedEventBodies(t *testing.T) {
	s := startServer(t)
	s.cli("portal", "allow", "--host", victim)
	real := s.register("registration", plainRegistration())

	// Wrong credentials first: refused without waiting for the other 8 MB.
	conn, err := net.Dial("tcp", s.proc.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := url.Values{"client_id": {real.id}, "client_secret": {"wrong"}}.Encode() + "&QUERY%5B0%5D%5Bx%5D=" + strings.Repeat("v", 70<<10)
	fmt.Fprintf(conn, "POST /rest/rest.event.call HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		s.proc.Addr("http"), 8<<20-1024, head)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a failure detector: the server must answer on its own
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent (the server waits to read it all): %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(b), "invalid_client") {
		t.Fatalf("wrong credentials first: %d %s", resp.StatusCode, b)
	}

	// 30 bodies of 8 MB with wrong credentials last, at once.
	pid := s.proc.Cmd.Process.Pid
	before := peakRSS(t, pid)
	body := eventBody(8<<20-1024, real.id, "wrong")
	var wg sync.WaitGroup
	codes := make(chan int, 30)
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(s.base+"/rest/rest.event.call", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 401 && c != 503 {
			t.Errorf("unauthenticated 8 MB body answered %d, want 401 or 503", c)
		}
	}
	grew := peakRSS(t, pid) - before
	t.Logf("peak memory grew by %d MB (before the fix: 825 MB in the same test)", grew>>20)
	if grew > 160<<20 {
		t.Errorf("30 unauthenticated 8 MB bodies grew the server's peak memory by %d MB, want under 160 MB", grew>>20)
	}

	// The real portal's large batch (credentials last) is still taken.
	code, m, _ := s.post("/rest/rest.event.call", eventBody(4<<20, real.id, real.secret))
	if code != 200 || m["result"] != true {
		t.Fatalf("the portal's 4 MB batch: %d %v", code, m)
	}
}

// TestAttackSecretsCacheable is finding 8's Cache-Control part: answers
// that carry a token or a secret said nothing about caching, so a proxy
// or browser cache on the path could keep them. Every such answer of the
// binary now says Cache-Control: no-store and Pragma: no-cache.
func TestAttackSecretsCacheable(t *testing.T) {
	s := startServer(t)
	s.cli("portal", "allow", "--host", victim)
	check := func(what string, code int, h http.Header) {
		t.Helper()
		if code != 200 || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("%s: %d, Cache-Control %q, Pragma %q; want 200, no-store, no-cache", what, code, h.Get("Cache-Control"), h.Get("Pragma"))
		}
	}
	code, m, h := s.post("/oauth/register/", plainRegistration())
	check("/oauth/register/", code, h)
	real := creds{m["client_id"].(string), m["client_secret"].(string), victim}
	base := url.Values{"client_id": {real.id}, "client_secret": {real.secret}, "client_redirect_uri": {"http://" + victim}}
	with := func(kv ...string) string {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	code, m, h = s.post("/rest/application.add", with("TITLE", "x", "REDIRECT_URI", "https://app.box.local/", "SCOPE", "crm"))
	check("application.add", code, h)
	app := m["result"].(map[string]any)
	appID, appSecret := app["client_id"].(string), app["client_secret"].(string)
	code, m, h = s.post("/rest/rest.authorize", with("CLIENT_ID", appID, "PARAMS[LOCAL_USER]", "1"))
	check("rest.authorize", code, h)
	token := m["result"].(map[string]any)["access_token"].(string)
	code, _, h = s.post("/rest/rest.code", with("CLIENT_ID", appID, "PARAMS[LOCAL_USER]", "1"))
	check("rest.code", code, h)
	code, _, h = s.post("/rest/rest.check", with("TOKEN", token))
	check("rest.check", code, h)
	resp, err := http.Get(s.base + "/oauth/token/?" + url.Values{"grant_type": {"refresh_token"}, "client_id": {appID},
		"client_secret": {appSecret}, "refresh_token": {m["result"].(map[string]any)["refresh_token"].(string)}}.Encode())
	if err == nil {
		resp.Body.Close()
		check("/oauth/token/", resp.StatusCode, resp.Header)
	}

	// The module's and the administrator's REST faces.
	api := func(what, path, bearer, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.proc.Addr("admin")+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "access_token") {
			t.Errorf("%s: %d %s", what, resp.StatusCode, b)
		}
		check(what, resp.StatusCode, resp.Header)
	}
	api("/v1/token/mint", "/v1/token/mint", real.id+":"+real.secret, `{"client_id":"`+appID+`","user_id":1}`)
	adminKey, err := os.ReadFile(filepath.Join(s.dir, "data", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	api("admin token issue", "/v1/tokens", strings.TrimSpace(string(adminKey)), `{"client_id":"`+appID+`","user_id":1}`)
}
