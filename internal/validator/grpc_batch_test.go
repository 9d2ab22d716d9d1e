package validator_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// BuildBatch answers each request as Build would, in order: a refused
// item carries its own refusal and the others are built, each with its own
// token; the service key is required and the batch size is bounded.
func TestEventAuthBuildBatch(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	f := newFixture(t, db)
	v := validator.New(f.o, validator.Config{}, nil)
	svc := validator.NewService(f.o, v, validator.NewPortals(f.o, 0, nil), validator.ServiceConfig{PublicURL: "https://auth.box.local"})
	srv := grpc.NewServer(grpcauth.Checks{validator.EventAuthService: validator.ServiceKeyCheck("service-key-0123456789")}.ServerOptions()...)
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
	ea := tokenv1.NewEventAuthClient(conn)

	ok := &tokenv1.BuildEventAuthRequest{ClientId: f.app.ID, UserId: 7, SendAuth: true, ApplicationToken: "at", Domain: "portal.box.local", PortalClientId: f.portal.ID}
	notInstalled := &tokenv1.BuildEventAuthRequest{ClientId: "local.nope", UserId: 7, SendAuth: true, PortalClientId: f.portal.ID, Event: "ONCRMDEALADD"}
	unknownPortal := &tokenv1.BuildEventAuthRequest{ClientId: f.app.ID, UserId: 7, SendAuth: true, PortalClientId: "bx.nope"}
	req := &tokenv1.BuildEventAuthBatchRequest{Requests: []*tokenv1.BuildEventAuthRequest{ok, notInstalled, ok, unknownPortal}}

	if _, err := ea.BuildBatch(bearer(ctx, "wrong"), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong service key: %v", err)
	}
	key := bearer(ctx, "service-key-0123456789")
	resp, err := ea.BuildBatch(key, req)
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.GetResults()
	if len(rs) != 4 {
		t.Fatalf("%d results for 4 requests", len(rs))
	}
	single, err := ea.Build(key, ok)
	if err != nil {
		t.Fatal(err)
	}
	tok := func(fs []*tokenv1.Field) string {
		for _, f := range fs {
			if f.Key == "access_token" {
				return f.Value
			}
		}
		return ""
	}
	for _, i := range []int{0, 2} {
		if rs[i].Code != 0 || len(rs[i].Auth) != len(single.Auth) || tok(rs[i].Auth) == "" {
			t.Errorf("result %d = %v, want an auth block like Build's %v", i, rs[i], single.Auth)
		}
		for j, f := range rs[i].Auth {
			if f.Key != single.Auth[j].Key {
				t.Errorf("result %d field %d is %q, Build gives %q", i, j, f.Key, single.Auth[j].Key)
			}
		}
	}
	if tok(rs[0].Auth) == tok(rs[2].Auth) {
		t.Error("two items got the same token")
	}
	if codes.Code(rs[1].Code) != codes.FailedPrecondition || rs[1].Error != "ERROR_OAUTH" || rs[1].ErrorDescription != "Application not installed" || rs[1].Auth != nil {
		t.Errorf("not installed: %v", rs[1])
	}
	if codes.Code(rs[3].Code) != codes.NotFound || rs[3].ErrorDescription != "unknown portal" {
		t.Errorf("unknown portal: %v", rs[3])
	}
	if _, err := ea.Build(key, notInstalled); status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "Application not installed" {
		t.Errorf("Build, not installed: %v", err)
	}
	if _, err := ea.Build(key, unknownPortal); status.Code(err) != codes.NotFound {
		t.Errorf("Build, unknown portal: %v", err)
	}

	big := &tokenv1.BuildEventAuthBatchRequest{}
	for range validator.MaxEventAuthBatch + 1 {
		big.Requests = append(big.Requests, notInstalled)
	}
	if _, err := ea.BuildBatch(key, big); status.Code(err) != codes.InvalidArgument {
		t.Errorf("%d requests: %v, want InvalidArgument", len(big.Requests), err)
	}
}
