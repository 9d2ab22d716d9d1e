package validator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/secret"
)

// Full gRPC service names, the keys of grpcauth.Checks.
const (
	PortalTokensService = "isobox.token.v1.PortalTokens"
	EventAuthService    = "isobox.token.v1.EventAuth"
)

type portalKey struct{}

// PortalFrom returns the portal a PortalTokens call was authenticated as.
func PortalFrom(ctx context.Context) (oauth.Client, bool) {
	p, ok := ctx.Value(portalKey{}).(oauth.Client)
	return p, ok
}

// PortalCheck authenticates a PortalTokens call by the portal's
// credentials: "authorization: Bearer <client_id>:<client_secret>".
func (s *Service) PortalCheck(ctx context.Context, _ string) (context.Context, error) {
	id, sec, ok := strings.Cut(grpcauth.BearerToken(ctx), ":")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "portal credentials required: Authorization: Bearer <client_id>:<client_secret>")
	}
	p, err := s.Portals.Verify(ctx, id, sec)
	if errors.Is(err, oauth.ErrInvalidClient) {
		return nil, status.Error(codes.Unauthenticated, "invalid portal credentials")
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, "cannot verify portal credentials now")
	}
	return context.WithValue(ctx, portalKey{}, p), nil
}

// ServiceKeyCheck returns a check that authenticates eventrelay by the
// service key shared with it: "authorization: Bearer <service key>".
func ServiceKeyCheck(key string) func(ctx context.Context, _ string) (context.Context, error) {
	hash := secret.Hash(key)
	return func(ctx context.Context, _ string) (context.Context, error) {
		k := grpcauth.BearerToken(ctx)
		if k == "" || !secret.Matches(k, hash) {
			return nil, status.Error(codes.Unauthenticated, "the service key is required (Authorization: Bearer <service.key>)")
		}
		return ctx, nil
	}
}

// PortalTokensServer implements isobox.token.v1.PortalTokens for the PHP
// module. Callers are authenticated by PortalCheck.
type PortalTokensServer struct {
	tokenv1.UnimplementedPortalTokensServer
	S   *Service
	Log *slog.Logger
}

// Validate answers a token check in one round trip. Token errors are in the
// response (error, error_description, http_status), not gRPC errors, so
// the module reads one shape; only an unavailable store is a gRPC error.
func (g *PortalTokensServer) Validate(ctx context.Context, req *tokenv1.ValidateRequest) (*tokenv1.ValidateResponse, error) {
	portal, ok := PortalFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no portal")
	}
	info, err := g.S.Check(ctx, portal, req.GetAccessToken(), req.GetScope())
	if err != nil {
		be := BitrixError(err)
		if be == errInternal {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			logOf(g.Log).Error("validator: validate", "err", err)
			return nil, status.Error(codes.Unavailable, be.Description)
		}
		return &tokenv1.ValidateResponse{Error: be.Code, ErrorDescription: be.Description, HttpStatus: int32(be.Status)}, nil
	}
	// user_id carries LOCAL_USER; the parameters are the rest, as the
	// portal's own OAuth\Auth::check() leaves them in $res.
	params := make(map[string]string, len(info.Params))
	for k, v := range info.Params {
		if k != "LOCAL_USER" {
			params[k] = v
		}
	}
	return &tokenv1.ValidateResponse{
		ClientId: info.ClientID, UserId: info.UserID, Scope: strings.Join(info.Scope, ","),
		Expires: info.Expires.Unix(), Status: info.Status, Parameters: params,
		AuthType: "oauth", AccessToken: req.GetAccessToken(),
	}, nil
}

