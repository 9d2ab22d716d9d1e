package adminapi_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/oauth/adminapi"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

func code(err error) codes.Code { return status.Code(err) }

func TestAdminServer(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, err := oauth.New(db, oauth.Config{PublicURL: "https://auth.lan"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := &adminapi.Server{S: svc}
		cr, err := s.CreateClient(ctx, &adminv1.CreateClientRequest{Name: "a", Scope: "crm,user", AccessTtl: 600, TokenPrefix: "a1."})
		if err != nil || cr.ClientSecret == "" || cr.Client.AccessTtl != 600 {
			t.Fatalf("CreateClient = %v, %v", cr, err)
		}
		if _, err := s.CreateClient(ctx, &adminv1.CreateClientRequest{ClientId: cr.ClientId}); code(err) != codes.AlreadyExists {
			t.Fatalf("duplicate id: %v", err)
		}
		for name, req := range map[string]*adminv1.CreateClientRequest{
			"bad status": {Status: "Q"}, "bad prefix": {TokenPrefix: "a b"}, "bad kind": {Kind: "robot"}, "negative ttl": {AccessTtl: -1},
		} {
			if _, err := s.CreateClient(ctx, req); code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		if _, err := s.GetClient(ctx, &adminv1.GetClientRequest{ClientId: "local.none"}); code(err) != codes.NotFound {
			t.Fatalf("GetClient(unknown) = %v", err)
		}
		if _, err := s.GetClient(ctx, &adminv1.GetClientRequest{}); code(err) != codes.InvalidArgument {
			t.Fatalf("GetClient(empty) = %v", err)
		}
		name := "b"
		up, err := s.UpdateClient(ctx, &adminv1.UpdateClientRequest{ClientId: cr.ClientId, Name: &name})
		if err != nil || up.Name != "b" || up.Scope != "crm,user" || up.AccessTtl != 600 {
			t.Fatalf("UpdateClient(name only) = %v, %v", up, err)
		}

		tok, err := s.IssueToken(ctx, &adminv1.IssueTokenRequest{ClientId: cr.ClientId, UserId: 4, Scope: "crm"})
		if err != nil || tok.Scope != "crm" || tok.ExpiresIn != 600 || tok.ServerEndpoint != "https://auth.lan/rest/" || tok.Domain != "auth.lan" || tok.RefreshToken == "" {
			t.Fatalf("IssueToken = %v, %v", tok, err)
		}
		if _, err := s.IssueToken(ctx, &adminv1.IssueTokenRequest{ClientId: cr.ClientId, Scope: "telephony"}); code(err) != codes.InvalidArgument {
			t.Fatalf("IssueToken(wide scope) = %v", err)
		}
		if _, err := s.IssueToken(ctx, &adminv1.IssueTokenRequest{ClientId: "local.none"}); code(err) != codes.NotFound {
			t.Fatalf("IssueToken(unknown client) = %v", err)
		}
		in, err := s.Introspect(ctx, &adminv1.IntrospectRequest{Token: tok.AccessToken})
		if err != nil || !in.Active || in.Sub != "4" || in.Exp != tok.Expires {
			t.Fatalf("Introspect = %v, %v", in, err)
		}
		if _, err := s.Revoke(ctx, &adminv1.RevokeRequest{Token: "garbage"}); err != nil {
			t.Fatalf("Revoke(garbage) = %v, want OK (RFC 7009)", err)
		}
		if _, err := s.Revoke(ctx, &adminv1.RevokeRequest{Token: tok.RefreshToken}); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, &adminv1.IntrospectRequest{Token: tok.AccessToken}); in.Active {
			t.Fatal("access token active after its refresh token was revoked")
		}
		if _, err := s.ListTokens(ctx, &adminv1.ListTokensRequest{}); code(err) != codes.InvalidArgument {
			t.Fatalf("ListTokens() = %v", err)
		}
		rot, err := s.RotateSecret(ctx, &adminv1.RotateSecretRequest{ClientId: cr.ClientId})
		if err != nil || rot.ClientSecret == cr.ClientSecret {
			t.Fatalf("RotateSecret = %v, %v", rot, err)
		}
		if _, err := s.DeleteClient(ctx, &adminv1.DeleteClientRequest{ClientId: cr.ClientId}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteClient(ctx, &adminv1.DeleteClientRequest{ClientId: cr.ClientId}); code(err) != codes.NotFound {
			t.Fatalf("DeleteClient twice = %v", err)
		}
	})
}
