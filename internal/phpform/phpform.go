// Package phpform reads and writes PHP's form encoding: the nested
// "a[b][c]=v" keys that PHP's http_build_query writes and parse_str reads.
// The Bitrix portal sends its REST events and OAuth-server calls in this
// encoding, and app handlers parse deliveries with it, so isobox must produce
// it byte for byte, in the portal's key order.
//
// Values are either strings or *Array, an ordered PHP array. Array also
// decodes JSON objects and lists keeping their key order, so an item that
// arrives as json_encode output is re-encoded exactly as http_build_query
// would have encoded the PHP array it came from.
package phpform

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits on decoded input, as PHP's own defaults (max_input_vars,
// max_input_nesting_level). Over them, Decode fails rather than truncating.
const (
	MaxVars  = 10000
	MaxDepth = 64
)

// Errors returned by Decode.
var (
	ErrTooManyVars = errors.New("phpform: too many variables")
	ErrTooDeep     = errors.New("phpform: nesting too deep")
	ErrBadEscape   = errors.New("phpform: invalid percent-encoding")
)

// Array is an ordered PHP array: string keys in insertion order. Integer
// keys are kept as their decimal strings, as PHP prints them.
type Array struct {
	keys []string
	vals map[string]any // string or *Array
	// next is PHP's next free integer key (nNextFreeElement), kept as keys
	// are added so that "a[]=" is O(1): scanning every key made decoding
	// quadratic. hasNext is false until an integer key is added. As in
	// PHP, deleting a key does not lower it.
	next    int
	hasNext bool
}

// NewArray returns an empty array.
func NewArray() *Array { return &Array{vals: map[string]any{}} }

// Len returns the number of elements.
func (a *Array) Len() int { return len(a.keys) }

// Keys returns the keys in order. The slice must not be modified.
func (a *Array) Keys() []string { return a.keys }

// Get returns the value under key: a string, an *Array, or nil if absent.
func (a *Array) Get(key string) any {
	if a == nil {
		return nil
	}
	return a.vals[key]
}

// String returns the string under key, or "" if absent or an array.
func (a *Array) String(key string) string {
	s, _ := a.Get(key).(string)
	return s
}

// Array returns the array under key, or nil if absent or a string.
func (a *Array) Array(key string) *Array {
	v, _ := a.Get(key).(*Array)
	return v
}

// Set stores v (a string or *Array) under key, keeping the key's position
// if it exists (as PHP does when a key is assigned again).
func (a *Array) Set(key string, v any) {
	if _, ok := a.vals[key]; !ok {
		a.keys = append(a.keys, key)
		a.bumpNext(key)
	}
	a.vals[key] = v
}

// bumpNext moves next past key if key is an integer key, saturating at
// the largest int as PHP does.
func (a *Array) bumpNext(key string) {
	n, ok := intKey(key)
	if !ok || (a.hasNext && n < a.next) {
		return
	}
	a.hasNext = true
	if n == math.MaxInt {
		a.next = n
	} else {
		a.next = n + 1
	}
}

// intKey reports whether key is an integer key as PHP stores one: the
// canonical decimal form of an int ("0", "7", "-3"; not "07", "-0", "+1").
func intKey(key string) (int, bool) {
	d := key
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 19 || (d[0] == '0' && (len(d) > 1 || len(key) > 1)) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(key)
	return n, err == nil
}

// Delete removes key.
func (a *Array) Delete(key string) {
	if _, ok := a.vals[key]; !ok {
		return
	}
	delete(a.vals, key)
	for i, k := range a.keys {
		if k == key {
			a.keys = append(a.keys[:i], a.keys[i+1:]...)
			break
		}
	}
}

// nextIndex is PHP's next free integer key: one more than the largest
// integer key added so far (negative ones included), or 0. ok is false
// when that key is taken (the largest int was used), where PHP refuses to
// append.
func (a *Array) nextIndex(m *meter) (key string, ok bool) {
	m.add(1)
	if !a.hasNext {
		return "0", true
	}
	key = strconv.Itoa(a.next)
	_, taken := a.vals[key]
	return key, !taken
}

// Append adds v under the next integer key, as PHP's $a[] = v; like PHP,
// it does nothing when that key is taken (after the largest int).
func (a *Array) Append(v any) {
	if k, ok := a.nextIndex(nil); ok {
		a.Set(k, v)
	}
}

// List returns the values in order (for arrays used as lists).
func (a *Array) List() []any {
	out := make([]any, 0, len(a.keys))
	for _, k := range a.keys {
		out = append(out, a.vals[k])
	}
	return out
}

