package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/auditlog"
	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/grpcpeer"
	"github.com/isobox/isobox/internal/peercheck"
	"github.com/isobox/isobox/internal/secret"
)

// eventsConfig holds the ingest and delivery settings.
type eventsConfig struct {
	DedupWindow     time.Duration
	Retention       time.Duration
	RetrySchedule   string
	DeliveryTimeout time.Duration
	Concurrency     int
	BreakerFailures int
	BreakerCooldown time.Duration
	MaxResponseBody int64
	FollowRedirects bool
	DenyCIDRs       string
	IngestMaxBody   int64
	PortalCacheTTL  time.Duration
	RotationOverlap time.Duration
	// DiscardUnreadableSecrets deletes, at start, the stored signing
	// secrets relay-secrets.key does not decrypt (the key was lost).
	DiscardUnreadableSecrets bool
	AuthCacheTTL             time.Duration
	Replicas                 int
}

func (c *eventsConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.DedupWindow, "dedup-window", 2*time.Hour, "an event handed off again within this window is delivered once (JetStream Nats-Msg-Id window)")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long an undelivered event waits in a handler's queue (paused handler), and how long delivered events stay replayable")
	fs.StringVar(&c.RetrySchedule, "retry-schedule", "5s,1m,5m,30m,2h,5h,10h,10h", "delays before each retry (comma list; ±10% jitter); after the last the event is dead-lettered")
	fs.DurationVar(&c.DeliveryTimeout, "delivery-timeout", 3*time.Second, "an attempt succeeds on a 2xx answer within this time")
	fs.IntVar(&c.Concurrency, "handler-concurrency", 4, "deliveries in flight per handler (1 = strictly one at a time, in queue order)")
	fs.IntVar(&c.BreakerFailures, "breaker-failures", 5, "consecutive failed attempts that pause a handler (circuit open) until a probe succeeds")
	fs.DurationVar(&c.BreakerCooldown, "breaker-cooldown", 30*time.Second, "wait before probing an open circuit; doubles per failed probe up to 10m")
	fs.Int64Var(&c.MaxResponseBody, "max-response-body", 64<<10, "bytes of a handler's answer read at most")
	fs.BoolVar(&c.FollowRedirects, "follow-redirects", false, "follow 3xx answers of handlers (default: a 3xx is a failed attempt)")
	fs.StringVar(&c.DenyCIDRs, "deny-cidrs", defaultDenyCIDRs(), "handler addresses refused (comma list of CIDRs; by default 0.0.0.0/8, link-local incl. cloud metadata, ::; LAN and loopback are allowed, the relay's own listeners never)")
	fs.Int64Var(&c.IngestMaxBody, "ingest-max-body", 8<<20, "largest /v1/events body in bytes")
	fs.DurationVar(&c.PortalCacheTTL, "portal-cache-ttl", 30*time.Second, "how long a verified portal credential is trusted without asking authprovider again")
	fs.DurationVar(&c.RotationOverlap, "secret-rotation-overlap", 24*time.Hour, "after a signing secret is rotated, the old one keeps signing (a second signature) this long")
	fs.BoolVar(&c.DiscardUnreadableSecrets, "discard-unreadable-signing-secrets", false, "at start, delete the stored signing secrets relay-secrets.key cannot decrypt (only when that key is lost for good): their handlers get new secrets, fetch them with 'secrets get'")
	fs.DurationVar(&c.AuthCacheTTL, "auth-cache-ttl", 10*time.Second, "reuse an auth block WITHOUT a token (webhooks, events without a user) this long; blocks with tokens are always minted per delivery; negative disables")
	fs.IntVar(&c.Replicas, "stream-replicas", 0, "JetStream replicas of the relay's streams and buckets; 0 = automatic: 1 on a single server (embedded), 3 on a cluster; existing streams are raised at start; 1 on a cluster needs --allow-single-replica")
}

func (c *eventsConfig) schedule() ([]time.Duration, error) {
	var out []time.Duration
	for _, p := range strings.Split(c.RetrySchedule, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--retry-schedule: bad delay %q", p)
		}
		out = append(out, d)
	}
	if out == nil {
		out = []time.Duration{}
	}
	return out, nil
}

