package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
)

// rawH2 opens an HTTP/2 connection to a gRPC listener by hand, so that a
// test can behave as no well-mannered client does.
func rawH2(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// openCall sends the headers of a unary call on stream 1 and nothing else.
func openCall(t *testing.T, fr *http2.Framer, method string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "x"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// streamEnd reads frames until stream 1 ends (trailers with END_STREAM or
// RST_STREAM) or the connection goes away, and says which. The deadline
// is a safety net for a server that never answers.
func streamEnd(c net.Conn, fr *http2.Framer) string {
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return "still open after 60s"
		case err != nil:
			return "closed: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			if f.StreamEnded() {
				var s []string
				for _, h := range fields {
					if strings.HasPrefix(h.Name, "grpc-") {
						s = append(s, h.Name+"="+h.Value)
					}
				}
				return "trailers " + strings.Join(s, " ")
			}
		case *http2.RSTStreamFrame:
			return "reset " + f.ErrCode.String()
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String() + " " + string(f.DebugData())
		}
	}
}

// Issue 11 (attacker review): the gRPC listeners (authprovider's
// validation/admin/event-auth, the relay's admin) bounded the handshake
// and idle connections, but a client could open a call and never send its
// request (held until the connection's 10-minute age), send a request of
// up to 4 MiB before anything checked it, and headers of up to 16 MiB.
func TestGRPCListenersBoundSilentCallsAndLargeRequests(t *testing.T) {
	svcs := startBoth(t, "--read-timeout", "1s", "--write-timeout", "1s")
	// A unary method each service serves.
	method := map[string]string{"authprovider": "/isobox.token.v1.EventAuth/VerifyPortal", "eventrelay": "/isobox.relay.v1.Relay/GetDelivery"}
	for _, s := range svcs {
		addr := s.p.Addr("grpc")
		// A call whose request never comes ends within read + write timeout.
		c, fr := rawH2(t, addr)
		openCall(t, fr, method[s.name])
		if got := streamEnd(c, fr); !strings.Contains(got, "grpc-status=4") && !strings.HasPrefix(got, "reset") {
			t.Errorf("%s: a call that never sends its request: %s, want it ended (DEADLINE_EXCEEDED)", s.name, got)
		}

		// A request over 1 MiB is refused before it is handled.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		// (Sent as a VerifyPortalRequest to either method: the size is
		// checked before the message is decoded.)
		err = conn.Invoke(ctx, method[s.name], &tokenv1.VerifyPortalRequest{ClientId: "bx.x", ClientSecret: strings.Repeat("s", 2<<20)}, &tokenv1.VerifyPortalResponse{})
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s: a 2 MiB request: %v, want RESOURCE_EXHAUSTED", s.name, err)
		}
		// Headers over 64 KiB are refused too.
		ctx2 := metadataCtx(ctx, "x-pad", strings.Repeat("h", 100<<10))
		err = conn.Invoke(ctx2, method[s.name], &tokenv1.VerifyPortalRequest{ClientId: "bx.x", ClientSecret: "s"}, &tokenv1.VerifyPortalResponse{})
		if c := status.Code(err); c == codes.Unauthenticated || c == codes.OK {
			t.Errorf("%s: 100 KiB of headers reached the service: %v", s.name, err)
		}
		cancel()
		conn.Close()

		// A ping flood is answered with GOAWAY too_many_pings.
		c, fr = rawH2(t, addr)
		for i := range 20 {
			if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				break // the server hung up
			}
		}
		if got := streamEnd(c, fr); !strings.Contains(got, "too_many_pings") && !strings.HasPrefix(got, "closed") {
			t.Errorf("%s: 20 pings at once: %s, want GOAWAY too_many_pings", s.name, got)
		}
	}
}

func metadataCtx(ctx context.Context, k, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, k, v)
}
