// Package adminapi serves isobox.admin.v1.Admin, the authprovider admin
// API, on top of oauth.Service: clients, token issue, listing, revocation
// and introspection. Authentication (the admin key) is the gRPC server's
// job (grpcauth); this package assumes every call it sees is allowed.
package adminapi

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
)

// ServiceName is the gRPC service's full name, the key for grpcauth.Checks.
const ServiceName = "isobox.admin.v1.Admin"

// Server implements adminv1.AdminServer.
type Server struct {
	adminv1.UnimplementedAdminServer
	// S is the OAuth service.
	S *oauth.Service
	// Log receives internal errors; nil discards them.
	Log *slog.Logger
	// Host is the Bitrix-facing host ("127.0.0.1:8080") used for
	// server_endpoint when the service has no PublicURL; nil = none.
	Host func() string
}

// grpcError maps oauth and store sentinels to gRPC codes; anything else is
// logged and answered as Internal without its cause.
func (s *Server) grpcError(err error) error {
	switch {
	case errors.Is(err, oauth.ErrNotFound):
		return status.Error(codes.NotFound, "client not found")
	case errors.Is(err, oauth.ErrInvalidArgument), errors.Is(err, oauth.ErrInvalidScope):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, oauth.ErrInvalidClient):
		return status.Error(codes.FailedPrecondition, "client unknown or inactive")
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.AlreadyExists, "a client with this id exists")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if s.Log != nil {
		s.Log.Error("admin api", "err", err)
	}
	return status.Error(codes.Internal, "internal error")
}

func toProto(c oauth.Client) *adminv1.Client {
	return &adminv1.Client{
		ClientId: c.ID, Name: c.Name, RedirectUri: c.RedirectURI, Scope: joinScope(c.Scope), Status: c.Status,
		Active: c.Active, Kind: c.Kind, Portal: c.Portal, Host: c.Host, TokenPrefix: c.TokenPrefix,
		AccessTtl: int64(c.AccessTTL / time.Second), RefreshTtl: int64(c.RefreshTTL / time.Second), CodeTtl: int64(c.CodeTTL / time.Second),
		CreatedAt: c.CreatedAt.Unix(), UpdatedAt: c.UpdatedAt.Unix(),
	}
}

func joinScope(sc []string) string { return strings.Join(sc, ",") }

func seconds(n int64) (time.Duration, error) {
	if n < 0 || n > 100*365*24*3600 {
		return 0, status.Error(codes.InvalidArgument, "lifetimes are seconds between 0 (server default) and 100 years")
	}
	return time.Duration(n) * time.Second, nil
}

func required(name, v string) error {
	if v == "" {
		return status.Error(codes.InvalidArgument, name+" is required")
	}
	return nil
}

// CreateClient implements adminv1.AdminServer.
func (s *Server) CreateClient(ctx context.Context, r *adminv1.CreateClientRequest) (*adminv1.CreateClientResponse, error) {
	c := oauth.Client{ID: r.ClientId, Name: r.Name, RedirectURI: r.RedirectUri, Scope: oauth.SplitScope(r.Scope), Status: r.Status,
		Kind: r.Kind, Portal: r.Portal, Host: r.Host, TokenPrefix: r.TokenPrefix}
	var err error
	if c.AccessTTL, err = seconds(r.AccessTtl); err != nil {
		return nil, err
	}
	if c.RefreshTTL, err = seconds(r.RefreshTtl); err != nil {
		return nil, err
	}
	if c.CodeTTL, err = seconds(r.CodeTtl); err != nil {
		return nil, err
	}
	c, sec, err := s.S.CreateClient(ctx, c)
	if err != nil {
		return nil, s.grpcError(err)
	}
	return &adminv1.CreateClientResponse{ClientId: c.ID, ClientSecret: sec, Client: toProto(c)}, nil
}

