package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/isobox/isobox/internal/phpform"
)

// decodeJSONArray parses a JSON object or list into an ordered PHP array
// with exactly the conversions of phpform.Array's UnmarshalJSON (true "1",
// false "0", numbers as written, null dropped, list keys "0", "1", …), but
// in one pass over the bytes: the token API it is built on costs more than
// the rest of the hand-off together. FuzzJSONMatchesPhpform holds the two
// to the same answers.
func decodeJSONArray(data []byte) (*phpform.Array, error) {
	p := jsonParser{b: data}
	p.ws()
	if p.i >= len(p.b) || (p.b[p.i] != '{' && p.b[p.i] != '[') {
		return nil, errors.New("events: json: want an object or a list")
	}
	a := phpform.NewArray()
	if err := p.container(a, 1); err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, errors.New("events: json: trailing data")
	}
	return a, nil
}

type jsonParser struct {
	b []byte
	i int
}

var errJSON = errors.New("events: json: syntax error")

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) fail() error { return fmt.Errorf("%w at byte %d", errJSON, p.i) }

// container parses the object or list at p.i into a.
func (p *jsonParser) container(a *phpform.Array, depth int) error {
	if depth > phpform.MaxDepth {
		return phpform.ErrTooDeep
	}
	open := p.b[p.i]
	closer := byte('}')
	if open == '[' {
		closer = ']'
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == closer {
		p.i++
		return nil
	}
	for n := 0; ; n++ {
		var key string
		if open == '{' {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return p.fail()
			}
			k, err := p.str()
			if err != nil {
				return err
			}
			key = k
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return p.fail()
			}
			p.i++
		} else {
			key = strconv.Itoa(n)
		}
		p.ws()
		if err := p.value(a, key, depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.fail()
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
			continue
		case closer:
			p.i++
			return nil
		default:
			return p.fail()
		}
	}
}

func (p *jsonParser) value(a *phpform.Array, key string, depth int) error {
	if p.i >= len(p.b) {
		return p.fail()
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		sub := phpform.NewArray()
		if err := p.container(sub, depth+1); err != nil {
			return err
		}
		a.Set(key, sub)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return err
		}
		a.Set(key, s)
	case c == 't':
		if err := p.lit("true"); err != nil {
			return err
		}
		a.Set(key, "1")
	case c == 'f':
		if err := p.lit("false"); err != nil {
			return err
		}
		a.Set(key, "0")
	case c == 'n':
		return p.lit("null") // http_build_query omits nulls
	case c == '-' || ('0' <= c && c <= '9'):
		s, err := p.num()
		if err != nil {
			return err
		}
		a.Set(key, s)
	default:
		return p.fail()
	}
	return nil
}

func (p *jsonParser) lit(word string) error {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return p.fail()
	}
	p.i += len(word)
	return nil
}

// num scans a JSON number and returns its text.
func (p *jsonParser) num() (string, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return "", p.fail()
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return "", p.fail()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return "", p.fail()
		}
	}
	return string(p.b[start:p.i]), nil
}

// str scans a JSON string at p.i. Plain ASCII without escapes is taken as
// is; anything else is decoded by encoding/json, so escapes, surrogates and
// invalid UTF-8 come out exactly as with the token decoder.
func (p *jsonParser) str() (string, error) {
	start := p.i
	p.i++
	plain := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if plain {
				return string(p.b[start+1 : p.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return "", fmt.Errorf("%w: %v", errJSON, err)
			}
			return s, nil
		case c == '\\':
			plain = false
			p.i += 2
		case c < 0x20:
			return "", p.fail()
		case c >= utf8.RuneSelf:
			plain = false
			p.i++
		default:
			p.i++
		}
	}
	return "", p.fail()
}
