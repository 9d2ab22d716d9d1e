package main

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/metadata"
)

// A test message's channel, from an admin's form: either refused or 32
// lowercase hex digits.
func FuzzTestChannel(f *testing.F) {
	for _, s := range []string{"0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef.sig", " x ", "public:00", strings.Repeat("A", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := testChannel(s)
		if !ok {
			if id != "" {
				t.Fatalf("refused %q but returned %q", s, id)
			}
			return
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("%q gave %q", s, id)
		}
	})
}

// Who a caller says it is goes into the audit log: bounded, UTF-8, no
// control characters, whatever was sent.
func FuzzCallerMetadata(f *testing.F) {
	for _, s := range []string{"alice", "alice\n<b>", strings.Repeat("é", 100), "\xff\xfe", " \t "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{actorMD: {s}})
		a := actorOf(ctx)
		if len(a) > 64 || !utf8.ValidString(a) || a == "" || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("actor %q from %q", a, s)
		}
	})
}