// ListClients implements adminv1.AdminServer.
func (s *Server) ListClients(ctx context.Context, r *adminv1.ListClientsRequest) (*adminv1.ListClientsResponse, error) {
	cs, err := s.S.ListClients(ctx, r.Kind, r.Portal)
	if err != nil {
		return nil, s.grpcError(err)
	}
	out := &adminv1.ListClientsResponse{Clients: make([]*adminv1.Client, 0, len(cs))}
	for _, c := range cs {
		out.Clients = append(out.Clients, toProto(c))
	}
	return out, nil
}

// GetClient implements adminv1.AdminServer.
func (s *Server) GetClient(ctx context.Context, r *adminv1.GetClientRequest) (*adminv1.Client, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	c, err := s.S.GetClient(ctx, r.ClientId)
	if err != nil {
		return nil, s.grpcError(err)
	}
	return toProto(c), nil
}

// UpdateClient implements adminv1.AdminServer: only the fields set change.
func (s *Server) UpdateClient(ctx context.Context, r *adminv1.UpdateClientRequest) (*adminv1.Client, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	c, err := s.S.GetClient(ctx, r.ClientId)
	if err != nil {
		return nil, s.grpcError(err)
	}
	if r.Name != nil {
		c.Name = *r.Name
	}
	if r.RedirectUri != nil {
		c.RedirectURI = *r.RedirectUri
	}
	if r.Scope != nil {
		c.Scope = oauth.SplitScope(*r.Scope)
	}
	if r.Status != nil {
		c.Status = *r.Status
	}
	if r.Active != nil {
		c.Active = *r.Active
	}
	if r.Portal != nil {
		c.Portal = *r.Portal
	}
	if r.Host != nil {
		c.Host = *r.Host
	}
	if r.TokenPrefix != nil {
		c.TokenPrefix = *r.TokenPrefix
	}
	for _, f := range []struct {
		v   *int64
		dst *time.Duration
	}{{r.AccessTtl, &c.AccessTTL}, {r.RefreshTtl, &c.RefreshTTL}, {r.CodeTtl, &c.CodeTTL}} {
		if f.v != nil {
			if *f.dst, err = seconds(*f.v); err != nil {
				return nil, err
			}
		}
	}
	if err := s.S.UpdateClient(ctx, c); err != nil {
		return nil, s.grpcError(err)
	}
	c, err = s.S.GetClient(ctx, c.ID)
	if err != nil {
		return nil, s.grpcError(err)
	}
	return toProto(c), nil
}

// DeleteClient implements adminv1.AdminServer.
func (s *Server) DeleteClient(ctx context.Context, r *adminv1.DeleteClientRequest) (*emptypb.Empty, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	if err := s.S.DeleteClient(ctx, r.ClientId); err != nil {
		return nil, s.grpcError(err)
	}
	return &emptypb.Empty{}, nil
}

// RotateSecret implements adminv1.AdminServer.
func (s *Server) RotateSecret(ctx context.Context, r *adminv1.RotateSecretRequest) (*adminv1.CreateClientResponse, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	sec, err := s.S.RotateSecret(ctx, r.ClientId)
	if err != nil {
		return nil, s.grpcError(err)
	}
	c, err := s.S.GetClient(ctx, r.ClientId)
	if err != nil {
		return nil, s.grpcError(err)
	}
	return &adminv1.CreateClientResponse{ClientId: c.ID, ClientSecret: sec, Client: toProto(c)}, nil
}

