package events

// DecodeJSONArrayForTest exposes the one-pass JSON reader to the fuzz test.
var DecodeJSONArrayForTest = decodeJSONArray
