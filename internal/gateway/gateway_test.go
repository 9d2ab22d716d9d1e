package gateway_test

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/gateway"
)

func TestBitrixErrorSurvivesGRPC(t *testing.T) {
	err := gateway.Status(codes.FailedPrecondition, bitrix.NewError(http.StatusUnauthorized, "ERROR_OAUTH", "Application not installed"))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "Application not installed" {
		t.Fatalf("gRPC side: %v %q", st.Code(), st.Message())
	}
	got := gateway.FromStatus(st)
	if got.Status != 401 || got.Code != "ERROR_OAUTH" || got.Description != "Application not installed" {
		t.Fatalf("REST side: %+v", got)
	}
	plain := gateway.FromStatus(status.New(codes.Unauthenticated, "no key"))
	if plain.Status != 401 || plain.Code != "invalid_credentials" {
		t.Fatalf("plain status: %+v", plain)
	}
}
