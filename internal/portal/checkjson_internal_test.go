package portal

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCheckResultJSON holds rest.check's hand-written encoder to
// encoding/json's output, byte for byte, for any strings (tokens and
// parameters come from the portal).
func FuzzCheckResultJSON(f *testing.F) {
	f.Add("tok", "crm,user", "local.app.1", "LOCAL_USER", "1", "TZ", "<&>\u2028\u2029\x00\x1f\"\\\b\f\n\r\t\xff\xc3", int64(3600), int64(-1))
	f.Add("", "", "", "", "", "", "", int64(0), int64(0))
	f.Add("été", "ünï", "日本", "k\x7f", "v\xed\xa0\x80", "\u2027", "\u202a", int64(1<<62), int64(-1<<62))
	f.Fuzz(func(t *testing.T, token, scope, client, k1, v1, k2, v2 string, expires, user int64) {
		for _, params := range []map[string]string{nil, {}, {k1: v1, k2: v2, "EVENT_SESSION": "7"}} {
			r := checkResult{AccessToken: token, ExpiresIn: expires / 2, Expires: expires, Scope: scope, ClientID: client,
				UserID: user, Parameters: params, Status: v2}
			want, err := json.Marshal(struct {
				Result any `json:"result"`
			}{r})
			if err != nil {
				t.Fatal(err)
			}
			got := append(r.appendJSON([]byte(`{"result":`)), '}')
			if !bytes.Equal(got, want) {
				t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
			}
		}
	})
}
