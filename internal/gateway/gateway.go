// Package gateway builds the grpc-gateway mux that gives both services' gRPC
// APIs their REST face. JSON uses the proto field names (snake_case, as
// Bitrix's own JSON) and errors use the Bitrix shape {"error",
// "error_description"}, like every other isobox error body.
package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/isobox/isobox/internal/bitrix"
)

// MaxBody bounds a REST-face request body. Admin and token calls are small;
// the gateway reads the body before the gRPC call is authenticated.
const MaxBody = 1 << 20

// New returns a grpc-gateway mux with isobox's JSON and error conventions.
func New(opts ...runtime.ServeMuxOption) *runtime.ServeMux {
	base := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			bitrix.WriteError(w, FromStatus(status.Convert(err)))
		}),
	}
	return runtime.NewServeMux(append(base, opts...)...)
}

// NoStore wraps the REST face so that no answer is kept by a cache on the
// way (Cache-Control: no-store; Pragma for HTTP/1.0 caches): its answers
// carry tokens and secrets (token mint and issue, client secrets,
// introspection).
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		next.ServeHTTP(w, r)
	})
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

// Registrar registers one gRPC service's REST routes on mux, forwarding to
// conn (the generated RegisterXxxHandler functions have this shape).
type Registrar func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

// Connect dials the service's own gRPC listener at addr and registers every
// registrar on mux. Routing through the real listener, rather than calling
// the servers in process, keeps the gRPC authentication interceptors on the
// REST path too. Without options the hop is plain; a listener serving TLS
// needs grpc.WithTransportCredentials. The caller closes the returned
// connection at shutdown.
func Connect(ctx context.Context, mux *runtime.ServeMux, addr string, regs []Registrar, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: connect %s: %w", addr, err)
	}
	for _, reg := range regs {
		if err := reg(ctx, mux, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("gateway: register: %w", err)
		}
	}
	return conn, nil
}

// errorDomain marks the ErrorInfo detail that carries a Bitrix error code.
const errorDomain = "isobox.bitrix"

// Status returns a gRPC status error of code c that carries e: gRPC
// callers see c and e.Description, and the REST face renders e exactly
// (its Bitrix code, such as ERROR_OAUTH, and its HTTP status), which
// clients like the portal's app.layout component act on.
func Status(c codes.Code, e *bitrix.Error) error {
	st := status.New(c, e.Description)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   e.Code,
		Domain:   errorDomain,
		Metadata: map[string]string{"http_status": strconv.Itoa(e.Status)},
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// FromStatus is the Bitrix error for a gRPC status: the one Status put in
// it, or a generic code derived from the gRPC code.
func FromStatus(st *status.Status) *bitrix.Error {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			httpStatus, err := strconv.Atoi(info.Metadata["http_status"])
			if err != nil || httpStatus < 400 || httpStatus > 599 {
				httpStatus = runtime.HTTPStatusFromCode(st.Code())
			}
			return bitrix.NewError(httpStatus, info.Reason, st.Message())
		}
	}
	return bitrix.NewError(runtime.HTTPStatusFromCode(st.Code()), CodeName(st.Code()), st.Message())
}
