package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/auditlog"
)

// Metadata with which an admin API caller says who is behind a call: the
// source (cli or console), the person (the console's logged-in user, the
// CLI's OS user) and, for the console, the user's own address. The caller
// holds the admin key, so these are believed as far as the key is.
const (
	sourceMD = "x-isobox-source"
	actorMD  = "x-isobox-actor"
	remoteMD = "x-isobox-remote"
)

// mdValue is the first value of key, without control characters, cut to
// n bytes.
func mdValue(ctx context.Context, key string, n int) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(key) {
		v = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, strings.ToValidUTF8(v, ""))
		if v = strings.TrimSpace(v); v != "" {
			if len(v) > n {
				v = strings.ToValidUTF8(v[:n], "")
			}
			return v
		}
	}
	return ""
}

// actorOf is the caller's actor, "admin-key" when none was named.
func actorOf(ctx context.Context) string {
	if a := mdValue(ctx, actorMD, 64); a != "" {
		return a
	}
	return "admin-key"
}

// auditedCall says what a changing admin API call did, for the audit log:
// action, target, detail. Never a secret.
type auditedCall func(req, resp any) (action, target, detail string)

// secretTarget names a signing secret's owner: portal and app, or "a
// webhook" (its application token is a credential and is not logged).
func secretTarget(req any) string {
	r, _ := req.(*relayv1.SigningSecretRequest)
	t := "portal=" + r.GetPortal()
	if r.GetClientId() != "" {
		return t + " client_id=" + r.GetClientId()
	}
	return t + " webhook"
}

var auditedMethods = map[string]auditedCall{
	relayv1.Relay_ReplayDelivery_FullMethodName: func(req, _ any) (string, string, string) {
		return "delivery.replay", req.(*relayv1.ReplayDeliveryRequest).GetId(), ""
	},
	relayv1.Relay_ReplayDeadLetters_FullMethodName: func(req, resp any) (string, string, string) {
		r := req.(*relayv1.ReplayDeadLettersRequest)
		target, detail := r.GetHandler(), fmt.Sprintf("%d dead letters replayed", resp.(*relayv1.ReplayResponse).GetReplayed())
		if target == "" {
			target = "all handlers"
		}
		if r.GetSince() > 0 {
			detail += " (dead-lettered since " + time.Unix(r.GetSince(), 0).UTC().Format(time.RFC3339) + ")"
		}
		return "dlq.replay", target, detail
	},
	relayv1.Relay_PauseHandler_FullMethodName: func(req, _ any) (string, string, string) {
		return "handler.pause", req.(*relayv1.HandlerRequest).GetKey(), ""
	},
	relayv1.Relay_ResumeHandler_FullMethodName: func(req, _ any) (string, string, string) {
		return "handler.resume", req.(*relayv1.HandlerRequest).GetKey(), ""
	},
	relayv1.Relay_RotateSigningSecret_FullMethodName: func(req, resp any) (string, string, string) {
		until := resp.(*relayv1.SigningSecret).GetPreviousUntil()
		return "signing-secret.rotate", secretTarget(req), "previous signs until " + time.Unix(until, 0).UTC().Format(time.RFC3339)
	},
	relayv1.Relay_GetSigningSecret_FullMethodName: func(req, _ any) (string, string, string) {
		return "signing-secret.read", secretTarget(req), ""
	},
	relayv1.RelayOps_SendTestPush_FullMethodName: func(req, resp any) (string, string, string) {
		r := req.(*relayv1.SendTestPushRequest)
		target := r.GetChannel()
		if id, ok := testChannel(target); ok {
			target = id
		}
		if r.GetPublic() {
			target = "public:" + target
		}
		return "push.test", target, fmt.Sprintf("%d subscribers", resp.(*relayv1.SendTestPushResponse).GetSubscribers())
	},
}

// auditAPI is a gRPC interceptor (after authentication) that records every
// successful change made through the relay admin API in the audit log:
// who, what, on what, from where.
func (a *app) auditAPI(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	describe, ok := auditedMethods[info.FullMethod]
	if err != nil || !ok || a.audit == nil {
		return resp, err
	}
	action, target, detail := describe(req, resp)
	source := mdValue(ctx, sourceMD, 16)
	if source != auditlog.SourceCLI && source != auditlog.SourceConsole {
		source = auditlog.SourceAdminAPI
	}
	remote := a.peers.Remote(ctx)
	if user := mdValue(ctx, remoteMD, 64); user != "" && source == auditlog.SourceConsole {
		remote = user + " (console at " + remote + ")"
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e := auditlog.Entry{Source: source, Actor: actorOf(ctx), Action: action, Target: target, Detail: detail, Remote: remote}
	if aerr := a.audit.Record(actx, e); aerr != nil {
		a.log.Error("audit: relay admin API change not recorded", "method", info.FullMethod, "err", aerr)
	}
	return resp, err
}

func auditEntry(e auditlog.Entry) *relayv1.AuditEntry {
	return &relayv1.AuditEntry{Id: e.ID, Seq: e.Seq, AtMs: e.At.UnixMilli(), Source: e.Source, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Detail: e.Detail, Remote: e.Remote}
}

func msOrZero(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (o *opsServer) ListAudit(ctx context.Context, req *relayv1.ListAuditRequest) (*relayv1.ListAuditResponse, error) {
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = 200
	}
	es, err := o.audit.List(ctx, auditlog.Filter{Since: msOrZero(req.GetSinceMs()), Until: msOrZero(req.GetUntilMs()), Actor: req.GetActor(), Limit: min(limit, 10000)})
	if err != nil {
		return nil, unavailable(err)
	}
	resp := &relayv1.ListAuditResponse{}
	for _, e := range es {
		resp.Entries = append(resp.Entries, auditEntry(e))
	}
	return resp, nil
}

func (o *opsServer) ExportAudit(req *relayv1.ExportAuditRequest, stream grpc.ServerStreamingServer[relayv1.AuditEntry]) error {
	err := o.audit.Each(stream.Context(), auditlog.Filter{Since: msOrZero(req.GetSinceMs())}, req.GetAfterSeq(), func(e auditlog.Entry) error {
		return stream.Send(auditEntry(e))
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}
