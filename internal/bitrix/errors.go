// Package bitrix holds the wire shapes that Bitrix clients and the portal
// read, shared by both services: the JSON error body
// {"error": CODE, "error_description": TEXT} and the helpers that write it.
//
// It is the only place that writes that body, so a code or text that
// clients rely on is defined once (and, by Hyrum's law, never changed).
package bitrix

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error is a Bitrix-shaped error: what a client sees, and the HTTP status it
// comes with. It is safe to show to clients; internal causes stay in logs.
type Error struct {
	// Status is the HTTP status code.
	Status int `json:"-"`
	// Code is the machine-readable code ("invalid_token", "NO_AUTH_FOUND").
	Code string `json:"error"`
	// Description is the human-readable text.
	Description string `json:"error_description"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// NewError returns an *Error.
func NewError(status int, code, description string) *Error {
	return &Error{Status: status, Code: code, Description: description}
}

// WriteJSON writes v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(w, NewError(http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// WriteError writes e as {"error","error_description"} with e.Status. Like
// http.Error it drops any Content-Length set before and sets Content-Type
// and nosniff. A nil-status error is sent as 400.
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Del("Content-Length")
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	WriteJSON(w, status, e)
}

// BodyError turns a request-body read failure into the Bitrix error to send:
// 413 for a body over the limit (http.MaxBytesReader), 400 otherwise.
func BodyError(err error) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return NewError(http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large")
	}
	return NewError(http.StatusBadRequest, "invalid_request", "Malformed request body")
}
