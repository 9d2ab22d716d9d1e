package portal

import "strings"

// RESTMethod is the method a /rest/ request path names, as serveREST reads
// it: lower case, without the trailing slash or ".json" (the portal may
// append "/?bx24_request_id=…").
func RESTMethod(path string) string {
	m := strings.ToLower(strings.Trim(strings.TrimPrefix(path, "/rest/"), "/"))
	return strings.TrimSuffix(m, ".json")
}

// Known reports whether method (as RESTMethod returns it) is served by h;
// callers that count calls by method use it to keep unknown names (any
// caller can send any path) out of their labels.
func (h *Handler) Known(method string) bool {
	_, ok := h.table[method]
	return ok || method == "app.info"
}
