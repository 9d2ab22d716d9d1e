package oauth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/oauth"
)

// FuzzParseTokenRequest feeds the token endpoint's parameter parser any
// method, content type, query and body: it must answer with parameters or
// a Bitrix error with a 4xx status, and never panic.
func FuzzParseTokenRequest(f *testing.F) {
	f.Add("POST", "application/x-www-form-urlencoded", "", "grant_type=refresh_token&client_id=local.1&client_secret=s&refresh_token=isobox.x")
	f.Add("GET", "", "grant_type=authorization_code&client_id=a&client_secret=b&code=c&bx24_request_id=1", "")
	f.Add("POST", "application/json", "grant_type=refresh_token", `{"a":1}`)
	f.Add("POST", "application/x-www-form-urlencoded; charset=utf-8", "client_id=x", "client_id=y&grant_type=%ff")
	f.Add("PUT", "text/plain", "%zz", "\x00\xff")
	f.Add("POST", "multipart/form-data; boundary=x", "scope=crm,user", "--x--")
	f.Fuzz(func(t *testing.T, method, ctype, query, body string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = "POST"
		}
		r := httptest.NewRequest("POST", "/oauth/token/", strings.NewReader(body))
		r.Method = method
		r.URL.RawQuery = query
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		form, berr := oauth.ParseTokenRequest(w, r)
		if berr != nil {
			if berr.Status < 400 || berr.Status > 499 || berr.Code == "" || berr.Description == "" {
				t.Fatalf("error %+v", berr)
			}
			return
		}
		gt := form.Get("grant_type")
		if gt != "authorization_code" && gt != "refresh_token" {
			t.Fatalf("accepted grant_type %q", gt)
		}
		if form.Get("client_id") == "" || form.Get("client_secret") == "" {
			t.Fatalf("accepted without client credentials: %v", form)
		}
		if method != http.MethodGet && method != http.MethodPost {
			t.Fatalf("accepted method %q", method)
		}
	})
}
