package delivery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc/metadata"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/events"
)

// AuthBuilder builds the auth[...] block of a delivery (authprovider's
// EventAuth.Build). An error wrapping ErrAuthRefused means authprovider
// answered that this event must not be delivered (app not installed,
// unknown portal): the event is dead-lettered with that reason. Any other
// error means "not now": the delivery waits and asks again; an unreachable
// authprovider never dead-letters an event.
type AuthBuilder interface {
	BuildAuth(ctx context.Context, req *tokenv1.BuildEventAuthRequest) ([]*tokenv1.Field, error)
}

// BatchAuthBuilder is an AuthBuilder that can also build several auth
// blocks in one call (EventAuth.BuildBatch). The worker uses it to ask
// once for a whole group instead of once per delivery.
type BatchAuthBuilder interface {
	AuthBuilder
	// BuildAuthBatch answers each request at the same index. An error
	// means the call failed as a whole (nothing was built); a result's
	// Err is that item's refusal (wrapping ErrAuthRefused) or a transient
	// failure of that item alone.
	BuildAuthBatch(ctx context.Context, reqs []*tokenv1.BuildEventAuthRequest) ([]AuthResult, error)
}

// AuthResult is one item's answer of BuildAuthBatch.
type AuthResult struct {
	Fields []*tokenv1.Field
	Err    error
}

// ErrAuthRefused wraps authprovider's refusal to build auth for an event.
var ErrAuthRefused = errors.New("authprovider refused the event")

// GRPCAuth calls EventAuth over gRPC with the service key.
type GRPCAuth struct {
	Client     tokenv1.EventAuthClient
	ServiceKey string
}

// BuildAuth implements AuthBuilder.
func (g GRPCAuth) BuildAuth(ctx context.Context, req *tokenv1.BuildEventAuthRequest) ([]*tokenv1.Field, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.ServiceKey)
	resp, err := g.Client.Build(ctx, req)
	if err != nil {
		if refusal(status.Code(err)) {
			return nil, fmt.Errorf("%w: %s", ErrAuthRefused, status.Convert(err).Message())
		}
		return nil, fmt.Errorf("delivery: EventAuth.Build: %w", err)
	}
	return resp.GetAuth(), nil
}

// refusal reports whether authprovider's answer says the event must not
// be delivered (as opposed to "not now").
func refusal(c codes.Code) bool {
	switch c {
	case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument, codes.PermissionDenied:
		return true
	}
	return false
}

// CheckApps implements events.AppChecker with EventAuth.CheckApps.
func (g GRPCAuth) CheckApps(ctx context.Context, portal string, apps []events.AppEvent) ([]bool, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.ServiceKey)
	req := &tokenv1.CheckAppsRequest{PortalClientId: portal, Apps: make([]*tokenv1.AppEvent, len(apps))}
	for i, a := range apps {
		req.Apps[i] = &tokenv1.AppEvent{ClientId: a.ClientID, Uninstall: a.Uninstall}
	}
	resp, err := g.Client.CheckApps(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("delivery: EventAuth.CheckApps: %w", err)
	}
	return resp.GetAllowed(), nil
}

// BuildAuthBatch implements BatchAuthBuilder with EventAuth.BuildBatch.
func (g GRPCAuth) BuildAuthBatch(ctx context.Context, reqs []*tokenv1.BuildEventAuthRequest) ([]AuthResult, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.ServiceKey)
	resp, err := g.Client.BuildBatch(ctx, &tokenv1.BuildEventAuthBatchRequest{Requests: reqs})
	if err != nil {
		return nil, fmt.Errorf("delivery: EventAuth.BuildBatch: %w", err)
	}
	rs := resp.GetResults()
	if len(rs) != len(reqs) {
		return nil, fmt.Errorf("delivery: EventAuth.BuildBatch: %d results for %d requests", len(rs), len(reqs))
	}
	out := make([]AuthResult, len(rs))
	for i, r := range rs {
		switch c := codes.Code(r.GetCode()); {
		case c == codes.OK:
			out[i].Fields = r.GetAuth()
		case refusal(c):
			out[i].Err = fmt.Errorf("%w: %s", ErrAuthRefused, r.GetErrorDescription())
		default:
			out[i].Err = fmt.Errorf("delivery: EventAuth.BuildBatch item %d: %s: %s", i, c, r.GetErrorDescription())
		}
	}
	return out, nil
}

// VerifyPortal implements events.PortalVerifier with EventAuth.VerifyPortal.
func (g GRPCAuth) VerifyPortal(ctx context.Context, clientID, clientSecret string) (bool, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.ServiceKey)
	resp, err := g.Client.VerifyPortal(ctx, &tokenv1.VerifyPortalRequest{ClientId: clientID, ClientSecret: clientSecret})
	if err != nil {
		return false, fmt.Errorf("delivery: EventAuth.VerifyPortal: %w", err)
	}
	return resp.GetOk(), nil
}

// authCache keeps authprovider's answers that carry no token (the empty
// auth of webhooks, of events without a user or without sendAuth: portal
// domain, endpoints, member_id, application_token) for a short time, so a
// burst of such events costs one Build. Answers with a token are never
// cached: every delivery gets its own.
type authCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedAuth
}

type cachedAuth struct {
	fields []*tokenv1.Field
	until  time.Time
}

const maxAuthCache = 10000

// cacheKey is every field of the request, each length-prefixed so that
// no two requests share a key.
func cacheKey(req *tokenv1.BuildEventAuthRequest) string {
	var b strings.Builder
	put := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, f := range []string{req.ClientId, strconv.FormatInt(req.UserId, 10), strconv.FormatBool(req.SendAuth),
		strconv.FormatBool(req.SendRefreshToken), req.ApplicationToken, req.Domain, req.PortalClientId, req.Event} {
		put(f)
	}
	for _, k := range slices.Sorted(maps.Keys(req.Parameters)) {
		put(k)
		put(req.Parameters[k])
	}
	return b.String()
}

func (c *authCache) get(key string, now time.Time) ([]*tokenv1.Field, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.After(e.until) {
		return nil, false
	}
	return e.fields, true
}

func (c *authCache) put(key string, fields []*tokenv1.Field, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	for _, f := range fields {
		if f.GetKey() == "access_token" || f.GetKey() == "refresh_token" {
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxAuthCache {
		clear(c.m)
	}
	c.m[key] = cachedAuth{fields: fields, until: now.Add(c.ttl)}
}