// Mint issues a token pair: the module's AuthProvider::get().
func (g *PortalTokensServer) Mint(ctx context.Context, req *tokenv1.MintRequest) (*tokenv1.MintResponse, error) {
	portal, ok := PortalFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no portal")
	}
	if req.GetUserId() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "user_id must be positive")
	}
	var scope []string
	if req.GetScope() != "" {
		scope = oauth.SplitScope(req.GetScope())
	}
	m, err := g.S.Mint(ctx, portal, req.GetClientId(), req.GetUserId(), scope, req.GetParameters(), "", true)
	if err != nil {
		return nil, g.grpcError("mint", err)
	}
	return &tokenv1.MintResponse{
		AccessToken: m.AccessToken, RefreshToken: m.RefreshToken, Expires: m.Expires, ExpiresIn: m.ExpiresIn,
		Scope: m.Scope, Domain: m.Domain, ServerEndpoint: m.ServerEndpoint, ClientEndpoint: m.ClientEndpoint,
		MemberId: m.MemberID, Status: m.Status, UserId: m.UserID, ClientId: m.ClientID,
	}, nil
}

// MintCode issues an authorization code: AuthProvider::authorizeClient().
func (g *PortalTokensServer) MintCode(ctx context.Context, req *tokenv1.MintCodeRequest) (*tokenv1.MintCodeResponse, error) {
	portal, ok := PortalFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no portal")
	}
	if req.GetUserId() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "user_id must be positive")
	}
	c, err := g.S.MintCode(ctx, portal, req.GetClientId(), req.GetUserId(), req.GetState(), req.GetParameters(), "")
	if err != nil {
		return nil, g.grpcError("mint code", err)
	}
	return &tokenv1.MintCodeResponse{Code: c.Code, Domain: c.Domain, MemberId: c.MemberID, Scope: c.Scope, RedirectUri: c.RedirectURI, State: c.State}, nil
}

// grpcError maps a mint error to a gRPC status whose message is the
// Bitrix description (the gateway renders it as Bitrix JSON).
func (g *PortalTokensServer) grpcError(what string, err error) error {
	switch {
	case errors.Is(err, ErrNotInstalled), errors.Is(err, oauth.ErrInvalidClient):
		// ERROR_OAUTH "Application not installed" is the exact pair the
		// portal's app.layout reacts to by reinstalling the app.
		return gateway.Status(codes.FailedPrecondition, errNotInstalled)
	case errors.Is(err, oauth.ErrInvalidScope):
		return gateway.Status(codes.InvalidArgument, errInvalidScope)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	logOf(g.Log).Error("validator: "+what, "err", err)
	return status.Error(codes.Unavailable, errInternal.Description)
}

// EventAuthServer implements isobox.token.v1.EventAuth for eventrelay.
// Callers are authenticated by ServiceKeyCheck.
type EventAuthServer struct {
	tokenv1.UnimplementedEventAuthServer
	S   *Service
	Log *slog.Logger
}

// Build returns an event delivery's auth block. An app that is not
// installed gives FailedPrecondition ("Application not installed"), except
// for ONAPPUNINSTALL, which gets the empty auth; eventrelay drops such an
// item, as the cloud does.
func (g *EventAuthServer) Build(ctx context.Context, req *tokenv1.BuildEventAuthRequest) (*tokenv1.BuildEventAuthResponse, error) {
	r := g.build(ctx, req)
	if r.GetCode() != int32(codes.OK) {
		return nil, status.Error(codes.Code(r.GetCode()), r.GetErrorDescription())
	}
	return &tokenv1.BuildEventAuthResponse{Auth: r.GetAuth()}, nil
}

// errUnknownPortal refuses an event from a portal authprovider does not know.
var errUnknownPortal = bitrix.NewError(http.StatusUnauthorized, "invalid_client", "unknown portal")

// MaxEventAuthBatch bounds BuildBatch: a delivery group is far smaller,
// and a bound keeps one call from holding the service for long.
const MaxEventAuthBatch = 256

// BuildBatch builds several auth blocks in one call, each exactly as
// Build would (tokens are minted one by one); a refused request gets its
// refusal in its own result and the others are built. It saves eventrelay
// a round trip per delivery.
func (g *EventAuthServer) BuildBatch(ctx context.Context, req *tokenv1.BuildEventAuthBatchRequest) (*tokenv1.BuildEventAuthBatchResponse, error) {
	reqs := req.GetRequests()
	if len(reqs) > MaxEventAuthBatch {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d requests per batch, got %d", MaxEventAuthBatch, len(reqs))
	}
	out := &tokenv1.BuildEventAuthBatchResponse{Results: make([]*tokenv1.BuildEventAuthResult, len(reqs))}
	for i, r := range reqs {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		out.Results[i] = g.build(ctx, r)
	}
	return out, nil
}

// build is one request of Build or BuildBatch: the auth block, or the
// refusal as a gRPC code with the Bitrix error.
func (g *EventAuthServer) build(ctx context.Context, req *tokenv1.BuildEventAuthRequest) *tokenv1.BuildEventAuthResult {
	fields, err := g.S.BuildEventAuth(ctx, EventAuthRequest{
		ClientID: req.GetClientId(), UserID: req.GetUserId(), SendAuth: req.GetSendAuth(), SendRefreshToken: req.GetSendRefreshToken(),
		ApplicationToken: req.GetApplicationToken(), Domain: req.GetDomain(), Params: maps.Clone(req.GetParameters()),
		PortalID: req.GetPortalClientId(), Event: req.GetEvent(),
	})
	refused := func(c codes.Code, e *bitrix.Error) *tokenv1.BuildEventAuthResult {
		return &tokenv1.BuildEventAuthResult{Code: int32(c), Error: e.Code, ErrorDescription: e.Description}
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrNotInstalled):
		return refused(codes.FailedPrecondition, errNotInstalled)
	case errors.Is(err, oauth.ErrInvalidClient):
		return refused(codes.NotFound, errUnknownPortal)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		st := status.FromContextError(err)
		return &tokenv1.BuildEventAuthResult{Code: int32(st.Code()), Error: errInternal.Code, ErrorDescription: st.Message()}
	default:
		logOf(g.Log).Error("validator: build event auth", "err", err)
		return refused(codes.Unavailable, errInternal)
	}
	out := &tokenv1.BuildEventAuthResult{Auth: make([]*tokenv1.Field, len(fields))}
	for i, f := range fields {
		out.Auth[i] = &tokenv1.Field{Key: f.Key, Value: f.Value}
	}
	return out
}

