package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/devices"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
)

// pushConfig holds the push channel settings.
type pushConfig struct {
	SignatureKey     string        // the portal's pull signature_key; prefer the file
	SignatureKeyFile string        // file holding it; "" = <data-dir>/push-signature.key, created if absent
	SignatureAlgo    string        // the portal's pull signature_algo
	PollTimeout      time.Duration // long-poll hold
	PingInterval     time.Duration // WebSocket ping period
	DefaultExpiry    time.Duration // Message-Expiry when none is given
	MaxExpiry        time.Duration // longest Message-Expiry, and how long history is kept
	HistoryBytes     int64         // stream size cap
	Replicas         int           // stream replicas on a NATS cluster
	MaxPayload       int64         // publish body limit
	PublishSignature bool          // require ?signature= on publishes
	RenewalKeep      time.Duration // how long channel renewals are remembered
	ReplayMaxMsgs    int           // stored messages one reconnect reads at most
	ReplayMaxBytes   int           // matching body bytes one reconnect keeps at most
	MaxSubsPerIP     int           // subscribers held at once per client address
	MaxSubsPerChan   int           // subscribers per channel
}

func (c *pushConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.ReplayMaxMsgs, "push-replay-max-messages", 10000, "stored messages one reconnect reads at most; a client further behind gets the newest after a history_gap notice")
	fs.IntVar(&c.ReplayMaxBytes, "push-replay-max-bytes", 8<<20, "message bytes one reconnect replays at most (the newest; history_gap for the rest)")
	fs.IntVar(&c.MaxSubsPerIP, "push-max-subs-per-ip", 128, "long polls and WebSockets held at once from one client address, IPv6 per /64 (-1 = no cap; raise it when subscribers come through a proxy); more get 429")
	fs.IntVar(&c.MaxSubsPerChan, "push-max-subs-per-channel", 64, "subscribers of one channel on this instance (-1 = no cap); more get 429")
	fs.StringVar(&c.SignatureKey, "push-signature-key", "", "push channel signature key: the portal's pull signature_key option (the environment or --push-signature-key-file keeps it out of the process list)")
	fs.StringVar(&c.SignatureKeyFile, "push-signature-key-file", "", "file holding the push signature key; empty = <data-dir>/push-signature.key, created (0600) on first start")
	fs.StringVar(&c.SignatureAlgo, "push-signature-algo", "sha1", "HMAC algorithm of channel signatures, the portal's pull signature_algo: sha1, sha224, sha256, sha384, sha512, md5")
	fs.DurationVar(&c.PollTimeout, "push-poll-timeout", 40*time.Second, "how long a long poll (/bitrix/sub/) is held before 304")
	fs.DurationVar(&c.PingInterval, "push-ping-interval", 45*time.Second, "WebSocket ping period; a client that does not answer within it is disconnected")
	fs.DurationVar(&c.DefaultExpiry, "push-default-expiry", 24*time.Hour, "expiry of a message published without Message-Expiry")
	fs.DurationVar(&c.MaxExpiry, "push-max-expiry", 24*time.Hour, "longest message expiry; the push history keeps messages this long")
	fs.Int64Var(&c.HistoryBytes, "push-history-bytes", 1<<30, "size cap of the push history stream in bytes; older messages are dropped first and reconnecting clients told")
	fs.IntVar(&c.Replicas, "push-replicas", 0, "replicas of the push history stream; 0 = automatic: 1 on a single server (embedded), 3 on a cluster; 1 on a cluster needs --allow-single-replica")
	fs.Int64Var(&c.MaxPayload, "push-max-payload", 1<<20, "largest publish request body in bytes (413 above)")
	fs.BoolVar(&c.PublishSignature, "push-publish-signature", false, "require publishes to carry ?signature= (hex HMAC of the body with the signature key)")
	fs.DurationVar(&c.RenewalKeep, "push-renewal-keep", push.DefaultRenewalKeep, "how long a channel renewal (the portal's pull/channel_expire) is remembered and sent again to subscribers of the old channel, e.g. relay boards that were off longer than the history")
}

