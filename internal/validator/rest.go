package validator

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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

var validateIn = protojson.UnmarshalOptions{DiscardUnknown: true}

// ValidateHandler serves POST /v1/token/validate directly, without the
// gateway's hop through loopback gRPC: the module calls it on every
// uncached REST request. It answers what the gateway would (the same JSON
// document as protojson with proto names and unpopulated fields, the same
// Bitrix errors for bad credentials and bodies); mount it on the admin mux
// next to the gateway, as "POST " + ValidatePath.
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
		out := appendValidateJSON(make([]byte, 0, 512), res)
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

// appendValidateJSON writes res as protojson does with UseProtoNames and
// EmitUnpopulated (fields in number order, int64 as strings, map keys
// sorted), without reflection: protojson's encoder is most of the cost of
// this hot path.
func appendValidateJSON(b []byte, res *tokenv1.ValidateResponse) []byte {
	b = append(b, `{"client_id":`...)
	b = appendString(b, res.GetClientId())
	b = append(b, `,"user_id":"`...)
	b = strconv.AppendInt(b, res.GetUserId(), 10)
	b = append(b, `","scope":`...)
	b = appendString(b, res.GetScope())
	b = append(b, `,"expires":"`...)
	b = strconv.AppendInt(b, res.GetExpires(), 10)
	b = append(b, `","status":`...)
	b = appendString(b, res.GetStatus())
	b = append(b, `,"parameters":{`...)
	keys := make([]string, 0, len(res.GetParameters()))
	for k := range res.GetParameters() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, res.GetParameters()[k])
	}
	b = append(b, `},"auth_type":`...)
	b = appendString(b, res.GetAuthType())
	b = append(b, `,"access_token":`...)
	b = appendString(b, res.GetAccessToken())
	b = append(b, `,"error":`...)
	b = appendString(b, res.GetError())
	b = append(b, `,"error_description":`...)
	b = appendString(b, res.GetErrorDescription())
	b = append(b, `,"http_status":`...)
	b = strconv.AppendInt(b, int64(res.GetHttpStatus()), 10)
	return append(b, '}')
}

// appendString writes s as a JSON string (invalid UTF-8 replaced).
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
