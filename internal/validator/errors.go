package validator

import (
	"errors"
	"net/http"

	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/oauth"
)

// Sentinels for checks that are not the OAuth service's.
var (
	// ErrInsufficientScope: the token lacks the called method's scope.
	ErrInsufficientScope = errors.New("validator: insufficient scope")
	// ErrNotInstalled: the app does not exist, is inactive or belongs to another portal.
	ErrNotInstalled = errors.New("validator: application not installed")
)

// The Bitrix errors the checks answer with. All auth errors are 401, as
// the box portal answers them (bitrix-wire.md §0.1.6); the portal reads the
// OAuth server's JSON regardless of status.
var (
	errInvalidToken      = bitrix.NewError(http.StatusUnauthorized, "invalid_token", "Unable to get application by token")
	errExpiredToken      = bitrix.NewError(http.StatusUnauthorized, "expired_token", "The access token provided has expired")
	errInsufficientScope = bitrix.NewError(http.StatusUnauthorized, "insufficient_scope", "The request requires higher privileges than provided by the access token")
	errNotInstalled      = bitrix.NewError(http.StatusUnauthorized, "ERROR_OAUTH", "Application not installed")
	errInvalidClient     = bitrix.NewError(http.StatusUnauthorized, "invalid_client", "Invalid client credentials")
	errNoAuth            = bitrix.NewError(http.StatusUnauthorized, "NO_AUTH_FOUND", "Wrong authorization data")
	errInvalidScope      = bitrix.NewError(http.StatusBadRequest, "invalid_scope", "The requested scope is invalid, unknown, or malformed")
	errInternal          = bitrix.NewError(http.StatusServiceUnavailable, "CONNECTION_ERROR", "Error connecting to authorization server")
)

// BitrixError maps an error of a check, a mint or a client lookup to the
// Bitrix error a portal or app sees. Anything unexpected becomes a 503
// CONNECTION_ERROR (the cause belongs in the log, not in the answer).
func BitrixError(err error) *bitrix.Error {
	var be *bitrix.Error
	switch {
	case errors.As(err, &be):
		return be
	case errors.Is(err, oauth.ErrInvalidToken):
		return errInvalidToken
	case errors.Is(err, oauth.ErrExpiredToken):
		return errExpiredToken
	case errors.Is(err, ErrInsufficientScope):
		return errInsufficientScope
	case errors.Is(err, ErrNotInstalled):
		return errNotInstalled
	case errors.Is(err, oauth.ErrInvalidClient):
		return errInvalidClient
	case errors.Is(err, oauth.ErrInvalidScope):
		return errInvalidScope
	default:
		return errInternal
	}
}

// NoAuth is the error for a call that carries no credentials at all.
func NoAuth() *bitrix.Error { return errNoAuth }
