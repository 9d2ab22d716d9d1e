package validator

import (
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/gateway"
)

// ValidatePath is the REST face of PortalTokens.Validate (token.gateway.yaml).
const ValidatePath = "/v1/token/validate"

// maxValidateBody bounds a Validate request: a token and a scope.
const maxValidateBody = 16 << 10

var (
	validateIn  = protojson.UnmarshalOptions{DiscardUnknown: true}
	validateOut = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
)

// ValidateHandler serves POST /v1/token/validate directly, without the
// gateway's hop through loopback gRPC: the module calls it on every
// uncached REST request. It answers exactly what the gateway would (same
// protojson options, same Bitrix errors for bad credentials and bodies);
// mount it on the admin mux next to the gateway, as "POST " + ValidatePath.
func (s *Service) ValidateHandler(log *slog.Logger) http.Handler {
	srv := &PortalTokensServer{S: s, Log: log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata.Pairs("authorization", r.Header.Get("Authorization"))
		ctx := metadata.NewIncomingContext(r.Context(), md)
		ctx, err := s.PortalCheck(ctx, "")
		if err != nil {
			writeStatus(w, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValidateBody))
		if err != nil {
			bitrix.WriteError(w, bitrix.BodyError(err))
			return
		}
		var req tokenv1.ValidateRequest
		if err := validateIn.Unmarshal(body, &req); err != nil {
			writeStatus(w, status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), "proto: ")))
			return
		}
		res, err := srv.Validate(ctx, &req)
		if err != nil {
			writeStatus(w, err)
			return
		}
		out, err := validateOut.Marshal(res)
		if err != nil {
			writeStatus(w, status.Error(codes.Internal, "encode"))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		w.Write(out)
	})
}

// writeStatus renders a gRPC status as the gateway does.
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	bitrix.WriteError(w, bitrix.NewError(runtime.HTTPStatusFromCode(st.Code()), gateway.CodeName(st.Code()), st.Message()))
}