func defaultDenyCIDRs() string {
	var out []string
	for _, p := range delivery.DefaultDeny() {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

// configuredAddr is a listen address as configured: a host that is not an
// IP (or empty) counts as every local address on that port.
func configuredAddr(hostPort string) (netip.AddrPort, bool) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		a = netip.IPv4Unspecified()
	}
	return netip.AddrPortFrom(a, uint16(p)), true
}

// selfAddrs returns the relay's own listener addresses for the delivery
// policy: each listener's bound address once it is bound (a port 0 is only
// known then), its configured one before, and the embedded NATS port.
func selfAddrs(a *app) func() []netip.AddrPort {
	configured := map[string]string{"http": a.cfg.HTTPAddr, "publish": a.cfg.PublishAddr, "admin": a.cfg.AdminAddr, "grpc": a.cfg.GRPCAddr}
	var nats []netip.AddrPort
	if a.nc.Server != nil {
		if addr := a.nc.Server.Addr(); addr != nil {
			if ap, ok := configuredAddr(addr.String()); ok {
				nats = append(nats, ap)
			}
		}
	}
	return func() []netip.AddrPort {
		out := append([]netip.AddrPort(nil), nats...)
		for name, cfgAddr := range configured {
			addr := a.d.Addr(name)
			if addr == "" {
				addr = cfgAddr
			}
			if ap, ok := configuredAddr(addr); ok {
				out = append(out, ap)
			}
		}
		return out
	}
}