// CheckApps answers, for each app of an ingest call, whether the portal
// may send events for it (Service.AppAllowed).
func (g *EventAuthServer) CheckApps(ctx context.Context, req *tokenv1.CheckAppsRequest) (*tokenv1.CheckAppsResponse, error) {
	apps := req.GetApps()
	if len(apps) > MaxEventAuthBatch {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d apps per call, got %d", MaxEventAuthBatch, len(apps))
	}
	out := &tokenv1.CheckAppsResponse{Allowed: make([]bool, len(apps))}
	for i, a := range apps {
		ok, err := g.S.AppAllowed(ctx, req.GetPortalClientId(), a.GetClientId(), a.GetUninstall())
		if err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			logOf(g.Log).Error("validator: check apps", "err", err)
			return nil, status.Error(codes.Unavailable, errInternal.Description)
		}
		out.Allowed[i] = ok
	}
	return out, nil
}

// VerifyPortal checks a portal's credentials for eventrelay's ingest.
func (g *EventAuthServer) VerifyPortal(ctx context.Context, req *tokenv1.VerifyPortalRequest) (*tokenv1.VerifyPortalResponse, error) {
	p, err := g.S.Portals.Verify(ctx, req.GetClientId(), req.GetClientSecret())
	if errors.Is(err, oauth.ErrInvalidClient) {
		return &tokenv1.VerifyPortalResponse{Ok: false}, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		logOf(g.Log).Error("validator: verify portal", "err", err)
		return nil, status.Error(codes.Unavailable, errInternal.Description)
	}
	return &tokenv1.VerifyPortalResponse{Ok: true, Host: p.Host, MemberId: oauth.MemberID(p.ID)}, nil
}

// logOf returns l, or a discarding logger when l is nil.
func logOf(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