// Map returns a plain copy: strings stay strings, arrays become
// map[string]any. Order is lost; use it only where order does not matter.
func (a *Array) Map() map[string]any {
	m := make(map[string]any, len(a.keys))
	for _, k := range a.keys {
		if sub, ok := a.vals[k].(*Array); ok {
			m[k] = sub.Map()
		} else {
			m[k] = a.vals[k]
		}
	}
	return m
}

// Encode writes a as http_build_query($a) does: keys and values with PHP's
// urlencode (space as '+', everything but [A-Za-z0-9_.-] percent-encoded,
// brackets included), nested keys as name[key], empty arrays omitted.
func Encode(a *Array) string {
	var b strings.Builder
	for _, k := range a.keys {
		encodeValue(&b, escape(k), a.vals[k])
	}
	return b.String()
}

func encodeValue(b *strings.Builder, prefix string, v any) {
	switch v := v.(type) {
	case *Array:
		for _, k := range v.keys {
			encodeValue(b, prefix+"%5B"+escape(k)+"%5D", v.vals[k])
		}
	case string:
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(prefix)
		b.WriteByte('=')
		b.WriteString(escape(v))
	}
}

const hexUpper = "0123456789ABCDEF"

// escape is PHP's urlencode.
func escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case unreserved(c):
			out = append(out, c)
		case c == ' ':
			out = append(out, '+')
		default:
			out = append(out, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(out)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// unescape is PHP's urldecode: '+' is a space, %XX a byte. Unlike PHP,
// which keeps a malformed escape literally, it reports ErrBadEscape when
// strict is set.
func unescape(s string, strict bool) (string, error) {
	if !strings.ContainsAny(s, "+%") {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case c == '%' && strict:
			return "", fmt.Errorf("%w at byte %d", ErrBadEscape, i)
		default:
			out = append(out, c)
		}
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Decode parses a form body as PHP's parse_str does: "a[b][]=1&a[b][]=2"
// gives a => [b => [0 => 1, 1 => 2]]. A later value for the same key
// replaces the earlier one. Top-level names have ' ' and '.' turned into
// '_', as PHP does. A malformed percent escape is an error (PHP keeps it
// literally; a caller that needs to be lenient can pre-clean the input).
func Decode(body string) (*Array, error) { return decode(body, nil) }

// meter counts the steps of a decode (bytes read, keys scanned), so that
// tests can bound the work per input byte without timing it. nil counts
// nothing.
type meter struct{ steps int }

func (m *meter) add(n int) {
	if m != nil {
		m.steps += n
	}
}

func decode(body string, m *meter) (*Array, error) {
	root := NewArray()
	if body == "" {
		return root, nil
	}
	vars := 0
	for _, pair := range strings.Split(body, "&") {
		if pair == "" {
			continue
		}
		vars++
		if vars > MaxVars {
			return nil, ErrTooManyVars
		}
		m.add(len(pair) + 1)
		rawKey, rawVal, _ := strings.Cut(pair, "=")
		key, err := unescape(rawKey, true)
		if err != nil {
			return nil, err
		}
		val, err := unescape(rawVal, true)
		if err != nil {
			return nil, err
		}
		if err := assign(root, key, val, m); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// assign stores val under the PHP variable name key in root.
func assign(root *Array, key, val string, m *meter) error {
	key = strings.TrimLeft(key, " ")
	base, rest, nested := strings.Cut(key, "[")
	if !nested || !strings.Contains(rest, "]") {
		// No complete bracket: the whole name is one key; PHP turns the
		// first unmatched '[' (and ' ', '.') into '_'.
		name := phpName(key)
		if name == "" {
			return nil
		}
		root.Set(name, val)
		return nil
	}
	base = phpName(base)
	if base == "" {
		return nil
	}
	segs, err := segments("[" + rest)
	if err != nil {
		return err
	}
	cur := root
	path := append([]*string{&base}, segs...)
	for i, seg := range path {
		last := i == len(path)-1
		k := ""
		if seg == nil {
			var ok bool
			if k, ok = cur.nextIndex(m); !ok {
				return nil // PHP drops the variable
			}
		} else {
			k = *seg
		}
		if last {
			cur.Set(k, val)
			return nil
		}
		next, ok := cur.Get(k).(*Array)
		if !ok {
			next = NewArray()
			cur.Set(k, next)
		}
		cur = next
	}
	return nil
}

// segments parses "[a][b][]..." into keys; nil means "[]" (append).
// Text after the last complete bracket is ignored, as PHP does.
func segments(s string) ([]*string, error) {
	var out []*string
	for strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			break
		}
		if len(out) >= MaxDepth {
			return nil, ErrTooDeep
		}
		if end == 1 {
			out = append(out, nil)
		} else {
			k := s[1:end]
			out = append(out, &k)
		}
		s = s[end+1:]
	}
	return out, nil
}

func phpName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '[' {
			return '_'
		}
		return r
	}, s)
}