// IssueToken implements adminv1.AdminServer.
func (s *Server) IssueToken(ctx context.Context, r *adminv1.IssueTokenRequest) (*adminv1.TokenResponse, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	if r.UserId < 0 {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be negative")
	}
	g := oauth.Grant{ClientID: r.ClientId, UserID: r.UserId, Params: r.Parameters, Portal: r.Portal}
	if r.Scope != "" {
		g.Scope = oauth.SplitScope(r.Scope)
	}
	if _, err := s.S.GetClient(ctx, r.ClientId); err != nil {
		return nil, s.grpcError(err)
	}
	p, err := s.S.Issue(ctx, g, !r.NoRefresh)
	if err != nil {
		return nil, s.grpcError(err)
	}
	host := ""
	if s.Host != nil {
		host = s.Host()
	}
	t := s.S.Response(p, host, false)
	return &adminv1.TokenResponse{
		AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expires: t.Expires, ExpiresIn: t.ExpiresIn, Scope: t.Scope,
		Domain: t.Domain, ServerEndpoint: t.ServerEndpoint, ClientEndpoint: t.ClientEndpoint, MemberId: t.MemberID,
		Status: t.Status, UserId: t.UserID,
	}, nil
}

// ListTokens implements adminv1.AdminServer.
func (s *Server) ListTokens(ctx context.Context, r *adminv1.ListTokensRequest) (*adminv1.ListTokensResponse, error) {
	if r.ClientId == "" && r.UserId == 0 {
		return nil, status.Error(codes.InvalidArgument, "client_id or user_id is required")
	}
	recs, err := s.S.ListTokens(ctx, r.ClientId, r.UserId, int(r.Limit))
	if err != nil {
		return nil, s.grpcError(err)
	}
	out := &adminv1.ListTokensResponse{Tokens: make([]*adminv1.TokenRecord, 0, len(recs))}
	for _, t := range recs {
		out.Tokens = append(out.Tokens, &adminv1.TokenRecord{Kind: t.Kind, Signature: t.Signature, ClientId: t.ClientID,
			UserId: t.UserID, Scope: joinScope(t.Scope), Portal: t.Portal, IssuedAt: t.IssuedAt.Unix(), Expires: t.Expires.Unix()})
	}
	return out, nil
}

// RevokeTokens implements adminv1.AdminServer.
func (s *Server) RevokeTokens(ctx context.Context, r *adminv1.RevokeTokensRequest) (*adminv1.RevokeTokensResponse, error) {
	if err := required("client_id", r.ClientId); err != nil {
		return nil, err
	}
	n, err := s.S.RevokeTokens(ctx, r.ClientId, r.UserId)
	if err != nil {
		return nil, s.grpcError(err)
	}
	return &adminv1.RevokeTokensResponse{Revoked: int64(n)}, nil
}

// Introspect implements adminv1.AdminServer (RFC 7662).
func (s *Server) Introspect(ctx context.Context, r *adminv1.IntrospectRequest) (*adminv1.IntrospectResponse, error) {
	if err := required("token", r.Token); err != nil {
		return nil, err
	}
	in, err := s.S.Introspect(ctx, r.Token)
	if err != nil {
		return nil, s.grpcError(err)
	}
	if !in.Active {
		return &adminv1.IntrospectResponse{Active: false}, nil
	}
	var iat int64
	if !in.IssuedAt.IsZero() {
		iat = in.IssuedAt.Unix()
	}
	return &adminv1.IntrospectResponse{
		Active: true, Scope: joinScope(in.Scope), ClientId: in.ClientID, TokenType: in.TokenType,
		Exp: in.Expires.Unix(), Iat: iat, Sub: strconv.FormatInt(in.UserID, 10), UserId: in.UserID, Status: in.Status, Portal: in.Portal,
		Parameters: in.Params,
	}, nil
}

// Revoke implements adminv1.AdminServer (RFC 7009: unknown tokens are fine).
func (s *Server) Revoke(ctx context.Context, r *adminv1.RevokeRequest) (*emptypb.Empty, error) {
	if err := required("token", r.Token); err != nil {
		return nil, err
	}
	if err := s.S.Revoke(ctx, r.Token); err != nil && !errors.Is(err, oauth.ErrInvalidToken) {
		return nil, s.grpcError(err)
	}
	return &emptypb.Empty{}, nil
}
