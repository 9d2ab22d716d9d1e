package portal

import (
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"
)

// resultAppender is a method result that writes its own JSON: the hot
// methods (rest.check) skip encoding/json's reflection and the copy of the
// wrapped result.
type resultAppender interface {
	appendJSON(b []byte) []byte
}

// writeResult writes {"result": res} as bitrix.WriteJSON does, in one
// buffer sized for the answer.
func writeResult(w http.ResponseWriter, res resultAppender) {
	b := make([]byte, 0, 640)
	b = append(b, `{"result":`...)
	b = res.appendJSON(b)
	b = append(b, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// appendJSON writes r byte for byte as encoding/json.Marshal does
// (FuzzCheckResultJSON holds it to that).
func (r checkResult) appendJSON(b []byte) []byte {
	b = append(b, `{"access_token":`...)
	b = appendJSONString(b, r.AccessToken)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, r.ExpiresIn, 10)
	b = append(b, `,"expires":`...)
	b = strconv.AppendInt(b, r.Expires, 10)
	b = append(b, `,"scope":`...)
	b = appendJSONString(b, r.Scope)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, r.ClientID)
	b = append(b, `,"user_id":`...)
	b = strconv.AppendInt(b, r.UserID, 10)
	b = append(b, `,"parameters":`...)
	if r.Parameters == nil {
		b = append(b, "null"...)
	} else {
		var small [8]string
		keys := small[:0]
		for k := range r.Parameters {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, r.Parameters[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"status":`...)
	b = appendJSONString(b, r.Status)
	return append(b, '}')
}

// appendJSONString writes s as encoding/json does: HTML characters, U+2028
// and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
