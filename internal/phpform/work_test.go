package phpform

import (
	"strings"
	"testing"
)

// workPerByte bounds the decoder's steps (bytes read plus keys scanned)
// per input byte: a linear parser stays under it whatever the input, a
// quadratic one (PHP's next-index search done by scanning every key on
// each "a[]=") exceeds it on the worst cases below.
const workPerByte = 4

// worstCases are bodies built to make a form parser work hardest per byte.
func worstCases(size int) map[string]string {
	rep := func(unit string) string { return strings.Repeat(unit, size/len(unit)) }
	return map[string]string{
		"append":         rep("a[]=&"),
		"append nested":  rep("a[x][]=&"),
		"append deep":    rep("a[][][][][][][][]=&"),
		"numeric keys":   rep("a[7]=&a[]=&"),
		"same key":       rep("a[b]=1&"),
		"long key":       "a" + rep("[") + "]=1",
		"brackets":       rep("[]"),
		"escapes":        "a=" + rep("%41"),
		"separators":     rep("&"),
		"plus and dots":  rep("a.b+c="),
		"open brackets":  rep("a[b") + "=1",
		"empty segments": "a" + rep("[]") + "=1",
	}
}

// TestDecodeWorkIsLinear is finding 6 of issue 11: 60 KB of "a[]=" took
// 1.5 s of CPU. Each worst case of 1 MB (and 60 KB) must decode, or be
// refused, within workPerByte steps per byte.
func TestDecodeWorkIsLinear(t *testing.T) {
	for _, size := range []int{60 << 10, 1 << 20} {
		for name, body := range worstCases(size) {
			var m meter
			decode(body, &m)
			if m.steps > workPerByte*(len(body)+1) {
				t.Errorf("%s, %d bytes: %d steps (%.1f per byte), want at most %d per byte",
					name, len(body), m.steps, float64(m.steps)/float64(len(body)), workPerByte)
			}
		}
	}
}

// FuzzDecodeWork: no input makes the decoder do more than workPerByte
// steps per byte.
func FuzzDecodeWork(f *testing.F) {
	for _, body := range worstCases(4 << 10) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var m meter
		decode(body, &m)
		if m.steps > workPerByte*(len(body)+1) {
			t.Fatalf("%d steps for %d bytes", m.steps, len(body))
		}
	})
}
