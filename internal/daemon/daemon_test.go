package daemon_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/daemon"
)

func TestReadinessAndGracefulShutdown(t *testing.T) {
	d := daemon.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var dbUp = make(chan bool, 1)
	dbUp <- false
	d.Ready("db", func(context.Context) error {
		up := <-dbUp
		dbUp <- up
		if !up {
			return errors.New("down")
		}
		return nil
	})
	// A slow in-flight request must finish during shutdown.
	started := make(chan struct{})
	release := make(chan struct{})
	app := http.NewServeMux()
	app.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	var order []string
	d.OnDrain(func(context.Context) { order = append(order, "drain") })
	d.OnClose(func(context.Context) { order = append(order, "close-first-registered") })
	d.OnClose(func(context.Context) { order = append(order, "close-last-registered") })
	d.HTTP("admin", "127.0.0.1:0", d.AdminHandler())
	d.HTTP("app", "127.0.0.1:0", app)
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	admin := "http://" + d.Addr("admin")
	resp, err := http.Get(admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "db: down") {
		t.Fatalf("readyz with db down = %d %q", resp.StatusCode, body)
	}
	<-dbUp
	dbUp <- true
	resp, err = http.Get(admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz with db up = %d", resp.StatusCode)
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + d.Addr("app") + "/slow")
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-started
	cancel()
	close(release)
	if got := <-slow; got != "done" {
		t.Fatalf("in-flight request during shutdown: %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(daemon.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return")
	}
	want := "drain,close-last-registered,close-first-registered"
	if got := strings.Join(order, ","); got != want {
		t.Fatalf("shutdown order %s, want %s", got, want)
	}
}

func TestListenFailsOnTakenAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := daemon.New(log)
	a.HTTP("x", "127.0.0.1:0", http.NotFoundHandler())
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	b := daemon.New(log)
	b.HTTP("y", a.Addr("x"), http.NotFoundHandler())
	if err := b.Listen(); err == nil || !strings.Contains(err.Error(), "listen y") {
		t.Fatalf("Listen on taken address = %v", err)
	}
}
