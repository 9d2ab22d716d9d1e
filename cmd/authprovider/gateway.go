package main

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/bitrix"
)

// newGateway returns the grpc-gateway mux. Errors are rendered in the Bitrix
// shape {"error","error_description"}, like every other isobox error body.
func newGateway() *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			st := status.Convert(err)
			bitrix.WriteError(w, bitrix.NewError(runtime.HTTPStatusFromCode(st.Code()), grpcCodeName(st.Code()), st.Message()))
		}),
	)
}

// grpcCodeName maps a gRPC code to the error code the REST face shows.
func grpcCodeName(c codes.Code) string {
	switch c {
	case codes.Unauthenticated:
		return "invalid_credentials"
	case codes.PermissionDenied:
		return "access_denied"
	case codes.NotFound:
		return "not_found"
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return "invalid_request"
	case codes.AlreadyExists, codes.Aborted:
		return "conflict"
	case codes.Unavailable, codes.DeadlineExceeded:
		return "unavailable"
	default:
		return "internal_error"
	}
}