func (c *eventsConfig) deny() ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, p := range strings.Split(c.DenyCIDRs, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("--deny-cidrs: %w", err)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

// relayAdminKeyMeta is where relays before issue 11 kept the admin key
// hash, in the broker's meta bucket; it is deleted at start.
const relayAdminKeyMeta = "admin_key_sha256"

// relayAdminKeyPath is distinct from authprovider's admin.key: both
// services share the default data directory.
func relayAdminKeyPath(dataDir string) string { return filepath.Join(dataDir, "relay-admin.key") }

// mountEvents adds event ingest (/v1/events), the delivery workers and the
// delivery admin API.
func mountEvents(ctx context.Context, a *app) error {
	cfg := a.cfg
	sched, err := cfg.Events.schedule()
	if err != nil {
		return err
	}
	deny, err := cfg.Events.deny()
	if err != nil {
		return err
	}
	serviceKey, _, err := secret.LoadOrCreate(cfg.serviceKeyPath(), 48)
	if err != nil {
		return fmt.Errorf("service key: %w", err)
	}
	// An asynchronous publish whose acknowledgement never comes (its
	// stream leader died or lost JetStream) fails after 30 s instead of
	// holding one of the 1024 pending slots for ever; its waiters bound
	// their own waits below that (ingest 2 s per attempt, the fan-out 10 s).
	js, err := jetstream.New(a.nc.Conn, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	replicas, err := events.ReplicationOf(a.nc.Conn, cfg.AllowSingleReplica).Replicas("stream-replicas", cfg.Events.Replicas)
	if err != nil {
		return err
	}
	if err := events.Setup(ctx, js, events.StreamsConfig{DedupWindow: cfg.Events.DedupWindow, Retention: cfg.Events.Retention, Replicas: replicas, Log: a.log}); err != nil {
		return err
	}
	if a.audit, err = auditlog.Open(ctx, js, replicas); err != nil {
		return err
	}
	adminHash, err := setupRelayAdminKey(ctx, a, js)
	if err != nil {
		return err
	}
	seal, err := setupSecretsKey(ctx, a, js)
	if err != nil {
		return err
	}

	conn, err := grpc.NewClient(cfg.AuthGRPCAddr, append(grpcpeer.DialOptions(), a.tls.authDial())...)
	if err != nil {
		return fmt.Errorf("authprovider client %s: %w", cfg.AuthGRPCAddr, err)
	}
	a.d.OnClose(func(context.Context) { conn.Close() })
	auth := delivery.GRPCAuth{Client: tokenv1.NewEventAuthClient(conn), ServiceKey: serviceKey}
	// An authprovider with another service key refuses every token and
	// portal check: say so on /readyz.
	peer := peercheck.New(peercheck.Config{
		Peer: "authprovider at " + cfg.AuthGRPCAddr, KeyFile: cfg.serviceKeyPath(), Interval: cfg.PeerCheckInterval,
		Probe: authKeyProbe(tokenv1.NewEventAuthClient(conn), serviceKey), Log: a.log, Registry: a.d.Registry,
	})
	a.d.Ready("service-key", peer.Ready)
	pctx, stopPeer := context.WithCancel(context.WithoutCancel(ctx))
	go peer.Run(pctx)
	a.d.OnClose(func(context.Context) { stopPeer() })

	ingest := events.NewIngest(events.IngestConfig{
		JS: js, Verifier: auth, Apps: auth, ServiceKey: serviceKey, MaxBody: cfg.Events.IngestMaxBody,
		CacheTTL: cfg.Events.PortalCacheTTL, Log: a.log, Registry: a.d.Registry,
	})
	svc, err := delivery.New(ctx, delivery.Config{
		JS: js, Auth: auth, Schedule: sched, Timeout: cfg.Events.DeliveryTimeout, Concurrency: cfg.Events.Concurrency,
		MaxResponseBody: cfg.Events.MaxResponseBody, FollowRedirects: cfg.Events.FollowRedirects, Deny: deny, Self: selfAddrs(a),
		BreakerFailures: cfg.Events.BreakerFailures, BreakerCooldown: cfg.Events.BreakerCooldown,
		RotationOverlap: cfg.Events.RotationOverlap, SecretsKey: seal, Log: a.log, Registry: a.d.Registry,
		Ingested: ingest.Ingested, DedupWindow: cfg.Events.DedupWindow, AuthCacheTTL: cfg.Events.AuthCacheTTL,
	})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	// The ingest writer outlives the HTTP listeners (whose in-flight calls
	// wait for it) and stops at drain.
	ictx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	go ingest.Run(ictx)
	a.d.OnDrain(func(context.Context) { stopIngest() })
	a.d.OnDrain(svc.Stop)
	a.http.Handle("/v1/events", ingest)

	adminCheck := func(ctx context.Context, _ string) (context.Context, error) {
		key := grpcauth.BearerToken(ctx)
		if key == "" || !secret.Matches(key, adminHash) {
			return nil, status.Error(codes.Unauthenticated, "a valid relay admin key is required (Authorization: Bearer <key from relay-admin.key>)")
		}
		return ctx, nil
	}
	a.grpcAuth["isobox.relay.v1.Relay"] = adminCheck
	a.grpcAuth["isobox.relay.v1.RelayOps"] = adminCheck // push.go
	relayv1.RegisterRelayServer(a.grpc, svc.Admin())
	a.gatewayRegs = append(a.gatewayRegs, relayv1.RegisterRelayHandler)
	a.log.Info("event relay ready", "replicas", replicas, "retry_schedule", cfg.Events.RetrySchedule, "dedup_window", cfg.Events.DedupWindow.String(),
		"handler_concurrency", cfg.Events.Concurrency, "auth_grpc_addr", cfg.AuthGRPCAddr)
	return nil
}

// setupRelayAdminKey makes sure the relay admin key exists: created on
// first start in <data-dir>/relay-admin.key (0600), and only its hash kept
// in memory. The key is never read from the broker: whoever can write to
// NATS must not be able to make themselves relay admin (issue 11). Older
// relays kept the hash in the meta bucket; that entry is deleted.
func setupRelayAdminKey(ctx context.Context, a *app, js jetstream.JetStream) (string, error) {
	path := a.cfg.adminKeyPath()
	key, created, err := secret.LoadOrCreate(path, 48)
	if err != nil {
		return "", fmt.Errorf("relay admin key: %w", err)
	}
	a.log.Info("relay admin key ready", "path", path, "created", created)
	kv, err := js.KeyValue(ctx, events.BucketMeta)
	if err != nil {
		return "", fmt.Errorf("relay meta bucket: %w", err)
	}
	if _, err := kv.Get(ctx, relayAdminKeyMeta); err == nil {
		if err := kv.Purge(ctx, relayAdminKeyMeta); err != nil {
			return "", fmt.Errorf("relay meta bucket: delete the old admin key hash: %w", err)
		}
		a.log.Warn("deleted the admin key hash an older relay kept in the broker; the key in the data directory is the only one", "path", path)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("relay meta bucket: %w", err)
	}
	return secret.Hash(key), nil
}

// relaySecretsKeyFile is the key the handler signing secrets are
// encrypted with in the broker; the operator rotates it by renaming it to
// relaySecretsKeyFile+".old" (see docs/security.md).
const relaySecretsKeyFile = "relay-secrets.key"

// setupSecretsKey returns the key the signing secrets are encrypted with
// at rest: derived from <data-dir>/relay-secrets.key, kept beside the
// other keys and outside the broker, created (0600) on first start.
//
// Rotation mirrors nats-store.key: when relay-secrets.key.old is there, a
// new relay-secrets.key is made (unless a rotation interrupted earlier
// made it already), every stored secret still under the old key is
// re-encrypted under the new one, and the old file is removed. A
// relay-secrets.key.old that does not decrypt what the new key does not
// either stops the start and changes nothing. Without a rotation, a key
// that decrypts none of the stored secrets (another instance's, or a lost
// one's replacement) stops the start too: the relay would otherwise fail
// every delivery and store new secrets no other instance can read.
func setupSecretsKey(ctx context.Context, a *app, js jetstream.JetStream) ([]byte, error) {
	path := filepath.Join(a.cfg.DataDir, relaySecretsKeyFile)
	oldPath := path + ".old"
	old, err := secret.Read(oldPath)
	rotating := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	current, created, err := secret.LoadOrCreate(path, 64)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	key := sealKey(current)
	if rotating {
		moved, err := delivery.RekeySecrets(ctx, js, key, sealKey(old))
		if errors.Is(err, delivery.ErrSecretsKey) && created {
			os.Remove(path) // nothing is under it yet
		}
		if errors.Is(err, delivery.ErrSecretsKey) {
			return nil, fmt.Errorf("secrets key rotation: %w: %s is not the key they were stored with; put the previous %s there "+
				"(from the backup of the data directory) and start again (no secret was changed)", err, oldPath, relaySecretsKeyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("secrets key rotation: %w (start again to finish it)", err)
		}
		if err := os.Remove(oldPath); err != nil {
			return nil, fmt.Errorf("secrets key rotation: remove the rotated-out key: %w", err)
		}
		a.log.Info("relay secrets key rotated: every stored signing secret is encrypted with the new key", "path", path, "reencrypted", moved)
		return key, nil
	}
	if a.cfg.Events.DiscardUnreadableSecrets {
		n, err := delivery.DiscardUnreadableSecrets(ctx, js, key)
		if err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		a.log.Warn("deleted the signing secrets relay-secrets.key does not decrypt (--discard-unreadable-signing-secrets): their handlers get new secrets, give them the new ones (eventrelay secrets get)",
			"deleted", n, "path", path)
		return key, nil
	}
	check, err := delivery.CheckSecretsKey(ctx, js, key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if check.Stored > 0 && check.Opened == 0 {
		what := "is not the key they were stored with"
		if created {
			what = "was missing (a new one was made and is removed again)"
			os.Remove(path)
		}
		return nil, fmt.Errorf("secrets key: %s %s, and none of the %d signing secrets in the broker decrypts under it: "+
			"copy %s from the relay instance that stored them (all instances share one key) or restore it from the backup of the data directory; "+
			"if the key was rotated, the previous one goes to %s; if it is lost for good, start once with --discard-unreadable-signing-secrets "+
			"(handlers then need their new secrets)", path, what, check.Stored, relaySecretsKeyFile, oldPath)
	}
	return key, nil
}

// sealKey derives the 32-byte AES key from relay-secrets.key's text.
func sealKey(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// authKeyProbe asks authprovider whether it accepts key, with a call that
// changes nothing: VerifyPortal of empty credentials answers ok=false
// once the key was accepted, Unauthenticated when it was not.
func authKeyProbe(client tokenv1.EventAuthClient, key string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		_, err := client.VerifyPortal(ctx, &tokenv1.VerifyPortalRequest{})
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.Unauthenticated, codes.PermissionDenied:
			return fmt.Errorf("%w: %s", peercheck.ErrKeyRejected, status.Convert(err).Message())
		}
		return err
	}
}
