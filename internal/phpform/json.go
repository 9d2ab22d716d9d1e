package phpform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// UnmarshalJSON decodes a JSON object or list into a, keeping key order, with
// the conversions http_build_query applies to the PHP values json_decode
// would give: true becomes "1", false "0", numbers their literal text, and
// null is dropped. A list becomes keys "0", "1", ...
func (a *Array) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("phpform: json: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok || (d != '{' && d != '[') {
		return errors.New("phpform: json: want an object or a list")
	}
	*a = *NewArray()
	if err := a.decodeJSON(dec, d, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("phpform: json: trailing data")
	}
	return nil
}

func (a *Array) decodeJSON(dec *json.Decoder, open json.Delim, depth int) error {
	if depth > MaxDepth {
		return ErrTooDeep
	}
	for i := 0; dec.More(); i++ {
		var key string
		if open == '{' {
			tok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("phpform: json: %w", err)
			}
			key = tok.(string)
		} else {
			key = strconv.Itoa(i)
		}
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("phpform: json: %w", err)
		}
		switch v := tok.(type) {
		case json.Delim:
			sub := NewArray()
			if err := sub.decodeJSON(dec, v, depth+1); err != nil {
				return err
			}
			a.Set(key, sub)
		case string:
			a.Set(key, v)
		case json.Number:
			a.Set(key, v.String())
		case bool:
			if v {
				a.Set(key, "1")
			} else {
				a.Set(key, "0")
			}
		case nil:
			// http_build_query omits nulls.
		}
	}
	if _, err := dec.Token(); err != nil { // closing delimiter
		return fmt.Errorf("phpform: json: %w", err)
	}
	return nil
}

// MarshalJSON writes a as json_encode would write the PHP array: a list
// when its keys are 0..n-1 in order, an object otherwise. Values are strings.
func (a *Array) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	a.writeJSON(&b)
	return b.Bytes(), nil
}

func (a *Array) isList() bool {
	for i, k := range a.keys {
		if k != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

func (a *Array) writeJSON(b *bytes.Buffer) {
	list := a.isList() && len(a.keys) > 0
	if list {
		b.WriteByte('[')
	} else {
		b.WriteByte('{')
	}
	for i, k := range a.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if !list {
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
		}
		switch v := a.vals[k].(type) {
		case *Array:
			v.writeJSON(b)
		case string:
			vb, _ := json.Marshal(v)
			b.Write(vb)
		}
	}
	if list {
		b.WriteByte(']')
	} else {
		b.WriteByte('}')
	}
}
