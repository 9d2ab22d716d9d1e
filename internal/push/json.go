package push

import (
	"bytes"
	"encoding/json"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

// oneLine returns b (valid JSON) compacted if it holds a line terminator.
func oneLine(b []byte) []byte {
	if bytes.ContainsAny(b, "\r\n") {
		var buf bytes.Buffer
		if json.Compact(&buf, b) == nil {
			b = buf.Bytes()
		}
	}
	if bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029")) {
		// Only possible inside strings, where the escape means the same.
		b = bytes.ReplaceAll(b, []byte("\u2028"), []byte(`\u2028`))
		b = bytes.ReplaceAll(b, []byte("\u2029"), []byte(`\u2029`))
	}
	return b
}
