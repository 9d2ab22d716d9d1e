package validator_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

func bearer(ctx context.Context, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+v)
}

func TestGRPCServicesOnLoopback(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	f := newFixture(t, db)
	v := validator.New(f.o, validator.Config{}, nil)
	svc := validator.NewService(f.o, v, validator.NewPortals(f.o, 0, nil), validator.ServiceConfig{PublicURL: "https://auth.box.local"})

	checks := grpcauth.Checks{
		validator.PortalTokensService: svc.PortalCheck,
		validator.EventAuthService:    validator.ServiceKeyCheck("service-key-0123456789"),
	}
	srv := grpc.NewServer(checks.ServerOptions()...)
	tokenv1.RegisterPortalTokensServer(srv, &validator.PortalTokensServer{S: svc, Log: nil})
	tokenv1.RegisterEventAuthServer(srv, &validator.EventAuthServer{S: svc})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pt := tokenv1.NewPortalTokensClient(conn)
	ea := tokenv1.NewEventAuthClient(conn)
	pctx := bearer(ctx, f.portal.ID+":"+f.psec)

	// Wrong credentials, in both services.
	for name, c := range map[string]context.Context{"none": ctx, "wrong secret": bearer(ctx, f.portal.ID+":nope"), "no colon": bearer(ctx, f.psec)} {
		if _, err := pt.Validate(c, &tokenv1.ValidateRequest{AccessToken: "x"}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Validate with %s credentials: %v", name, err)
		}
	}
	if _, err := ea.Build(bearer(ctx, "wrong"), &tokenv1.BuildEventAuthRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Build with a wrong service key: %v", err)
	}

	m, err := pt.Mint(pctx, &tokenv1.MintRequest{ClientId: f.app.ID, UserId: 7, Scope: "crm", Parameters: map[string]string{"TZ_OFFSET": "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Scope != "crm" || m.UserId != 7 || m.ClientId != f.app.ID || m.MemberId != oauth.MemberID(f.portal.ID) || m.RefreshToken == "" {
		t.Fatalf("mint = %v", m)
	}
	res, err := pt.Validate(pctx, &tokenv1.ValidateRequest{AccessToken: m.AccessToken, Scope: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != "" || res.AuthType != "oauth" || res.ClientId != f.app.ID || res.UserId != 7 || res.Scope != "crm" ||
		res.Status != "L" || res.Parameters["TZ_OFFSET"] != "3600" || res.Parameters["LOCAL_USER"] != "" || res.Expires != m.Expires {
		t.Fatalf("validate = %v", res)
	}
	for name, tc := range map[string]struct{ tok, scope, code string }{
		"scope":   {m.AccessToken, "user", "insufficient_scope"},
		"garbage": {"garbage", "", "invalid_token"},
		"empty":   {"", "", "invalid_token"},
	} {
		res, err := pt.Validate(pctx, &tokenv1.ValidateRequest{AccessToken: tc.tok, Scope: tc.scope})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Error != tc.code || res.HttpStatus != 401 || res.ClientId != "" {
			t.Errorf("%s: %v", name, res)
		}
	}
	if _, err := pt.Mint(pctx, &tokenv1.MintRequest{ClientId: "local.nope", UserId: 7}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("mint for an unknown app: %v", err)
	}
	code, err := pt.MintCode(pctx, &tokenv1.MintCodeRequest{ClientId: f.app.ID, UserId: 7, State: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if code.Code == "" || code.State != "s1" || code.Domain != "auth.box.local" || code.Scope != "crm,user" {
		t.Fatalf("code = %v", code)
	}

	key := bearer(ctx, "service-key-0123456789")
	b, err := ea.Build(key, &tokenv1.BuildEventAuthRequest{ClientId: f.app.ID, UserId: 7, SendAuth: true, ApplicationToken: "at", Domain: "portal.box.local", PortalClientId: f.portal.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Auth) != 11 || b.Auth[0].Key != "access_token" || b.Auth[10].Key != "application_token" {
		t.Fatalf("build = %v", b.Auth)
	}
	if _, err := ea.Build(key, &tokenv1.BuildEventAuthRequest{ClientId: "local.nope", UserId: 7, SendAuth: true, PortalClientId: f.portal.ID, Event: "ONCRMDEALADD"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("build for an app that is not installed: %v", err)
	}
	// The direct REST face answers byte for byte what the gateway does.
	gw := gateway.New()
	if err := tokenv1.RegisterPortalTokensHandler(ctx, gw, conn); err != nil {
		t.Fatal(err)
	}
	direct := svc.ValidateHandler(nil)
	for name, tc := range map[string]struct{ auth, body string }{
		"valid":         {f.portal.ID + ":" + f.psec, `{"access_token":"` + m.AccessToken + `","scope":"crm"}`},
		"scope":         {f.portal.ID + ":" + f.psec, `{"access_token":"` + m.AccessToken + `","scope":"user","extra":1}`},
		"garbage":       {f.portal.ID + ":" + f.psec, `{"access_token":"nope"}`},
		"wrong secret":  {f.portal.ID + ":x", `{"access_token":"nope"}`},
		"no credential": {"", `{}`},
		"bad json":      {f.portal.ID + ":" + f.psec, `{"access_token":`},
	} {
		do := func(h http.Handler) (int, string) {
			req := httptest.NewRequest(http.MethodPost, validator.ValidatePath, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code, rec.Body.String()
		}
		gc, gb := do(gw)
		dc, db := do(direct)
		var gm, dm map[string]any
		if err := json.Unmarshal([]byte(gb), &gm); err != nil {
			t.Fatalf("%s: gateway answer %q: %v", name, gb, err)
		}
		if err := json.Unmarshal([]byte(db), &dm); err != nil {
			t.Fatalf("%s: direct answer %q: %v", name, db, err)
		}
		if name == "bad json" {
			// Decoder error texts differ; the status and code must not.
			delete(gm, "error_description")
			delete(dm, "error_description")
		}
		if gc != dc || !reflect.DeepEqual(gm, dm) {
			t.Errorf("%s: gateway %d %s\ndirect  %d %s", name, gc, gb, dc, db)
		}
	}

	// Strings the direct encoder must escape as JSON does.
	for _, tok := range []string{"a\"b\\c", "tab\tnl\n\x01", "é✓", "\xff\xfe"} {
		req := httptest.NewRequest(http.MethodPost, validator.ValidatePath, strings.NewReader(`{"access_token":`+strconv.Quote(tok)+`}`))
		req.Header.Set("Authorization", "Bearer "+f.portal.ID+":"+f.psec)
		rec := httptest.NewRecorder()
		direct.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Errorf("token %q: answer is not JSON: %s", tok, rec.Body)
		}
	}

	vp, err := ea.VerifyPortal(key, &tokenv1.VerifyPortalRequest{ClientId: f.portal.ID, ClientSecret: f.psec})
	if err != nil || !vp.Ok || vp.Host != "portal.box.local" || vp.MemberId != oauth.MemberID(f.portal.ID) {
		t.Fatalf("verify portal = %v, %v", vp, err)
	}
	if vp, err := ea.VerifyPortal(key, &tokenv1.VerifyPortalRequest{ClientId: f.portal.ID, ClientSecret: "bad"}); err != nil || vp.Ok {
		t.Fatalf("verify portal with a wrong secret = %v, %v", vp, err)
	}
}
