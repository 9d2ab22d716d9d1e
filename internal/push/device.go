package push

import "errors"

// MaxDeviceIDLen bounds a device= value.
const MaxDeviceIDLen = 64

// ErrDeviceID refuses a subscribe whose device= is malformed.
var ErrDeviceID = errors.New("device must be 1 to 64 letters, digits, '.', '_' or '-', given once")

// ParseDeviceID checks a subscriber's device= parameter: the stable name a
// relay board gives itself (the firmware sends isobox-relay-<station MAC in
// hex>) so that its record outlives a new DHCP address and tells apart two
// boards behind one address. It is a label chosen by the client, not a
// credential: whoever holds a channel signature may send any value, and it
// grants nothing. Accepted: 1 to MaxDeviceIDLen bytes of ASCII letters,
// digits, '.', '_' and '-' — nothing that needs escaping in a URL, a
// NATS key or HTML.
func ParseDeviceID(v string) (string, error) {
	if v == "" || len(v) > MaxDeviceIDLen {
		return "", ErrDeviceID
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", ErrDeviceID
		}
	}
	return v, nil
}
