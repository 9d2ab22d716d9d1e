package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// HandlerInfo is one handler: an app (or webhook) of a portal and a URL.
// Each has its own queue subject and consumer.
type HandlerInfo struct {
	Key      string `json:"key"`
	URL      string `json:"url"`
	ClientID string `json:"client_id,omitempty"`
	// Webhook is a hash of the webhook's application token (for webhooks).
	Webhook string `json:"webhook,omitempty"`
	Portal  string `json:"portal"`
	Paused  bool   `json:"paused,omitempty"`
}

// HandlerKey derives the handler of an item: portal, app (client_id, or the
// webhook's application token) and URL.
func HandlerKey(portal string, it events.Item) HandlerInfo {
	return handlerKey(portal, it.ClientID(), it.ApplicationToken(), it.URL())
}

func handlerKey(portal, clientID, appToken, url string) HandlerInfo {
	h := HandlerInfo{URL: url, ClientID: clientID, Portal: portal}
	app := "app:" + h.ClientID
	if h.ClientID == "" {
		sum := sha256.Sum256([]byte(appToken))
		h.Webhook = hex.EncodeToString(sum[:8])
		app = "webhook:" + h.Webhook
	}
	sum := sha256.Sum256([]byte(portal + "\x00" + app + "\x00" + h.URL))
	h.Key = hex.EncodeToString(sum[:10])
	return h
}

// ErrUnknownHandler is returned for a handler key never seen.
var ErrUnknownHandler = errors.New("delivery: unknown handler")

func (s *Service) loadHandler(ctx context.Context, key string) (HandlerInfo, error) {
	e, err := s.kvH.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return HandlerInfo{}, fmt.Errorf("%w: %s", ErrUnknownHandler, key)
	}
	if err != nil {
		return HandlerInfo{}, fmt.Errorf("delivery: load handler %s: %w", key, err)
	}
	var h HandlerInfo
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return HandlerInfo{}, fmt.Errorf("delivery: decode handler %s: %w", key, err)
	}
	return h, nil
}

func (s *Service) saveHandler(ctx context.Context, h HandlerInfo) error {
	b, _ := json.Marshal(h)
	if _, err := s.kvH.Put(ctx, h.Key, b); err != nil {
		return fmt.Errorf("delivery: save handler %s: %w", h.Key, err)
	}
	return nil
}

// ensureHandler makes sure the handler is registered and its workers run.
func (s *Service) ensureHandler(ctx context.Context, h HandlerInfo) error {
	s.mu.Lock()
	_, ok := s.handlers[h.Key]
	s.mu.Unlock()
	if ok {
		return nil
	}
	// Create, not Put: another instance (or this one before a restart)
	// may know the handler already, paused; its stored state wins.
	b, _ := json.Marshal(h)
	if _, err := s.kvH.Create(ctx, h.Key, b); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("delivery: save handler %s: %w", h.Key, err)
		}
		stored, err := s.loadHandler(ctx, h.Key)
		if err != nil {
			return err
		}
		h = stored
	}
	return s.startWorker(ctx, h)
}

func (s *Service) startWorker(ctx context.Context, h HandlerInfo) error {
	cons, err := s.js.CreateOrUpdateConsumer(ctx, events.StreamQueue, jetstream.ConsumerConfig{
		Durable:       events.ConsumerQueue + h.Key,
		FilterSubject: events.SubjectQueue + h.Key,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Long enough for one attempt plus an auth build; InProgress
		// extends it while a delivery waits for authprovider. After a crash,
		// the messages that were in flight come back after it.
		AckWait:       max(5*time.Second, 2*s.cfg.Timeout+5*time.Second),
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Description:   "isobox handler queue " + h.URL,
	})
	if err != nil {
		return fmt.Errorf("delivery: consumer for handler %s: %w", h.Key, err)
	}
	w := newWorker(s, h, cons)
	s.mu.Lock()
	if _, dup := s.handlers[h.Key]; dup {
		s.mu.Unlock()
		return nil
	}
	s.handlers[h.Key] = w
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); w.run(s.ctx) }()
	return nil
}

func (s *Service) worker(key string) (*worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.handlers[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownHandler, key)
	}
	return w, nil
}

// SetPaused pauses or resumes a handler; the state survives restarts.
// Resuming also closes an open circuit.
func (s *Service) SetPaused(ctx context.Context, key string, paused bool) (HandlerInfo, error) {
	w, err := s.worker(key)
	if err != nil {
		return HandlerInfo{}, err
	}
	h := w.info()
	h.Paused = paused
	if err := s.saveHandler(ctx, h); err != nil {
		return HandlerInfo{}, err
	}
	w.setPaused(paused)
	return h, nil
}

// applyHandler brings this instance in line with one stored handler:
// starts its workers if they do not run here yet, else applies its pause
// state (a change made on another instance, or this one's own write).
func (s *Service) applyHandler(ctx context.Context, e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	var h HandlerInfo
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return fmt.Errorf("delivery: decode handler %s: %w", e.Key(), err)
	}
	if w, err := s.worker(h.Key); err == nil {
		if w.info().Paused != h.Paused {
			w.setPaused(h.Paused)
		}
		return nil
	}
	return s.startWorker(ctx, h)
}

// watchHandlers applies the changes of the handlers bucket until ctx ends.
func (s *Service) watchHandlers(ctx context.Context, watch jetstream.KeyWatcher) {
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-watch.Updates():
			if !ok {
				if ctx.Err() == nil {
					s.log.Error("delivery: handlers watch ended; changes made on other instances no longer reach this one")
				}
				return
			}
			if e == nil {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := s.applyHandler(actx, e); err != nil {
				s.log.Error("delivery: apply handler change", "key", e.Key(), "err", err)
			}
			cancel()
		}
	}
}
