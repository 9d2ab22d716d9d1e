package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/push"
)

// server is a server process under test.
type server struct {
	name   string
	cmd    *exec.Cmd
	wsURL  func(i int) string // subscribe URL of connection i (channel i for the relay)
	fanURL string             // subscribe URL on the one fan-out channel
	pubURL string             // POST here to send to the fan-out channel
	goMem  func(ctx context.Context) (goMem, error)
	done   chan struct{}
}

// goMem is what the Go runtime of the server reports.
type goMem struct {
	HeapInuse  float64 `json:"heap_inuse"`
	StackInuse float64 `json:"stack_inuse"`
	Goroutines float64 `json:"goroutines"`
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// rssKB reads the resident set size of the server process.
func (s *server) rssKB() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", s.cmd.Process.Pid)
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback address %q", addr)
	}
	return nil
}

// start runs cmd and waits for a stdout line matching re.
func start(ctx context.Context, name string, cmd *exec.Cmd, re *regexp.Regexp) (*server, []string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		for _, a := range m[1:] {
			if err := loopbackOnly(a); err != nil {
				s.stop()
				return nil, nil, err
			}
		}
		return s, m, nil
	case <-s.done:
		return nil, nil, fmt.Errorf("%s exited before listening", name)
	case <-ctx.Done():
		s.cmd.Process.Kill()
		return nil, nil, ctx.Err()
	}
}

var relayLine = regexp.MustCompile(`subscribers on http://(\S+), publish on http://(\S+), gRPC on \S+, admin on http://(\S+),`)

// startRelay runs eventrelay with an embedded NATS in dir, on loopback.
// With syncAlways false the embedded NATS does not fsync each message (to
// tell the cost of durability from the cost of the fan-out).
func startRelay(ctx context.Context, bin, dir string, syncAlways bool) (*server, error) {
	cmd := exec.CommandContext(ctx, bin, "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--publish-addr", "127.0.0.1:0",
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "warn",
		"--nats-sync-always="+strconv.FormatBool(syncAlways))
	cmd.Stderr = os.Stderr
	name := "isobox eventrelay (push)"
	if !syncAlways {
		name = "isobox push, no fsync"
	}
	s, m, err := start(ctx, name, cmd, relayLine)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(dir, "push-signature.key"))
	if err != nil {
		s.stop()
		return nil, err
	}
	signer, err := push.NewSigner(strings.TrimSpace(string(key)), "sha1")
	if err != nil {
		s.stop()
		return nil, err
	}
	sub, pub, admin := m[1], m[2], m[3]
	shared := fmt.Sprintf("%032x", 0xfeed)
	sharedSigned := signer.SignChannel(shared)
	s.wsURL = func(i int) string {
		// Each subscriber has its own private channel and the shared one,
		// as a portal user's browser does.
		return "ws://" + sub + "/bitrix/subws/?CHANNEL_ID=" + signer.SignChannel(fmt.Sprintf("%032x", i+1)) + "/" + sharedSigned + "&revision=19"
	}
	s.fanURL = "ws://" + sub + "/bitrix/subws/?CHANNEL_ID=" + sharedSigned + "&revision=19"
	s.pubURL = "http://" + pub + "/bitrix/pub/?CHANNEL_ID=" + shared
	s.goMem = func(ctx context.Context) (goMem, error) { return scrapeMetrics(ctx, "http://"+admin+"/metrics") }
	return s, nil
}

func scrapeMetrics(ctx context.Context, url string) (goMem, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return goMem{}, err
	}
	defer resp.Body.Close()
	var g goMem
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			g.HeapInuse = f
		case "go_memstats_stack_inuse_bytes":
			g.StackInuse = f
		case "go_goroutines":
			g.Goroutines = f
		}
	}
	return g, sc.Err()
}

var echoLine = regexp.MustCompile(`^listening (\S+)$`)

// startEcho runs this binary as the minimal WebSocket server.
func startEcho(ctx context.Context, self string) (*server, error) {
	cmd := exec.CommandContext(ctx, self, "echo-server")
	cmd.Stderr = os.Stderr
	s, m, err := start(ctx, "minimal coder/websocket server", cmd, echoLine)
	if err != nil {
		return nil, err
	}
	addr := m[1]
	s.wsURL = func(int) string { return "ws://" + addr + "/ws" }
	s.fanURL = "ws://" + addr + "/ws"
	s.pubURL = "http://" + addr + "/pub"
	s.goMem = func(ctx context.Context) (goMem, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/mem", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return goMem{}, err
		}
		defer resp.Body.Close()
		var g goMem
		return g, json.NewDecoder(resp.Body).Decode(&g)
	}
	return s, nil
}

// runEchoServer is the baseline: the usual coder/websocket server, a
// handler goroutine per connection reading and echoing, net/http's default
// buffers, and a /pub endpoint that writes a body to every connection.
func runEchoServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	conns := map[*websocket.Conn]struct{}{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.CloseNow()
		}()
		ctx := context.Background()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("POST /pub", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		for c := range conns {
			go c.Write(context.Background(), websocket.MessageText, b)
		}
		mu.Unlock()
	})
	mux.HandleFunc("GET /mem", func(w http.ResponseWriter, r *http.Request) {
		var ms runtimeMem
		json.NewEncoder(w).Encode(ms.read())
	})
	fmt.Printf("listening %s\n", ln.Addr())
	return http.Serve(ln, mux)
}
