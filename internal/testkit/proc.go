package testkit

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the Go package pkg (e.g. "github.com/isobox/isobox/cmd/eventrelay")
// into t.TempDir() and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testkit: go build %s: %v", pkg, err)
	}
	return out
}

// Proc is a service process started by Start: a real binary, its JSON logs
// parsed to learn where it listens.
type Proc struct {
	Cmd    *exec.Cmd
	addrs  map[string]string
	mu     sync.Mutex
	ready  chan struct{}
	done   chan struct{}
	err    error
	Stdout strings.Builder
	logs   strings.Builder
}

// Start runs bin with args in dir and waits until it has logged a
// "listening" line for every name in listeners. The process is killed at
// cleanup if still running.
func Start(t testing.TB, dir, bin string, args []string, listeners ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, addrs: map[string]string{}, ready: make(chan struct{}), done: make(chan struct{})}
	cmd.Stdout = &syncWriter{mu: &p.mu, w: &p.Stdout}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testkit: start %s: %v", bin, err)
	}
	go p.readLogs(stderr, listeners)
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("testkit: %s exited before listening: %v\n%s", bin, p.err, p.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("testkit: %s not listening after 60s\n%s", bin, p.Logs())
	}
	return p
}

func (p *Proc) readLogs(r io.Reader, want []string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	signalled := len(want) == 0
	if signalled {
		close(p.ready)
	}
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Msg      string `json:"msg"`
			Listener string `json:"listener"`
			Addr     string `json:"addr"`
		}
		p.mu.Lock()
		p.logs.WriteString(line + "\n")
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			p.addrs[rec.Listener] = rec.Addr
		}
		all := true
		for _, n := range want {
			if p.addrs[n] == "" {
				all = false
			}
		}
		p.mu.Unlock()
		if all && !signalled {
			signalled = true
			close(p.ready)
		}
	}
}

// Addr returns where the listener named name listens.
func (p *Proc) Addr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[name]
}

// Logs returns what the process logged so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stop sends SIGTERM and waits for the exit; it returns the exit error
// (nil for status 0) or ctx's error.
func (p *Proc) Stop(ctx context.Context) error {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.done
}

type syncWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
