package oauth

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/ory/fosite"
	"github.com/ory/x/errorsx"
)

// TestBitrixErrorMapping is the table from token-exchange failures to what
// oauth.bitrix.info answers (bitrix-wire.md §4.2).
func TestBitrixErrorMapping(t *testing.T) {
	s := &Service{}
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{errGraceReuse, 400, "invalid_grant"},
		{fosite.ErrServerError.WithWrap(errGraceReuse), 400, "invalid_grant"},
		{errorsx.WithStack(fosite.ErrInvalidGrant.WithWrap(fosite.ErrTokenExpired.WithHint("x"))), 401, "expired_token"},
		{fosite.ErrInvalidRequest.WithWrap(fosite.ErrSerializationFailure), 400, "invalid_grant"},
		{fosite.ErrServerError.WithWrap(fmt.Errorf("x: %w", ErrInvalidGrant)), 400, "invalid_grant"},
		{ErrInvalidScope, 400, "invalid_scope"},
		{errorsx.WithStack(fosite.ErrServerError.WithWrap(fosite.ErrInvalidatedAuthorizeCode)), 400, "invalid_grant"},
		{fosite.ErrServerError.WithWrap(fosite.ErrNotFound), 400, "invalid_grant"},
		{errorsx.WithStack(fosite.ErrInvalidClient.WithHint("x")), 400, "invalid_client"},
		{fosite.ErrInvalidGrant, 400, "invalid_grant"},
		{fosite.ErrInvalidScope, 400, "invalid_scope"},
		{fosite.ErrUnsupportedGrantType, 400, "unsupported_grant_type"},
		{fosite.ErrUnauthorizedClient, 400, "unauthorized_client"},
		{fosite.ErrInvalidRequest, 400, "invalid_grant"},
		{fosite.ErrServerError.WithWrap(errors.New("db down")), 500, "INTERNAL_SERVER_ERROR"},
		{errors.New("plain"), 500, "INTERNAL_SERVER_ERROR"},
		{fosite.ErrRequestForbidden, 400, "invalid_request"},
	} {
		got := s.bitrixError(c.err)
		if got.Status != c.status || got.Code != c.code || got.Description == "" {
			t.Errorf("bitrixError(%v) = %d %s %q, want %d %s", c.err, got.Status, got.Code, got.Description, c.status, c.code)
		}
	}
}

func TestRetryable(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
	if !retryable(fosite.ErrServerError.WithWrap(fmt.Errorf("oauth: rotate: %w", deadlock))) {
		t.Fatal("wrapped deadlock not retryable")
	}
	if retryable(fosite.ErrServerError.WithWrap(&mysql.MySQLError{Number: 1062})) || retryable(nil) || retryable(errors.New("x")) {
		t.Fatal("non-deadlock retryable")
	}
}
