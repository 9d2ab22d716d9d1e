// Package gateway builds the grpc-gateway mux that gives both services' gRPC
// APIs their REST face. JSON uses the proto field names (snake_case, as
// Bitrix's own JSON) and errors use the Bitrix shape {"error",
// "error_description"}, like every other isobox error body.
package gateway

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/isobox/isobox/internal/bitrix"
)

// New returns a grpc-gateway mux with isobox's JSON and error conventions.
func New(opts ...runtime.ServeMuxOption) *runtime.ServeMux {
	base := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			st := status.Convert(err)
			bitrix.WriteError(w, bitrix.NewError(runtime.HTTPStatusFromCode(st.Code()), CodeName(st.Code()), st.Message()))
		}),
	}
	return runtime.NewServeMux(append(base, opts...)...)
}

// CodeName maps a gRPC code to the error code the REST face shows.
func CodeName(c codes.Code) string {
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
