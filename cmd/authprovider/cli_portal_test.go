package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// portalCLI runs `authprovider portal ...` in-process on one database.
func portalCLI(t *testing.T, common []string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append(append([]string{"portal"}, args...), common...), &out, &errb)
	return out.String(), err
}

func TestPortalCLIOnTheDatabase(t *testing.T) {
	for _, b := range testkit.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			common := []string{"--data-dir", filepath.Join(t.TempDir(), "data")}
			if b.Name != "sqlite" {
				common = append(common, "--db", b.DSN(t))
			}
			must := func(args ...string) string {
				t.Helper()
				out, err := portalCLI(t, common, args...)
				if err != nil {
					t.Fatalf("portal %s: %v", strings.Join(args, " "), err)
				}
				return out
			}
			must("allow", "--host", "Portal.Example.local:443", "--once", "--expires", "1h", "--note", "first")
			must("allow", "other.example.local", "--licence-key", "KEY-1", "--permanent")
			var allowed []struct {
				Host    string `json:"host"`
				Once    bool   `json:"once"`
				Expires string `json:"expires"`
				Licence bool   `json:"licence_key_required"`
			}
			if err := json.Unmarshal([]byte(must("allowlist", "--json")), &allowed); err != nil {
				t.Fatal(err)
			}
			if len(allowed) != 2 || allowed[1].Host != "portal.example.local" || !allowed[1].Once || allowed[1].Expires == "" || allowed[0].Once || !allowed[0].Licence || allowed[1].Licence {
				t.Fatalf("allowlist = %+v", allowed)
			}
			must("disallow", "--host", "other.example.local")
			if _, err := portalCLI(t, common, "disallow", "--host", "other.example.local"); err == nil {
				t.Error("disallowing a host twice did not fail")
			}

			var added struct {
				ClientID, ClientSecret, Host, MemberID string
			}
			out := must("add", "--host", "box.example.local", "--scheme", "http", "--json")
			if err := json.Unmarshal([]byte(out), &struct {
				A *string `json:"client_id"`
				B *string `json:"client_secret"`
				C *string `json:"host"`
				D *string `json:"member_id"`
			}{&added.ClientID, &added.ClientSecret, &added.Host, &added.MemberID}); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(added.ClientID, "bx.") || len(added.ClientSecret) != 50 || added.Host != "box.example.local" || len(added.MemberID) != 32 {
				t.Fatalf("portal add = %s", out)
			}
			if list := must("list"); !strings.Contains(list, added.ClientID) || strings.Contains(list, added.ClientSecret) {
				t.Fatalf("portal list (must show the portal, never its secret):\n%s", list)
			}
			if _, err := portalCLI(t, common, "add", "--scheme", "ftp", "--host", "x"); err == nil {
				t.Error("portal add with scheme ftp did not fail")
			}
			if _, err := portalCLI(t, common, "add"); err == nil {
				t.Error("portal add without a host did not fail")
			}
			must("remove", "--id", added.ClientID)
			if list := must("list", "--json"); strings.TrimSpace(list) != "[]" {
				t.Fatalf("after remove: %s", list)
			}
			if _, err := portalCLI(t, common, "remove", added.ClientID); err == nil {
				t.Error("removing an unknown portal did not fail")
			}
		})
	}
}
