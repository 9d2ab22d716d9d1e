package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one service process of the topology: a real binary started with
// fixed arguments (so a restart comes back on the same ports and data),
// its output appended to a log file.
type proc struct {
	name  string
	bin   string
	args  []string
	env   []string
	log   string
	ready string // URL answering 200 once the process is ready

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	expected bool // the current process is being stopped or killed on purpose
	crashes  []string
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("faults: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.expected = cmd, done, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		if !p.expected {
			p.crashes = append(p.crashes, fmt.Sprintf("%s exited by itself: %v (log %s)", p.name, err, p.log))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady polls the ready URL (a black-box process) until it answers 200.
func (p *proc) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ready, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		select {
		case <-done:
			return fmt.Errorf("faults: %s exited before it was ready: %v (log %s):\n%s", p.name, p.err, p.log, logTail(p.log, 2000))
		case <-ctx.Done():
			return fmt.Errorf("faults: %s not ready within %v (log %s)", p.name, within, p.log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitUnready polls the ready URL until it stops answering 200.
func (p *proc) waitUnready(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ready, nil)
		resp, err := client.Do(req)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("faults: %s still ready after %v", p.name, within)
		}
		if err != nil {
			return nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: %s still ready after %v", p.name, within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 0) }

// stop sends SIGTERM and waits (SIGKILL after grace).
func (p *proc) stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.expected = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			cmd.Process.Kill()
		}
	}
	<-done
}

// running reports whether the process is up.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) takeCrashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.crashes
	p.crashes = nil
	return c
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("faults: free port"), err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// logTail returns the last n bytes of the log file at path (the process
// is gone with its temporary directory by the time a test reports).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-n):])
}
