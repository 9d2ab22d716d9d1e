package push

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pushv1 "github.com/isobox/isobox/api/isobox/push/v1"
)

func TestParseChannelsForms(t *testing.T) {
	s := testSigner(t)
	priv, pub, other := strings.Repeat("a1", 16), strings.Repeat("b2", 16), strings.Repeat("c3", 16)
	keys, err := ParseChannels(s.SignComposite(priv, pub)+"/"+s.SignChannel(other)+"/"+s.SignPublic(other), s, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, string(k[0])+k.hex())
	}
	want := "p" + priv + ",u" + pub + ",p" + other + ",u" + other
	if strings.Join(got, ",") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	// The portal's signature (CPullChannel: hex HMAC-SHA1 of the id) for a
	// known key and id, computed independently.
	if sig := s.Sign(priv); len(sig) != 40 || !isLowerHex(sig) {
		t.Fatalf("sha1 signature %q", sig)
	}
	s256, _ := NewSigner(testKey, "sha256")
	if _, err := ParseChannels(s256.SignChannel(priv), s256, true); err != nil || len(s256.Sign(priv)) != 64 {
		t.Fatalf("sha256: %v", err)
	}
	if _, err := ParseChannels(s.SignChannel(priv), s256, true); err != ErrBadChannel {
		t.Fatalf("sha1 signature accepted by a sha256 signer: %v", err)
	}
	// Publishing may use raw ids.
	if _, err := ParseChannels(priv+"/"+other, s, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseChannels(strings.Repeat(priv+"/", MaxChannels)+priv, s, false); err != ErrBadChannel {
		t.Fatalf("more than %d channels: %v", MaxChannels, err)
	}
	if _, err := NewSigner("", "sha1"); err == nil {
		t.Fatal("empty key accepted")
	}
}

// FuzzParseChannels: no panic, and whatever is accepted is well formed and
// was signed with the key.
func FuzzParseChannels(f *testing.F) {
	s := testSigner(f)
	id, pub := strings.Repeat("0f", 16), strings.Repeat("e1", 16)
	for _, seed := range []string{
		s.SignChannel(id), s.SignComposite(id, pub), s.SignPublic(pub),
		s.SignChannel(id) + "/" + s.SignComposite(id, pub), id, id + ":" + pub, "public:" + pub,
		"", "/", "//", id + ".", "." + id, id + ".zz", "public:.", ":",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, v string, requireSig bool) {
		keys, err := ParseChannels(v, s, requireSig)
		if err != nil {
			if err != ErrNoChannel && err != ErrBadChannel {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(keys) == 0 || len(keys) > 2*MaxChannels {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if k[0] != kindPrivate && k[0] != kindPublic {
				t.Fatalf("bad kind %q", k[0])
			}
		}
		if requireSig {
			for elem := range strings.SplitSeq(v, "/") {
				body, sig, ok := strings.Cut(elem, ".")
				if !ok || s.Sign(body) != sig {
					t.Fatalf("accepted unsigned element %q", elem)
				}
			}
		}
	})
}

// FuzzPublishBody: a text publish body is accepted only as one JSON object,
// and what is stored is one line that a client's regex cuts out whole.
func FuzzPublishBody(f *testing.F) {
	for _, seed := range []string{
		`{"module_id":"a","command":"b","params":{}}`, "{\n\"a\": 1\n}", `{"s":"` + "\u2028" + `"}`,
		"", " ", "[]", "null", "{", `{"a":"\n"}`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := normalizeBody(body)
		if err != nil {
			return
		}
		if !json.Valid(out) || out[0] != '{' && !bytes.HasPrefix(bytes.TrimLeft(out, " \t"), []byte("{")) {
			t.Fatalf("stored %q is not a JSON object", out)
		}
		if bytes.ContainsAny(out, "\r\n") || bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("stored %q crosses a line", out)
		}
		var a, b any
		if json.Unmarshal(body, &a) != nil || json.Unmarshal(out, &b) != nil {
			t.Fatal("round trip failed")
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("meaning changed: %s -> %s", ja, jb)
		}
		frame := appendFrame(nil, formatText, []item{{m: &message{body: out}}})
		if got := framed.FindAllSubmatch(frame, -1); len(got) != 1 {
			t.Fatalf("frame %q yields %d messages", frame, len(got))
		}
	})
}

// FuzzDecodeBatch: no panic on any RequestBatch, and every accepted message
// has valid receivers, a one-line JSON object body and a bounded expiry.
func FuzzDecodeBatch(f *testing.F) {
	ok, _ := proto.Marshal(batchOf([]string{body("a"), body("b")}, strings.Repeat("ab", 16)))
	f.Add(ok)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	stats, _ := proto.Marshal(&pushv1.RequestBatch{Requests: []*pushv1.Request{
		{Command: &pushv1.Request_ChannelStats{ChannelStats: &pushv1.ChannelStatsRequest{Channels: []*pushv1.ChannelId{{Id: make([]byte, 16), IsPrivate: true}}}}},
		{Command: &pushv1.Request_ServerStats{ServerStats: &pushv1.ServerStatsRequest{}}},
	}})
	f.Add(stats)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBatch(data, 86400, 86400)
		if err != nil {
			return
		}
		for _, p := range b.msgs {
			if len(p.to) == 0 || len(p.to) > MaxChannels {
				t.Fatalf("%d receivers", len(p.to))
			}
			if p.expiry == 0 || p.expiry > 86400 {
				t.Fatalf("expiry %d", p.expiry)
			}
			if !json.Valid(p.body) || bytes.ContainsAny(p.body, "\r\n") {
				t.Fatalf("body %q", p.body)
			}
		}
	})
}

// FuzzParseDeviceID: no panic; whatever is accepted is 1..64 bytes of the
// URL-, NATS-key- and HTML-safe set, unchanged, and goes through a query
// string unchanged.
func FuzzParseDeviceID(f *testing.F) {
	for _, seed := range []string{"isobox-relay-5ccf7f0a1b2c", "", "a", strings.Repeat("x", 65), "<img src=x>", "a\x00b", "relé", "a.b_c-D"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseDeviceID(v)
		if err != nil {
			if got != "" {
				t.Fatalf("refused %q but returned %q", v, got)
			}
			return
		}
		if got != v || len(got) == 0 || len(got) > MaxDeviceIDLen {
			t.Fatalf("accepted %q as %q", v, got)
		}
		if strings.Trim(got, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			t.Fatalf("accepted %q with other characters", v)
		}
		if url.QueryEscape(got) != got {
			t.Fatalf("accepted %q, which needs escaping", v)
		}
	})
}