// signatureKey returns the key: from the flag, else from the file (created
// with a fresh key if absent).
func (c *pushConfig) signatureKey(a *app) (string, error) {
	if c.SignatureKey != "" {
		return c.SignatureKey, nil
	}
	path := c.SignatureKeyFile
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "push-signature.key")
	}
	if c.SignatureKeyFile != "" {
		key, err := secret.Read(path)
		if err != nil {
			return "", fmt.Errorf("push signature key: %w", err)
		}
		return key, nil
	}
	key, created, err := secret.LoadOrCreate(path, 64)
	if err != nil {
		return "", fmt.Errorf("push signature key: %w", err)
	}
	if created {
		a.log.Warn("push: created a signature key; set the portal's pull option signature_key to its content", "file", path)
	} else {
		a.log.Info("push: signature key loaded", "file", path)
	}
	return key, nil
}

// mountPush adds the Push & Pull channel: subscribers on --http-addr,
// publishing on --publish-addr.
func mountPush(ctx context.Context, a *app) error {
	c := &a.cfg.Push
	key, err := c.signatureKey(a)
	if err != nil {
		return err
	}
	signer, err := push.NewSigner(key, c.SignatureAlgo)
	if err != nil {
		return err
	}
	if c.PollTimeout <= 0 || c.PingInterval < time.Second || c.MaxExpiry <= 0 || c.DefaultExpiry <= 0 {
		return errors.New("push: --push-poll-timeout, --push-default-expiry and --push-max-expiry must be positive, --push-ping-interval at least 1s")
	}
	replicas, err := events.ReplicationOf(a.nc.Conn, a.cfg.AllowSingleReplica).Replicas("push-replicas", c.Replicas)
	if err != nil {
		return err
	}
	srv, err := push.New(ctx, push.Config{
		Signer:            signer,
		PollTimeout:       c.PollTimeout,
		PingInterval:      c.PingInterval,
		DefaultExpiry:     c.DefaultExpiry,
		MaxExpiry:         c.MaxExpiry,
		HistoryBytes:      c.HistoryBytes,
		Replicas:          replicas,
		MaxPayload:        c.MaxPayload,
		PublishSignature:  c.PublishSignature,
		RenewalKeep:       c.RenewalKeep,
		ReplayMaxMessages: c.ReplayMaxMsgs,
		ReplayMaxBytes:    c.ReplayMaxBytes,
		MaxSubsPerIP:      c.MaxSubsPerIP,
		MaxSubsPerChannel: c.MaxSubsPerChan,
		Registerer:        a.d.Registry,
	}, a.nc.Conn, a.log)
	if err != nil {
		return err
	}
	if err := mountOps(ctx, a, srv, signer, replicas); err != nil {
		srv.Close(ctx)
		return err
	}
	sub := srv.SubscribeHandler()
	a.http.Handle("/bitrix/sub/", sub)
	a.http.Handle("/bitrix/subws/", sub)
	a.publish.Handle("/bitrix/pub/", srv.PublishHandler())
	a.publish.Handle("GET /server-stat/", srv.StatHandler())
	a.d.Ready("push", srv.Ready)
	// Long polls and WebSockets outlive http.Server.Shutdown's patience
	// (polls are held 40s, WebSockets are hijacked), so they are ended as
	// soon as shutdown begins; OnDrain then waits for the WebSockets.
	context.AfterFunc(ctx, srv.Shutdown)
	a.d.OnDrain(srv.Close)
	return nil
}

// mountOps adds the RelayOps admin service (push state, devices, test
// messages, settings) and the device tracker.
func mountOps(ctx context.Context, a *app, srv *push.Server, signer *push.Signer, replicas int) error {
	js, err := jetstream.New(a.nc.Conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	tracker, err := devices.Open(ctx, devices.Config{JS: js, Replicas: replicas, Instance: srv.InstanceID(), Source: srv.WebSockets, Log: a.log})
	if err != nil {
		return err
	}
	tctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); tracker.Run(tctx) }()
	a.d.OnDrain(func(context.Context) { stop(); <-done })
	cfg := a.cfg
	relayv1.RegisterRelayOpsServer(a.grpc, &opsServer{
		push: srv, devices: tracker, publish: srv.PublishHandler(), signer: signer, signBodies: cfg.Push.PublishSignature,
		settings: func() []*relayv1.Setting { return effectiveSettings(cfg.flags, cfg.parsed) }, audit: a.audit,
	})
	a.gatewayRegs = append(a.gatewayRegs, relayv1.RegisterRelayOpsHandler)
	return nil
}
