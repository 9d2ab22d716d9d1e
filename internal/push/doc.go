// Package push is isobox's Push & Pull server: the local replacement for the
// Bitrix push server ("push-server", protocol versions 3 and 4) that the
// portal's pull module publishes to and that browsers, apps (BX.PullClient,
// b24jssdk) and LAN devices subscribe to.
//
// Subscribers connect to /bitrix/subws/ (WebSocket) or /bitrix/sub/ (long
// polling) with CHANNEL_ID=id.sig/id.sig, signed by the portal with the
// shared signature key; the portal publishes to /bitrix/pub/ on a loopback
// address, as JSON text or as a protobuf RequestBatch.
//
// Every published message is stored in one NATS JetStream stream before the
// publisher is answered; its stream sequence is its message id ("mid"), so
// ids are global, ordered and the same on every relay instance. Each
// instance tails the stream with an ordered consumer and fans messages out
// to its local subscribers; a subscriber that reconnects with mid gets
// exactly the stored messages after it. See docs/push.md.
package push
